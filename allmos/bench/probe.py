"""The correctness probe: a fixed greedy prompt set, compared with the all-off reference.

An exact configuration must agree with the reference up to the first divergence, and there each
side's token must be among the other's top-5 (allmos.bench.compare). An approximate one (a switch
that `allmos.config.approximate_switches` names, e.g. kv_cache_dtype=fp8) is judged by its
agreement figures over teacher-forced positions against stated tolerances (allmos.bench.agreement).

The reference for a (weights, dtype, device) is generated with every optimization off, kept on
disk under $ALLMOS_CACHE (default ~/.cache/allmos)/probes, and made on first need, before the
job's own engine takes the device's memory. It is keyed by the weights' content (a fingerprint
of the checkpoint files), not by the folder's path, so changed weights get a new reference. A job
that runs the reference's own configuration compares nothing: its verdict is `reference`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
from dataclasses import asdict

import torch

from allmos.bench.agreement import APPROXIMATE_TOLERANCES, Step, agreement_figures, steps_of, take_until_divergence
from allmos.bench.compare import close_enough, first_divergence
from allmos.bench.fingerprint import weights_fingerprint
from allmos.bench.record import write_atomic
from allmos.config import ALL_OFF as PRESET_ALL_OFF
from allmos.config import MAX_MODEL_LEN_CAP, PLUGIN_SWITCHES, EngineConfig, PluginChoice, approximate_switches
from allmos.sampling_params import SamplingParams

NUM_PROMPTS, MIN_LEN, MAX_LEN, MAX_TOKENS, TOP = 4, 8, 48, 16, 5
# The reference engine: the all-off preset (allmos.config.ALL_OFF, `+preset=all_off`), one rank, whole
# prompts, the continuous scheduler, the KV cache in the model's dtype.
REFERENCE_SWITCHES = {k: PluginChoice.of(v) if k in PLUGIN_SWITCHES else v for k, v in PRESET_ALL_OFF.items()} | dict(
    chunked_prefill=False, scheduler=PluginChoice("continuous"), tensor_parallel_size=1, kv_cache_dtype="auto"
)
# v3: keyed by the weights' fingerprint; rope, linear and sampler off too. v4: stores the top-k log-probabilities
REFERENCE_VERSION = "v4"


def probe_prompts(vocab_size: int) -> list[list[int]]:
    rng = random.Random(1234)
    top = min(vocab_size, 10000) - 1
    return [[rng.randint(0, top) for _ in range(rng.randint(MIN_LEN, MAX_LEN))] for _ in range(NUM_PROMPTS)]


def cache_dir() -> str:
    return os.path.join(os.environ.get("ALLMOS_CACHE", os.path.expanduser("~/.cache/allmos")), "probes")


def reference_path(config: EngineConfig, weights: str) -> str:
    # "random-v2": random weights are drawn per checkpoint tensor name (tensor-parallel consistent)
    has_folder = config.model is not None and os.path.isdir(config.model)
    content = weights_fingerprint(config.model, config.load_format) if has_folder else None
    identity = json.dumps(
        [weights, content, config.architecture, config.seed, "random-v2", REFERENCE_VERSION],
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha1(identity.encode()).hexdigest()[:16]
    dtype = str(config.torch_dtype).removeprefix("torch.")
    return os.path.join(
        cache_dir(), f"{config.model_name or 'model'}-{weights}-{dtype}-{config.resolved_device}-{digest}.json"
    )


def governed(switches: dict) -> dict:
    """The switches the reference fixes (REFERENCE_SWITCHES's, plugin options included)."""
    return {k: v for k, v in switches.items() if k.split(".")[0] in REFERENCE_SWITCHES}


def is_reference_configuration(job_switches: dict, reference_switches: dict | None) -> bool:
    """Whether the job ran what the reference was generated with (same weights by the key)."""
    return reference_switches is not None and governed(job_switches) == governed(reference_switches)


def greedy_outputs(llm, prompts: list[list[int]], max_tokens: list[int]) -> list[dict]:
    """Greedy outputs with the top-TOP candidates and their log-probabilities at each position."""
    params = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True, logprobs=TOP) for n in max_tokens]
    seqs = llm.run_requests(prompts, params)
    return [
        {
            "tokens": s.output_token_ids,
            "top": [[t for t, _ in step] for step in s.top_logprobs],
            "logprobs": [[lp for _, lp in step] for step in s.top_logprobs],
        }
        for s in seqs
    ]


def generate_probe(llm) -> list[dict]:
    prompts = probe_prompts(llm.engine.hf_config.vocab_size)
    return greedy_outputs(llm, prompts, [MAX_TOKENS] * len(prompts))


