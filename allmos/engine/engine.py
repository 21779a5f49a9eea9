"""The engine loop: schedule a step, run it, hand the sampled tokens back to the scheduler."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import torch

from allmos.batch import LaunchedStep, ScheduledBatch
from allmos.config import EngineConfig
from allmos.engine.runner import RunnerFactory
from allmos.models.config_checks import check_model_config, declared_fields
from allmos.models.hf_config import eos_token_ids, load_hf_config
from allmos.registry import build
from allmos.requests import check_priority
from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence
from allmos.stats import EngineStats
from allmos.validation import check_tensor_parallel, validate, with_model_len


def weights_source(config: EngineConfig) -> str:
    has_folder = config.model is not None and os.path.isfile(os.path.join(config.model, "config.json"))
    if config.random_weights == "always" or not has_folder:
        return "random"
    return "real"


class Engine:
    def __init__(self, config: EngineConfig, make_runner: RunnerFactory):
        """`make_runner` builds the runner (allmos.runners.make_runner: one rank, or tensor-parallel ranks);
        it is injected so the engine never imports the distributed package."""
        validate(config)
        self.weights = weights_source(config)
        self.hf_config = load_hf_config(config, self.weights)
        check_model_config(self.hf_config, *declared_fields(config.model, config.architecture))
        self.config = config = with_model_len(config, self.hf_config)
        check_tensor_parallel(config, self.hf_config)
        self.stats = EngineStats()  # every component reports into it; only the engine resets it
        self.runner = make_runner(config, self.hf_config, self.weights, self.stats)
        host = torch.device("cpu")  # the block manager and the scheduler work on the host
        ctx, choices = config.build_context(host), config.plugin_choices()
        ctx = replace(ctx, num_blocks=self.runner.num_blocks, stats=self.stats)
        self.block_manager = build("block_manager", choices["block_manager"], ctx)
        eos = frozenset(eos_token_ids(config, self.hf_config))
        ctx = replace(ctx, block_manager=self.block_manager, eos_token_ids=eos)
        self.scheduler = build("scheduler", choices["scheduler"], ctx)
        self.look_ahead = self.scheduler.look_ahead(self.scheduler) if config.async_scheduling else None
        self.next_seq_id = 0
        self.in_flight: LaunchedStep | None = None  # the look-ahead step queued by the last step()
        self.step_batches: list[ScheduledBatch] = []  # the batches the current step() runs or queues
        self.closed = False

    def add_request(self, token_ids: list[int], params: SamplingParams, priority: int = 0) -> Sequence:
        """Queue a request; `priority` orders it under scheduler.policy=priority (lower is served sooner)."""
        self.check_open()
        check_priority(priority)
        seq = Sequence(self.next_seq_id, token_ids, params, arrival=time.perf_counter(), priority=priority)
        self.next_seq_id += 1
        self.stats.count("prompt_tokens", len(token_ids))
        self.scheduler.add(seq)
        return seq

    def close(self) -> None:
        """Stop tensor-parallel workers (if any); the engine cannot step afterwards."""
        self.closed = True
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this engine is closed (close() was called); create a new LLM to generate again")

    def abort(self, seq: Sequence) -> None:
        """Remove an unfinished request and give back its blocks (it is finished, with no error)."""
        if not seq.is_finished:
            self.scheduler.abort(seq)

    def has_unfinished(self) -> bool:
        return self.in_flight is not None or self.scheduler.has_unfinished()

    def step(self) -> list[Sequence]:
        """Finish one step and return the sequences it finished. With async_scheduling, the next step
        (a decode step, or a prefill step after a prefill step) is scheduled and queued on the device
        before this one's tokens are read back, so the host's bookkeeping overlaps the device's work.

        If the step fails, every unfinished sequence of it (and of the step queued ahead of it) is
        finished with the error in `seq.error` and removed, and StepFailed is raised naming them; the
        engine serves the other requests in later steps. If the runner itself is gone (a tensor-parallel
        rank died), the error is raised as it is: no later step can run."""
        self.check_open()
        self.step_batches = [self.in_flight.batch] if self.in_flight else []
        try:
            return self.run_step()
        except Exception as error:
            failed = self.fail_step_seqs(error)
            if not failed or self.runner.closed:  # a runner that cannot go on: the error is the engine's
                raise
            raise StepFailed(failed, error) from error

    def fail_step_seqs(self, error: Exception) -> list[Sequence]:
        self.in_flight = None
        seqs = dict.fromkeys(seq for batch in self.step_batches for seq in batch.seqs)
        failed = [seq for seq in seqs if not seq.is_finished]
        for seq in failed:
            self.scheduler.abort(seq)
            seq.error = f"{type(error).__name__}: {error}"
        return failed

    def run_step(self) -> list[Sequence]:
        start = time.perf_counter()
        if self.in_flight is None:
            batch = self.scheduler.schedule()
            self.step_batches = [batch]
            launched = self.launch(batch)
        else:
            launched = self.in_flight
        self.in_flight = None
        if self.look_ahead is not None:
            ahead = self.look_ahead.schedule(launched.batch)
            if ahead is not None:
                self.step_batches.append(ahead)
                self.in_flight = self.launch(ahead, launched)
        batch = launched.batch
        finished = self.scheduler.postprocess(batch, self.runner.collect(launched))
        now = time.perf_counter()
        self.stamp_times(batch.seqs, finished, now)
        blocks = self.block_manager.num_used_blocks
        self.stats.record(
            batch.kind,
            len(batch),
            batch.num_tokens,
            now - start,
            blocks,
            batch.context_tokens,
            batch.num_prefill_tokens,
        )
        return finished

    def launch(self, batch: ScheduledBatch, prev: LaunchedStep | None = None) -> LaunchedStep:
        ahead = batch.ahead_rows is not None
        batch.context_tokens = sum(s.num_computed_tokens + ahead for s in batch.seqs) + batch.num_tokens
        return self.runner.launch(batch, prev)

    def stamp_times(self, seqs: list[Sequence], finished: list[Sequence], now: float) -> None:
        for seq in seqs:
            if seq.first_token_time is None and seq.num_output_tokens > 0:
                seq.first_token_time = now
            times = seq.token_times  # a step adds at most one token to a sequence (none for a prefill chunk)
            if len(times) < len(seq.token_ids) - seq.num_prompt_tokens:
                times.append(now)
        for seq in finished:
            seq.finish_time = now

    def reset_stats(self) -> None:
        """Start counting afresh (after warm-up): the step trace and every component's counters."""
        self.stats.reset()

    def counters(self) -> dict[str, Any]:
        """What each switch really did (the record's `counters`), in the record's key order."""
        runner = self.runner.describe()
        return self.stats.counters() | {
            "attention_backend": runner["attention_backend"],
            "kv_store": runner["kv_store"],
            "kv_store_in_rope": runner["kv_store_in_rope"],
            "rope_in_qkv": runner["rope_in_qkv"],
            "rope": runner["rope"],
            "linear": runner["linear"],
            "sampler": runner["sampler"],
            "block_manager": self.block_manager.plugin_name,
            "scheduler": self.scheduler.plugin_name,
            "num_kv_blocks": runner["num_kv_blocks"],
            "kv_cache_dtype": runner["kv_cache_dtype"],
            "max_model_len": self.config.max_model_len,
        }


class StepFailed(RuntimeError):
    """A step failed; its sequences were finished with the error and removed from the engine."""

    def __init__(self, seqs: list[Sequence], cause: Exception):
        ids = ", ".join(str(s.seq_id) for s in seqs)
        super().__init__(f"a step failed for sequence(s) {ids}: {type(cause).__name__}: {cause}")
        self.seqs = seqs
        self.cause = cause
