"""override_check: a single run's overrides composed once before Hydra runs the job."""

import os

import pytest
from repo_paths import ROOT

from allmos.cli.override_check import override_problem
from allmos.cli.schema import register_schemas

CONF = os.path.join(ROOT, "conf")


@pytest.fixture(scope="module", autouse=True)
def schemas():
    register_schemas()


@pytest.mark.parametrize(
    "overrides,problem",
    [
        (["attention.num_splitz=4"], "attention.num_splitz: unknown key; `python run.py --cfg job` shows every key"),
        (["attenton=sdpa"], "attenton: unknown key; `python run.py --cfg job` shows every key"),
        (["hydra.run.dirr=x"], "hydra.run.dirr: unknown key; `python run.py --cfg hydra` shows every key"),
        (["workload.num_requests=abc"], "workload.num_requests: Value 'abc' of type 'str' could not be converted to"),
        (["attention=sdpx"], "attention: 'sdpx' is not one of flash, sdpa, triton"),
        (["+preset=nope"], "preset: 'nope' is not one of all_off"),
    ],
)
def test_what_hydra_cannot_compose_is_one_line_naming_the_key(overrides, problem):
    assert override_problem(["+machine=cpu", *overrides], CONF).startswith(problem)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["+machine=cpu", "attention=triton", "attention.num_splits=4", "workload.num_requests=3", "hydra.run.dir=x"],
        ["+machine=cpu", "+preset=all_off", "attention=triton"],
        ["+no_such_key=1"],  # composes: the job's own check refuses it (test_user_errors)
        ["attention=sdpa,triton"],  # a sweep without -m: Hydra explains its choices itself
        ["-m", "attention.num_splitz=4"],  # sweeps and Hydra's flags are left to Hydra
        ["--cfg", "job", "attention.num_splitz=4"],
    ],
)
def test_what_composes_or_is_hydras_to_report_passes(args):
    assert override_problem(args, CONF) is None
