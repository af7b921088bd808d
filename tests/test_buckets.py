"""Bucket and capture-size lists against the examples documented by vLLM and tpu-inference."""

import pytest

from sim.runtime.buckets import cuda_graph_capture_sizes, pad_to, request_buckets, token_buckets


@pytest.mark.parametrize(("budget", "count"), [(512, 6), (1024, 7), (2048, 8), (4096, 9), (8192, 10)])
def test_power_of_two_token_buckets(budget, count):
    buckets = token_buckets(budget)
    assert buckets[0] == 16 and buckets[-1] == budget and len(buckets) == count


def test_token_buckets_examples():
    assert token_buckets(512) == [16, 32, 64, 128, 256, 512]
    assert token_buckets(1500)[-2:] == [1024, 2048]  # a non-power-of-two budget gets a larger top bucket
    # vLLM docs example: max 512, gap 64
    assert token_buckets(512, padding_gap=64) == [16, 32, 64, 128, 192, 256, 320, 384, 448, 512]
    assert token_buckets(512, extra=[100]) == [16, 32, 64, 100, 128, 256, 512]


@pytest.mark.parametrize(
    ("seqs", "expected"),
    [
        (256, [8, 16, 32, 64, 128, 256]),
        (128, [8, 16, 32, 64, 128]),
        (100, [8, 16, 32, 64, 100]),
    ],
)
def test_request_buckets(seqs, expected):
    assert request_buckets(seqs) == expected


def test_cuda_graph_capture_sizes_v033():
    sizes = cuda_graph_capture_sizes(max_num_seqs=1024, max_num_batched_tokens=8192)
    assert len(sizes) == 51 and sizes[:4] == [1, 2, 4, 8] and sizes[-1] == 512
    small = cuda_graph_capture_sizes(max_num_seqs=16, max_num_batched_tokens=24)
    assert small == [1, 2, 4, 8, 16, 24, 32]
    assert pad_to(sizes, 9) == 16  # a decode batch of 9 runs as the 16-graph
    assert pad_to(sizes, 513) is None  # above the largest size: no graph
