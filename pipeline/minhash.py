"""Shingling, MinHash signatures and LSH band hashes, vectorised with pyarrow and numpy.

What dedup (pipeline/dedup/) needs from a batch of texts, with no Python loop per word,
shingle or permutation:

  text --NFKC, casefold (Python), non-letters -> space (pyarrow)--> words (or characters for zh/ja/ko/th and
  texts without spaces) --hash once (numpy over the bytes of the batch's distinct words)--> token
  hashes --n consecutive tokens mixed--> 32-bit shingle keys --num_perm permutations--> signature
  --r rows per band mixed--> one 64-bit hash per band.

Permutations are Dietzfelbinger's multiply-add-shift, h(x) = ((a*x + b) mod 2**64) >> 32 for a
32-bit key x: strongly universal, and uint64 arithmetic wraps mod 2**64 for free, so there is no
modulo (datatrove's `% (2**61 - 1)` is a division per element). The shift is monotone, so it is
taken once after the minimum. Measured on this machine: 1-1.5 ns per (shingle, permutation),
three numpy passes per permutation over a whole batch (bench/results/dedup.md).

S-curve (bands b, rows r): a pair of Jaccard s shares at least one band with probability
P(s) = 1 - (1 - s**r)**b. FineWeb's 14x8 gives P(0.8) = 0.924, so 7.6% of pairs at the threshold
are never even compared. `choose_bands` takes, among b*r <= max_perm with P(threshold) >=
min_recall, the curve with the least area below the threshold (fewest candidates that
verification must throw away). For threshold 0.8, recall 0.95, max_perm 128 that is b=13, r=7
(91 permutations):

    s     0.3     0.5     0.6     0.7     0.75    0.8     0.85    0.9
    P(s)  0.003   0.097   0.309   0.673   0.845   0.953   0.993   1.000
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Everything that is not a letter, digit or combining mark separates words (RE2 syntax).
NON_WORD = r"[^\p{L}\p{N}\p{M}]+"
_U64 = np.uint64
_MASK64 = (1 << 64) - 1
# Odd 64-bit constants: polynomial base for bytes, mixing multipliers (golden-ratio family).
_BYTE_BASE = 0x100000001B3 | 1
_BYTE_BASE_INV = pow(_BYTE_BASE, -1, 1 << 64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_LEN_SALT = 0xC2B2AE3D27D4EB4F


def _salted(n: int) -> np.uint64:
    """n * salt mod 2**64 as a numpy scalar (numpy warns on scalar overflow, arrays wrap silently)."""
    return np.uint64((int(n) * _LEN_SALT) & _MASK64)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, elementwise: every input bit affects every output bit."""
    x = x.astype(_U64, copy=True)
    x ^= x >> _U64(33)
    x *= _U64(0xFF51AFD7ED558CCD)
    x ^= x >> _U64(33)
    x *= _U64(0xC4CEB9FE1A85EC53)
    x ^= x >> _U64(33)
    return x


def normalize_text(text: str | None) -> str:
    """Unicode NFKC, then casefold (ASCII text skips both: they are lower() there, and 10x cheaper)."""
    text = text or ""
    return text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()


def exact_hash(normalized: str) -> int:
    """64-bit hash of a `normalize_text` result with whitespace collapsed: the exact-dup key."""
    collapsed = " ".join(normalized.split())
    return int.from_bytes(hashlib.blake2b(collapsed.encode("utf-8"), digest_size=8).digest(), "little")


