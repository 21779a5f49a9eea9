"""The few lines a run prints when it ends."""

from __future__ import annotations


def fmt(value, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def summary_lines(record: dict) -> list[str]:
    where = record.get("job", {}).get("dir", "")
    if record.get("status") != "ok":
        return [f"FAILED ({where}): {record.get('error')}"]
    m = record["metrics"]
    c = record.get("counters", {})
    verdict = record.get("correctness") or {}
    lines = [
        f"allmos: {record['model']} ({record['weights']} weights, {record['dtype']}) on {record['device_name']}, "
        f"workload {record['workload']}",
        "  switches: " + " ".join(f"{k}={v}" for k, v in record["switches"].items()),
        f"  {m['output_tokens']:,} output tokens in {m['wall_s']:.2f} s: {fmt(m['output_tok_s'])} output tok/s, "
        f"{fmt(m['total_tok_s'])} total tok/s",
        f"  TTFT median {fmt(m['ttft_ms_median'], ' ms')}, TPOT median {fmt(m['tpot_ms_median'], ' ms', 2)}, "
        f"prefill {m['prefill_s']:.2f} s, decode {m['decode_s']:.2f} s{mixed_text(m)}, {m['num_steps']} steps",
        f"  p99: TTFT {fmt(m.get('ttft_ms_p99'), ' ms')}, TPOT {fmt(m.get('tpot_ms_p99'), ' ms', 2)}, "
        f"ITL {fmt(m.get('itl_ms_p99'), ' ms', 2)}, E2E {fmt(m.get('e2e_ms_p99'), ' ms')}; "
        f"{fmt(m.get('request_s'), ' req/s', 2)}, goodput {goodput_text(m, record.get('slo'))}",
        f"  KV peak {m['peak_kv_blocks']} of {c.get('num_kv_blocks')} blocks ({c.get('kv_cache_dtype')}), "
        f"prefix hit rate {m['prefix_hit_rate']:.1%}, preemptions {c.get('preemptions')}, "
        f"roofline {fmt(m.get('roofline'), '', 3)}",
        f"  ran: attention={c.get('attention_backend')} kv_store={c.get('kv_store')} rope={c.get('rope')} "
        f"linear={c.get('linear')} sampler={c.get('sampler')} K/V stored in rope kernel={c.get('kv_store_in_rope')} "
        f"rope in qkv epilogue={c.get('rope_in_qkv')} "
        f"graph forwards={c.get('graph_forwards')} eager forwards={c.get('eager_forwards')} "
        f"max_model_len={c.get('max_model_len')}",
    ]
    if m.get("energy_j") is not None:
        lines.append(
            f"  GPU energy {m['energy_j']:,.1f} J ({fmt(m['energy_j_per_output_token'], ' J', 4)} per output token), "
            f"SM clock {fmt(m['gpu_sm_clock_mhz'], ' MHz', 0)}, memory clock {fmt(m['gpu_mem_clock_mhz'], ' MHz', 0)}"
        )
    if verdict:
        lines.append(f"  correctness probe: {probe_line(verdict)}")
    lines.append(f"  record: {where}/result.json")
    return lines


def mixed_text(m: dict) -> str:
    """The mixed steps' share (scheduler=mixed), so the parts add up to the steps' time."""
    return f", mixed {m['mixed_s']:.2f} s" if m.get("num_mixed_steps") else ""


def probe_line(correctness: dict) -> str:
    verdict = correctness.get("verdict") or ("pass" if correctness.get("passed") else "fail")
    if verdict == "reference":
        return "reference (this job runs the reference's configuration on the same weights: nothing compared)"
    shown = "pass" if verdict == "pass" else "FAIL"
    if not correctness.get("approximate") or "top1_agreement" not in correctness:
        return shown
    diff = correctness["mean_abs_logprob_diff"]
    figures = (
        f"top-1 {correctness['top1_agreement']:.1%}, top-5 {correctness['top5_containment']:.1%}, "
        f"mean |Δlogprob| {'n/a' if diff is None else f'{diff:.3f}'}"
    )
    return f"{shown} (approximate: {' '.join(correctness['approximate'])}; teacher-forced {figures})"


def goodput_text(metrics: dict, slo: dict | None) -> str:
    limits = {k: v for k, v in (slo or {}).items() if v is not None}
    if not limits:
        return "not judged (no slo.* set)"
    within = ", ".join(f"{k} <= {v:g}" for k, v in limits.items())
    return f"{fmt(metrics.get('goodput_req_s'), ' req/s', 2)} within {within}"
