"""Gopher's repetition measurements, computed on hashes of character ranges instead of strings.

Gopher (Rae et al. 2021, table A1) measures repetition with three helpers, defined here as the
reference implementation in datatrove defines them (so the values, and thresholds tuned on
them, carry over exactly):

* `find_duplicates(items)`: how many items equal an earlier one, and their characters;
* `top_duplicate_chars(words, n, joiner)`: the most frequent n-gram (`joiner`-joined; the
  first one seen wins a tie) times its count, in characters;
* `all_duplicate_chars(words, n)`: walk the ""-joined n-grams left to right; an n-gram seen
  before adds its characters and the walk jumps past it (n words), else it is remembered.

The straightforward version builds one string per position and n (9 n-gram sizes), which was
~65% of the quality filter's time. Here the n-grams are ranges of one joined string, hashed all
at once with a polynomial prefix hash in numpy (arithmetic modulo 2^64 by integer wrap-around),
grouped with `np.unique`, and only the positions whose hash repeats are visited in Python.
Equal hashes are not trusted: every n-gram that is counted as a repeat is compared, as a
string, with the occurrence it repeats, and a hash collision (never seen on real text) sends
that one measurement to the plain string version. The results are therefore exactly the
reference values; `tests/test_quality.py` checks them on all 990 evaluation pages.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

import numpy as np

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2^64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 1 << 64))
_pow = np.ones(1, dtype=np.uint64)
_ipow = np.ones(1, dtype=np.uint64)


class _Collision(Exception):
    """Two different n-grams hashed alike: fall back to strings for this measurement."""


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE^i and BASE^-i modulo 2^64 for i < n (cached, grown by doubling)."""
    global _pow, _ipow
    with np.errstate(over="ignore"):
        while len(_pow) < n:
            k = len(_pow)
            _pow = np.concatenate([_pow, _pow * (_pow[-1] * _BASE)])
            _ipow = np.concatenate([_ipow, _ipow * (_ipow[-1] * _BASE_INV)])
            assert len(_pow) == 2 * k
    return _pow, _ipow


