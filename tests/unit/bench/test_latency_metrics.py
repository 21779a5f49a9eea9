"""Latency summaries, goodput, peaks and requests.csv rows against values worked out by hand."""

import math

import pytest

from allmos.bench.driver import Served
from allmos.bench.latency import REQUEST_COLUMNS, latency_metrics, request_rows, summary
from allmos.bench.slo import Slo
from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence


def finished(index: int, arrival: float, token_times: list[float], admitted: float | None = None) -> Served:
    """A request of a 4-token prompt that arrived at `arrival` and got a token at each of `token_times`."""
    seq = Sequence(index, [1, 2, 3, 4], SamplingParams(max_tokens=len(token_times)), arrival=arrival)
    seq.token_ids += [9] * len(token_times)
    seq.token_times = list(token_times)
    seq.first_token_time, seq.finish_time = token_times[0], token_times[-1]
    return Served(index, seq, arrival if admitted is None else admitted, priority=index)


# Request 0: TTFT 100 ms, tokens 10 ms then 30 ms apart (TPOT 20 ms), E2E 140 ms.
# Request 1: TTFT 200 ms, one token only (no TPOT, no ITL), E2E 200 ms; admitted 50 ms late.
# Request 2: TTFT 50 ms, tokens 20 ms apart twice (TPOT 20 ms), E2E 90 ms.
SERVED = [
    finished(0, 0.0, [0.100, 0.110, 0.140]),
    finished(1, 0.5, [0.700], admitted=0.55),
    finished(2, 1.0, [1.050, 1.070, 1.090]),
]


def test_summary_is_numpy_linear_percentiles_as_vllm():
    s = summary("x_ms", [10.0, 20.0, 30.0, 40.0])
    assert s["x_ms_mean"] == 25.0 and s["x_ms_std"] == pytest.approx(math.sqrt(125.0))
    assert (s["x_ms_p50"], s["x_ms_p90"], s["x_ms_p99"]) == pytest.approx((25.0, 37.0, 39.7))
    assert summary("x_ms", []) == dict.fromkeys(["x_ms_mean", "x_ms_std", "x_ms_p50", "x_ms_p90", "x_ms_p99"])


def test_ttft_tpot_itl_and_e2e_from_arrival_and_token_times():
    m = latency_metrics(SERVED, Slo(), wall=2.0)
    assert m["ttft_ms_mean"] == pytest.approx((100 + 200 + 50) / 3) and m["ttft_ms_p50"] == pytest.approx(100)
    assert m["ttft_ms_median"] == m["ttft_ms_p50"] and m["ttft_ms_max"] == pytest.approx(200)
    assert m["tpot_ms_mean"] == pytest.approx(20.0) and m["tpot_ms_median"] == pytest.approx(20.0)
    assert m["itl_ms_mean"] == pytest.approx((10 + 30 + 20 + 20) / 4) and m["itl_ms_p50"] == pytest.approx(20.0)
    assert m["itl_ms_p99"] == pytest.approx(20 + 0.97 * 10)  # pooled gaps 10, 20, 20, 30
    assert m["e2e_ms_mean"] == pytest.approx((140 + 200 + 90) / 3) and m["e2e_ms_p90"] == pytest.approx(188.0)
    assert m["num_requests"] == 3 and m["request_s"] == 1.5
    assert m["goodput_req_s"] is None and m["slo_attainment"] is None  # no SLO set: not judged


def test_goodput_counts_requests_that_meet_every_slo_set():
    m = latency_metrics(SERVED, Slo(ttft_ms=150.0, tpot_ms=25.0), wall=2.0)
    assert m["goodput_req_s"] == 1.0 and m["slo_attainment"] == pytest.approx(2 / 3)  # request 1: TTFT 200 ms
    assert latency_metrics(SERVED, Slo(e2e_ms=100.0), wall=2.0)["goodput_req_s"] == 0.5  # request 2 only


def test_peaks_of_concurrency_and_output_rate():
    overlapping = [finished(0, 0.0, [0.1, 0.2, 0.9]), finished(1, 0.3, [0.4, 1.2]), finished(2, 0.9, [1.0])]
    m = latency_metrics(overlapping, Slo(), wall=2.0)
    assert m["peak_concurrent_requests"] == 2  # request 2 arrives as request 0 finishes: a finish goes first
    assert m["peak_output_tok_s"] == 4.0  # second 0 holds 0.1, 0.2, 0.4, 0.9; second 1 holds 1.0, 1.2


def test_request_rows_hold_each_request_relative_to_the_run_start():
    rows = request_rows(list(reversed(SERVED)), start=-1.0, slo=Slo(ttft_ms=150.0))
    assert list(rows[0]) == list(REQUEST_COLUMNS)
    assert [r["request"] for r in rows] == [0, 1, 2]  # workload order
    late = rows[1]
    assert (late["arrival_s"], late["admitted_s"], late["first_token_s"], late["finish_s"]) == pytest.approx(
        (1.5, 1.55, 1.7, 1.7)
    )
    assert (late["prompt_tokens"], late["output_tokens"], late["preemptions"], late["priority"]) == (4, 1, 0, 1)
    assert late["tpot_ms"] is None and late["ttft_ms"] == pytest.approx(200.0) and late["met_slo"] is False
    assert rows[0]["met_slo"] is True and rows[0]["e2e_ms"] == pytest.approx(140.0)
