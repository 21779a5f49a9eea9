"""Tensor parallelism over N ranks: rank 0 in the engine's process, ranks 1..N-1 in worker processes.

`DistributedRunner` implements the engine's Runner interface (allmos/engine/runner.py; `num_blocks`,
the counters, ... all rank 0's); allmos/runners.py hands it to the engine.
Ranks meet in a torch.distributed group (NCCL on CUDA, gloo on CPU) whose store
rank 0 opens on a free port of 127.0.0.1 (TCPStore on port 0), so engines on one host never collide.
The model's own collectives (row-parallel all-reduce, LM-head all-gather) run in that group.

Control goes over one multiprocessing pipe per worker (allmos/distributed/worker.py lists the
messages). Each step rank 0 builds the step's host inputs once, pickles them once and writes the
same bytes to every pipe; each rank copies them to its device and runs the forward (the LM head
gathers the logits on every rank); rank 0 samples. Workers answer nothing per step.

Failures: a worker that raises sends its traceback and exits. Rank 0 notices when its own
collective fails (gloo: the peer's sockets close), or because a monitor thread saw the worker's
process end and aborted the NCCL communicator (which frees a device wait stuck on the dead peer),
or at the non-blocking look at the pipes that ends every step, or at its next pipe read.
Rank 0 then stops every rank and raises one WorkerError carrying the first worker traceback.
An exception on rank 0 (Ctrl-C included) also stops every rank before it propagates.

Shutdown: `close()`, garbage collection of the runner and interpreter exit (atexit, registered
ahead of multiprocessing's own exit hook) drop rank 0's CUDA graphs (NCCL destroys no communicator
whose collectives a live graph captured), ask workers to stop, destroy the process group, join
them with a timeout and terminate what is left. No shared memory is used.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing as mp
import multiprocessing.util  # its exit hook must be registered before ours (atexit is LIFO)
import os
import pickle
import sys
import threading
import time
import weakref
from multiprocessing.connection import wait
from typing import Any

import torch
import torch.distributed as dist

from allmos.batch import LaunchedStep, ScheduledBatch, StepOutput
from allmos.distributed.main_guard import check_main_guard
from allmos.distributed.rank import RankRunner
from allmos.distributed.worker import COLLECTIVE_TIMEOUT, INIT_TIMEOUT, LOOPBACK, WorkerSpec, worker_main
from allmos.layers.parallel import ParallelInfo

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0  # seconds a stopped worker has to exit before it is terminated
TEARDOWN_TIMEOUT = 30.0  # seconds destroying the process group may take before it is left behind
ERROR_GRACE = 1.0  # seconds to wait for the workers' own reports once something failed


class WorkerError(RuntimeError):
    """A tensor-parallel worker failed; the message carries its traceback."""

    def __init__(self, rank: int | None, detail: str, others: list[int] | None = None):
        also = f" (then rank(s) {', '.join(map(str, others))} failed too)" if others else ""
        who = f"tensor-parallel rank {rank}" if rank is not None else "a tensor-parallel worker"
        super().__init__(f"{who} failed{also}:\n{detail.rstrip()}")
        self.rank = rank
        self.detail = detail


class WorkerGroup:
    """Rank 0's side of the group: the worker processes, their pipes and the process group."""

    def __init__(self, world: int, device: str):
        if dist.is_available() and dist.is_initialized():
            raise RuntimeError(
                "tensor_parallel_size > 1 needs this process's default torch.distributed group, and one "
                "is already initialized (another tensor-parallel engine still open? close() it first)"
            )
        self.world = world
        self.backend = "nccl" if device == "cuda" else "gloo"
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.reports: list[tuple] = []  # ("error", rank, time, traceback) received so far
        self.closed = False
        self.pg_ready = False
        self.lock = threading.Lock()
        self.monitor: threading.Thread | None = None
        self.stop_reader = self.stop_writer = None
        self.store = None

    # ---- start -------------------------------------------------------------------------------
    def start(self, config, hf_config, weights: str) -> None:
        check_main_guard(self.world)
        ctx = mp.get_context("spawn")
        self.store = dist.TCPStore(LOOPBACK, 0, self.world, True, timeout=INIT_TIMEOUT, wait_for_workers=False)
        for rank in range(1, self.world):
            spec = WorkerSpec(rank, self.world, self.store.port, self.backend, os.getpid(), config, hf_config, weights)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(spec, child), name=f"allmos-tp-rank{rank}")
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        for i in range(len(self.procs)):
            self.recv(i, "ready")
        device_id = None
        if self.backend == "nccl":
            # on a collective error or timeout, abort the communicator but keep the engine's process alive
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2")
            device_id = torch.device("cuda", 0)
        hook = sys.excepthook
        dist.init_process_group(
            self.backend,
            store=self.store,
            rank=0,
            world_size=self.world,
            timeout=COLLECTIVE_TIMEOUT,
            device_id=device_id,
        )
        sys.excepthook = hook  # torch's hook would prefix "[rank0]: " to every later traceback of this process
        self.pg_ready = True
        if self.backend == "nccl":
            self.start_monitor()

    def start_monitor(self) -> None:
        self.stop_reader, self.stop_writer = mp.Pipe(duplex=False)
        pg = dist.group.WORLD
        sentinels = [p.sentinel for p in self.procs]

        def watch():
            ready = wait(sentinels + [self.stop_reader])
            if self.stop_reader in ready or self.closed:
                return
            log.warning("a tensor-parallel worker exited; aborting the NCCL communicator")
            try:
                pg.abort()
            except Exception as e:  # noqa: BLE001 - the main thread reports the worker's error either way
                log.warning("aborting the process group failed: %s", e)

        self.monitor = threading.Thread(target=watch, name="allmos-tp-monitor", daemon=True)
        self.monitor.start()

    # ---- messages (the Peers protocol of allmos.distributed.rank, rank 0's side) -------------------
    @property
    def sentinels(self) -> list[int]:
        return [p.sentinel for p in self.procs]

    def recv(self, i: int, expect: str, timeout: float | None = None) -> tuple:
        conn = self.conns[i]
        ready = wait([conn] + self.sentinels, timeout)
        if conn in ready:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                raise self.failure() from None
            if msg[0] == "error":
                self.reports.append(msg)
                raise self.failure() from None
            if msg[0] != expect:
                raise RuntimeError(f"tensor-parallel protocol: expected {expect!r} from rank {i + 1}, got {msg[0]!r}")
            return msg
        if ready:  # a worker process ended
            raise self.failure()
        raise TimeoutError(f"tensor-parallel rank {i + 1} did not answer {expect!r} within {timeout:.0f} s")

    def send(self, payload: bytes) -> None:
        for conn in self.conns:
            try:
                conn.send_bytes(payload)
            except OSError:
                raise self.failure() from None

    def send_all(self, *msg) -> None:
        self.send(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))

    def barrier(self) -> None:
        for i in range(len(self.conns)):
            self.recv(i, "barrier")
        self.send_all("go")

    def agree_min(self, value: int) -> int:
        agreed = min([value] + [self.recv(i, "blocks")[1] for i in range(len(self.conns))])
        self.send_all("blocks", agreed)
        return agreed

    def send_step(self, wire: Any) -> None:
        self.send_all("step", wire)

    def check(self) -> None:
        """Between steps workers send nothing: anything on a pipe (a report, an end of file) is a failure."""
        for conn in self.conns:
            if conn.poll():
                raise self.failure()

    # ---- failures --------------------------------------------------------------------------------
    def collect_reports(self, grace: float) -> WorkerError | None:
        """The first worker failure (earliest traceback, else a process that died), waiting up to
        `grace` seconds for one to show; None if every worker is alive and silent."""
        deadline = time.monotonic() + grace
        while not self.reports and all(p.exitcode is None for p in self.procs):
            left = deadline - time.monotonic()
            if left <= 0 or not wait(self.conns + self.sentinels, left):
                break
            self.drain()
        if self.reports or any(p.exitcode is not None for p in self.procs):
            alive = [p.sentinel for p in self.procs if p.exitcode is None]
            if alive:  # a moment for the others' reports, so that the earliest failure is the one shown
                wait(alive, 0.2)
        self.drain()
        if self.reports:
            first = min(self.reports, key=lambda r: r[2])
            others = sorted({r[1] for r in self.reports} - {first[1]})
            return WorkerError(first[1], first[3], others)
        for i, proc in enumerate(self.procs):
            if proc.exitcode is not None:
                return WorkerError(i + 1, f"its process exited with code {proc.exitcode} without reporting an error")
        return None

    def failure(self) -> WorkerError:
        return self.collect_reports(ERROR_GRACE) or WorkerError(None, "its pipe closed without a report")

    def drain(self) -> None:
        for conn in self.conns:
            try:
                while conn.poll():
                    msg = conn.recv()
                    if msg[0] == "error":
                        self.reports.append(msg)
            except (EOFError, OSError):
                pass

    def fail(self, error: BaseException) -> None:
        """Rank 0 caught `error`: stop every rank; raise the workers' own error when one failed first."""
        report = None
        if not isinstance(error, (WorkerError, KeyboardInterrupt)) and not self.closed:
            report = self.collect_reports(ERROR_GRACE)
        self.close(failed=True)
        if report is not None:
            raise report from None

    # ---- shutdown ----------------------------------------------------------------------------------
    def close(self, failed: bool = False) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.stop_writer is not None:
            self.stop_writer.close()  # ends the monitor thread
        try:
            if failed:
                self.stop_workers(0.0)  # they may be stuck in a collective: no polite stop
                self.destroy_group(abort=True)
            else:
                with contextlib.suppress(Exception):  # a worker that already left needs no stop
                    self.send_all("stop")
                self.destroy_group(abort=False)
                self.stop_workers(JOIN_TIMEOUT)
        finally:
            self.stop_workers(0.0)
            for conn in self.conns:
                conn.close()
            if self.monitor is not None:
                self.monitor.join(timeout=1.0)
            self.store = None

    def stop_workers(self, patience: float) -> None:
        deadline = time.monotonic() + patience
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.exitcode is None:
                proc.terminate()
        for proc in self.procs:
            proc.join(timeout=5.0)
            if proc.exitcode is None:
                proc.kill()
                proc.join()

    def destroy_group(self, abort: bool) -> None:
        if not self.pg_ready:
            return
        self.pg_ready = False

        def teardown():
            try:
                if abort and self.backend == "nccl":
                    dist.distributed_c10d._abort_process_group()
                else:
                    dist.destroy_process_group()
            except Exception as e:  # noqa: BLE001 - teardown must go on
                log.warning("tearing down the tensor-parallel process group: %s", e)

        # in a thread, so that a communicator that will not finish cannot hang the engine's process
        thread = threading.Thread(target=teardown, name="allmos-tp-teardown", daemon=True)
        thread.start()
        thread.join(TEARDOWN_TIMEOUT)
        if thread.is_alive():
            log.warning(
                "the tensor-parallel process group did not shut down within %.0f s; left behind", TEARDOWN_TIMEOUT
            )


