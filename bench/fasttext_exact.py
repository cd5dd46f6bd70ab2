"""Can fastText's `predict` be made cheaper without changing a single score? Measured: no.

    .venv/bin/python bench/fasttext_exact.py     # ~1 minute

Issue 13 asks for the filter chain under 20% of extraction time without changing a stored score;
after six exact cuts in the quality stage the largest cost left is the two fastText predicts
(lid.176 and the toxicity classifier, ~1.5 ms of the chain's ~3.3 ms per document). This script
holds an exact re-implementation of fastText 0.9.2's supervised `predict` in numpy and measures it
against fastText itself on the bench documents of `bench/filters.py`:

- identity: labels and float32 probabilities compared with fastText's `predict` for the three
  shipped models (lid.176, toxicity, quality model) on every document; all equal;
- speed from a cold process in batches of 256 (as the stages call it), and warm: the second half
  of the documents after the first half filled the word cache.

How it stays exact: a word's input rows (its dictionary row and its character n-grams': FNV-1a
over UTF-8 bytes with fastText's signed-char quirk, `% bucket`, the quantizer's pruning table) are
computed once and cached; per document the rows are gathered and added one after another in
float32 (numpy sums along the first axis row after row), scaled by float32(1 / count); each output
row's dot product is accumulated left to right in float32; softmax uses C's double `exp` rounded
to float (fastText's unqualified `exp(float)`), hierarchical softmax is walked depth first with
fastText's pruning and libstdc++'s heap algorithms, its sigmoid with libm's `expf`; probabilities
are reported as `expf(log(p + 1e-5))`, as fastText reports them.

Why it is not faster: the cache removes fastText's n-gram hashing, but every document still needs
every row added in order. The toxicity model gives ~14,700 rows per document (char 2-5-grams of
~950 words, unpruned), and numpy's gather plus sequential sum costs ~25 ns a row, as much as
fastText's whole predict; what the cache saves on lid.176 (few rows: its n-grams are pruned) the
per-word dictionary lookup in Python mostly spends again. Not used by the pipeline; kept so the
measurement can be rerun (for instance against a compiled version).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import math
import re
import struct
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # bench/ first on sys.path would shadow the `filters` package

FASTTEXT_MAGIC = 793712314
EOS = "</s>"
LABEL_PREFIX = "__label__"  # fastText's default `-label`; not stored in the file, so always this
LOSS_HS, LOSS_SOFTMAX = 1, 3
MODEL_SUP = 3
FNV_OFFSET, FNV_PRIME = 2166136261, 16777619
WORD_NGRAM_MULT = 116049371
KSUB = 256  # 8-bit product quantizer codes
# Bound on the per-process word cache: emptied between batches once past either limit.
CACHE_WORDS = 200_000
CACHE_IDS = 4_000_000

# Whitespace that Python's str.split() splits on but fastText does not, and NUL, which fastText
# splits on but Python does not: a line holding none of these splits the same both ways.
_SPLIT_DIFFERS = re.compile("[\0\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_FASTTEXT_SPACE = re.compile("[ \n\r\t\v\f\0]+")

_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_expf = _libm.expf
_expf.restype = ctypes.c_float
_expf.argtypes = (ctypes.c_float,)
f32 = np.float32


class ModelFormatError(ValueError):
    """The file is not a fastText model this module can run exactly."""


def _std_log(x: float) -> float:
    """fastText's `std_log(real x)`: float x, `std::log(x + 1e-5)` in double, back to float."""
    return float(f32(math.log(float(f32(x)) + 1e-5)))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return out if len(out) > 1 else out[0]

    def array(self, dtype, count: int) -> np.ndarray:
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a

    def cstring(self) -> bytes:
        end = self.data.index(b"\0", self.pos)
        out = self.data[self.pos:end]
        self.pos = end + 1
        return out


def _read_pq(r: _Reader) -> tuple[int, int, int, int, np.ndarray]:
    dim, nsubq, dsub, lastdsub = r.take("iiii")
    return dim, nsubq, dsub, lastdsub, r.array("<f4", dim * KSUB).astype(np.float32)


