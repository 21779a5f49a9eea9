"""What a decode step takes from the CUDA graph runner under each scope, with stand-in graphs on the CPU
(capturing needs CUDA; tests/gpu/test_whole_step_graphs_gpu.py replays real ones): cuda_graphs=true replays
the whole step and hands back its logits and, with a capturable sampler, its tokens; cuda_graphs=forward
replays the forward and runs the LM head after it; prefill steps run eagerly under both."""

import pytest
import torch

from allmos.batch import ScheduledBatch
from allmos.engine.step_inputs import build_step_inputs
from allmos.graph_runner.cuda_graph import CudaGraphOptions, CudaGraphRunner, StaticInputs
from allmos.registry import BuildContext, Limits
from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence
from allmos.stats import EngineStats

HIDDEN, VOCAB, BLOCK, WIDTH = 4, 6, 16, 2
BUCKETS = [1, 2, 4]


class StandInModel:
    """The eager path's model: hidden states of ones, logits that are their sums times 10."""

    def __call__(self, input_ids, positions, meta):
        return torch.ones(input_ids.shape[0], HIDDEN)

    def compute_logits(self, hidden):
        return 10 * hidden.sum(-1, keepdim=True).expand(-1, VOCAB).clone()


class StandInBackend:
    def build_metadata(self, meta):
        return meta


class StandInSampler:
    capturable = True


class StandInGraph:
    """Records, at each replay, the sampling inputs the graph would read."""

    def __init__(self, static: StaticInputs, replays: list):
        self.static, self.replays = static, replays

    def replay(self):
        self.replays.append((self.static.temperatures.clone(), int(self.static.seed)))


def runner_with_graphs(scope: str, sampler) -> tuple[CudaGraphRunner, list]:
    stats = EngineStats()
    limits = Limits(max_num_seqs=BUCKETS[-1], max_model_len=WIDTH * BLOCK)
    parts = dict(model=StandInModel(), attention=StandInBackend(), sampler=sampler)
    ctx = BuildContext(block_size=BLOCK, limits=limits, stats=stats, **parts)
    runner = CudaGraphRunner(CudaGraphOptions(scope=scope), ctx)
    runner.buckets, runner.widths = BUCKETS, [WIDTH]
    runner.static = StaticInputs(BUCKETS[-1], WIDTH, BLOCK, WIDTH * BLOCK, torch.device("cpu"))
    replays = []
    for bucket in BUCKETS:
        runner.graphs[(bucket, WIDTH)] = StandInGraph(runner.static, replays)
        logits = torch.full((bucket, VOCAB), float(bucket))
        tokens = torch.arange(bucket) + 100 if runner.sampler is not None else None
        runner.outputs[(bucket, WIDTH)] = (logits, tokens) if scope == "step" else torch.full((bucket, HIDDEN), 2.0)
    return runner, replays


def decode_inputs(num_seqs: int, seed: int):
    seqs = []
    for i in range(num_seqs):
        seq = Sequence(i, [1, 2, 3], SamplingParams(temperature=0.5 * i))
        seq.block_table, seq.num_computed_tokens = [i], 2
        seqs.append(seq)
    batch = ScheduledBatch(seqs, [1] * num_seqs, is_prefill=False)
    return build_step_inputs(batch, BLOCK, torch.device("cpu"), seed=seed)


def prefill_inputs():
    seq = Sequence(0, [1, 2, 3], SamplingParams())
    seq.block_table = [0]
    return build_step_inputs(ScheduledBatch([seq], [3], is_prefill=True), BLOCK, torch.device("cpu"))


def test_whole_step_graphs_hand_back_the_replayed_logits_and_tokens_with_the_steps_seed():
    runner, replays = runner_with_graphs("step", StandInSampler())
    logits, tokens = runner.step(decode_inputs(3, seed=1234), 3)
    assert torch.equal(logits, torch.full((3, VOCAB), 4.0))  # bucket 4's graph, its first 3 rows
    assert tokens.tolist() == [100, 101, 102]
    temperatures, seed = replays[-1]
    assert seed == 1234 and temperatures[:3].tolist() == [0.0, 0.5, 1.0] and temperatures[3] == 0
    assert runner.stats.counters()["graph_forwards"] == 1
    assert runner.stats.counters()["graph_sampled_steps"] == 1


def test_a_sampler_that_cannot_be_captured_samples_after_the_replay():
    runner, _ = runner_with_graphs("step", sampler=None)
    logits, tokens = runner.step(decode_inputs(2, seed=5), 2)
    assert tokens is None and torch.equal(logits, torch.full((2, VOCAB), 2.0))
    assert runner.stats.counters()["graph_sampled_steps"] == 0


def test_forward_graphs_replay_the_forward_and_run_the_lm_head_after_it():
    runner, replays = runner_with_graphs("forward", StandInSampler())
    assert runner.sampler is None  # the forward scope never captures the sampler
    logits, tokens = runner.step(decode_inputs(2, seed=5), 2)
    assert tokens is None and torch.equal(logits, torch.full((2, VOCAB), 80.0))  # 10 * (4 x 2.0)
    assert len(replays) == 1 and runner.stats.counters()["graph_forwards"] == 1


@pytest.mark.parametrize("scope", ["step", "forward"])
def test_prefill_steps_run_eagerly_under_both_scopes(scope):
    runner, replays = runner_with_graphs(scope, StandInSampler())
    logits, tokens = runner.step(prefill_inputs(), 1)
    assert tokens is None and torch.equal(logits, torch.full((1, VOCAB), 40.0))  # 10 * (4 x 1.0)
    assert replays == [] and runner.stats.counters()["eager_forwards"] == 1
