"""fastText's supervised `predict`, exactly, compiled with numba: the same labels and float32
probabilities as fastText 0.9.2's Python `model.predict`, four to eight times cheaper per document.

Language ID and toxicity score every document with a fastText model; after issue 13's cuts in the
quality stage those two predicts were half of the filter chain's time. fastText spends most of it
outside the arithmetic: a `std::string` built per character n-gram, a hash-table probe per n-gram in
a 30M-slot word table (120 MB per loaded model), the binding's conversions. Here one compiled loop
per batch reads the UTF-8 bytes, splits, hashes and looks up exactly as fastText does, and adds the
same rows in the same order in float32, so every stored score stays what it was
(`tests/test_fasttext_model.py` compares both on real documents; `bench/fasttext_exact.py` measures).

What "exactly" takes, step by step as fastText 0.9.2 does it:
- split: bytes ` \\n\\r\\t\\v\\f\\0`; each line ends with `</s>` (the binding appends a newline), and a
  line stops at a literal `</s>` token, as `Dictionary::getLine` does;
- a token's rows: a dictionary word's own row, then its character n-grams' (computed at load, as
  `initNgrams`); an unknown word's n-grams only; a token starting with `__label__` none. n-grams:
  FNV-1a over the UTF-8 bytes of "<word>" with fastText's signed-char quirk, lengths minn..maxn in
  characters (not the bare "<" or ">"), `% bucket`, through the quantizer's pruning table; then
  word n-grams from the words' int32 hashes (`h * 116049371 + next`, in uint64);
- the hidden vector: rows added one after another in float32 (a quantized row decoded as
  `addcode` adds it: one float32 product per element), times float32(1 / count);
- output: dot products accumulated left to right in float32; softmax with double `exp` rounded to
  float; hierarchical softmax walked depth first with fastText's pruning; the best k kept in a heap
  reproducing libstdc++'s algorithms (on equal scores which label survives depends on them); a
  score is `float(log(p + 1e-5))`, reported as `expf(score)`.
numba's `math.exp`/`math.log` call the same libm functions as fastText (checked bit for bit in the
tests). Models with a quantized output layer or a loss other than softmax/hierarchical softmax are
refused with `ModelFormatError` (none is shipped); callers then fall back to fastText itself.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import struct
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

FASTTEXT_MAGIC = 793712314
EOS = b"</s>"
LABEL_PREFIX = b"__label__"  # fastText's default `-label`; not stored in the model file
LOSS_HS, LOSS_SOFTMAX = 1, 3
MODEL_SUP = 3
KSUB = 256  # 8-bit product quantizer codes

log = logging.getLogger(__name__)


class ModelFormatError(ValueError):
    """The file is not a fastText model this module can run exactly."""


# ---- reading the model file ------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        try:
            out = struct.unpack_from("<" + fmt, self.data, self.pos)
        except struct.error:
            raise ModelFormatError(f"{self.path}: truncated fastText model") from None
        self.pos += struct.calcsize("<" + fmt)
        return out if len(out) > 1 else out[0]

    def array(self, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        if count < 0 or self.pos + count * dtype.itemsize > len(self.data):
            raise ModelFormatError(f"{self.path}: truncated fastText model")
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a

    def cstring(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ModelFormatError(f"{self.path}: truncated fastText model")
        out = self.data[self.pos:end]
        self.pos = end + 1
        return out


def _read_matrix(r: _Reader, quantized: bool) -> np.ndarray:
    """The matrix as float32 rows; a quantized one decoded exactly as fastText's addcode adds it."""
    if not quantized:
        m, n = r.take("qq")
        return r.array("<f4", m * n).astype(np.float32).reshape(m, n)
    qnorm = r.take("?")
    m, n = r.take("qq")
    codesize = r.take("i")
    codes = r.array(np.uint8, codesize)
    dim, nsubq, dsub, lastdsub = r.take("iiii")
    centroids = r.array("<f4", dim * KSUB).astype(np.float32)
    if dim != n or codesize != m * nsubq:
        raise ModelFormatError(f"{r.path}: quantized matrix {m}x{n}: {codesize} codes for {nsubq} subquantizers of dim {dim}")
    codes = codes.reshape(m, nsubq)
    out = np.empty((m, n), dtype=np.float32)
    for s in range(nsubq):
        d = lastdsub if s == nsubq - 1 else dsub
        base = s * KSUB * dsub  # get_centroids(m, i): the last subquantizer's are lastdsub wide
        out[:, s * dsub: s * dsub + d] = centroids[base: base + KSUB * d].reshape(KSUB, d)[codes[:, s]]
    if qnorm:
        norm_codes = r.array(np.uint8, m)
        ndim, _, _, _ = r.take("iiii")
        ncentroids = r.array("<f4", ndim * KSUB).astype(np.float32)
        if ndim != 1:
            raise ModelFormatError(f"{r.path}: norm quantizer of dim {ndim}")
        out *= ncentroids[norm_codes][:, None]  # addcode: alpha * c[j], one float32 product each
    return out