class JoinedWords:
    """`joiner.join(words)`, its prefix hash, and where each word starts in it."""

    def __init__(self, words: list[str], joiner: str) -> None:
        self.words, self.joiner = words, joiner
        self.text = joiner.join(words)
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        # start of word i, and (index len(words)) one joiner past the end
        self.starts = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(lengths + len(joiner), out=self.starts[1:])
        codes = np.frombuffer(self.text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
        pw, self._ipow = _powers(len(codes) + 1)
        self.prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.cumsum(codes * pw[: len(codes)], out=self.prefix[1:])

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start, end, hash) of the n-gram at each word position."""
        m = len(self.words) - n + 1
        a = self.starts[:m]
        b = self.starts[n : n + m] - len(self.joiner)
        with np.errstate(over="ignore"):
            h = (self.prefix[b] - self.prefix[a]) * self._ipow[a]
        return a, b, h


def _classes(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(h, return_index, return_inverse, return_counts) without the sorted values:
    (first position of each class, class of each position, class sizes). np.unique sorts
    stably (mergesort); an unstable sort plus a minimum per class is ~2x faster here."""
    order = np.argsort(h)
    hs = h[order]
    new = np.empty(len(h), dtype=bool)
    new[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(order, starts)
    inverse = np.empty(len(h), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return first, inverse, np.diff(np.append(starts, len(h)))


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(items equal to an earlier item, characters of those items)."""
    seen: set[str] = set()
    dups = chars = 0
    for item in items:
        if item in seen:
            dups += 1
            chars += len(item)
        else:
            seen.add(item)
    return dups, chars


def top_duplicate_chars(words: list[str], n: int, joiner: str = " ", joined: JoinedWords | None = None) -> int:
    """Characters of the most frequent `joiner`-joined n-gram times its count (0 without n-grams)."""
    joined = joined or JoinedWords(words, joiner)
    seg = _segments([(joined, n)])[0]
    return 0 if seg is None else _top(words, n, joiner, seg)


def all_duplicate_chars(words: list[str], n: int, joined: JoinedWords | None = None) -> int:
    """Characters in repeated ""-joined n-grams, counted by Gopher's left-to-right walk."""
    joined = joined or JoinedWords(words, "")
    seg = _segments([(joined, n)])[0]
    return 0 if seg is None else _all(words, n, seg)


def repetition_chars(words: list[str], joiner: str) -> tuple[list[int], list[int]]:
    """Gopher's n-gram measurements of one document: top n-gram characters for n = 2, 3, 4
    (`joiner`-joined) and duplicate n-gram characters for n = 5..10 (""-joined). All nine
    n-gram sizes are grouped by one sort, not nine: numpy's per-call cost dominates on a page."""
    plain = JoinedWords(words, "")
    top = plain if joiner == "" else JoinedWords(words, joiner)
    segs = _segments([(top, n) for n in (2, 3, 4)] + [(plain, n) for n in range(5, 11)])
    tops = [0 if seg is None else _top(words, n, joiner, seg) for n, seg in zip((2, 3, 4), segs[:3])]
    dups = [0 if seg is None else _all(words, n, seg) for n, seg in zip(range(5, 11), segs[3:])]
    return tops, dups


class _Segment:
    """The n-grams of one size: their character ranges in `text`, the hash class of each
    position, the first position of that class, and the class size."""

    __slots__ = ("text", "a", "b", "cls", "first", "count")

    def __init__(self, text: str, a: np.ndarray, b: np.ndarray, cls: np.ndarray, first: np.ndarray,
                 count: np.ndarray) -> None:
        self.text, self.a, self.b, self.cls, self.first, self.count = text, a, b, cls, first, count

    def gram(self, p: int) -> str:
        return self.text[self.a[p] : self.b[p]]


def _segments(specs: list[tuple[JoinedWords, int]]) -> list[_Segment | None]:
    """Hash classes for each (joined words, n), from one sort. The segment's index goes into
    the low 4 bits of its hashes, so no class spans two segments."""
    parts, where = [], []
    for k, (j, n) in enumerate(specs):
        m = len(j.words) - n + 1
        if m <= 0:
            where.append(None)
            continue
        a, b, h = j.ngrams(n)
        parts.append((h << np.uint64(4)) | np.uint64(k))
        where.append((j.text, a, b, sum(len(x) for x in parts) - m, m))
    if not parts:
        return where
    first, inverse, counts = _classes(np.concatenate(parts) if len(parts) > 1 else parts[0])
    out: list[_Segment | None] = []
    for w in where:
        if w is None:
            out.append(None)
            continue
        text, a, b, o, m = w
        cls = inverse[o : o + m]
        out.append(_Segment(text, a, b, cls, first[cls] - o, counts[cls]))
    return out


def _top(words: list[str], n: int, joiner: str, seg: _Segment) -> int:
    try:
        return _top_hashed(seg)
    except _Collision:
        grams = [joiner.join(words[i : i + n]) for i in range(len(words) - n + 1)]
        gram, count = Counter(grams).most_common(1)[0]
        return len(gram) * count


def _top_hashed(seg: _Segment) -> int:
    # Counter.most_common(1) returns the first-inserted of the most frequent n-grams: the
    # first position whose class has the largest count is that class's first occurrence.
    best = int(seg.count.max())
    p = int(np.argmax(seg.count == best))
    if best > 1:
        gram = seg.gram(p)
        for q in np.flatnonzero(seg.cls == seg.cls[p]).tolist():
            if seg.gram(q) != gram:
                raise _Collision
    return int(seg.b[p] - seg.a[p]) * best


def _all(words: list[str], n: int, seg: _Segment) -> int:
    try:
        return _all_hashed(seg, n)
    except _Collision:
        return _all_strings(words, n)


def _all_strings(words: list[str], n: int) -> int:
    seen: set[str] = set()
    chars = idx = 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in seen:
            chars += len(gram)
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return chars


def _all_hashed(seg: _Segment, n: int) -> int:
    # Only a position whose hash occurred earlier can be a repeat; every other position the
    # walk reaches is remembered. The walk skips positions only when it jumps past a repeat.
    repeats = np.flatnonzero(seg.first != np.arange(len(seg.first)))
    if not len(repeats):
        return 0
    remembered: dict[int, int] = {}  # hash class -> a visited position of it (not its first)
    jumps: list[int] = []  # positions of counted repeats, ascending (each hides the next n-1)
    chars = nxt = 0
    cls, first, a, b = seg.cls, seg.first, seg.a, seg.b
    for p in repeats.tolist():
        if p < nxt:
            continue  # jumped over
        c = int(cls[p])
        rep = remembered.get(c)
        if rep is None:
            f = int(first[p])  # visited unless inside the n-1 positions after a counted repeat
            k = bisect_right(jumps, f)
            if not (k and jumps[k - 1] + n > f):
                rep = f
        if rep is None:
            remembered[c] = p
            nxt = p + 1
            continue
        if seg.gram(p) != seg.gram(rep):
            raise _Collision
        chars += int(b[p] - a[p])
        jumps.append(p)
        nxt = p + n
    return chars
