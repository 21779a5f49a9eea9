"""The prompts, model and vLLM-style comparison shared by the bf16 GPU tests."""

from allmos import SamplingParams
from allmos.bench.compare import close_enough
from allmos.config import ALL_OFF

SHARED = list(range(1000, 1040))
PROMPTS = [SHARED + [7, 8, 9], SHARED + list(range(50, 90)), [3, 4, 5], list(range(200, 263)), SHARED + [11]]
MAX_TOKENS = 32
TOP = 5
GPU_MODEL = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    vocab_size=4096,
)
# The engine options every bf16 GPU test shares (a small cache share: tests build many engines), over the
# all-off baseline (the engine's defaults are everything on): a test's switches turn things on from there.
GPU_ENGINE = ALL_OFF | dict(
    device="cuda", dtype="bfloat16", max_model_len=512, max_num_seqs=16, gpu_memory_utilization=0.3
)
PARAMS = SamplingParams(temperature=0, max_tokens=MAX_TOKENS, ignore_eos=True, logprobs=TOP)


def generate_with_tops(llm):
    """(tokens, top-k ids per position): the first prompt alone (batch-1 decode: single-token steps),
    then every prompt together (the later prompts that share its prefix find it in the prefix cache)."""
    outs = llm.generate(PROMPTS[:1], PARAMS, use_tqdm=False)
    outs += llm.generate(PROMPTS, PARAMS, use_tqdm=False)
    return [(o["token_ids"], [[t for t, _ in step] for step in o["logprobs"]]) for o in outs]


def assert_close(ours, ref):
    for i, ((o, o_top), (r, r_top)) in enumerate(zip(ours, ref)):
        verdict = close_enough(o, o_top, r, r_top)
        assert verdict.passed, f"prompt {i}: {verdict.reason}"
