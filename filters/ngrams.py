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
~65% of the quality filter's time. Here an n-gram is a character range of the joined words,
hashed with a polynomial hash (arithmetic modulo 2^64 by integer wrap-around): the prefix
hashes of the ""-joined text are computed once over its characters and kept at word
boundaries only, every word's hash comes from them, and the joiner-joined prefixes follow
from the word hashes (a cumulative sum over words, not characters: no second text to encode).
All nine sizes are grouped by a value sort of packed integers: segment (n) in the top bits, then
the hash's low bits, then the position in the low bits, so the sort itself puts each class's
positions in order and its first one first (a value sort, 3x faster than an argsort here; each
size's keys are sorted on their own, which is faster than one sort and gives the same order).
Only the positions whose class repeats are visited in Python.
Equal hashes are not trusted: every n-gram that is counted as a repeat is compared, as a
string, with the occurrence it repeats, and a hash collision (never seen on real text) sends
that one measurement to the plain string version. The results are therefore exactly the
reference values; `tests/test_quality.py` checks them on all 990 evaluation pages.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from functools import lru_cache

import numpy as np

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2^64
_BASE_INV = np.uint64(pow(int(_BASE), -1, 1 << 64))
_pow = np.ones(1, dtype=np.uint64)
_ipow = np.ones(1, dtype=np.uint64)
_TAG_BITS = 4  # up to 16 n-gram sizes in one sort


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


@lru_cache(maxsize=8)
def _hash(s: str) -> np.uint64:
    """The polynomial hash of a short string (the joiner)."""
    pw, _ = _powers(len(s) + 1)
    codes = np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    with np.errstate(over="ignore"):
        return np.uint64(np.sum(codes * pw[: len(codes)], dtype=np.uint64))


class JoinedWords:
    """`words` joined by "" and by `joiner`: where each word starts in either text, and the
    prefix hash of either text at every word start."""

    def __init__(self, words: list[str], joiner: str = " ") -> None:
        self.words, self.joiner = words, joiner
        n_words = len(words)
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=n_words)
        self.starts = np.zeros(n_words + 1, dtype=np.int64)  # in the ""-joined text
        np.cumsum(lengths, out=self.starts[1:])
        text = "".join(words)
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
        # the joined text is at most len(text) + len(joiner) * n_words long
        pw, self._ipow = _powers(len(codes) + len(joiner) * n_words + 2)
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.cumsum(codes * pw[: len(codes)], out=prefix[1:])
        self.prefix = prefix[self.starts]  # at word starts (and the end)
        self._texts = {"": text}
        self._start_lists: dict[str, list[int]] = {}
        self._joined: tuple[np.ndarray, np.ndarray] | None = None
        self._unshift: dict[bool, tuple[np.ndarray, np.ndarray]] = {}

    def text(self, joiner: str) -> str:
        if joiner not in self._texts:
            self._texts[joiner] = joiner.join(self.words)
        return self._texts[joiner]

    def start_list(self, joiner: str) -> list[int]:
        """Where each word starts in the joined text, as a list (for per-position Python work)."""
        if joiner not in self._start_lists:
            self._start_lists[joiner] = (self._with_joiner()[0] if joiner else self.starts).tolist()
        return self._start_lists[joiner]

    def _with_joiner(self) -> tuple[np.ndarray, np.ndarray]:
        """(start of each word, prefix hash there) in the `joiner`-joined text; index len(words)
        is one joiner past the end, so word i's joined n-gram ends len(joiner) before start i+n."""
        if self._joined is None:
            k = len(self.joiner)
            starts = self.starts + k * np.arange(len(self.starts), dtype=np.int64)
            pw = _pow
            with np.errstate(over="ignore"):
                # word i's own hash, moved to where it starts in the joined text, plus the joiner after it
                word = (self.prefix[1:] - self.prefix[:-1]) * self._ipow[self.starts[:-1]]
                step = word * pw[starts[:-1]] + _hash(self.joiner) * pw[starts[1:] - k]
                prefix = np.zeros(len(starts), dtype=np.uint64)
                np.cumsum(step, out=prefix[1:])
            self._joined = (starts, prefix)
        return self._joined

    def hashes(self, n: int, joined: bool = False) -> np.ndarray:
        """The hash of the n-gram at each word position (a new array), ""-joined or `joiner`-joined;
        a joined n-gram's hash includes the joiner after it, the same for equal n-grams. BASE^-start
        is gathered once per text, not once per n-gram size."""
        key = bool(joined and self.joiner)
        if key not in self._unshift:
            starts, prefix = self._with_joiner() if key else (self.starts, self.prefix)
            self._unshift[key] = (prefix, self._ipow[starts])
        prefix, unshift = self._unshift[key]
        m = len(self.words) - n + 1
        h = prefix[n : n + m] - prefix[:m]
        h *= unshift[:m]  # array arithmetic wraps silently
        return h


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
    joined = joined if joined is not None and joined.joiner == joiner else JoinedWords(words, joiner)
    seg = _segments(joined, [(n, True)])[0]
    return 0 if seg is None else _top(words, n, joiner, seg)


