"""Megatron-LM indexed datasets (`PREFIX.bin` + `PREFIX.idx`), written in parallel, and the
weighted prefix list Megatron trains on.

Megatron-LM's `IndexedDataset` (formerly `MMapIndexedDataset`) reads, per the published
format (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`):

    .idx  b"MMIDIDX\\x00\\x00"    9-byte magic
          u64 version = 1
          u8  dtype code       (8 = uint16, 4 = int32; Megatron has no uint32 code)
          u64 sequence count   (here: one sequence per document)
          u64 document count   (length of the document-index array = documents + 1)
          i32[sequence count]  sequence lengths, in tokens
          i64[sequence count]  byte offset of each sequence in the .bin
          i64[document count]  sequence index where each document starts, then the total
    .bin  the sequences' tokens back to back, no header

Each curated document is one sequence ending with the end-of-text token, exactly the token
spans of our shards. **Parallel export:** every tokenize task writes one part per source it
saw, `tokens/megatron/<source>/<curated shard>_text_document.{bin,idx}`, from the tokens it
holds anyway; no process ever reads or copies another task's tokens. The driver only writes
the list of parts with weights (`data_args_text`): `w1 p1 w2 p2 ...`, what Megatron-LM's
`--data-path` takes inline and `--data-args-path FILE` reads from a file (split on white
space, then `get_blend_from_list`: an even count is weight/prefix pairs; the weights are
normalised by `BlendedMegatronDatasetConfig`). A part's weight is its source's share of the
mix times the part's share of that source's tokens, so the parts of a source together get
the source's share, spread over its parts as a concatenation of them would be.

`MegatronPart` reads a part back (for tokenize/train.py's `--data-args` mode); the tests read
them with an independent reader written from the format description above.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import storage
from pipeline.shards import local_copy, read_range

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# Megatron's DType enum codes for the two widths we write.
DTYPE_CODES = {2: 8, 4: 4}  # itemsize -> code: uint16 -> 8, 32-bit -> int32 (4)
_CODE_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
                7: np.float32, 8: np.uint16}
_HEADER_SIZE = 9 + 8 + 1 + 8 + 8
DATA_ARGS_FILE = "data_args.txt"
PREFIX_SUFFIX = "_text_document"


def write_part(prefix: str | Path, tokens: np.ndarray, doc_lengths: np.ndarray, vocab_size: int) -> dict[str, Any]:
    """Write `prefix.bin` and `prefix.idx` for documents held in memory: `tokens` is their
    concatenation (each with its end-of-text token), `doc_lengths` their lengths including it.

    Returns {bin, idx, bin_sha256, idx_sha256, docs, tokens, dtype_code}.
    """
    itemsize = tokens.dtype.itemsize
    if itemsize not in DTYPE_CODES:
        raise ValueError(f"{prefix}: tokens of {itemsize} bytes; Megatron parts hold uint16 or int32")
    if itemsize == 4 and vocab_size > 2**31:
        raise ValueError(f"{prefix}: vocabulary too large for Megatron's int32 tokens")
    lengths = np.asarray(doc_lengths, dtype=np.int64)
    if int(lengths.sum()) != len(tokens):
        raise ValueError(f"{prefix}: document lengths sum to {int(lengths.sum())}, tokens hold {len(tokens)}")
    lengths32 = lengths.astype(np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1] * itemsize, out=pointers[1:])
    doc_index = np.arange(len(lengths) + 1, dtype=np.int64)
    prefix = storage.normalize(str(prefix))
    bin_url, idx_url = prefix + ".bin", prefix + ".idx"
    # uint32 ids below 2**31 have the same bytes as int32, so the tokens are written as they are.
    bin_sha = storage.write_bytes(bin_url, [memoryview(np.ascontiguousarray(tokens)).cast("B")])
    header = INDEX_MAGIC + struct.pack("<Q", INDEX_VERSION) + struct.pack("<B", DTYPE_CODES[itemsize])
    header += struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(doc_index))
    idx_sha = storage.write_bytes(idx_url, [header, lengths32.tobytes(), pointers.tobytes(), doc_index.tobytes()])
    return {"bin": bin_url, "idx": idx_url, "bin_sha256": bin_sha, "idx_sha256": idx_sha,
            "docs": int(len(lengths)), "tokens": int(len(tokens)), "dtype_code": DTYPE_CODES[itemsize]}


def part_prefix(source: str, shard_id: str) -> str:
    """A part's prefix relative to DIR/tokens: megatron/<source>/<shard>_text_document."""
    return f"megatron/{source}/{shard_id}{PREFIX_SUFFIX}"


