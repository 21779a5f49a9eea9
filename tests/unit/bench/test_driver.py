"""The arrival-driven harness: a request reaches the engine only once it is due, never more than
max_concurrency are in it, the loop sleeps only when nothing runs, and TTFT counts from arrival."""

import os
import time

import pytest
from omegaconf import OmegaConf
from repo_paths import ROOT

from allmos.bench.driver import serve
from allmos.bench.workloads import Request
from allmos.llm import LLM
from allmos.sampling_params import SamplingParams

TINY = OmegaConf.to_container(OmegaConf.load(os.path.join(ROOT, "conf", "model", "qwen3-tiny.yaml")).architecture)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeEngine:
    """Each request takes `steps` engine steps of `step_s` seconds of the fake clock."""

    def __init__(self, clock: Clock, steps: int = 2, step_s: float = 0.1):
        self.clock, self.steps, self.step_s = clock, steps, step_s
        self.running: dict = {}
        self.added: list[tuple[float, int]] = []  # (clock at add, priority)

    def add_request(self, token_ids, params, priority=0):
        seq = type("Seq", (), {"arrival": None})()
        self.running[seq] = self.steps
        self.added.append((self.clock(), priority))
        return seq

    def has_unfinished(self):
        return bool(self.running)

    def step(self):
        self.clock.now += self.step_s
        for seq in self.running:
            self.running[seq] -= 1
        done = [seq for seq, left in self.running.items() if left == 0]
        for seq in done:
            del self.running[seq]
        return done


def requests(*arrivals: float) -> list[Request]:
    return [Request([1, 2], SamplingParams(max_tokens=2), arrival_s=a, priority=i) for i, a in enumerate(arrivals)]


def test_requests_reach_the_engine_when_due_and_the_loop_sleeps_only_when_idle():
    clock = Clock()
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock.now += seconds

    engine = FakeEngine(clock)
    served = serve(engine, requests(0.0, 0.05, 1.0), start=100.0, clock=clock, sleep=sleep)
    assert [round(t - 100.0, 6) for t, _ in engine.added] == [0.0, 0.1, 1.0]  # the second waited for a step
    assert sleeps == [pytest.approx(0.7)]  # idle from 0.3 s (both done) until the third arrives at 1.0 s
    assert [s.seq.arrival - 100.0 for s in served] == pytest.approx([0.0, 0.05, 1.0])  # when due, not when added
    assert [p for _, p in engine.added] == [0, 1, 2] and [s.priority for s in served] == [0, 1, 2]


def test_max_concurrency_holds_the_rest_until_a_slot_frees():
    clock = Clock()
    engine = FakeEngine(clock, steps=3)
    in_engine = []
    step = engine.step
    engine.step = lambda: (in_engine.append(len(engine.running)), step())[1]
    served = serve(engine, requests(0, 0, 0, 0, 0), start=100.0, max_concurrency=2, clock=clock, sleep=None)
    assert max(in_engine) == 2 and len(served) == 5
    assert [round(s.admitted - 100.0, 6) for s in served] == [0.0, 0.0, 0.3, 0.3, 0.6]
    assert all(s.seq.arrival == 100.0 for s in served)  # their TTFT will count the wait for a slot


@pytest.fixture(scope="module")
def tiny_llm():
    return LLM(None, device="cpu", architecture=TINY, random_weights="always", num_kv_blocks=16, block_size=16)


def test_on_the_tiny_model_no_request_is_seen_before_its_arrival(tiny_llm):
    engine = tiny_llm.engine
    work = [
        Request(list(range(1, 20 + i)), SamplingParams(max_tokens=6, ignore_eos=True), arrival_s=0.04 * i)
        for i in range(6)
    ]
    start = time.perf_counter()
    first_id = engine.next_seq_id
    step = engine.step

    def checked_step():
        due = sum(start + r.arrival_s <= time.perf_counter() for r in work)
        assert engine.next_seq_id - first_id <= due  # nothing not yet due was handed to the engine
        return step()

    engine.step = checked_step
    try:
        served = serve(engine, work, start)
    finally:
        del engine.step
    for s in served:
        seq = s.seq
        assert seq.arrival == pytest.approx(start + work[s.index].arrival_s) and s.admitted >= seq.arrival
        assert len(seq.token_times) == seq.num_output_tokens == 6 and seq.token_times == sorted(seq.token_times)
        assert seq.token_times[0] == seq.first_token_time and seq.token_times[-1] == seq.finish_time


def test_on_the_tiny_model_max_concurrency_is_respected(tiny_llm):
    engine = tiny_llm.engine
    work = [Request(list(range(1, 30)), SamplingParams(max_tokens=5, ignore_eos=True)) for _ in range(5)]
    added, in_engine = [], []
    add, step = engine.add_request, engine.step

    def counting_add(*args, **kwargs):
        added.append(add(*args, **kwargs))
        return added[-1]

    def counting_step():
        in_engine.append(sum(not seq.is_finished for seq in added))
        return step()

    engine.add_request, engine.step = counting_add, counting_step
    try:
        served = serve(engine, work, time.perf_counter(), max_concurrency=2)
    finally:
        del engine.add_request, engine.step
    assert max(in_engine) == 2 and len(served) == 5
    assert all(s.seq.is_finished and s.seq.num_output_tokens == 5 for s in served)
    assert len({s.admitted for s in served}) == 3  # admitted two, two, then one, as slots freed
