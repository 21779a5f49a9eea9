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
        f"prefill {m['prefill_s']:.2f} s, decode {m['decode_s']:.2f} s, {m['num_steps']} steps",
        f"  KV peak {m['peak_kv_blocks']} of {c.get('num_kv_blocks')} blocks, prefix hit rate "
        f"{m['prefix_hit_rate']:.1%}, preemptions {c.get('preemptions')}, roofline {fmt(m.get('roofline'), '', 3)}",
        f"  ran: attention={c.get('attention_backend')} kv_store={c.get('kv_store')} rope={c.get('rope')} "
        f"linear={c.get('linear')} sampler={c.get('sampler')} K/V stored in rope kernel={c.get('kv_store_in_rope')} "
        f"graph forwards={c.get('graph_forwards')} eager forwards={c.get('eager_forwards')} "
        f"max_model_len={c.get('max_model_len')}",
    ]
    if verdict:
        lines.append(f"  correctness probe: {probe_line(verdict)}")
    lines.append(f"  record: {where}/result.json")
    return lines


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