def source_of_prefix(prefix: str) -> str:
    """The source a part belongs to: the folder holding it (megatron/<source>/<part>)."""
    parent = storage.parent(prefix) if "/" in prefix.rstrip("/") else ""
    return storage.basename(parent) if parent else storage.basename(prefix).removesuffix(PREFIX_SUFFIX)


def _weight(w: float) -> str:
    # 12 significant digits: exact enough for any share, and the same text at any worker count.
    return format(w, ".12g")


def data_args_text(parts: list[tuple[float, str]]) -> str:
    """`w1 p1 w2 p2 ...`, one pair a line (Megatron splits the file on any white space)."""
    return "".join(f"{_weight(w)} {p}\n" for w, p in parts)


def parse_data_args(text: str) -> list[tuple[float, str]]:
    """(weight, prefix) pairs, as Megatron's get_blend_from_list reads them; an odd count (bare
    prefixes) gets weight 1 each, as Megatron weighs an unweighted list (equally)."""
    words = text.split()
    if not words:
        raise ValueError("data args: empty; no prefix to read")
    if len(words) % 2:
        return [(1.0, p) for p in words]
    pairs = []
    for i in range(0, len(words), 2):
        try:
            w = float(words[i])
        except ValueError:
            raise ValueError(f"data args: {words[i]!r} (word {i + 1}) is not a weight; expected "
                             "'w1 prefix1 w2 prefix2 ...'") from None
        if not w >= 0:
            raise ValueError(f"data args: weight {words[i]!r} of {words[i + 1]} is negative")
        pairs.append((w, words[i + 1]))
    if sum(w for w, _ in pairs) <= 0:
        raise ValueError("data args: every weight is 0")
    return pairs


class MegatronPart:
    """A Megatron indexed dataset read back: `tokens` (memory-mapped; remote ones copied to a
    local temporary file first), `n_tokens`, `doc_lengths`. Enough for TokenStream."""

    def __init__(self, prefix: str) -> None:
        self.prefix = storage.normalize(prefix)
        idx_url, bin_url = self.prefix + ".idx", self.prefix + ".bin"
        for url in (idx_url, bin_url):
            if not storage.exists(url):
                raise ValueError(f"{url}: missing; a Megatron part needs both .bin and .idx")
        head = read_range(idx_url, 0, _HEADER_SIZE)
        if head[:9] != INDEX_MAGIC:
            raise ValueError(f"{idx_url}: bad magic {head[:9]!r}: not a Megatron-LM MMIDIDX index")
        version, = struct.unpack_from("<Q", head, 9)
        code, = struct.unpack_from("<B", head, 17)
        n_seq, n_doc = struct.unpack_from("<QQ", head, 18)
        if version != INDEX_VERSION or code not in _CODE_DTYPES:
            raise ValueError(f"{idx_url}: index version {version}, dtype code {code}: not readable here")
        size = storage.size_of(idx_url)
        if size != _HEADER_SIZE + n_seq * 12 + n_doc * 8:
            raise ValueError(f"{idx_url}: {size} bytes, but its header implies "
                             f"{_HEADER_SIZE + n_seq * 12 + n_doc * 8}: truncated or corrupt")
        self.dtype = np.dtype(_CODE_DTYPES[code])
        self.doc_lengths = np.frombuffer(read_range(idx_url, _HEADER_SIZE, n_seq * 4), np.int32).astype(np.int64)
        self.n_tokens = int(self.doc_lengths.sum())
        if storage.size_of(bin_url) != self.n_tokens * self.dtype.itemsize:
            raise ValueError(f"{bin_url}: size does not match the {self.n_tokens} tokens its .idx lists")
        self._tokens: np.ndarray | None = None

    @property
    def tokens(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = np.memmap(local_copy(self.prefix + ".bin"), dtype=self.dtype, mode="r",
                                     shape=(self.n_tokens,))
        return self._tokens

    def __getstate__(self) -> dict[str, str]:
        return {"prefix": self.prefix}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["prefix"])