def _read_matrix(r: _Reader, quantized: bool) -> np.ndarray:
    """The matrix as float32 rows; a quantized one decoded exactly as fastText's addcode adds it."""
    if not quantized:
        m, n = r.take("qq")
        return r.array("<f4", m * n).astype(np.float32).reshape(m, n)
    qnorm = r.take("?")
    m, n = r.take("qq")
    codesize = r.take("i")
    codes = r.array(np.uint8, codesize)
    dim, nsubq, dsub, lastdsub, centroids = _read_pq(r)
    if dim != n or codesize != m * nsubq:
        raise ModelFormatError(f"quantized matrix {m}x{n}: {codesize} codes for {nsubq} subquantizers of dim {dim}")
    codes = codes.reshape(m, nsubq)
    out = np.empty((m, n), dtype=np.float32)
    for s in range(nsubq):
        d = lastdsub if s == nsubq - 1 else dsub
        # get_centroids(m, i): the last subquantizer's centroids are lastdsub wide.
        base = s * KSUB * dsub
        block = centroids[base: base + KSUB * d].reshape(KSUB, d)
        out[:, s * dsub: s * dsub + d] = block[codes[:, s]]
    if qnorm:
        norm_codes = r.array(np.uint8, m)
        ndim, _, _, _, ncentroids = _read_pq(r)
        if ndim != 1:
            raise ModelFormatError(f"norm quantizer of dim {ndim}")
        # addcode adds alpha * c[n] with alpha the row's norm: one float32 product per element.
        out *= ncentroids[norm_codes][:, None]
    return out