def release_graphs(graph_runners: list) -> None:
    """Drop the captured CUDA graphs (CudaGraphRunner's tables); counters stay readable."""
    for runner in graph_runners:
        for name in ("graphs", "outputs"):
            table = getattr(runner, name, None)
            if isinstance(table, dict):
                table.clear()
    graph_runners.clear()


class Shutdown:
    """Closes the group once: on close(), on garbage collection of the runner, or at exit (registered
    after multiprocessing's exit hook, so it runs first: that hook would wait on live workers)."""

    def __init__(self, group: WorkerGroup, graph_runners: list):
        self.group = group
        self.graph_runners = graph_runners
        atexit.register(self)

    def __call__(self) -> None:
        atexit.unregister(self)
        release_graphs(self.graph_runners)
        self.group.close()


class DistributedRunner:
    """N tensor-parallel ranks behind the Runner interface the engine uses."""

    def __init__(self, config, hf_config: Any, weights: str, stats=None):
        n = config.tensor_parallel_size
        self.group = WorkerGroup(n, config.resolved_device)
        self._graph_runners: list = []  # rank 0's, whose graphs must go before the communicator
        self._finalizer = weakref.finalize(self, Shutdown(self.group, self._graph_runners))
        self._finalizer.atexit = False  # Shutdown registered itself
        try:
            self.group.start(config, hf_config, weights)
            self.rank0 = RankRunner(config, hf_config, weights, ParallelInfo(0, n), self.group, stats)
            self._graph_runners.append(self.rank0.graph_runner)
            for i in range(n - 1):
                self.group.recv(i, "up")
        except BaseException as error:
            self._fail(error)
            raise

    def launch(self, batch: ScheduledBatch, prev: LaunchedStep | None = None) -> LaunchedStep:
        if self.group.closed:
            raise RuntimeError("the tensor-parallel runner is closed (after close() or a failure)")
        return self._guarded(self.rank0.launch, batch, prev)

    def describe(self) -> dict[str, Any]:
        return self.rank0.describe()

    def collect(self, step: LaunchedStep) -> StepOutput:
        return self._guarded(self.rank0.collect, step)

    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except BaseException as error:
            self._fail(error)
            raise

    def _fail(self, error: BaseException) -> None:
        release_graphs(self._graph_runners)
        self.group.fail(error)

    def close(self) -> None:
        """Stop the workers and destroy the process group (also on garbage collection and at exit)."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self.group.closed

    # what the engine and the bench read from a ModelRunner: rank 0's
    num_blocks = property(lambda self: self.rank0.num_blocks)
    graph_runner = property(lambda self: self.rank0.graph_runner)
    attention_backend = property(lambda self: self.rank0.attention_backend)
    kv_store = property(lambda self: self.rank0.kv_store)
    qk_rope = property(lambda self: self.rank0.qk_rope)
    model = property(lambda self: self.rank0.model)
    cache_shape = property(lambda self: self.rank0.cache_shape)
    device = property(lambda self: self.rank0.device)

    def __getattr__(self, name: str) -> Any:
        if name in ("rank0", "group", "_finalizer", "_graph_runners"):  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.rank0, name)