def all_duplicate_chars(words: list[str], n: int, joined: JoinedWords | None = None) -> int:
    """Characters in repeated ""-joined n-grams, counted by Gopher's left-to-right walk."""
    seg = _segments(joined or JoinedWords(words, ""), [(n, False)])[0]
    return 0 if seg is None else _all(words, n, seg)


def repetition_chars(words: list[str], joiner: str) -> tuple[list[int], list[int]]:
    """Gopher's n-gram measurements of one document: top n-gram characters for n = 2, 3, 4
    (`joiner`-joined) and duplicate n-gram characters for n = 5..10 (""-joined). All nine
    n-gram sizes are grouped by one sort, not nine: numpy's per-call cost dominates on a page."""
    joined = JoinedWords(words, joiner)
    segs = _segments(joined, [(n, True) for n in (2, 3, 4)] + [(n, False) for n in range(5, 11)])
    tops = [0 if seg is None else _top(words, n, joiner, seg) for n, seg in zip((2, 3, 4), segs[:3])]
    dups = [0 if seg is None else _all(words, n, seg) for n, seg in zip(range(5, 11), segs[3:])]
    return tops, dups


class _Classes:
    """Hash classes of all n-gram sizes of one sort: `pos[i]` is the position (within its size)
    of the i-th sorted entry, classes are runs of equal hash; `begin[c]`, `size[c]` and
    `first[c]` (its first position) describe class c."""

    __slots__ = ("pos", "new", "begin", "size", "first")

    def __init__(self, packed: np.ndarray, pos_bits: int) -> None:
        self.pos = (packed & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
        key = packed >> np.uint64(pos_bits)
        self.new = np.empty(len(packed), dtype=bool)
        self.new[0] = True
        np.not_equal(key[1:], key[:-1], out=self.new[1:])
        self.begin = np.flatnonzero(self.new)
        self.size = np.empty(len(self.begin), dtype=np.int64)
        np.subtract(self.begin[1:], self.begin[:-1], out=self.size[:-1])
        self.size[-1] = len(packed) - self.begin[-1]
        self.first = self.pos[self.begin]

    def class_of(self, entries: np.ndarray) -> np.ndarray:
        """The class of each sorted entry."""
        return np.searchsorted(self.begin, entries, side="right") - 1


class _Segment:
    """The n-grams of one size: n-gram p is word p to word p + n - 1 of the text joined by
    `joiner`; their entries are o:o+m and their classes c0:c1 in `classes`."""

    __slots__ = ("joined", "joiner", "n", "classes", "o", "m", "c0", "c1")

    def __init__(self, joined: JoinedWords, joiner: str, n: int, classes: _Classes, o: int, m: int) -> None:
        self.joined, self.joiner, self.n, self.classes, self.o, self.m = joined, joiner, n, classes, o, m
        # entry o begins a class (a class never spans sizes)
        self.c0, self.c1 = np.searchsorted(classes.begin, (o, o + m)).tolist()

    @property
    def text(self) -> str:
        return self.joined.text(self.joiner)

    @property
    def starts(self) -> list[int]:
        return self.joined.start_list(self.joiner)

    def gram(self, p: int) -> str:
        starts = self.starts
        return self.text[starts[p] : starts[p + self.n] - len(self.joiner)]

    def chars(self, p: int) -> int:
        starts = self.starts
        return starts[p + self.n] - len(self.joiner) - starts[p]


def _segments(joined: JoinedWords, specs: list[tuple[int, bool]]) -> list[_Segment | None]:
    """Hash classes for each (n, joiner-joined?), from one sort of packed integers: the spec's
    index in the top bits, then the hash's low bits, then the position. Sorting groups each
    size, then each class, with its positions ascending."""
    if len(specs) > 1 << _TAG_BITS:
        raise ValueError(f"at most {1 << _TAG_BITS} n-gram sizes per sort")
    m_max = len(joined.words) - min((n for n, _ in specs), default=1) + 1
    if m_max <= 0:
        return [None] * len(specs)
    pos_bits = max(1, (m_max - 1).bit_length())
    # The hash's low bits are kept (>= 40 of them below 2^20 words): two texts that differ in one
    # character differ by (code difference) * BASE^k modulo 2^64, whose lowest set bit is that of
    # the code difference (< 2^21), so they never collide; the top bits can ("I"/"i" at k = 0).
    # (h & (2^(64 - tag - pos bits) - 1)) << pos bits, as two shifts in place: the key is built in
    # the hash's own array (fewer temporaries than the masked form, the same bits)
    up, down = np.uint64(_TAG_BITS + pos_bits), np.uint64(_TAG_BITS)
    positions = np.arange(m_max, dtype=np.uint64)
    parts, where = [], []
    offset = 0
    for k, (n, spaced) in enumerate(specs):
        m = len(joined.words) - n + 1
        if m <= 0:
            where.append(None)
            continue
        key = joined.hashes(n, spaced)
        key <<= up
        key >>= down
        key |= positions[:m]
        key |= np.uint64(k << (64 - _TAG_BITS))
        parts.append(key)
        where.append((n, spaced, offset, m))
        offset += m
    # Each size's keys share its tag (the top bits), so sorting the sizes one by one and joining
    # them in tag order is the sort of all keys: ~1.8x faster here than one sort of the whole
    # (numpy's sort slows down per element as arrays grow; measured at 100-10,000 words).
    for part in parts:
        part.sort()
    classes = _Classes(np.concatenate(parts) if len(parts) > 1 else parts[0], pos_bits)
    out: list[_Segment | None] = []
    for w in where:
        if w is None:
            out.append(None)
            continue
        n, spaced, o, m = w
        out.append(_Segment(joined, joined.joiner if spaced else "", n, classes, o, m))
    return out


def _top(words: list[str], n: int, joiner: str, seg: _Segment) -> int:
    try:
        return _top_hashed(seg)
    except _Collision:
        grams = [joiner.join(words[i : i + n]) for i in range(len(words) - n + 1)]
        gram, count = Counter(grams).most_common(1)[0]
        return len(gram) * count


def _top_hashed(seg: _Segment) -> int:
    # Counter.most_common(1) returns the first-inserted of the most frequent n-grams: of the
    # largest classes, the one whose first position (its first occurrence) is earliest.
    cl = seg.classes
    sizes = cl.size[seg.c0 : seg.c1]
    best = int(sizes.max())
    if best == 1:
        return seg.chars(0)
    largest = np.flatnonzero(sizes == best) + seg.c0
    c = int(largest[np.argmin(cl.first[largest])])
    members = cl.pos[cl.begin[c] : cl.begin[c] + best].tolist()
    p = members[0]
    gram = seg.gram(p)
    for q in members[1:]:
        if seg.gram(q) != gram:
            raise _Collision
    return seg.chars(p) * best


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
    if seg.c1 - seg.c0 == seg.m:
        return 0  # every n-gram is new
    cl, o, m = seg.classes, seg.o, seg.m
    later = np.flatnonzero(~cl.new[o : o + m]) + o  # entries after their class's first (occurrence)
    rep_pos = cl.pos[later]
    order = np.argsort(rep_pos)
    rep_cls = cl.class_of(later[order])
    remembered: dict[int, int] = {}  # hash class -> a visited position of it (not its first)
    jumps: list[int] = []  # positions of counted repeats, ascending (each hides the next n-1)
    chars = nxt = 0
    text, starts = seg.text, seg.starts  # "" joined: n-gram p is text[starts[p]:starts[p + n]]
    for p, c, f in zip(rep_pos[order].tolist(), rep_cls.tolist(), cl.first[rep_cls].tolist()):
        if p < nxt:
            continue  # jumped over
        rep = remembered.get(c)
        if rep is None:
            # the class's first occurrence is visited unless inside the n-1 positions after a counted repeat
            k = bisect_right(jumps, f)
            if not (k and jumps[k - 1] + n > f):
                rep = f
        if rep is None:
            remembered[c] = p
            nxt = p + 1
            continue
        end = starts[p + n]
        if text[starts[p] : end] != text[starts[rep] : starts[rep + n]]:
            raise _Collision
        chars += end - starts[p]
        jumps.append(p)
        nxt = p + n
    return chars