def ensure_reference(config: EngineConfig, weights: str) -> str:
    """The reference file's path; generates it with everything off when it does not exist yet."""
    path = reference_path(config, weights)
    if os.path.exists(path):
        return path
    from allmos.llm import LLM

    blocks = NUM_PROMPTS * ((MAX_LEN + MAX_TOKENS) // config.block_size + 1)
    # whole prompts need a budget as long as the longest sequence (a job that chunks may have less)
    budget = max(config.max_num_batched_tokens, config.max_model_len or MAX_MODEL_LEN_CAP)
    options = {k: v for k, v in config.__dict__.items() if k != "model"} | REFERENCE_SWITCHES
    options |= {"num_kv_blocks": blocks, "max_num_batched_tokens": budget}
    llm = LLM(config.model, **options)
    write_atomic(path, json.dumps({"outputs": generate_probe(llm), "switches": llm.engine.config.switches()}))
    del llm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def check_probe(llm, reference: str) -> dict:
    """`verdict` is pass, fail, or reference (the job is the reference's configuration on the same
    weights, so agreement proves nothing); `passed` is true or false only for a real comparison."""
    with open(reference) as f:
        stored = json.load(f)
    expected = stored["outputs"]
    ours = generate_probe(llm)
    approximate = approximate_switches(llm.engine.config)
    if approximate:
        return check_approximate(llm, ours, expected, reference, approximate)
    verdicts = [close_enough(o["tokens"], o["top"], e["tokens"], e["top"]) for o, e in zip(ours, expected)]
    passed = all(v.passed for v in verdicts)
    if is_reference_configuration(llm.engine.config.switches(), stored.get("switches")):
        verdict, passed = "reference", None
    else:
        verdict = "pass" if passed else "fail"
    return {
        "verdict": verdict,
        "passed": passed,
        "first_divergence": [v.divergence for v in verdicts],
        "reasons": [v.reason for v in verdicts if v.reason],
        "reference": reference,
        "approximate": [],
    }


def check_approximate(llm, ours: list[dict], expected: list[dict], reference: str, approximate: list[str]) -> dict:
    """The verdict of an approximate configuration: its agreement figures, teacher-forced on the
    reference's tokens, within APPROXIMATE_TOLERANCES."""
    if any("logprobs" not in e for e in expected):
        raise ValueError(f"probe reference {reference} holds no log-probabilities (made before v4); delete it")
    refs = [steps_of(e) for e in expected]
    divergences = [first_divergence(o["tokens"], e["tokens"]) for o, e in zip(ours, expected)]
    short = [p for p, (o, e) in enumerate(zip(ours, expected)) if len(o["tokens"]) != len(e["tokens"])]
    if short:
        reasons = [
            f"prompt {p}: {len(ours[p]['tokens'])} tokens, reference {len(expected[p]['tokens'])}" for p in short
        ]
        return approximate_record(divergences, reasons, reference, approximate, {})
    forced = teacher_forced(llm, refs, [steps_of(o) for o in ours])
    figures = agreement_figures(forced, refs, divergences)
    reasons = APPROXIMATE_TOLERANCES.reasons(figures)
    return approximate_record(divergences, reasons, reference, approximate, asdict(figures))


def approximate_record(divergences: list, reasons: list[str], reference: str, approximate: list[str], figures: dict):
    return {
        "verdict": "fail" if reasons else "pass",
        "passed": not reasons,
        "first_divergence": divergences,
        "reasons": reasons,
        "reference": reference,
        "approximate": approximate,
        **figures,
        "tolerances": APPROXIMATE_TOLERANCES.as_record(),
    }


def teacher_forced(llm, refs: list[list[Step]], free_runs: list[list[Step]]) -> list[list[Step]]:
    """Our steps at every reference position, each predicted from the reference's own prefix: the
    free run up to its first divergence, then greedy runs restarted from the prompt plus the
    reference's tokens through each divergence (allmos.bench.agreement.take_until_divergence)."""
    prompts = probe_prompts(llm.engine.hf_config.vocab_size)
    forced: list[list] = [[None] * len(ref) for ref in refs]
    anchors = {p: take_until_divergence(run, refs[p], 0, forced[p]) for p, run in enumerate(free_runs)}
    anchors = {p: a for p, a in anchors.items() if a is not None}
    while anchors:
        order = sorted(anchors)
        restarts = [prompts[p] + [s.token for s in refs[p][: anchors[p]]] for p in order]
        runs = greedy_outputs(llm, restarts, [len(refs[p]) - anchors[p] for p in order])
        found = {p: take_until_divergence(steps_of(run), refs[p], anchors[p], forced[p]) for p, run in zip(order, runs)}
        anchors = {p: a for p, a in found.items() if a is not None}
    return forced
