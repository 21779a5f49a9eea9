"""cuda_graphs=true (the forward, the LM head and a capturable sampler replayed as one graph) against
cuda_graphs=forward (the forward alone in the graph): the same greedy tokens and top-k ids, the same
tokens when sampling with temperature (each step's seed reaches the sampler as a device tensor either
way), and counters that say whether the graph sampled; the inputs loaded by one kernel or by copies
(fused_graph_inputs) give the same tokens."""

import gc

import pytest
import torch
from gpu_workload import GPU_ENGINE, GPU_MODEL, PROMPTS, assert_close, generate_with_tops
from models import save_tiny_model

from allmos import LLM, SamplingParams

pytestmark = pytest.mark.gpu

HOT = dict(attention="triton", kv_store="triton", rope="triton", linear="triton", async_scheduling=True)
SAMPLED = SamplingParams(temperature=0.8, max_tokens=24, ignore_eos=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("graph_scope_qwen3"), "qwen3", init_std=0.1, **GPU_MODEL)


def run(folder, **switches):
    """(greedy tokens and top-k, sampled tokens, graph_sampled_steps, graph_forwards) of a fresh engine."""
    llm = LLM(folder, **(GPU_ENGINE | HOT | switches))
    greedy = generate_with_tops(llm)
    llm.engine.reset_stats()
    sampled = [o["token_ids"] for o in llm.generate(PROMPTS, SAMPLED, use_tqdm=False)]
    counters = llm.engine.counters()
    del llm
    gc.collect()
    torch.cuda.empty_cache()
    return greedy, sampled, counters["graph_sampled_steps"], counters["graph_forwards"]


@pytest.mark.parametrize("sampler", ["triton", "gumbel"])
def test_whole_step_graphs_give_the_tokens_of_forward_graphs(folder, sampler):
    whole = run(folder, sampler=sampler, cuda_graphs=True)
    forward = run(folder, sampler=sampler, cuda_graphs="forward")
    eager = run(folder, sampler=sampler, cuda_graphs=False)
    assert whole[0] == forward[0]
    assert_close(whole[0], eager[0])
    assert whole[1] == forward[1]  # the same seeds, the same draws
    assert whole[3] > 0 and forward[3] > 0 and eager[3] == 0
    if sampler == "triton":  # capturable: every replayed decode step sampled inside its graph
        assert whole[2] == whole[3]
    else:  # gumbel draws from its own generator: sampled after the replay
        assert whole[2] == 0
    assert forward[2] == 0


@pytest.mark.parametrize("cuda_graphs", [True, "forward"])
def test_one_kernel_loading_the_inputs_gives_the_copies_tokens(folder, cuda_graphs):
    """fused_graph_inputs: one kernel loads each replay's inputs (and the captured sampler's temperatures
    and seed) instead of a copy per tensor; the graphs read the same values, so the same tokens, greedy and
    sampled, bit for bit."""
    fused = run(folder, sampler="triton", cuda_graphs=cuda_graphs, fused_graph_inputs=True)
    copied = run(folder, sampler="triton", cuda_graphs=cuda_graphs, fused_graph_inputs=False)
    assert fused[0] == copied[0] and fused[1] == copied[1]
    assert fused[3] == copied[3] > 0