class DataArgsBlend:
    """A blend read from a data args list (`w1 p1 w2 p2 ...`), shaped like `BlendedSamples` so
    tokenize/train.py trains on it the same way.

    Parts are grouped into sources by `source_of_prefix` (the folder holding the part); a
    source's stream is its parts in list order, its weight the sum of theirs (normalised). Like
    the tokenize step's default blend, it is the largest blend in which no source repeats:
    samples of seq_len + 1 tokens, source s gets weight_s x N of its windows in a seeded order,
    interleaved by Megatron's greedy (pipeline/blend.py). Relative prefixes are resolved against
    `base` (the folder Megatron would run from: the pipeline's output folder).
    """

    def __init__(self, data_args: str, base: str, seq_len: int, seed: int = 1234,
                 vocab_size: int | None = None) -> None:
        from pipeline.blend import blend_chunks, index_dtypes
        from pipeline.mixture import plan_samples
        from pipeline.shards import TokenStream

        self.seq_len = seq_len
        pairs = parse_data_args(storage.read_text(data_args))
        grouped: dict[str, list[tuple[float, MegatronPart]]] = {}
        for w, prefix in pairs:
            url = prefix if "://" in prefix or prefix.startswith("/") else storage.join(base, prefix)
            grouped.setdefault(source_of_prefix(prefix), []).append((w, MegatronPart(url)))
        self.sources = sorted(grouped)
        total = sum(w for w, _ in pairs)
        weights = {s: sum(w for w, _ in grouped[s]) / total for s in self.sources}
        self.streams = [TokenStream([p for _, p in grouped[s]]) for s in self.sources]
        windows = {s: max(0, (len(st) - 1) // seq_len) for s, st in zip(self.sources, self.streams, strict=True)}
        short = [s for s in self.sources if weights[s] > 0 and windows[s] == 0]
        if short:
            raise ValueError(f"{data_args}: source(s) {short} hold fewer than {seq_len + 1} tokens, not one sample")
        live = {s: w for s, w in weights.items() if w > 0}
        n = min(int(windows[s] / w + 1e-9) for s, w in live.items())
        counts = plan_samples(windows, live, n, 1.0, [])
        chunks = list(blend_chunks([counts[s] for s in self.sources], [windows[s] for s in self.sources],
                                   self.sources, seed))
        dtypes = index_dtypes(len(self.sources), max(windows.values()))
        self.source_index = np.concatenate([c[0] for c in chunks]) if chunks else np.empty(0, dtypes[0])
        self.sample_index = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0, dtypes[1])
        if vocab_size is None:  # Megatron parts do not record it: the largest id seen, plus one
            vocab_size = 1 + max(int(p.tokens.max()) for parts in grouped.values() for _, p in parts)
        self.metadata = {
            "blend": {"seq_len": seq_len, "seed": seed, "n_samples": len(self.source_index),
                      "sources": [{"name": s, "windows": windows[s], "samples": counts[s]} for s in self.sources]},
            "tokenizer": {"vocab_size": vocab_size},
            "mix": {"name": storage.basename(data_args), "declared_weights": weights},
            "sources": {s: {"tokens": len(st)} for s, st in zip(self.sources, self.streams, strict=True)},
        }

    def __len__(self) -> int:
        return len(self.source_index)
