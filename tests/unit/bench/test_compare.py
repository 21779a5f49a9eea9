from allmos.bench.compare import close_enough, first_divergence


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2


def test_close_enough_accepts_near_ties_only():
    tops = [[1, 9], [2, 8], [3, 7]]
    assert close_enough([1, 2, 3], tops, [1, 2, 3], tops).passed
    assert close_enough([1, 8, 4], tops, [1, 2, 3], tops).passed  # diverges at 1, both in the other's top
    assert not close_enough([1, 5, 3], [[1], [5], [3]], [1, 2, 3], tops).passed
    assert not close_enough([1, 2], tops, [1, 2, 3], tops).passed
