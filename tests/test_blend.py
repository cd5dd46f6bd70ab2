"""The blended index in bounded memory (pipeline/blend.py, shards.write_blend): chunking changes
no byte, every epoch is a permutation, every prefix stays within 2 samples of its weights."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.blend import BlendOrder, WindowOrder, blend_chunks, blend_order, index_dtypes, window_order
from pipeline.shards import BLEND_DIR, write_blend

GPT3 = [600, 220, 80, 80, 30]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 1000, 4099])
def test_every_epoch_is_a_permutation_and_seeds_differ(n):
    order = window_order(n, 3 * n + n // 2, 1234, "web")
    for e in range(3):
        assert sorted(order[e * n : (e + 1) * n].tolist()) == list(range(n))
    assert sorted(order[3 * n :].tolist()) == sorted(set(order[3 * n :].tolist()))  # subsample: distinct
    if n >= 16:
        assert not np.array_equal(order[:n], window_order(n, n, 99, "web"))
        assert not np.array_equal(order[:n], window_order(n, n, 1234, "zh"))
        assert not np.array_equal(order[:n], order[n : 2 * n])  # a fresh permutation each epoch


def test_taking_in_pieces_equals_taking_at_once():
    whole = WindowOrder(777, 5, "x").take(2000)
    w = WindowOrder(777, 5, "x")
    assert np.array_equal(np.concatenate([w.take(1), w.take(776), w.take(1), w.take(1222)]), whole)
    b = BlendOrder(GPT3)
    assert np.array_equal(np.concatenate([b.take(7), b.take(500), b.take(10_000)]), blend_order(GPT3))


def test_greedy_matches_weights_at_every_prefix_and_counts_exactly():
    order = blend_order(GPT3)
    assert np.bincount(order).tolist() == GPT3
    seen = np.cumsum(np.eye(5, dtype=np.int64)[order], axis=0)
    k = np.arange(1, len(order) + 1)[:, None]
    assert np.abs(seen - k * np.array(GPT3) / sum(GPT3)).max() < 2


@pytest.mark.parametrize("chunk", [1, 97, 1 << 18])
def test_streamed_files_equal_np_save_of_the_whole_arrays(tmp_path, chunk):
    windows, names = [900, 300, 50, 60, 10], ["cc", "wt", "b1", "b2", "wiki"]  # b1, b2, wiki repeat
    shas = write_blend(tmp_path / str(chunk), blend_chunks(GPT3, windows, names, 7, chunk), sum(GPT3),
                       *index_dtypes(5, max(windows)))
    src = np.load(tmp_path / str(chunk) / BLEND_DIR / "source_index.npy")
    smp = np.load(tmp_path / str(chunk) / BLEND_DIR / "sample_index.npy")
    assert np.array_equal(src, blend_order(GPT3)) and len(shas) == 2
    for s, (c, w, name) in enumerate(zip(GPT3, windows, names, strict=True)):
        assert np.array_equal(smp[src == s], window_order(w, c, 7, name))
    np.save(tmp_path / "src.npy", src)
    assert (tmp_path / "src.npy").read_bytes() == (tmp_path / str(chunk) / BLEND_DIR / "source_index.npy").read_bytes()


def test_a_short_stream_writes_nothing(tmp_path):
    chunks = iter([(np.zeros(3, np.uint8), np.zeros(3, np.uint32))])
    with pytest.raises(ValueError, match="3 samples written, 5 announced"):
        write_blend(tmp_path, chunks, 5, np.uint8, np.uint32)
    assert not list((tmp_path / BLEND_DIR).iterdir())