def _ragged(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The indices starts[0] .. starts[0] + lens[0] - 1, then starts[1] .., back to back."""
    total = int(lens.sum())
    ends = np.cumsum(lens)
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - lens), lens)


class FastTextModel:
    """A supervised fastText model: `predict` as fastText's Python `predict` answers it."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        data = Path(path).read_bytes()
        r = _Reader(data)
        magic, version = r.take("ii")
        if magic != FASTTEXT_MAGIC:
            raise ModelFormatError(f"{path}: not a fastText model (magic {magic})")
        if version > 12:
            raise ModelFormatError(f"{path}: fastText file version {version} is newer than 12")
        (self.dim, _ws, _epoch, _min_count, _neg, self.word_ngrams, self.loss, model,
         self.bucket, self.minn, self.maxn, _lr_update, _t) = r.take("iiiiiiiiiiiid")
        if model != MODEL_SUP:
            raise ModelFormatError(f"{path}: not a supervised model")
        if version == 11:
            self.maxn = 0  # fastText: old supervised models do not use char n-grams
        if self.loss not in (LOSS_HS, LOSS_SOFTMAX):
            raise ModelFormatError(f"{path}: loss {self.loss} (only softmax and hierarchical softmax run here)")
        size, self.nwords, self.nlabels = r.take("iii")
        _ntokens, pruneidx_size = r.take("qq")
        words, counts, types = [], [], []
        for _ in range(size):
            words.append(r.cstring())
            c, t = r.take("qb")
            counts.append(c)
            types.append(t)
        if types != [0] * self.nwords + [1] * self.nlabels:
            raise ModelFormatError(f"{path}: dictionary is not {self.nwords} words then {self.nlabels} labels")
        self.pruned = pruneidx_size
        self._prune_map: np.ndarray | None = None
        if pruneidx_size > 0:
            pairs = r.array("<i4", 2 * pruneidx_size).reshape(-1, 2)
            self._prune_map = np.full(self.bucket, -1, dtype=np.int32)
            self._prune_map[pairs[:, 0]] = pairs[:, 1]
        quant_input = r.take("?")
        # One extra all-zero row at the end: the padding of lines summed side by side.
        self.input = np.vstack((_read_matrix(r, quant_input), np.zeros((1, self.dim), dtype=np.float32)))
        qout = r.take("?")
        if qout:
            raise ModelFormatError(f"{path}: quantized output layer")
        self.output = _read_matrix(r, False)
        if r.pos != len(data):
            raise ModelFormatError(f"{path}: {len(data) - r.pos} bytes after the model")
        rows = self.nwords + (self.bucket if pruneidx_size < 0 else pruneidx_size)
        if self.input.shape != (rows + 1, self.dim) or self.output.shape != (self.nlabels, self.dim):
            raise ModelFormatError(f"{path}: matrix shapes {self.input.shape}, {self.output.shape} for dim {self.dim}")
        # The dictionary, by text: a token that is not valid UTF-8 never reaches us (fastText's
        # binding encodes the str as UTF-8), so an invalid entry maps to a key no token equals.
        self._word_id = {w.decode("utf-8", "surrogateescape"): i for i, w in enumerate(words)}
        self.labels = [w.decode("utf-8", "surrogateescape") for w in words[self.nwords:]]
        self._vocab_subwords(words)
        if self.loss == LOSS_HS:
            self._build_tree(counts[self.nwords:])
        self._log_threshold_cache: dict[float, float] = {}
        self._reset_cache()

    # ---- dictionary ---------------------------------------------------------------------------

    def _push(self, hashes: np.ndarray) -> np.ndarray:
        """pushHash over bucket indices: row ids, -1 where the pruned table has no row."""
        if self.pruned == 0:
            return np.full(len(hashes), -1, dtype=np.int32)
        if self._prune_map is not None:
            mapped = self._prune_map[hashes]
            return np.where(mapped >= 0, mapped + np.int32(self.nwords), np.int32(-1))
        return hashes.astype(np.int32) + np.int32(self.nwords)

    def _vocab_subwords(self, words: list[bytes]) -> None:
        """initNgrams: each dictionary word's row ids (itself, then its n-grams; `</s>` alone),
        kept back to back: `_vocab_ids[_vocab_off[w] : _vocab_off[w] + _vocab_len[w]]`."""
        vocab = words[: self.nwords]
        if self.maxn > 0:
            wbuf = np.frombuffer(b"".join(b"<" + w + b">" for w in vocab), dtype=np.uint8)
            not_eos = np.array([w != EOS.encode() for w in vocab], dtype=bool)
            grams, counts = self._subwords(wbuf, np.array([len(w) + 2 for w in vocab], dtype=np.int64), not_eos)
        else:
            grams, counts = np.empty(0, dtype=np.int32), np.zeros(len(vocab), dtype=np.int64)
        self._vocab_len = counts + 1
        self._vocab_off = np.cumsum(self._vocab_len) - self._vocab_len
        self._vocab_ids = np.empty(int(self._vocab_len.sum()), dtype=np.int32)
        self._vocab_ids[self._vocab_off] = np.arange(len(vocab), dtype=np.int32)
        rest = np.ones(len(self._vocab_ids), dtype=bool)
        rest[self._vocab_off] = False
        self._vocab_ids[rest] = grams

    def _subwords(self, wbuf: np.ndarray, wlen: np.ndarray, wanted: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """computeSubwords for every word of `wbuf` (the words wrapped in "<" ">", UTF-8, back to
        back; `wlen` their byte lengths): (row ids, count per word), the ids grouped by word.
        `wanted`: compute only for these words (the others get none).

        fastText walks the wrapped word's characters (a character: a byte that is not a UTF-8
        continuation byte, with the continuation bytes after it): for each start and each length
        n up to maxn it hashes the n characters' bytes, keeps lengths >= minn, and skips the
        one-character grams at either end (the bare "<" and ">"). Here the running hash of every
        start is extended one character per step, for all starts of all words together.
        """
        nw = len(wlen)
        if self.maxn <= 0 or nw == 0:
            return np.empty(0, dtype=np.int32), np.zeros(nw, dtype=np.int64)
        starts = np.flatnonzero((wbuf & 0xC0) != 0x80)
        # Each wrapped word begins with "<", a character start, so no character spans two words.
        marker = np.zeros(len(wbuf), dtype=np.int32)
        marker[np.cumsum(wlen) - wlen] = 1
        owner = (np.cumsum(marker) - 1)[starts]
        nchars = np.bincount(owner, minlength=nw)
        first_char = np.cumsum(nchars) - nchars
        n_pos = len(starts)
        pos = np.arange(n_pos)
        rem = (first_char + nchars)[owner] - pos  # characters from this one to the word's end
        if wanted is not None:
            rem = np.where(wanted[owner], rem, 0)
        nbytes_char = np.diff(np.append(starts, len(wbuf)))
        signed = wbuf.astype(np.uint32)
        signed = np.where(signed & 0x80, signed | np.uint32(0xFFFFFF00), signed).astype(np.uint32)
        first_byte = signed[starts]
        # Characters of more than one byte, per extra byte: (character, that byte's value).
        extra = []
        for k in range(1, int(nbytes_char.max())):
            q = np.flatnonzero(nbytes_char > k)
            extra.append((q, signed[starts[q] + k]))
        h = np.full(n_pos, FNV_OFFSET, dtype=np.uint32)
        ids = np.full((n_pos, self.maxn), -1, dtype=np.int32)
        prime, bucket = np.uint32(FNV_PRIME), np.uint32(self.bucket)
        at_start = rem == nchars[owner]
        for n in range(1, self.maxn + 1):
            off = n - 1  # the character this step adds is pos + off
            size = n_pos - off
            if size <= 0:
                break
            live = rem[:size] >= n
            step = (h[:size] ^ first_byte[off:]) * prime
            for q, byte in extra:
                p = q - off
                ok = p >= 0
                p, b = p[ok], byte[ok]
                step[p] = (step[p] ^ b) * prime
            h[:size] = np.where(live, step, h[:size])
            if n < self.minn:
                continue
            keep = live
            if n == 1:
                keep = live & ~at_start[:size] & (rem[:size] != 1)  # not the bare "<" or ">"
            sel = np.flatnonzero(keep)
            if len(sel):
                ids[sel, off] = self._push(h[sel] % bucket)
        kept = ids >= 0
        counts = np.add.reduceat(kept.sum(axis=1), first_char).astype(np.int64)
        return ids[kept], counts

    @staticmethod
    def _word_hashes(wbuf: np.ndarray, first: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Dictionary::hash of the words at wbuf[first : first + lens], as fastText's int32."""
        if len(lens) == 0:
            return np.empty(0, dtype=np.int64)
        order = np.argsort(-lens, kind="stable")  # longest first: the words still going are a prefix
        lo, fo = lens[order], first[order]
        signed = wbuf.astype(np.uint32)
        signed = np.where(signed & 0x80, signed | np.uint32(0xFFFFFF00), signed).astype(np.uint32)
        h = np.full(len(lens), FNV_OFFSET, dtype=np.uint32)
        prime = np.uint32(FNV_PRIME)
        live = len(lens)
        for k in range(int(lo[0])):
            while live and lo[live - 1] <= k:
                live -= 1
            h[:live] = (h[:live] ^ signed[fo[:live] + k]) * prime
        out = np.empty(len(lens), dtype=np.int64)
        out[order] = h.astype(np.int32)
        return out

    # ---- per-process word cache -----------------------------------------------------------------

    def _reset_cache(self) -> None:
        self._tid: dict[str, int] = {}
        self._n_ids = 0
        self._ids = np.empty(1 << 16, dtype=np.int32)  # all cached words' row ids, back to back
        self._off = np.empty(1 << 12, dtype=np.int64)  # per cached word: where its ids start,
        self._len = np.empty(1 << 12, dtype=np.int64)  # how many,
        self._hash = np.empty(1 << 12, dtype=np.int64)  # its hash as fastText's int32,
        self._is_word = np.empty(1 << 12, dtype=bool)  # and False where fastText reads a label

    @staticmethod
    def _grow(a: np.ndarray, need: int) -> np.ndarray:
        if need <= len(a):
            return a
        out = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
        out[: len(a)] = a
        return out

    def _add_words(self, tokens: list[str]) -> None:
        """Cache the row ids and hash of each token (none of them cached yet)."""
        nt = len(tokens)
        get = self._word_id.get
        wid = np.fromiter(map(get, tokens, itertools.repeat(-1)), dtype=np.int64, count=nt)
        is_word = wid < self.nwords
        for i in np.flatnonzero(wid < 0):
            if tokens[i].startswith(LABEL_PREFIX):
                is_word[i] = False  # fastText reads it as a label: no rows, no hash
        # One UTF-8 buffer of the tokens wrapped in "<" ">"; valid UTF-8 (encoding a str with a
        # lone surrogate raises, as fastText's binding does), so characters are code points.
        wbuf = np.frombuffer(("<" + "><".join(tokens) + ">").encode("utf-8"), dtype=np.uint8)
        nchars = np.fromiter(map(len, tokens), dtype=np.int64, count=nt) + 2
        char_starts = np.flatnonzero((wbuf & 0xC0) != 0x80)
        first = char_starts[np.cumsum(nchars) - nchars]
        wlen = np.diff(np.append(first, len(wbuf)))
        unknown = is_word & (wid < 0)
        unknown[[i for i in np.flatnonzero(unknown) if tokens[i] == EOS]] = False
        grams, gcount = self._subwords(wbuf, wlen, unknown)
        inv = is_word & (wid >= 0)
        lens = np.where(inv, self._vocab_len[np.maximum(wid, 0)], gcount)
        hashes = self._word_hashes(wbuf, first + 1, wlen - 2) if self.word_ngrams > 1 \
            else np.zeros(nt, dtype=np.int64)
        n0, t0 = self._n_ids, len(self._tid)
        n1, t1 = n0 + int(lens.sum()), t0 + nt
        self._ids = self._grow(self._ids, n1)
        dest = n0 + np.cumsum(lens) - lens
        if inv.any():
            src = _ragged(self._vocab_off[wid[inv]], lens[inv])
            self._ids[_ragged(dest[inv], lens[inv])] = self._vocab_ids[src]
        if len(grams):
            self._ids[_ragged(dest[unknown], gcount[unknown])] = grams
        for name in ("_off", "_len", "_hash", "_is_word"):
            setattr(self, name, self._grow(getattr(self, name), t1))
        self._off[t0:t1] = dest
        self._len[t0:t1] = lens
        self._hash[t0:t1] = hashes
        self._is_word[t0:t1] = is_word
        self._tid.update(zip(tokens, range(t0, t1)))
        self._n_ids = n1

    @staticmethod
    def _split(line: str) -> list[str]:
        if _SPLIT_DIFFERS.search(line) is None:
            return line.split()
        return [t for t in _FASTTEXT_SPACE.split(line) if t]

    # ---- prediction -----------------------------------------------------------------------------

    def _batch_ids(self, tids: np.ndarray, ntok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """getLine for every line of a batch: row ids in fastText's order, and each line's slice.

        Per line fastText's order is: every word's row ids in turn, then the word n-grams'. Returns
        (ids, start, count) with line i's ids at ids[start[i] : start[i] + count[i]].
        """
        lens = self._len[tids]
        ids = self._ids[_ragged(self._off[tids], lens)]
        line_first_tok = np.cumsum(ntok) - ntok
        count = np.add.reduceat(lens, line_first_tok) if len(ntok) else np.zeros(0, dtype=np.int64)
        if self.word_ngrams > 1:
            tok_line = np.repeat(np.arange(len(ntok)), ntok)
            w = self._is_word[tids]
            hw = self._hash[tids][w].view(np.uint64)  # int32 -> uint64 sign-extends, as in C++
            line = tok_line[w]
            n = len(hw)
            cols = []
            h = hw
            mult, bucket = np.uint64(WORD_NGRAM_MULT), np.uint64(self.bucket)
            for j in range(1, self.word_ngrams):
                col = np.full(n, -1, dtype=np.int64)
                if j < n:
                    h = h[: n - j] * mult + hw[j:]
                    pushed = self._push((h % bucket).astype(np.int64))
                    col[: n - j] = np.where(line[: n - j] == line[j:], pushed, -1)  # never across lines
                cols.append(col)
            # addWordNgrams: for each start, the grams of length 2..wordNgrams in order.
            grid = np.stack(cols, axis=1).reshape(-1)
            keep = grid >= 0
            owner = np.repeat(line, self.word_ngrams - 1)[keep]
            # Each line's n-gram ids go after its subword ids (np.insert keeps their order).
            ids = np.insert(ids, np.cumsum(count)[owner], grid[keep].astype(np.int32))
            count = count + np.bincount(owner, minlength=len(ntok))
        start = np.cumsum(count) - count
        return ids, start, count

    def _hiddens(self, ids: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
        """computeHidden for every line: its rows added one after another in float32, / count.

        numpy sums along the first axis of a C-ordered array row after row into one accumulator
        (pairwise summation only runs along the contiguous axis), which is fastText's order. Lines
        of similar length are summed side by side, padded at the end with an all-zero row
        (adding +0.0 changes no sum), so the per-row overhead is shared.
        """
        hidden = np.zeros((len(count), self.dim), dtype=np.float32)
        zero_row = self.input.shape[0] - 1
        order = np.argsort(count, kind="stable")
        order = order[count[order] > 0]
        budget = max(1, (1 << 22) // self.dim)  # rows per group: 16 MB of float32
        counts, starts = count.tolist(), start.tolist()
        i = 0
        while i < len(order):
            lo = counts[order[i]]
            j = i + 1
            while j < len(order) and counts[order[j]] <= lo + lo // 4 + 8 and (j - i + 1) * counts[order[j]] <= budget:
                j += 1
            group = order[i:j]
            n_max = counts[group[-1]]
            grid = np.full((n_max, len(group)), zero_row, dtype=np.int64)
            for col, line in enumerate(group.tolist()):
                grid[: counts[line], col] = ids[starts[line]: starts[line] + counts[line]]
            rows = np.take(self.input, grid, axis=0)  # (n_max, lines, dim)
            hidden[group] = np.add.reduce(rows, axis=0, dtype=np.float32)
            i = j
        live = count > 0
        scale = (1.0 / np.maximum(count, 1)).astype(np.float32)  # mul(1.0 / size): double, to float
        hidden[live] *= scale[live, None]
        return hidden

    def _dots(self, hidden: np.ndarray) -> np.ndarray:
        """dotRow of every output row with every line's hidden vector: float32 products
        accumulated left to right from 0. Shape (lines, labels)."""
        prod = hidden[:, None, :] * self.output[None, :, :]
        return np.cumsum(prod, axis=2, dtype=np.float32)[:, :, -1]

    def _softmax(self, out: np.ndarray, k: int, threshold: float) -> list[tuple[float, int]]:
        mx = out[0]
        for v in out:
            mx = max(v, mx)  # std::max(output[i], max)
        exps = [f32(math.exp(float(v - mx))) for v in out]  # float - float; exp in double; to float
        z = f32(0.0)
        for e in exps:
            z = f32(z + e)
        heap: list[tuple[float, int]] = []
        thr = f32(threshold)
        for i, e in enumerate(exps):
            p = f32(e / z)
            if p < thr:
                continue
            s = _std_log(p)
            if len(heap) == k and s < heap[0][0]:
                continue
            _push_heap(heap, (s, i))
            if len(heap) > k:
                _pop_heap(heap)
                heap.pop()
        return _sort_heap(heap)

    def _build_tree(self, counts: list[int]) -> None:
        """HierarchicalSoftmaxLoss::buildTree: the Huffman tree of the label counts."""
        osz = self.nlabels
        n = 2 * osz - 1
        count = [int(1e15)] * n
        left, right = [-1] * n, [-1] * n
        count[:osz] = counts
        leaf, node = osz - 1, osz
        for i in range(osz, n):
            mini = [0, 0]
            for j in range(2):
                if leaf >= 0 and count[leaf] < count[node]:
                    mini[j] = leaf
                    leaf -= 1
                else:
                    mini[j] = node
                    node += 1
            left[i], right[i] = mini
            count[i] = count[mini[0]] + count[mini[1]]
        self._left, self._right = left, right

    def _hs(self, dots: list[float], k: int, log_thr: float) -> list[tuple[float, int]]:
        """HierarchicalSoftmaxLoss::dfs from the root, left before right, as an explicit stack."""
        osz = self.nlabels
        left, right = self._left, self._right
        heap: list[tuple[float, int]] = []
        stack = [(2 * osz - 2, 0.0)]
        while stack:
            node, score = stack.pop()
            if score < log_thr:
                continue
            if len(heap) == k and score < heap[0][0]:
                continue
            if left[node] == -1:  # a leaf (fastText tests both children; leaves have neither)
                if k == 1:
                    # push_heap then pop_heap of the smaller: the newcomer stays on a tie, and a
                    # smaller one was turned away above.
                    heap = [(score, node)]
                else:
                    _push_heap(heap, (score, node))
                    if len(heap) > k:
                        _pop_heap(heap)
                        heap.pop()
                continue
            e = _expf(-dots[node - osz])  # std::exp on a float: expf
            f = f32(1.0 / float(f32(1.0) + f32(e)))  # 1 + float is float; 1. / float is double
            stack.append((right[node], float(f32(score) + f32(math.log(float(f) + 1e-5)))))
            stack.append((left[node], float(f32(score) + f32(math.log(float(f32(1.0 - float(f))) + 1e-5)))))
        return _sort_heap(heap)

    def predict(self, text: str | list[str], k: int = 1, threshold: float = 0.0):
        """fastText's `model.predict`: (labels, probabilities) for one line, or lists of them."""
        single = isinstance(text, str)
        lines = [text] if single else list(text)
        for line in lines:
            if "\n" in line:
                raise ValueError("predict processes one line at a time (remove '\\n')")
        if k == -1:
            k = self.nlabels
        elif k <= 0:
            raise ValueError("k needs to be 1 or higher!")
        k = min(k, self.nlabels)
        split = [self._split(line) for line in lines]
        for toks in split:
            toks.append(EOS)  # the newline fastText's binding appends reads as </s>
        flat = list(itertools.chain.from_iterable(split))
        tids = np.fromiter(map(self._tid.get, flat, itertools.repeat(-1)), dtype=np.int64, count=len(flat))
        missing = np.flatnonzero(tids < 0)
        if len(missing):
            if len(self._tid) + len(missing) > CACHE_WORDS or self._n_ids > CACHE_IDS:
                self._reset_cache()  # between batches only: this batch's words all go in below
                missing = np.arange(len(flat))
            self._add_words(list(dict.fromkeys(flat[i] for i in missing.tolist())))
            tids[missing] = np.fromiter(map(self._tid.__getitem__, (flat[i] for i in missing.tolist())),
                                        dtype=np.int64, count=len(missing))
        ntok = np.array([len(t) for t in split], dtype=np.int64)
        ids, start, count = self._batch_ids(tids, ntok)
        hidden = self._hiddens(ids, start, count)
        dots = self._dots(hidden)
        log_thr = self._log_threshold(threshold)
        all_labels, all_probs = [], []
        for i in range(len(lines)):
            if count[i] == 0:
                preds = []  # FastText::predict returns nothing for a line without input rows
            elif self.loss == LOSS_HS:
                preds = self._hs(dots[i].tolist(), k, log_thr)
            else:
                preds = self._softmax(dots[i], k, threshold)
            all_labels.append([self.labels[j] for _, j in preds])
            all_probs.append(np.array([_expf(s) for s, _ in preds], dtype=np.float32))
        if single:
            return tuple(all_labels[0]), all_probs[0]
        return all_labels, all_probs

    def _log_threshold(self, threshold: float) -> float:
        v = self._log_threshold_cache.get(threshold)
        if v is None:
            v = self._log_threshold_cache[threshold] = _std_log(threshold)
        return v


# ---- libstdc++'s heap algorithms with fastText's comparePairs (greater-than on the score) ---------
# fastText keeps its k best in a std heap; with equal scores which one survives depends on these
# exact algorithms, so they are reproduced rather than replaced by heapq.

def _less(a: tuple[float, int], b: tuple[float, int]) -> bool:
    return a[0] > b[0]  # comparePairs(l, r) = l.first > r.first


def _sift_up(heap: list, hole: int, top: int, value) -> None:
    parent = (hole - 1) // 2
    while hole > top and _less(heap[parent], value):
        heap[hole] = heap[parent]
        hole = parent
        parent = (hole - 1) // 2
    heap[hole] = value


def _push_heap(heap: list, value) -> None:
    heap.append(value)
    _sift_up(heap, len(heap) - 1, 0, value)


def _adjust_heap(heap: list, hole: int, length: int, value) -> None:
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _less(heap[child], heap[child - 1]):
            child -= 1
        heap[hole] = heap[child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        heap[hole] = heap[child - 1]
        hole = child - 1
    _sift_up(heap, hole, top, value)


def _pop_heap(heap: list, length: int | None = None) -> None:
    """std::pop_heap over heap[:length]: the top moves to heap[length - 1]."""
    n = len(heap) if length is None else length
    if n > 1:
        value = heap[n - 1]
        heap[n - 1] = heap[0]
        _adjust_heap(heap, 0, n - 1, value)


def _sort_heap(heap: list) -> list:
    n = len(heap)
    while n > 1:
        _pop_heap(heap, n)
        n -= 1
    return heap


def _same(a: tuple, b: tuple) -> bool:
    (la, pa), (lb, pb) = a, b
    return list(la) == list(lb) and np.array_equal(np.asarray(pa, dtype=np.float32), np.asarray(pb, dtype=np.float32))


def _batched(model, lines: list[str], k: int) -> list[tuple]:
    out = []
    for i in range(0, len(lines), 256):
        labels, probs = model.predict(lines[i: i + 256], k=k)
        out.extend(zip(labels, probs, strict=True))
    return out


def main() -> None:
    import fasttext

    from bench.filters import load_documents
    from filters import langid, quality_model, toxicity

    fasttext.FastText.eprint = lambda *a, **k: None
    texts = [d["text"] for d in load_documents(None)]
    half = len(texts) // 2
    cases = [
        ("lid.176 (k=1)", str(langid.MODEL_PATH), [" ".join(t[: langid.MAX_CHARS].split()) for t in texts], 1),
        ("toxicity (k=-1)", str(toxicity.MODEL_PATH),
         [toxicity.preprocess(t[: toxicity.MAX_SCORE_CHARS]) for t in texts], -1),
        ("quality model (k=-1)", str(quality_model.resolve_model("default")),
         [quality_model.normalize(t) for t in texts], -1),
    ]
    print(f"{len(texts)} documents (bench/filters.py's); CPU ms per document, best of 3\n")
    print("| model | identical to fastText | fastText, cold | exact numpy, cold | "
          "fastText, 2nd half | exact numpy, 2nd half after 1st (word hit rate) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, path, lines, k in cases:
        ref = fasttext.load_model(path)
        want = _batched(ref, lines, k)
        got = _batched(FastTextModel(path), lines, k)
        same = sum(_same(a, b) for a, b in zip(want, got, strict=True))
        timings = {}
        for label, make in (("ref", lambda ref=ref: ref), ("ours", lambda path=path: FastTextModel(path))):
            cold = warm = float("inf")
            for _ in range(3):
                m = make()
                t0 = time.process_time()
                _batched(m, lines, k)
                cold = min(cold, time.process_time() - t0)
                m = make()
                _batched(m, lines[:half], k)
                t0 = time.process_time()
                _batched(m, lines[half:], k)
                warm = min(warm, time.process_time() - t0)
            timings[label] = (1000 * cold / len(lines), 1000 * warm / (len(lines) - half))
        m = FastTextModel(path)
        _batched(m, lines[:half], k)
        toks = [t for line in lines[half:] for t in line.split()]
        hit = sum(t in m._tid for t in toks) / max(1, len(toks))
        (rc, rw), (oc, ow) = timings["ref"], timings["ours"]
        print(f"| {name} | {same} of {len(lines)} | {rc:.3f} | {oc:.3f} | {rw:.3f} | {ow:.3f} ({hit:.0%}) |")


if __name__ == "__main__":
    main()
