"""Greedy outputs of kv_cache_dtype=fp8 held against kv_cache_dtype=auto's, with a stated tolerance."""

# The tiny random model (init std 0.5, head_dim 16) has wide logits, so FP8's ~3% K/V error moves its
# log-probabilities visibly. Measured (per-token scales / fixed scale 1.0): the chosen tokens' mean
# |log-prob difference| before the first divergence up to 0.077 / 0.103, the largest 0.27 / 0.36;
# auto's margin between its two best tokens where they diverge 0.08-0.21 / 0.08-0.41.
MEAN_LOGPROB_DIFF, NEAR_TIE_MARGIN = 0.15, 0.5


def assert_close_to(reference, ours):
    """Same tokens up to a first divergence, which only a near tie of the reference explains; each side's
    token is in the other's top 5 there; log-probabilities of the agreeing prefix close."""
    for (want, want_top), (got, got_top) in zip(reference, ours):
        want_top, got_top = (
            [{int(k): v for k, v in d.items()} for d in want_top],
            [{int(k): v for k, v in d.items()} for d in got_top],
        )  # JSON keys are strings
        agree = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), len(want))
        if agree:
            diffs = [abs(want_top[i][want[i]] - got_top[i][got[i]]) for i in range(agree)]
            assert sum(diffs) / agree <= MEAN_LOGPROB_DIFF, diffs
        if agree < len(want):
            best, second = sorted(want_top[agree].values())[-2:][::-1]
            assert best - second < NEAR_TIE_MARGIN, (agree, best, second)
            assert got[agree] in want_top[agree] and want[agree] in got_top[agree]
