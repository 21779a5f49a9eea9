"""Which CUDA graphs are captured and which one a decode batch replays (pure functions, CPU)."""

from allmos.attention.backend import GraphMode
from allmos.attention.sdpa import SdpaBackend
from allmos.attention.triton_backend import TritonBackend
from allmos.graph_runner.cuda_graph import bucket_for, graph_buckets, width_buckets


def test_batch_buckets_cover_every_size_up_to_max_num_seqs():
    buckets = graph_buckets(100)
    assert buckets[:4] == [1, 2, 4, 8] and buckets[-1] == 100
    assert all(bucket_for(n, buckets) >= n for n in range(1, 101))
    assert bucket_for(17, buckets) == 32 and bucket_for(97, buckets) == 100


def test_width_buckets_are_powers_of_two_then_the_full_width():
    assert width_buckets(16, per_width=True) == [1, 2, 4, 8, 16]
    assert width_buckets(32, per_width=True) == [1, 2, 4, 8, 16, 32]
    assert width_buckets(12, per_width=True) == [1, 2, 4, 8, 12]
    assert width_buckets(16, per_width=False) == [16]
    widths = width_buckets(12, per_width=True)
    assert [bucket_for(w, widths) for w in (1, 3, 5, 9, 12)] == [1, 4, 8, 12, 12]


def test_only_gathering_backends_capture_per_width():
    assert SdpaBackend.graph_mode is GraphMode.PER_BATCH_AND_TABLE_WIDTH
    assert TritonBackend.graph_mode is GraphMode.PER_BATCH
