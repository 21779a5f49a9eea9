"""The approximate probe's figures on hand-made steps: teacher-forced agreement before and after the
first divergence, top-5 containment both ways, |Δlogprob| of the reference's token, the tolerances."""

import pytest

from allmos.bench.agreement import (
    APPROXIMATE_TOLERANCES,
    Figures,
    Step,
    Tolerances,
    agreement_figures,
    steps_of,
    take_until_divergence,
)


def step(token: int, *others: int, lp: float = -0.5) -> Step:
    """`token` first with log-prob `lp`, then `others` at -2, -3, ..."""
    return Step(token, [token, *others], [lp] + [-2.0 - i for i in range(len(others))])


def test_steps_of_reads_a_probe_output():
    out = {"tokens": [7, 8], "top": [[7, 1], [8, 2]], "logprobs": [[-0.1, -2.0], [-0.2, -3.0]]}
    assert steps_of(out) == [Step(7, [7, 1], [-0.1, -2.0]), Step(8, [8, 2], [-0.2, -3.0])]
    assert steps_of(out)[1].logprob_of(2) == -3.0 and steps_of(out)[1].logprob_of(9) is None


def test_take_until_divergence_keeps_the_diverging_step_and_anchors_past_it():
    ref = [step(t) for t in (1, 2, 3, 4, 5)]
    forced = [None] * 5
    run = [step(1), step(2), step(9), step(4), step(5)]  # diverges at 2: what follows saw token 9
    assert take_until_divergence(run, ref, 0, forced) == 3
    assert [s.token for s in forced[:3]] == [1, 2, 9] and forced[3:] == [None, None]
    restart = [step(4), step(5)]  # restarted from the reference's tokens 1, 2, 3
    assert take_until_divergence(restart, ref, 3, forced) is None
    assert [s.token for s in forced] == [1, 2, 9, 4, 5]


def test_a_divergence_at_the_last_position_ends_the_forcing():
    ref = [step(1), step(2)]
    forced = [None, None]
    assert take_until_divergence([step(1), step(7)], ref, 0, forced) is None
    assert take_until_divergence([step(1), step(2)], ref, 0, [None, None]) is None


def test_figures_before_and_after_the_first_divergence():
    refs = [[step(1, 10), step(2, 20), step(3, 30), step(4, 40)], [step(5, 50), step(6, 60)]]
    forced = [
        # prompt 0 diverged at 1 (ours 20 is the reference's runner-up; the reference's 2 is ours');
        # after the re-anchor position 2 agrees, position 3 does not (99 is outside the reference's top)
        [step(1, 10), step(20, 2), step(3, 30), step(99, 4)],
        [step(5, 50), step(6, 60)],  # prompt 1 never diverged
    ]
    figures = agreement_figures(forced, refs, [1, None])
    assert figures.top1_agreement == pytest.approx(4 / 6)
    assert figures.top1_agreement_after == pytest.approx(1 / 2)  # positions 2 and 3 of prompt 0
    assert figures.agreed_prefix == pytest.approx((1 + 2) / 6)
    assert figures.top5_containment == pytest.approx(5 / 6)  # only position 3's 99 is outside
    # the reference's token has -0.5 on both sides where it is our top-1, -2.0 on ours at positions 1 and 3
    assert figures.mean_abs_logprob_diff == pytest.approx((0 + 1.5 + 0 + 1.5 + 0 + 0) / 6)


def test_containment_needs_both_directions():
    ref = [[step(1, 2)]]
    ours_in_ref_only = [[step(2, 3)]]  # 2 is in the reference's top, the reference's 1 is not in ours
    figures = agreement_figures(ours_in_ref_only, ref, [0])
    assert figures.top5_containment == 0.0 and figures.mean_abs_logprob_diff is None
    assert figures.top1_agreement_after is None  # nothing after the only position


def test_logprob_difference_of_agreeing_tokens():
    ref = [[step(1, lp=-0.25), step(2, lp=-1.0)]]
    ours = [[step(1, lp=-0.5), step(2, lp=-0.75)]]
    assert agreement_figures(ours, ref, [None]).mean_abs_logprob_diff == pytest.approx(0.25)


def test_no_positions_is_an_error():
    with pytest.raises(ValueError, match="no output positions"):
        agreement_figures([[]], [[]], [None])


TOLERANCES = Tolerances(top1_agreement_min=0.9, top5_containment_min=0.95, mean_abs_logprob_diff_max=0.1)


def figures(top1=1.0, top5=1.0, diff=0.0) -> Figures:
    return Figures(top1, None, 1.0, top5, diff)


def test_tolerances_pass_at_their_bounds():
    assert TOLERANCES.reasons(figures(0.9, 0.95, 0.1)) == []


@pytest.mark.parametrize(
    "bad,reason",
    [
        (figures(top1=0.89), "top-1 agreement 89.0% < 90%"),
        (figures(top5=0.9), "top-5 containment 90.0% < 95%"),
        (figures(diff=0.25), "mean |Δlogprob| 0.250 > 0.1"),
        (figures(diff=None), "mean |Δlogprob| unknown > 0.1"),
    ],
)
def test_tolerances_fail_naming_the_figure(bad, reason):
    assert TOLERANCES.reasons(bad) == [reason]


def test_the_stated_tolerances_are_a_record():
    record = APPROXIMATE_TOLERANCES.as_record()
    assert set(record) == {"top1_agreement_min", "top5_containment_min", "mean_abs_logprob_diff_max"}
    assert 0 < record["top1_agreement_min"] <= record["top5_containment_min"] < 1


def test_the_run_summary_shows_an_approximate_probes_figures():
    from report_records import approximate_correctness

    from allmos.cli.summary import probe_line

    line = probe_line(approximate_correctness(0.96875, 1.0, 0.0493))
    assert line == (
        "pass (approximate: kv_cache_dtype=fp8; teacher-forced top-1 96.9%, top-5 100.0%, mean |Δlogprob| 0.049)"
    )
    assert probe_line({"verdict": "pass", "passed": True, "approximate": []}) == "pass"