# ---- compiled kernels --------------------------------------------------------------------------------
# Integers are kept in int64/uint32/uint64 explicitly so that wrap-around is C's.

@intrinsic
def _prefetch(typingctx, matrix, row):
    """Asks the CPU for matrix[row, 0]'s cache line ahead of its use (LLVM's prefetch; a hint:
    no effect on any value). The rows a document adds are scattered over the matrix (13 MB for
    the toxicity model), and fetching them 16 ahead cuts the add loop's time by 2-3x."""
    sig = types.void(matrix, row)

    def codegen(context, builder, signature, args):
        aryty, rowty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        r = context.cast(builder, args[1], rowty, types.intp)
        ptr = cgutils.get_item_pointer2(
            context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout,
            inds=[r, context.get_constant(types.intp, 0)], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        # read, high locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


_PREFETCH_AHEAD = 16
_FNV_OFFSET = np.uint32(2166136261)
_FNV_PRIME = np.uint32(16777619)
_WORD_NGRAM_MULT = np.uint64(116049371)


@njit(cache=True, nogil=True)
def _fnv(buf, start, end):
    """Dictionary::hash: FNV-1a over the bytes, each byte sign-extended (int8 -> uint32)."""
    h = _FNV_OFFSET
    for i in range(start, end):
        b = np.uint32(buf[i])
        if b >= 128:
            b = b | np.uint32(0xFFFFFF00)
        h = np.uint32((h ^ b) * _FNV_PRIME)  # numba widens uint32 products: wrap as C does
    return h


@njit(cache=True, nogil=True)
def _lookup(buf, start, end, h, table, words, woff, wlen):
    """The dictionary id of buf[start:end] (hash h), or -1."""
    mask = len(table) - 1
    slot = np.int64(h) & mask
    n = end - start
    while True:
        wid = table[slot]
        if wid < 0:
            return -1
        if wlen[wid] == n:
            o = woff[wid]
            same = True
            for i in range(n):
                if words[o + i] != buf[start + i]:
                    same = False
                    break
            if same:
                return wid
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _build_table(words, woff, wlen, size):
    table = np.full(size, -1, dtype=np.int32)
    mask = size - 1
    for wid in range(len(woff)):
        slot = np.int64(_fnv(words, woff[wid], woff[wid] + wlen[wid])) & mask
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = wid
    return table


@njit(cache=True, nogil=True)
def _push_hash(out, n, h, nwords, pruned, prune_map, prune_bits):
    """Dictionary::pushHash: appends the row of bucket h (if it has one); returns the new count.
    A pruned model keeps few buckets (lid.176: 42,765 of 2M), so a bitmap of the kept ones (256 kB,
    in cache) answers most lookups before the map over all buckets (8 MB, a memory access each):
    a new word's n-grams cost 2.5x less."""
    if pruned == 0 or h < 0:
        return n
    if pruned > 0:
        if not (prune_bits[h >> 6] >> np.uint64(h & 63)) & np.uint64(1):
            return n
        h = prune_map[h]
        if h < 0:
            return n
    out[n] = nwords + h
    return n + 1


@njit(cache=True, nogil=True)
def _subwords(word, out, n, minn, maxn, bucket, nwords, pruned, prune_map, prune_bits):
    """Dictionary::computeSubwords of `word` ("<" + token + ">", UTF-8), appended to out[n:]."""
    size = len(word)
    for i in range(size):
        if (word[i] & 0xC0) == 0x80:
            continue
        h = _FNV_OFFSET
        j = i
        k = 1
        while j < size and k <= maxn:
            b = np.uint32(word[j])
            if b >= 128:
                b = b | np.uint32(0xFFFFFF00)
            h = np.uint32((h ^ b) * _FNV_PRIME)  # numba widens uint32 products: wrap as C does
            j += 1
            while j < size and (word[j] & 0xC0) == 0x80:
                b = np.uint32(word[j]) | np.uint32(0xFFFFFF00)
                h = np.uint32((h ^ b) * _FNV_PRIME)  # numba widens uint32 products: wrap as C does
                j += 1
            if k >= minn and not (k == 1 and (i == 0 or j == size)):
                n = _push_hash(out, n, np.int64(h % np.uint32(bucket)), nwords, pruned, prune_map, prune_bits)
            k += 1
    return n


@njit(cache=True, nogil=True)
def _vocab_subwords(words, woff, wlen, eos_id, minn, maxn, bucket, nwords, pruned, prune_map, prune_bits):
    """Dictionary::initNgrams: each entry's rows (itself, then its n-grams), back to back."""
    nent = len(woff)
    off = np.empty(nent, dtype=np.int64)
    cnt = np.empty(nent, dtype=np.int64)
    cap = 16
    for w in range(nent):
        cap += 1 + max(0, maxn) * (wlen[w] + 2)
    ids = np.empty(cap, dtype=np.int32)
    n = 0
    word = np.empty(0, dtype=np.uint8)
    for w in range(nent):
        off[w] = n
        ids[n] = w
        n += 1
        if w != eos_id and maxn > 0:
            L = wlen[w] + 2
            if len(word) < L:
                word = np.empty(2 * L, dtype=np.uint8)
            word[0] = 60  # "<"
            word[1:L - 1] = words[woff[w]:woff[w] + wlen[w]]
            word[L - 1] = 62  # ">"
            n = _subwords(word[:L], ids, n, minn, maxn, bucket, nwords, pruned, prune_map, prune_bits)
        cnt[w] = n - off[w]
    return ids[:n].copy(), off, cnt


@njit(cache=True, nogil=True)
def _is_space(c):
    return c == 32 or c == 10 or c == 13 or c == 9 or c == 11 or c == 12 or c == 0


@njit(cache=True, nogil=True)
def _next_token(buf, pos, end, classes):
    """(start, stop) of the next token of buf[pos:end], or (end, end) at the line's end.

    `classes` empty: fastText's readWord (bytes ` \\n\\r\\t\\v\\f\\0` separate). Else one class per
    code point: 1 separates, 2 is a token by itself, 0 continues a token; the tokens are then
    those fastText reads from the string the classes stand for (`split_classes`)."""
    if len(classes) == 0:
        while pos < end and _is_space(buf[pos]):
            pos += 1
        start = pos
        while pos < end and not _is_space(buf[pos]):
            pos += 1
        return start, pos
    start = pos
    kind = 1
    while pos < end:
        cp, width = _code_point(buf, pos)
        kind = classes[cp]
        if kind != 1:
            break
        pos += width
    start = pos
    if pos == end:
        return pos, pos
    if kind == 2:
        return start, pos + width
    while pos < end:
        cp, width = _code_point(buf, pos)
        if classes[cp] != 0:
            break
        pos += width
    return start, pos


@njit(cache=True, nogil=True)
def _code_point(buf, pos):
    """The code point starting at buf[pos] (valid UTF-8: Python encoded it) and its byte count."""
    b = np.int64(buf[pos])
    if b < 0x80:
        return b, 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (np.int64(buf[pos + 1]) & 0x3F), 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((np.int64(buf[pos + 1]) & 0x3F) << 6) | (np.int64(buf[pos + 2]) & 0x3F), 3
    return (((b & 0x07) << 18) | ((np.int64(buf[pos + 1]) & 0x3F) << 12)
            | ((np.int64(buf[pos + 2]) & 0x3F) << 6) | (np.int64(buf[pos + 3]) & 0x3F)), 4


@njit(cache=True, nogil=True)
def _is_eos(buf, s, e):
    return e - s == 4 and buf[s] == 60 and buf[s + 1] == 47 and buf[s + 2] == 115 and buf[s + 3] == 62


@njit(cache=True, nogil=True)
def _starts_with_label(buf, s, e):
    # "__label__"
    if e - s < 9:
        return False
    p = (95, 95, 108, 97, 98, 101, 108, 95, 95)
    for i in range(9):
        if buf[s + i] != p[i]:
            return False
    return True


# libstdc++'s heap algorithms with fastText's comparePairs (l.first > r.first): which of two equal
# scores survives depends on exactly these steps.

@njit(cache=True, nogil=True)
def _sift_up(hs, hi, hole, top, vs, vi):
    parent = (hole - 1) // 2
    while hole > top and hs[parent] > vs:
        hs[hole] = hs[parent]
        hi[hole] = hi[parent]
        hole = parent
        parent = (hole - 1) // 2
    hs[hole] = vs
    hi[hole] = vi


@njit(cache=True, nogil=True)
def _adjust_heap(hs, hi, hole, length, vs, vi):
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if hs[child] > hs[child - 1]:
            child -= 1
        hs[hole] = hs[child]
        hi[hole] = hi[child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        hs[hole] = hs[child - 1]
        hi[hole] = hi[child - 1]
        hole = child - 1
    _sift_up(hs, hi, hole, top, vs, vi)


@njit(cache=True, nogil=True)
def _pop_heap(hs, hi, n):
    """std::pop_heap over the first n: the top moves to n - 1."""
    if n > 1:
        vs = hs[n - 1]
        vi = hi[n - 1]
        hs[n - 1] = hs[0]
        hi[n - 1] = hi[0]
        _adjust_heap(hs, hi, 0, n - 1, vs, vi)


@njit(cache=True, nogil=True)
def _heap_offer(hs, hi, n, k, score, idx):
    """push_back + push_heap, then pop_heap + pop_back past k: the new heap size."""
    hs[n] = score
    hi[n] = idx
    _sift_up(hs, hi, n, 0, score, idx)
    n += 1
    if n > k:
        _pop_heap(hs, hi, n)
        n -= 1
    return n


@njit(cache=True, nogil=True)
def _std_log(x):
    """fastText's std_log(real x): log(x + 1e-5) in double, returned as float."""
    return np.float32(math.log(np.float64(np.float32(x)) + 1e-5))


@njit(cache=True, nogil=True)
def _dot(output, row, hidden):
    d = np.float32(0.0)
    for j in range(len(hidden)):
        d += output[row, j] * hidden[j]
    if math.isnan(d):
        raise ValueError("Encountered NaN.")
    return d


@njit(cache=True, nogil=True)
def _predict_batch(buf, bounds, classes, table, words, woff, wlen, nwords, vocab_ids, vocab_off, vocab_cnt,
                   minn, maxn, bucket, word_ngrams, pruned, prune_map, prune_bits, inp, output, loss,
                   left, right, k, threshold, out_label, out_prob, out_n,
                   ctable, cbytes, cboff, cblen, cids, cioff, cicnt, cstate):
    """Every line of `buf` (UTF-8; line i is buf[bounds[i]:bounds[i + 1]]): its best k labels and
    probabilities. `classes`: empty, fastText's own split; else a class per code point (see
    `_next_token`)."""
    dim = inp.shape[1]
    nlabels = output.shape[0]
    hidden = np.zeros(dim, dtype=np.float32)
    ids = np.empty(1024, dtype=np.int32)
    hashes = np.empty(256, dtype=np.int32)
    word = np.empty(256, dtype=np.uint8)
    hs = np.empty(k + 1, dtype=np.float32)
    hi = np.empty(k + 1, dtype=np.int32)
    probs = np.empty(nlabels, dtype=np.float32)
    stack_node = np.empty(4 * nlabels + 4, dtype=np.int64)
    stack_score = np.empty(4 * nlabels + 4, dtype=np.float32)
    thr = np.float32(threshold)
    log_thr = _std_log(thr)
    for line in range(len(bounds) - 1):
        pos = bounds[line]
        end = bounds[line + 1]
        # ---- Dictionary::getLine -----------------------------------------------------------------
        n = 0
        nh = 0
        while True:
            s, e = _next_token(buf, pos, end, classes)
            pos = e
            if s == e:  # the line's end reads as </s>
                s = -1
                e = -1
                eos = True
                h = _fnv(EOS_BYTES, 0, 4)
                wid = _lookup(EOS_BYTES, 0, 4, h, table, words, woff, wlen)
            else:
                eos = _is_eos(buf, s, e)  # a literal </s> ends fastText's line: the rest is never read
                h = _fnv(buf, s, e)
                wid = _lookup(buf, s, e, h, table, words, woff, wlen)
            is_word = wid < nwords if wid >= 0 else not (s >= 0 and _starts_with_label(buf, s, e))
            if is_word:
                if wid >= 0:
                    c = vocab_cnt[wid]
                    if n + c > len(ids):
                        ids = _grow(ids, n + c)
                    o = vocab_off[wid]
                    for t in range(c):
                        ids[n + t] = vocab_ids[o + t]
                    n += c
                elif not eos and maxn > 0:
                    L = e - s + 2
                    if n + maxn * L > len(ids):
                        ids = _grow(ids, n + maxn * L)
                    hit = _cache_get(buf, s, e, h, ctable, cbytes, cboff, cblen, cids, cioff, cicnt, ids, n)
                    if hit >= 0:
                        n = hit
                    else:
                        if len(word) < L:
                            word = np.empty(2 * L, dtype=np.uint8)
                        word[0] = 60
                        word[1:L - 1] = buf[s:e]
                        word[L - 1] = 62
                        n1 = _subwords(word[:L], ids, n, minn, maxn, bucket, nwords, pruned, prune_map, prune_bits)
                        _cache_put(buf, s, e, h, ids, n, n1, ctable, cbytes, cboff, cblen, cids, cioff, cicnt, cstate)
                        n = n1
                if nh == len(hashes):
                    hashes = _grow(hashes, nh + 1)
                hashes[nh] = np.int32(h)
                nh += 1
            if eos:
                break
        # Dictionary::addWordNgrams
        if word_ngrams > 1:
            if n + nh * (word_ngrams - 1) > len(ids):
                ids = _grow(ids, n + nh * (word_ngrams - 1))
            for i in range(nh):
                hh = np.uint64(np.int64(hashes[i]))
                j = i + 1
                while j < nh and j < i + word_ngrams:
                    hh = hh * _WORD_NGRAM_MULT + np.uint64(np.int64(hashes[j]))
                    n = _push_hash(ids, n, np.int64(hh % np.uint64(bucket)), nwords, pruned, prune_map, prune_bits)
                    j += 1
        if n == 0:  # FastText::predict: no input rows, no prediction
            out_n[line] = 0
            continue
        # ---- Model::computeHidden ----------------------------------------------------------------
        hidden[:] = 0.0
        for t in range(n):
            if t + _PREFETCH_AHEAD < n:
                _prefetch(inp, ids[t + _PREFETCH_AHEAD])
            r = ids[t]
            for j in range(dim):
                hidden[j] += inp[r, j]
        scale = np.float32(1.0 / n)
        for j in range(dim):
            hidden[j] *= scale
        # ---- Loss::predict ----------------------------------------------------------------------
        m = 0
        if loss == 3:  # softmax
            for i in range(nlabels):
                probs[i] = _dot(output, i, hidden)
            mx = probs[0]
            for i in range(nlabels):
                mx = max(probs[i], mx)
            z = np.float32(0.0)
            for i in range(nlabels):
                probs[i] = np.float32(math.exp(np.float64(probs[i] - mx)))
                z += probs[i]
            for i in range(nlabels):
                probs[i] = probs[i] / z
            for i in range(nlabels):
                if probs[i] < thr:
                    continue
                sc = _std_log(probs[i])
                if m == k and sc < hs[0]:
                    continue
                m = _heap_offer(hs, hi, m, k, sc, i)
        else:  # hierarchical softmax: dfs from the root, left before right
            top = 0
            stack_node[0] = 2 * nlabels - 2
            stack_score[0] = 0.0
            top = 1
            while top > 0:
                top -= 1
                node = stack_node[top]
                score = stack_score[top]
                if score < log_thr:
                    continue
                if m == k and score < hs[0]:
                    continue
                if left[node] == -1 and right[node] == -1:
                    m = _heap_offer(hs, hi, m, k, score, node)
                    continue
                f = _dot(output, node - nlabels, hidden)
                f = np.float32(1.0 / (np.float32(1) + np.float32(math.exp(-f))))
                stack_node[top] = right[node]
                stack_score[top] = score + _std_log(np.float32(f))
                stack_node[top + 1] = left[node]
                stack_score[top + 1] = score + _std_log(np.float32(1.0 - np.float64(f)))
                top += 2
        # std::sort_heap, then the binding's exp of each score
        cnt = m
        while m > 1:
            _pop_heap(hs, hi, m)
            m -= 1
        for i in range(cnt):
            out_label[line, i] = hi[i]
            out_prob[line, i] = np.float32(math.exp(hs[i]))
        out_n[line] = cnt


# The unknown-word cache: an unknown word's n-gram rows are the same in every document, and
# hashing them (a probe of the pruning table per n-gram) is most of a predict's cost, so they are
# kept per process. An open-addressing table over entries whose bytes and rows sit in two arenas;
# when either fills up, everything is forgotten at once (it only ever saves time, never changes
# a result). Its memory is fixed: _CACHE_* below, ~25 MB per loaded model.
_CACHE_SLOTS = 1 << 19
_CACHE_ENTRIES = 1 << 18
_CACHE_BYTES = 1 << 22
_CACHE_IDS = 1 << 22


@njit(cache=True, nogil=True)
def _cache_get(buf, s, e, h, ctable, cbytes, cboff, cblen, cids, cioff, cicnt, ids, n):
    """Copies the cached rows of buf[s:e] to ids[n:]: the new count, or -1 if not cached."""
    mask = len(ctable) - 1
    slot = np.int64(h) & mask
    L = e - s
    while True:
        ent = ctable[slot]
        if ent < 0:
            return -1
        if cblen[ent] == L:
            o = cboff[ent]
            same = True
            for i in range(L):
                if cbytes[o + i] != buf[s + i]:
                    same = False
                    break
            if same:
                c = cicnt[ent]
                o = cioff[ent]
                for t in range(c):
                    ids[n + t] = cids[o + t]
                return n + c
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _cache_put(buf, s, e, h, ids, n0, n1, ctable, cbytes, cboff, cblen, cids, cioff, cicnt, cstate):
    L = e - s
    c = n1 - n0
    if L > len(cbytes) or c > len(cids):
        return
    if cstate[0] >= len(cboff) or cstate[1] + L > len(cbytes) or cstate[2] + c > len(cids):
        ctable[:] = -1
        cstate[:] = 0
    ent = cstate[0]
    cboff[ent] = cstate[1]
    cblen[ent] = L
    cbytes[cstate[1]:cstate[1] + L] = buf[s:e]
    cioff[ent] = cstate[2]
    cicnt[ent] = c
    cids[cstate[2]:cstate[2] + c] = ids[n0:n1]
    cstate[0] += 1
    cstate[1] += L
    cstate[2] += c
    mask = len(ctable) - 1
    slot = np.int64(h) & mask
    while ctable[slot] >= 0:
        slot = (slot + 1) & mask
    ctable[slot] = ent


@njit(cache=True, nogil=True)
def _grow(a, need):
    out = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
    out[:len(a)] = a
    return out


EOS_BYTES = np.frombuffer(EOS, dtype=np.uint8)


class FastTextModel:
    """A supervised fastText model: `predict` answers as fastText's Python `model.predict` does."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelFormatError(f"{path}: {exc.strerror or exc}") from None
        r = _Reader(data, self.path)
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
            self.maxn = 0  # fastText: old supervised models have no char n-grams
        if self.loss not in (LOSS_HS, LOSS_SOFTMAX):
            raise ModelFormatError(f"{path}: loss {self.loss} (softmax and hierarchical softmax only)")
        size, self.nwords, self.nlabels = r.take("iii")
        _ntokens, pruneidx_size = r.take("qq")
        entries, counts, types = [], [], []
        for _ in range(size):
            entries.append(r.cstring())
            c, t = r.take("qb")
            counts.append(c)
            types.append(t)
        if types != [0] * self.nwords + [1] * self.nlabels or self.nlabels < 1:
            raise ModelFormatError(f"{path}: dictionary is not {self.nwords} words then {self.nlabels} labels")
        self.pruned = int(pruneidx_size)
        self._prune_map = np.empty(0, dtype=np.int32)
        self._prune_bits = np.zeros(1, dtype=np.uint64)
        if pruneidx_size > 0:
            pairs = r.array("<i4", 2 * pruneidx_size).reshape(-1, 2)
            if pairs.min() < 0 or pairs[:, 0].max() >= self.bucket:
                raise ModelFormatError(f"{path}: pruning table entry out of range")
            self._prune_map = np.full(self.bucket, -1, dtype=np.int32)
            self._prune_map[pairs[:, 0]] = pairs[:, 1]
            kept = pairs[:, 0].astype(np.int64)
            self._prune_bits = np.zeros((self.bucket + 63) // 64, dtype=np.uint64)
            np.bitwise_or.at(self._prune_bits, kept >> 6, np.uint64(1) << (kept & 63).astype(np.uint64))
        quant_input = r.take("?")
        self._input = _read_matrix(r, quant_input)
        if r.take("?"):
            raise ModelFormatError(f"{path}: quantized output layer")
        self._output = _read_matrix(r, False)
        if r.pos != len(data):
            raise ModelFormatError(f"{path}: {len(data) - r.pos} bytes after the model")
        rows = self.nwords + (self.bucket if pruneidx_size < 0 else max(0, pruneidx_size))
        if self._input.shape != (rows, self.dim) or self._output.shape != (self.nlabels, self.dim):
            raise ModelFormatError(f"{path}: matrix shapes {self._input.shape}, {self._output.shape} for dim {self.dim}")
        self.labels = [w.decode("utf-8", "surrogateescape") for w in entries[self.nwords:]]
        self._words = np.frombuffer(b"".join(entries), dtype=np.uint8).copy()
        self._wlen = np.array([len(w) for w in entries], dtype=np.int64)
        self._woff = np.cumsum(self._wlen) - self._wlen
        self._table = _build_table(self._words, self._woff, self._wlen, 1 << max(4, (2 * size).bit_length()))
        eos_id = entries.index(EOS) if EOS in entries else -1
        self._vocab_ids, self._vocab_off, self._vocab_cnt = _vocab_subwords(
            self._words, self._woff, self._wlen, eos_id, self.minn, self.maxn, self.bucket, self.nwords,
            self.pruned, self._prune_map, self._prune_bits)
        self._word_cache: tuple | None = None
        self._left = np.full(max(1, 2 * self.nlabels - 1), -1, dtype=np.int64)
        self._right = self._left.copy()
        if self.loss == LOSS_HS:
            self._build_tree(counts[self.nwords:])

    def _build_tree(self, counts: list[int]) -> None:
        """HierarchicalSoftmaxLoss::buildTree: the Huffman tree of the label counts."""
        osz = self.nlabels
        n = 2 * osz - 1
        count = [int(1e15)] * n
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
            self._left[i], self._right[i] = mini
            count[i] = count[mini[0]] + count[mini[1]]

    def _cache(self) -> tuple:
        if self._word_cache is None:
            self._word_cache = (
                np.full(_CACHE_SLOTS, -1, dtype=np.int32), np.empty(_CACHE_BYTES, dtype=np.uint8),
                np.empty(_CACHE_ENTRIES, dtype=np.int64), np.empty(_CACHE_ENTRIES, dtype=np.int64),
                np.empty(_CACHE_IDS, dtype=np.int32), np.empty(_CACHE_ENTRIES, dtype=np.int64),
                np.empty(_CACHE_ENTRIES, dtype=np.int64), np.zeros(3, dtype=np.int64))
        return self._word_cache

    def predict(self, text: str | list[str], k: int = 1, threshold: float = 0.0):
        """fastText's `model.predict`: (labels, probabilities) for one line, or lists of them."""
        single = isinstance(text, str)
        lines = [text] if single else list(text)
        for line in lines:
            if "\n" in line:
                raise ValueError("predict processes one line at a time (remove '\\n')")
        all_labels, all_probs = self._predict(lines, k, threshold, _NO_CLASSES)
        if single:
            return tuple(all_labels[0]), all_probs[0]
        return all_labels, all_probs

    def predict_split(self, texts: list[str], split: str, k: int = 1, threshold: float = 0.0):
        """`predict` of each text as the stages prepare it, without building that string:
        split="whitespace": of `" ".join(text.split())` (language ID's input);
        split="punctuation": of `" ".join(" ".join(re.split(r"([^\\w\\s'])", text)).split())`
        (the toxicity classifier's input for a lowercased text: each punctuation character a word).
        The same answers, the string never made (`tests/test_fasttext_model.py`)."""
        return self._predict(list(texts), k, threshold, split_classes(split))

    def _predict(self, lines: list[str], k: int, threshold: float, classes: np.ndarray):
        if k == -1:
            k = self.nlabels
        elif k <= 0:
            raise ValueError("k needs to be 1 or higher!")
        k = min(k, self.nlabels)
        encoded = [line.encode("utf-8") for line in lines]
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        bounds = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=bounds[1:])
        out_label = np.zeros((len(lines), k), dtype=np.int32)
        out_prob = np.zeros((len(lines), k), dtype=np.float32)
        out_n = np.zeros(len(lines), dtype=np.int64)
        _predict_batch(buf, bounds, classes, self._table, self._words, self._woff, self._wlen, self.nwords,
                       self._vocab_ids, self._vocab_off, self._vocab_cnt, self.minn, self.maxn, self.bucket,
                       self.word_ngrams, self.pruned, self._prune_map, self._prune_bits, self._input, self._output,
                       self.loss, self._left, self._right, k, float(threshold), out_label, out_prob, out_n,
                       *self._cache())
        names = self.labels
        return ([[names[j] for j in out_label[i, :out_n[i]].tolist()] for i in range(len(lines))],
                [out_prob[i, :out_n[i]].copy() for i in range(len(lines))])


_NO_CLASSES = np.zeros(0, dtype=np.uint8)


@functools.lru_cache(maxsize=2)
def split_classes(split: str) -> np.ndarray:
    """One class per code point for `_next_token`: 1 separates words, 2 is a word by itself, 0
    continues a word. Built from Python's own definitions (str.isspace, which str.split() uses,
    and the regex), once per process (~0.15 s). NUL separates in both: fastText splits on it."""
    everything = "".join(map(chr, range(0x110000)))
    if split == "whitespace":
        classes = np.zeros(0x110000, dtype=np.uint8)
    elif split == "punctuation":
        classes = np.full(0x110000, 2, dtype=np.uint8)
        for m in re.finditer(r"[\w\s']+", everything):
            classes[m.start():m.end()] = 0
    else:
        raise ValueError(f"split must be 'whitespace' or 'punctuation', not {split!r}")
    classes[np.fromiter(map(str.isspace, everything), dtype=bool, count=0x110000)] = 1
    classes[0] = 1
    return classes


@functools.lru_cache(maxsize=8)
def load(path: str):
    """The model at `path`, ready to predict: a FastTextModel for every file it runs exactly (all
    shipped models), fastText's own binding for the others (a custom model with another loss or a
    quantized output layer): the same answers, only slower."""
    try:
        return FastTextModel(path)
    except ModelFormatError as exc:
        log.info("%s; predicting with fastText's binding instead", exc)
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the "load_model does not return" warning
    return fasttext.load_model(path)
