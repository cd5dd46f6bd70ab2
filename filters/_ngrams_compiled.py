"""The compiled part of filters/ngrams.py (numba), kept apart so that importing filters.ngrams
does not load numba: see that module for what these compute and why they are exact."""

from __future__ import annotations

import numpy as np
from numba import njit

_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the table slot from the hash's top bits


@njit(cache=True, nogil=True)
def _split_nul(text, n_words):
    """The code points of NUL-separated words without the NULs, and each word's length."""
    codes = np.empty(len(text) - (n_words - 1), dtype=np.uint32)
    lens = np.zeros(n_words, dtype=np.int64)
    w = 0
    o = 0
    for c in text:
        if c == 0:
            w += 1
        else:
            codes[o] = c
            o += 1
            lens[w] += 1
    return codes, lens


@njit(cache=True, nogil=True)
def _prefix(text, base):
    """H[i] = hash of text[:i] (Rabin-Karp, modulo 2^64) and base^i."""
    n = len(text)
    h = np.zeros(n + 1, dtype=np.uint64)
    pw = np.ones(n + 1, dtype=np.uint64)
    for i in range(n):
        h[i + 1] = h[i] * base + np.uint64(text[i])
        pw[i + 1] = pw[i] * base
    return h, pw


@njit(cache=True, nogil=True)
def _same(text, a, b, length):
    for i in range(length):
        if text[a + i] != text[b + i]:
            return False
    return True


@njit(cache=True, nogil=True)
def _find(text, a, b, h, t_hash, t_start, t_len, shift):
    """The slot holding text[a:b] (t_start >= 0 there), or the empty slot where it goes."""
    length = b - a
    mask = len(t_start) - 1
    slot = np.int64((h * _MIX) >> shift)
    while t_start[slot] >= 0:
        if t_hash[slot] == h and t_len[slot] == length and _same(text, t_start[slot], a, length):
            return slot
        slot = (slot + 1) & mask
    return slot


@njit(cache=True, nogil=True)
def _repetition(codes, lens, jcodes, base, top_ns, dup_ns):
    """(top n-gram characters for each n of top_ns, `jcodes`-joined; duplicate n-gram characters
    for each n of dup_ns, ""-joined) of the words whose code points are `codes`, lengths `lens`."""
    nw = len(lens)
    lj = len(jcodes)
    starts = np.zeros(nw + 1, dtype=np.int64)
    for i in range(nw):
        starts[i + 1] = starts[i] + lens[i]
    # the joiner-joined text with a joiner after every word: n-gram p is joined[jstarts[p] :
    # jstarts[p + n] - lj], the same range whatever the joiner
    joined = np.empty(len(codes) + lj * nw, dtype=np.uint32)
    jstarts = np.empty(nw + 1, dtype=np.int64)
    o = 0
    for i in range(nw):
        jstarts[i] = o
        for c in range(starts[i], starts[i + 1]):
            joined[o] = codes[c]
            o += 1
        for c in range(lj):
            joined[o] = jcodes[c]
            o += 1
    jstarts[nw] = o
    bits = 4
    while (1 << bits) < 2 * nw + 2:
        bits += 1
    size = 1 << bits
    shift = np.uint64(64 - bits)
    t_hash = np.empty(size, dtype=np.uint64)
    t_start = np.empty(size, dtype=np.int64)
    t_len = np.empty(size, dtype=np.int64)
    t_cnt = np.empty(size, dtype=np.int64)
    order = np.empty(nw + 1, dtype=np.int64)
    tops = np.zeros(len(top_ns), dtype=np.int64)
    dups = np.zeros(len(dup_ns), dtype=np.int64)
    if len(top_ns):
        pre, pw = _prefix(joined, base)
        for k in range(len(top_ns)):
            n = top_ns[k]
            m = nw - n + 1
            if m <= 0:
                continue
            t_start[:] = -1
            made = 0
            for p in range(m):
                a = jstarts[p]
                b = jstarts[p + n] - lj
                h = pre[b] - pre[a] * pw[b - a]
                slot = _find(joined, a, b, h, t_hash, t_start, t_len, shift)
                if t_start[slot] >= 0:
                    t_cnt[slot] += 1
                else:
                    t_hash[slot] = h
                    t_start[slot] = a
                    t_len[slot] = b - a
                    t_cnt[slot] = 1
                    order[made] = slot
                    made += 1
            # Counter.most_common(1): the largest count, the first inserted among equals
            best = order[0]
            for e in range(1, made):
                if t_cnt[order[e]] > t_cnt[best]:
                    best = order[e]
            tops[k] = t_len[best] * t_cnt[best]
    if len(dup_ns):
        pre, pw = _prefix(codes, base)
        for k in range(len(dup_ns)):
            n = dup_ns[k]
            m = nw - n + 1
            t_start[:] = -1
            chars = 0
            idx = 0
            while idx < m:
                a = starts[idx]
                b = starts[idx + n]
                h = pre[b] - pre[a] * pw[b - a]
                slot = _find(codes, a, b, h, t_hash, t_start, t_len, shift)
                if t_start[slot] >= 0:
                    chars += b - a
                    idx += n
                else:
                    t_hash[slot] = h
                    t_start[slot] = a
                    t_len[slot] = b - a
                    idx += 1
            dups[k] = chars
    return tops, dups
