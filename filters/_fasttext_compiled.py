"""The compiled part of filters/fasttext_model.py (numba): fastText 0.9.2's getLine,
computeHidden and softmax / hierarchical softmax, step for step. See that module for what
"exactly" takes; it imports this one on first use, so that importing filters (the stage registry
imports every module) does not load numba and LLVM into the driver."""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

EOS = b"</s>"


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
    kind = 1
    width = 1
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




# The unknown-word cache (arrays sized and owned by FastTextModel._cache): an unknown word's
# n-gram rows are the same in every document, and hashing them is most of a predict's cost.

@njit(cache=True, nogil=True)
def _cache_get(buf, s, e, h, ctable, cbytes, cboff, cblen, cids, cioff, cicnt, ids, n):
    """Copies the cached rows of buf[s:e] to ids[n:]: the new count, or -1 if not cached. The
    cache's table is probed as the dictionary's is."""
    ent = _lookup(buf, s, e, h, ctable, cbytes, cboff, cblen)
    if ent < 0:
        return -1
    c = cicnt[ent]
    o = cioff[ent]
    for t in range(c):
        ids[n + t] = cids[o + t]
    return n + c


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


