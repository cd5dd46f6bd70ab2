"""Gopher's repetition measurements, compiled: datatrove's helper values, exactly, 3x cheaper.

Gopher (Rae et al. 2021, table A1) measures repetition with three helpers, defined here as the
reference implementation in datatrove defines them (so the values, and thresholds tuned on
them, carry over exactly):

* `find_duplicates(items)`: how many items equal an earlier one, and their characters;
* `top_duplicate_chars(words, n, joiner)`: the most frequent n-gram (`joiner`-joined; the
  first one seen wins a tie) times its count, in characters;
* `all_duplicate_chars(words, n)`: walk the ""-joined n-grams left to right; an n-gram seen
  before adds its characters and the walk jumps past it (n words), else it is remembered.

The straightforward version builds one string per position and n (9 n-gram sizes), which was
~65% of the quality filter's time. Here one compiled pass (numba) per document works on the
text's code points: an n-gram is a character range of the joined words, found in an
open-addressing table by a Rabin-Karp hash (modulo 2^64) and then compared character by
character with the entry it hashed to, so two n-grams count as equal only when their strings
are: the values are exactly the reference's whatever the hash does (a degenerate hash only
makes it slower; `tests/test_quality.py` checks both on all 990 evaluation pages).
Counter.most_common's tie rule (the first inserted) is kept by choosing among the table's
entries in the order they were made.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter

import numpy as np

log = logging.getLogger(__name__)
_BASE = 0x100000001B3  # the hash's multiplier (odd); tests set it to 1 to make every anagram collide
_TOPS = np.array([2, 3, 4], dtype=np.int64)
_DUPS = np.arange(5, 11, dtype=np.int64)
_NONE = np.zeros(0, dtype=np.int64)


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


def _strings(words: list[str], joiner: str, top_ns: np.ndarray, dup_ns: np.ndarray) -> tuple[list[int], list[int]]:
    """The definitions themselves, on strings (datatrove's helpers): the fallback when the compiled
    code cannot load, ~20x slower, the same values."""
    tops = []
    for n in top_ns.tolist():
        grams = [joiner.join(words[i: i + n]) for i in range(len(words) - n + 1)]
        if not grams:
            tops.append(0)
            continue
        gram, count = Counter(grams).most_common(1)[0]
        tops.append(len(gram) * count)
    dups = []
    for n in dup_ns.tolist():
        seen: set[str] = set()
        chars = idx = 0
        while idx < len(words) - n + 1:
            gram = "".join(words[idx: idx + n])
            if gram in seen:
                chars += len(gram)
                idx += n
            else:
                seen.add(gram)
                idx += 1
        dups.append(chars)
    return tops, dups


@functools.lru_cache(maxsize=1)
def _compiled():
    """The compiled kernels, or None (with one warning) where numba cannot load or cache them
    (e.g. no writable cache folder): imported here, on first use, because importing this module
    (filters.words does, and the driver imports that) must not load numba and LLVM (~110 MB) into
    processes that never measure a document."""
    try:
        from filters import _ngrams_compiled

        return _ngrams_compiled
    except Exception as exc:  # noqa: BLE001  (slower, same values: never a failed stage)
        log.warning("compiled n-gram code unavailable (%s: %s); using the string definitions: the same "
                    "values, ~20x slower", type(exc).__name__, exc)
        return None


def _run(words: list[str], joiner: str, top_ns: np.ndarray, dup_ns: np.ndarray) -> tuple[list[int], list[int]]:
    kernels = _compiled()
    if kernels is None:
        return _strings(words, joiner, top_ns, dup_ns)
    _repetition, _split_nul = kernels._repetition, kernels._split_nul
    # The words NUL-separated: one join and one encode give the code points and (where no word
    # holds a NUL, checked by the count) every word's length, 1.6x cheaper than len() per word.
    text = "\0".join(words)
    if words and text.count("\0") == len(words) - 1:
        codes, lens = _split_nul(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4"), len(words))
    else:
        codes = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype="<u4")
        lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    jcodes = np.frombuffer(joiner.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    tops, dups = _repetition(codes, lens, jcodes, np.uint64(_BASE), top_ns, dup_ns)
    return tops.tolist(), dups.tolist()


def repetition_chars(words: list[str], joiner: str) -> tuple[list[int], list[int]]:
    """Gopher's n-gram measurements of one document: top n-gram characters for n = 2, 3, 4
    (`joiner`-joined) and duplicate n-gram characters for n = 5..10 (""-joined)."""
    return _run(words, joiner, _TOPS, _DUPS)


def top_duplicate_chars(words: list[str], n: int, joiner: str = " ") -> int:
    """Characters of the most frequent `joiner`-joined n-gram times its count (0 without n-grams)."""
    return _run(words, joiner, np.array([n], dtype=np.int64), _NONE)[0][0]


def all_duplicate_chars(words: list[str], n: int) -> int:
    """Characters in repeated ""-joined n-grams, counted by Gopher's left-to-right walk."""
    return _run(words, "", _NONE, np.array([n], dtype=np.int64))[1][0]