def hash_strings(arr: pa.Array) -> np.ndarray:
    """uint64 hash of every string of `arr`, computed over the raw UTF-8 buffer with numpy.

    A polynomial over the bytes, mod 2**64 with an odd base, made position-free by the base's
    inverse (odd numbers are invertible mod 2**64), then mixed with the length and fmix64.
    """
    arr = arr.cast(pa.large_string())
    if len(arr) == 0:
        return np.zeros(0, _U64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    data = data[offsets[0]: offsets[-1]]
    offsets = offsets - offsets[0]
    powers = np.full(len(data) + 1, _BYTE_BASE, _U64)
    powers[0] = 1
    np.cumprod(powers, out=powers)  # base**i, wrapping mod 2**64
    inverse = np.full(len(data) + 1, _BYTE_BASE_INV, _U64)
    inverse[0] = 1
    np.cumprod(inverse, out=inverse)
    prefix = np.zeros(len(data) + 1, _U64)
    np.cumsum(data.astype(_U64) * powers[:-1], out=prefix[1:])
    start, end = offsets[:-1], offsets[1:]
    raw = (prefix[end] - prefix[start]) * inverse[start]
    return fmix64(raw ^ (end - start).astype(_U64) * np.uint64(_LEN_SALT))


def _shingle_keys(tokens: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit keys of every window of n consecutive tokens, per document.

    `tokens` holds the token hashes of all documents back to back, `lengths` their counts. A
    document shorter than n tokens gets one shingle of all its tokens; an empty one gets none.
    Returns (keys as uint64 values < 2**32, shingle count per document).
    """
    lengths = lengths.astype(np.int64)
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    total = int(counts.sum())
    keys = np.empty(total, _U64)
    if total == 0:
        return keys, counts
    doc_start = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    out_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    if len(tokens) >= n:
        # Windows at every position of the concatenation (contiguous slices, no gathers), then
        # keep those that do not cross a document boundary.
        span = len(tokens) - n + 1
        h = tokens[:span].copy()
        for k in range(1, n):
            h *= _MIX
            h += tokens[k: k + span]
        full = fmix64(h ^ _salted(n)) >> _U64(32)
        # Shingle j of document d starts at token doc_start[d] + j (short docs are fixed below).
        src = np.arange(total) + np.repeat(doc_start - out_start, counts)
        np.minimum(src, span - 1, out=src)
        keys[:] = full[src]
    for d in np.flatnonzero((lengths > 0) & (lengths < n)):  # rare: fewer than n tokens
        h = np.zeros(1, _U64)
        for tok in tokens[doc_start[d]: doc_start[d] + lengths[d]]:
            h = h * _MIX + tok
        keys[out_start[d]] = (fmix64(h ^ _salted(lengths[d])) >> _U64(32))[0]
    return keys, counts


class Shingler:
    """Turns texts into shingle keys: word n-grams, or character n-grams where words do not work.

    Character mode is used for documents whose language (ISO 639-1, before any '-' or '_') is in
    `char_languages`, and for texts written without spaces whatever their label: at least
    `max_chars_per_token` characters per whitespace-separated token, or mostly 3-byte UTF-8
    characters (CJK, kana, Thai) in tokens of 7+ characters (Chinese with a few Latin words and
    punctuation between clauses). Word 5-grams of such a text would be a handful of whole clauses.
    """

    def __init__(self, word_ngram: int = 5, char_ngram: int = 5,
                 char_languages: Sequence[str] = ("zh", "ja", "ko", "th"),
                 max_chars_per_token: float = 25.0) -> None:
        self.word_ngram = word_ngram
        self.char_ngram = char_ngram
        self.char_languages = {c.lower() for c in char_languages}
        self.max_chars_per_token = max_chars_per_token

    def _char_mode(self, clean: pa.Array, n_tokens: np.ndarray,
                   languages: Sequence[str | None] | None) -> np.ndarray:
        n_chars = pc.fill_null(pc.utf8_length(clean), 0).to_numpy(zero_copy_only=False).astype(np.float64)
        n_bytes = pc.fill_null(pc.binary_length(clean), 0).to_numpy(zero_copy_only=False)
        per_token = n_chars / np.maximum(n_tokens, 1)
        # CJK, Thai, Japanese kana are 3 bytes in UTF-8; Hindi and Korean are too, but their
        # space-separated words are short (5 chars a token vs 8+ for Chinese clauses, measured).
        mode = (per_token >= self.max_chars_per_token) | (
            (n_bytes >= 2.2 * n_chars) & (per_token >= 7.0))
        if languages is not None:
            for i, lang in enumerate(languages):
                if lang and lang.replace("_", "-").split("-")[0].lower() in self.char_languages:
                    mode[i] = True
        return mode

    def batch(self, texts: Sequence[str | None], languages: Sequence[str | None] | None = None,
              normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Shingle keys of a batch: (keys, offsets), document i's keys are keys[offsets[i]:offsets[i+1]].

        `normalized=True` says the texts already went through `normalize_text`. Keys are uint64
        values below 2**32 and may repeat within a document (MinHash ignores repeats;
        `doc_sets` removes them).
        """
        norm = list(texts) if normalized else [normalize_text(t) for t in texts]
        clean = pc.utf8_trim_whitespace(pc.replace_substring_regex(
            pa.array(norm, pa.large_string()), pattern=NON_WORD, replacement=" "))
        # Null, not "", for an empty text: splitting "" gives one empty word.
        clean = pc.if_else(pc.equal(clean, ""), pa.scalar(None, pa.large_string()), clean)
        split = pc.utf8_split_whitespace(clean)
        all_lengths = pc.fill_null(pc.list_value_length(split), 0).to_numpy(zero_copy_only=False)
        char_mode = self._char_mode(clean, all_lengths, languages)
        n_docs = len(norm)
        counts = np.zeros(n_docs, np.int64)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (doc indices, keys, counts)
        word_idx = np.flatnonzero(~char_mode)
        if len(word_idx):
            words = split.take(pa.array(word_idx)) if len(word_idx) < n_docs else split
            lengths = all_lengths[word_idx]
            enc = pc.dictionary_encode(pc.list_flatten(words))
            if isinstance(enc, pa.ChunkedArray):
                enc = enc.combine_chunks()
            # Hash each distinct word of the batch once, then gather (Zipf: ~20x fewer hashes).
            tokens = hash_strings(enc.dictionary)[enc.indices.to_numpy(zero_copy_only=False)]
            keys, c = _shingle_keys(tokens, lengths, self.word_ngram)
            parts.append((word_idx, keys, c))
        char_idx = np.flatnonzero(char_mode)
        if len(char_idx):
            chars = [np.frombuffer((s or "").replace(" ", "").encode("utf-32-le"), np.uint32)
                     for s in clean.take(pa.array(char_idx)).to_pylist()]
            lengths = np.array([len(c) for c in chars], np.int64)
            tokens = fmix64(np.concatenate(chars).astype(_U64) if chars else np.zeros(0, _U64))
            keys, c = _shingle_keys(tokens, lengths, self.char_ngram)
            parts.append((char_idx, keys, c))
        for idx, _, c in parts:
            counts[idx] = c
        offsets = np.zeros(n_docs + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        out = np.empty(int(offsets[-1]), _U64)
        for idx, keys, c in parts:
            # Scatter each group's per-document runs to their place in batch order.
            src_start = np.concatenate(([0], np.cumsum(c)[:-1]))
            dst = np.repeat(offsets[idx] - src_start, c) + np.arange(len(keys))
            out[dst] = keys
        return out, offsets

    def doc_sets(self, texts: Sequence[str | None], languages: Sequence[str | None] | None = None
                 ) -> list[np.ndarray]:
        """The sorted, distinct shingle keys of each text (for true Jaccard)."""
        keys, offsets = self.batch(texts, languages)
        return [np.unique(keys[offsets[i]: offsets[i + 1]]) for i in range(len(offsets) - 1)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted arrays of distinct keys (0.0 when both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class MinHasher:
    """num_perm multiply-add-shift permutations drawn from `seed`; signatures of whole batches."""

    def __init__(self, num_perm: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(0, 1 << 64, num_perm, dtype=_U64, endpoint=False) | _U64(1)
        self.b = rng.integers(0, 1 << 64, num_perm, dtype=_U64, endpoint=False)

    def signatures(self, keys: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signatures uint32 [docs with shingles, num_perm], indices of those docs in the batch)."""
        counts = np.diff(offsets)
        docs = np.flatnonzero(counts > 0)
        sig = np.empty((len(docs), self.num_perm), np.uint32)
        if len(docs) == 0:
            return sig, docs
        starts = offsets[docs]
        tmp = np.empty(len(keys), _U64)
        for j in range(self.num_perm):
            np.multiply(keys, self.a[j], out=tmp)  # wraps mod 2**64: that is the hash family
            np.add(tmp, self.b[j], out=tmp)
            sig[:, j] = np.minimum.reduceat(tmp, starts) >> _U64(32)
        return sig, docs


def band_hashes(sig: np.ndarray, bands: int, rows: int, seed: int = 1) -> np.ndarray:
    """uint64 [docs, bands]: the r signature values of each band mixed into one hash."""
    salts = np.random.default_rng(seed + 7919).integers(0, 1 << 64, bands, dtype=_U64)
    out = np.empty((sig.shape[0], bands), _U64)
    for i in range(bands):
        h = np.full(sig.shape[0], salts[i], _U64)
        for j in range(rows):
            h = fmix64(h * _MIX + sig[:, i * rows + j].astype(_U64))
        out[:, i] = h
    return out


def s_curve(s: float, bands: int, rows: int) -> float:
    """Probability that a pair of Jaccard `s` lands in at least one common LSH bucket."""
    return 1.0 - (1.0 - s ** rows) ** bands


def _area_below(threshold: float, bands: int, rows: int, steps: int = 200) -> float:
    xs = np.linspace(0.0, threshold, steps)
    return float(np.trapezoid([s_curve(x, bands, rows) for x in xs], xs))


def choose_bands(threshold: float, min_recall: float = 0.95, max_perm: int = 128) -> tuple[int, int]:
    """(bands, rows) with P(threshold) >= min_recall, b*r <= max_perm, least area below threshold."""
    best: tuple[float, int, int, int] | None = None
    for rows in range(1, max_perm + 1):
        for bands in range(1, max_perm // rows + 1):
            if s_curve(threshold, bands, rows) >= min_recall:
                # More bands only raise the curve everywhere: the first that reaches the target wins.
                cand = (_area_below(threshold, bands, rows), bands * rows, bands, rows)
                best = cand if best is None or cand < best else best
                break
    if best is None:
        raise ValueError(f"no bands*rows <= max_perm={max_perm} reaches recall {min_recall} at Jaccard "
                         f"{threshold}; raise max_perm or lower min_recall")
    return best[2], best[3]
