"""A tensor-parallel worker process (ranks 1..N-1): builds its rank's runner and follows rank 0.

Messages on the pipe to rank 0 are tuples whose first item names them. Rank 0 sends
("go",), ("blocks", n), ("step", wire) and ("stop",); a worker sends ("ready", rank), ("barrier",),
("blocks", n), ("up",) and, on any exception, ("error", rank, time, traceback) before
it exits. A worker ignores Ctrl-C (rank 0 stops it) and exits when rank 0's process goes away.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

LOOPBACK = "127.0.0.1"
INIT_TIMEOUT = timedelta(seconds=120)  # rendezvous: every rank has already reported in by then
COLLECTIVE_TIMEOUT = timedelta(minutes=10)  # a rank may compile or capture while the others wait
SPIN_SECONDS = 0.05  # NCCL workers poll their pipe this long after a step before blocking on it
FAIL_ENV = "ALLMOS_TP_TEST_FAIL"  # test hook: "RANK:POINT", POINT = "load" or "stepK" (K from 0)


@dataclass(frozen=True)
class WorkerSpec:
    rank: int
    world: int
    port: int
    backend: str  # nccl or gloo
    parent_pid: int
    config: Any  # EngineConfig
    hf_config: Any
    weights: str


class ParentGone(Exception):
    pass


class WorkerLink:
    """The worker's side of its pipe: the Peers protocol of allmos.distributed.rank."""

    def __init__(self, conn):
        self.conn = conn

    def send(self, *msg) -> None:
        self.conn.send(msg)

    def recv(self, expect: str | None = None) -> tuple:
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            raise ParentGone() from None
        if expect is not None and msg[0] != expect:
            raise RuntimeError(f"tensor-parallel protocol: expected {expect!r} from rank 0, got {msg[0]!r}")
        return msg

    def barrier(self) -> None:
        self.send("barrier")
        self.recv("go")

    def agree_min(self, value: int) -> int:
        self.send("blocks", value)
        return self.recv("blocks")[1]

    def send_step(self, wire) -> None:
        raise RuntimeError("only rank 0 leads a step")

    def check(self) -> None:
        raise RuntimeError("only rank 0 leads a step")

    def recv_spinning(self, seconds: float) -> tuple:
        """The next message, polling without sleeping for up to `seconds` first: while steps follow
        each other closely this saves the wake-up of a blocked process (tenths of a ms) per step."""
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if self.conn.poll():
                break
        return self.recv()


def inject_failure(rank: int, point: str) -> None:
    """Raise where the test hook asks; a no-op unless ALLMOS_TP_TEST_FAIL is set."""
    if os.environ.get(FAIL_ENV) == f"{rank}:{point}":
        raise RuntimeError(f"deliberate failure of rank {rank} at {point} ({FAIL_ENV})")


def watch_parent(parent_pid: int) -> None:
    """Exit if rank 0's process dies, even while this one is stuck in a collective."""

    def loop():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=loop, name="allmos-tp-parent-watch", daemon=True).start()


def worker_main(spec: WorkerSpec, conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(spec.parent_pid)
    link = WorkerLink(conn)
    code = 0
    try:
        serve(spec, link)
    except ParentGone:
        code = 1
    except BaseException:  # noqa: BLE001 - any failure goes to rank 0, which raises it once
        code = 1
        with contextlib.suppress(Exception):  # rank 0 may be gone already
            conn.send(("error", spec.rank, time.time(), traceback.format_exc()))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # os._exit: no interpreter teardown (which can hang on communicator threads); all is sent by now
    os._exit(code)


def serve(spec: WorkerSpec, link: WorkerLink) -> None:
    import torch
    import torch.distributed as dist

    from allmos.distributed.rank import RankRunner
    from allmos.layers.parallel import ParallelInfo

    link.send("ready", spec.rank)  # imported: rank 0 may now wait in the rendezvous
    device_id = None
    if spec.backend == "nccl":
        torch.cuda.set_device(spec.rank)
        device_id = torch.device("cuda", spec.rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.world))
    store = dist.TCPStore(LOOPBACK, spec.port, spec.world, False, timeout=INIT_TIMEOUT)
    dist.init_process_group(
        spec.backend,
        store=store,
        rank=spec.rank,
        world_size=spec.world,
        timeout=COLLECTIVE_TIMEOUT,
        device_id=device_id,
    )
    inject_failure(spec.rank, "load")
    runner = RankRunner(spec.config, spec.hf_config, spec.weights, ParallelInfo(spec.rank, spec.world), link)
    link.send("up")
    spin = SPIN_SECONDS if spec.backend == "nccl" else 0.0  # on CPU the spinning would take a core from compute
    step = 0
    while True:
        msg = link.recv_spinning(spin)
        if msg[0] == "stop":
            break
        if msg[0] != "step":
            raise RuntimeError(f"tensor-parallel protocol: unexpected {msg[0]!r} from rank 0")
        inject_failure(spec.rank, f"step{step}")
        runner.follow(msg[1])
        step += 1
    del runner  # NCCL destroys no communicator while CUDA graphs that captured its collectives exist
    gc.collect()
    dist.destroy_process_group()
