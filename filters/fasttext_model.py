"""fastText's supervised `predict`, exactly, compiled with numba: the same labels and float32
probabilities as fastText 0.9.2's Python `model.predict`, about three times cheaper per document.

Language ID and toxicity score every document with a fastText model; after issue 13's cuts in the
quality stage those two predicts were half of the filter chain's time. fastText spends most of it
outside the arithmetic: a `std::string` built per character n-gram, a probe per n-gram in a
30M-slot word table, the binding's conversions. Here one compiled loop
per batch reads the UTF-8 bytes, splits, hashes and looks up exactly as fastText does, and adds the
same rows in the same order in float32, so every stored score stays what it was
(`tests/test_fasttext_model.py` compares both on real documents; `bench/fasttext_exact.py` measures).
The compiled kernels live in `filters/_fasttext_compiled.py`, imported on first use.

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
refused with `ModelFormatError` (none is shipped); `load()` then uses fastText's own binding, as
it does where numba cannot load (with a warning). Beyond fastText's steps, for speed only: a
per-model cache of unknown words' n-gram rows, rows prefetched ahead of their use, a bitmap of a
pruned model's kept buckets, and `predict_split`, which reads the stages' texts without building
their prepared strings.
"""

from __future__ import annotations

import functools
import logging
import re
import struct
import threading
from pathlib import Path

import numpy as np

FASTTEXT_MAGIC = 793712314
EOS = b"</s>"
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


# The unknown-word cache: an unknown word's n-gram rows are the same in every document, and
# hashing them (a probe of the pruning table per n-gram) is most of a predict's cost, so they are
# kept per process. An open-addressing table over entries whose bytes and rows sit in two arenas;
# when either fills up, everything is forgotten at once (it only ever saves time, never changes
# a result). Its memory is fixed: _CACHE_* below, ~25 MB per loaded model.
_CACHE_SLOTS = 1 << 19
_CACHE_ENTRIES = 1 << 18
_CACHE_BYTES = 1 << 22
_CACHE_IDS = 1 << 22


def _k():
    """The compiled kernels (filters/_fasttext_compiled.py), imported on first use: the stage
    registry imports every filters module, and the driver must not load numba and LLVM (~110 MB)."""
    from filters import _fasttext_compiled

    return _fasttext_compiled


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
        self._table = _k()._build_table(self._words, self._woff, self._wlen, 1 << max(4, (2 * size).bit_length()))
        eos_id = entries.index(EOS) if EOS in entries else -1
        self._vocab_ids, self._vocab_off, self._vocab_cnt = _k()._vocab_subwords(
            self._words, self._woff, self._wlen, eos_id, self.minn, self.maxn, self.bucket, self.nwords,
            self.pruned, self._prune_map, self._prune_bits)
        self._word_cache: tuple | None = None
        self._lock = threading.Lock()
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
        with self._lock:  # the word cache is updated in place: one batch at a time per model
            _k()._predict_batch(buf, bounds, classes, self._table, self._words, self._woff, self._wlen, self.nwords,
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
    continues a word. Built from Python's own definitions, once per process (~40 ms): the regex's
    \\s (in CPython the very function behind str.isspace and str.split()) and [^\\w\\s'];
    `tests/test_fasttext_model.py` checks every code point against str.isspace. NUL separates in
    both: fastText splits on it."""
    everything = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    if split == "whitespace":
        classes = np.zeros(0x110000, dtype=np.uint8)
    elif split == "punctuation":
        classes = np.full(0x110000, 2, dtype=np.uint8)
        for m in re.finditer(r"[\w\s']+", everything):
            classes[m.start():m.end()] = 0
    else:
        raise ValueError(f"split must be 'whitespace' or 'punctuation', not {split!r}")
    for m in re.finditer(r"\s+", everything):
        classes[m.start():m.end()] = 1
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
    except Exception as exc:  # noqa: BLE001  (numba missing or unable to compile here: slower, same scores)
        log.warning("compiled fastText predict unavailable (%s: %s); using fastText's binding: the same "
                    "scores, ~3x slower", type(exc).__name__, exc)
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the "load_model does not return" warning
    return fasttext.load_model(path)
