"""The blended sample index, built chunk by chunk in bounded memory.

Two orders make the index (pipeline/shards.py describes the files):

- which source each sample comes from: Megatron's greedy (megatron/core/datasets/helpers.cpp,
  `build_blending_indices`): at step k take the source with the largest weight * max(k, 1) -
  taken, the first such source on ties; a source stops once it has its count. Its state is one
  integer per source, so it runs in chunks and every prefix of the index is exactly as close to
  the weights as the whole (within 2 samples of weight * k for every source, at every k);
- which window of that source: window_order, epoch after epoch a fresh pseudo-random
  permutation of the source's windows, the last epoch cut short (a subsample). The permutation
  is a keyed Feistel network on the next power of four with cycle walking: entry i of epoch e is
  computed from (seed, source, e, i) alone, so no permutation array of all windows is held.

`blend_chunks` yields (source_index, sample_index) chunks of at most `chunk` samples: the
driver holds one chunk (its temporaries: ~60 bytes a sample, 262,144 samples: ~15 MB) and a few
integers per source, whatever the corpus size (bench/tokenize.py --blend measures it). Before this module it held both whole arrays
(samples x 5-9 bytes) plus a permutation of every source's windows (windows x 4-8 bytes).
The greedy loop runs in Python at about 1 M samples/s: 5e8 samples (1e12 tokens of 2,048) take
~8 minutes in the driver, streamed to storage as they come.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

CHUNK = 1 << 18  # samples per chunk: ~15 MB of temporaries in the driver
_ROUNDS = 6
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


class BlendOrder:
    """Megatron's greedy source order, produced `take(m)` samples at a time."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = [int(c) for c in counts]
        self.total = sum(self.counts)
        self.weights = [c / self.total for c in self.counts] if self.total else []
        self.taken = [0] * len(self.counts)
        self.live = [s for s, c in enumerate(self.counts) if c > 0]
        self.k = 0
        self.dtype = np.uint8 if len(self.counts) <= 256 else np.uint16

    def take(self, m: int) -> np.ndarray:
        m = min(m, self.total - self.k)
        out = np.empty(m, dtype=self.dtype)
        weights, taken, live, counts = self.weights, self.taken, self.live, self.counts
        for j in range(m):
            kk = self.k + j if self.k + j > 0 else 1  # Megatron's max(k, 1)
            best, best_err = -1, -1e300
            for s in live:
                err = weights[s] * kk - taken[s]
                if err > best_err:
                    best, best_err = s, err
            out[j] = best
            taken[best] += 1
            if taken[best] == counts[best]:
                live.remove(best)
        self.k += m
        return out


def blend_order(counts: list[int]) -> np.ndarray:
    """Source index per sample for the whole blend (BlendOrder in one go); each source s
    appears exactly counts[s] times."""
    return BlendOrder(counts).take(sum(int(c) for c in counts))


class WindowOrder:
    """Which windows of one source, in which order: a fresh keyed permutation of its
    `n_windows` windows each epoch, entries computed on demand (`take(m)` continues where the
    last call stopped). Seeded by seed and the source's name."""

    def __init__(self, n_windows: int, seed: int, source: str) -> None:
        if n_windows < 1:
            raise ValueError(f"source {source!r}: no window to order")
        self.n = int(n_windows)
        self.dtype = np.uint32 if self.n < 2**32 else np.uint64
        self.base = int(_mix(np.array([(seed & (2**64 - 1)) ^ (zlib.crc32(source.encode("utf-8")) << 32)],
                                      dtype=np.uint64))[0])
        self.half = max(1, (max(self.n - 1, 1).bit_length() + 1) // 2)  # domain 4**half >= n
        self.pos = 0

    def _keys(self, epochs: np.ndarray, r: int) -> np.ndarray:
        return _mix(np.uint64(self.base) ^ _mix(epochs * np.uint64(_ROUNDS) + np.uint64(r)))

    def _permute(self, x: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        mask, shift = np.uint64((1 << self.half) - 1), np.uint64(self.half)
        y = x.copy()
        todo = np.arange(len(y))
        while len(todo):  # cycle walking: re-encrypt what fell outside [0, n)
            left, right, ep = y[todo] >> shift, y[todo] & mask, epochs[todo]
            for r in range(_ROUNDS):  # round keys made one at a time: memory stays ~6 arrays
                left, right = right, left ^ (_mix(right ^ self._keys(ep, r)) & mask)
            y[todo] = (left << shift) | right
            todo = todo[y[todo] >= np.uint64(self.n)]
        return y

    def take(self, m: int) -> np.ndarray:
        i = np.arange(self.pos, self.pos + m, dtype=np.uint64)
        self.pos += m
        epochs, j = i // np.uint64(self.n), i % np.uint64(self.n)
        return self._permute(j, epochs).astype(self.dtype)


def window_order(n_windows: int, n_samples: int, seed: int, source: str) -> np.ndarray:
    """The first n_samples entries of WindowOrder (the whole order of one source)."""
    if n_samples == 0:
        return np.empty(0, dtype=np.uint32 if n_windows < 2**32 else np.uint64)
    return WindowOrder(n_windows, seed, source).take(n_samples)


def index_dtypes(n_sources: int, max_windows: int) -> tuple[np.dtype, np.dtype]:
    return (np.dtype(np.uint8 if n_sources <= 256 else np.uint16),
            np.dtype(np.uint32 if max_windows < 2**32 else np.uint64))


def blend_chunks(counts: list[int], windows: list[int], names: list[str], seed: int,
                 chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source_index, sample_index) chunks of the blend: sources in `names` order, counts[s]
    samples of source s drawn from its `windows[s]` windows."""
    order = BlendOrder(counts)
    wins = [WindowOrder(w, seed, n) if c else None for w, c, n in zip(windows, counts, names, strict=True)]
    sample_dtype = index_dtypes(len(counts), max(windows, default=0))[1]
    while order.k < order.total:
        src = order.take(chunk)
        sample = np.empty(len(src), dtype=sample_dtype)
        for s in np.unique(src):
            where = src == s
            sample[where] = wins[int(s)].take(int(where.sum()))  # type: ignore[union-attr]
        yield src, sample
