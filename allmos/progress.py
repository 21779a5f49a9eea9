"""Feedback while allmos works: each long phase logs when it starts and how long it took.

The lines go to the `allmos` logger: under `python run.py` to the console and the job's run.log
(Hydra's job log in the run process, `log_to_folder` in an isolated job's worker); through the
Python API they stay silent unless the caller configures logging.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

LOG = logging.getLogger("allmos")
FORMAT = "[%(asctime)s][allmos] %(message)s"


@contextmanager
def phase(what: str) -> Iterator[None]:
    LOG.info("%s ...", what)
    start = time.perf_counter()
    yield
    LOG.info("%s: done in %.1f s", what, time.perf_counter() - start)


def log_to_folder(folder: str) -> None:
    """An isolated job's process: log INFO lines to stderr and append them to <folder>/run.log."""
    handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(os.path.join(folder, "run.log"))]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
