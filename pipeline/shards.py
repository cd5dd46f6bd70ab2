"""The token shard format: the one module that writes and reads gristmill's token binaries.

Every reader (the mixer, the Megatron export, the trainer) goes through this module, so the
format lives in one place (the llm.c habit: a fixed header, and a reader that fails loudly).

A token shard `NAME.bin` holds the documents of one source from one curated shard:

    offset 0   header, 64 bytes, little-endian:
                 magic     8s   b"GRISTTOK"
                 version   u32  1
                 itemsize  u32  2 (uint16 tokens) or 4 (uint32), chosen by vocabulary size
                 n_tokens  u64  tokens in the file, end-of-text tokens included
                 n_docs    u64  documents in the file
                 eot_id    u32  the end-of-text token
                 vocab     u32  vocabulary size of the tokenizer
                 (zero padding to 64 bytes)
    64         tokens: n_tokens x itemsize bytes; every document is followed by eot_id
    (padding to a multiple of 8 bytes)
    then       document offsets: (n_docs + 1) x u64; document i is tokens[off[i]:off[i+1]],
               its last token is the end-of-text token; off[0] = 0, off[n_docs] = n_tokens

`NAME.json` beside it (the sidecar) names the tokenizer and its sha256, the source, the
config hash, the document ids in file order, and the sha256 of the .bin. Both are written
through pipeline/storage.py's one atomic path (a temporary name or key, then the final one),
the .bin first: a worker killed half-way leaves at most a `.tmp-` file or a .bin without its
sidecar, never a shard that looks done. Paths may be local or URLs (`s3://...`): local files
are memory-mapped; remote ones are read by ranged GETs (header, index) and copied to a local
temporary file before their tokens are memory-mapped (see `TokenShard`).

The blended sample index (built by pipeline/mixture.py, read by the trainer through
`BlendedSamples`) lives in `tokens/blend/`: `source_index.npy` (which source each sample
comes from) and `sample_index.npy` (which window of that source's token stream), with the
source list in `tokens/metadata.json`. Window w of a source is tokens
[w * seq_len, w * seq_len + seq_len + 1) of the concatenation of that source's shards in
the listed order: seq_len inputs plus the shifted target, consecutive windows overlapping
by one token (as Megatron's GPTDataset does).
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import storage

MAGIC = b"GRISTTOK"
VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sIIQQII")
_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}

METADATA_FILE = "metadata.json"
BLEND_DIR = "blend"
SOURCE_INDEX_FILE = "source_index.npy"
SAMPLE_INDEX_FILE = "sample_index.npy"


class ShardFormatError(ValueError):
    """A token shard that cannot be read; the message says what is wrong and what to do."""


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every token id fits (vocab <= 65,536), else uint32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return _DTYPES[2] if vocab_size <= 1 << 16 else _DTYPES[4]


def sidecar_path(path: str | Path) -> str:
    """`.../NAME.bin` -> `.../NAME.json` (a local path or a URL)."""
    url = str(path)
    return (url[: -len(".bin")] if url.endswith(".bin") else url) + ".json"


def _tokens_end(n_tokens: int, itemsize: int) -> int:
    """Offset where the document index starts: after the tokens, aligned to 8 bytes."""
    end = HEADER_SIZE + n_tokens * itemsize
    return (end + 7) // 8 * 8


def read_range(url: str, start: int, length: int) -> bytes:
    """Bytes [start, start + length) of a file or object: one ranged GET remotely, never the
    readahead block a streamed open would fetch (a header read must stay a few bytes)."""
    if storage.is_local(url):
        with open(storage.local_path(url), "rb") as f:
            f.seek(start)
            return f.read(length)
    fs = storage.filesystem(url)
    return storage.with_retries(lambda: fs.cat_file(url, start=start, end=start + length),
                                f"read {url} bytes {start}+{length}")


_COPIES: dict[str, str] = {}
_COPY_DIR: list[str] = []


def local_copy(url: str) -> str:
    """A local path with `url`'s bytes, to memory-map: the file itself when local; a remote
    object is downloaded once per process into a temporary folder removed at exit."""
    if storage.is_local(url):
        return storage.local_path(url)
    if url not in _COPIES:
        if not _COPY_DIR:
            _COPY_DIR.append(tempfile.mkdtemp(prefix="gristmill-tokens-"))
            atexit.register(shutil.rmtree, _COPY_DIR[0], True)
        dest = os.path.join(_COPY_DIR[0], f"{len(_COPIES)}-{storage.basename(url)}")
        with storage.open_input(url) as src, open(dest + ".part", "wb") as out:
            shutil.copyfileobj(src, out, 1 << 22)
        os.replace(dest + ".part", dest)
        _COPIES[url] = dest
    return _COPIES[url]


@dataclass(frozen=True)
class ShardInfo:
    """What `write_shard` wrote: the numbers the `shards` manifest reports."""

    path: str
    n_tokens: int
    n_docs: int
    dtype: str
    sha256: str


def write_shard(
    path: str | Path,
    tokens: np.ndarray,
    doc_offsets: np.ndarray,
    *,
    eot_id: int,
    vocab_size: int,
    metadata: dict[str, Any],
) -> ShardInfo:
    """Write one token shard and its JSON sidecar, atomically.

    `tokens` is the concatenation of the documents, each already followed by `eot_id`;
    `doc_offsets` has n_docs + 1 entries, from 0 to len(tokens). `metadata` goes into the
    sidecar (tokenizer, source, config_hash, doc_ids, ...).
    """
    dtype = token_dtype(vocab_size)
    offsets = np.asarray(doc_offsets, dtype="<u8")
    n_docs = len(offsets) - 1
    if n_docs < 0 or offsets[0] != 0 or offsets[-1] != len(tokens) or np.any(np.diff(offsets) < 1):
        raise ValueError(
            f"{path}: doc_offsets must rise strictly from 0 to len(tokens)={len(tokens)} "
            "(every document holds at least its end-of-text token)"
        )
    if n_docs and np.any(tokens[offsets[1:].astype(np.int64) - 1] != eot_id):
        raise ValueError(f"{path}: every document must end with the end-of-text token {eot_id}")
    if len(tokens) and int(tokens.max()) >= vocab_size:
        raise ValueError(f"{path}: token id {int(tokens.max())} >= vocab_size {vocab_size}")
    data = np.ascontiguousarray(tokens, dtype=dtype)
    header = _HEADER.pack(MAGIC, VERSION, dtype.itemsize, len(data), n_docs, eot_id, vocab_size)
    header += b"\0" * (HEADER_SIZE - len(header))
    pad = b"\0" * (_tokens_end(len(data), dtype.itemsize) - HEADER_SIZE - data.nbytes)
    url = storage.normalize(str(path))
    sha = storage.write_bytes(url, [header, memoryview(data).cast("B"), pad, offsets.tobytes()])
    side = dict(metadata)
    side.update(
        format="gristmill-tokens", version=VERSION, sha256=sha, n_tokens=int(len(data)),
        n_docs=int(n_docs), dtype=dtype.name, eot_id=int(eot_id), vocab_size=int(vocab_size),
    )
    storage.write_json(sidecar_path(url), side)
    return ShardInfo(url, int(len(data)), int(n_docs), dtype.name, sha)


class TokenShard:
    """A token shard: tokens, document boundaries and metadata, nothing loaded up front.

    Local files are memory-mapped. A remote shard (`s3://...`) is checked with two ranged reads
    (header, document index); its tokens are copied to a local temporary file on first use and
    memory-mapped from there (`local_copy`): a trainer reads every token many times, and one GET
    per sample would cost far more than one download per shard.

    Raises `ShardFormatError` on a wrong magic, an unknown version or dtype, a truncated file,
    or a size that does not match the header.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = storage.normalize(str(path))
        if not storage.exists(self.path) or storage.isdir(self.path):
            raise ShardFormatError(f"{self.path}: no such token shard; run the tokenize step first")
        size = storage.size_of(self.path)
        head = read_range(self.path, 0, HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            raise ShardFormatError(
                f"{self.path}: truncated: {size} bytes, shorter than the {HEADER_SIZE}-byte header; "
                "the writer was probably killed: delete it and re-run the tokenize step"
            )
        magic, version, itemsize, n_tokens, n_docs, eot_id, vocab = _HEADER.unpack_from(head)
        if magic != MAGIC:
            hint = ""
            if self.path.endswith(".bin") and storage.exists(self.path[: -len(".bin")] + ".idx"):
                hint = "; an .idx lies beside it: a Megatron-LM .bin? Read it with Megatron's IndexedDataset"
            raise ShardFormatError(
                f"{self.path}: bad magic {magic!r}, expected {MAGIC!r}: not a gristmill token shard{hint}"
            )
        if version != VERSION:
            raise ShardFormatError(
                f"{self.path}: format version {version}, this reader knows version {VERSION}: "
                "re-tokenize with this gristmill or read it with the version that wrote it"
            )
        if itemsize not in _DTYPES:
            raise ShardFormatError(f"{self.path}: token itemsize {itemsize}, expected 2 or 4: corrupt header")
        self.dtype = _DTYPES[itemsize]
        self.n_tokens, self.n_docs, self.eot_id, self.vocab_size = n_tokens, n_docs, eot_id, vocab
        self._index_at = index_at = _tokens_end(n_tokens, itemsize)
        expected = index_at + (n_docs + 1) * 8
        if size != expected:
            what = "truncated" if size < expected else "size mismatch (trailing bytes)"
            raise ShardFormatError(
                f"{self.path}: {what}: {size} bytes, but the header ({n_tokens} tokens, {n_docs} "
                f"documents) implies {expected}; the file is damaged or half-written: delete it and "
                "re-run the tokenize step for its curated shard"
            )
        self._tokens: np.ndarray | None = None
        if storage.is_local(self.path):
            self._map(self.path)
        else:
            raw = read_range(self.path, index_at, (n_docs + 1) * 8)
            self.doc_offsets = np.frombuffer(raw, "<u8", n_docs + 1)
        if self.doc_offsets[0] != 0 or self.doc_offsets[-1] != n_tokens:
            raise ShardFormatError(
                f"{self.path}: document index runs {self.doc_offsets[0]}..{self.doc_offsets[-1]}, "
                f"expected 0..{n_tokens}: corrupt index; re-run the tokenize step"
            )
        self._meta: dict[str, Any] | None = None

    def _map(self, local: str) -> None:
        mm = np.memmap(local, dtype=np.uint8, mode="r")
        self._tokens = np.frombuffer(mm, self.dtype, self.n_tokens, HEADER_SIZE)
        self.doc_offsets: np.ndarray = np.frombuffer(mm, "<u8", self.n_docs + 1, self._index_at)

    @property
    def tokens(self) -> np.ndarray:
        """All tokens (a view on the memory map; remote shards are fetched on first use)."""
        if self._tokens is None:
            self._map(local_copy(self.path))
        return self._tokens  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.n_docs

    # Pickle the path, not the mapped bytes: DataLoader / Ray workers reopen the file.
    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["path"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The JSON sidecar; a missing sidecar means the write never finished."""
        if self._meta is None:
            side = sidecar_path(self.path)
            if not storage.exists(side):
                raise ShardFormatError(
                    f"{side}: sidecar missing: {storage.basename(self.path)} was never completed; "
                    "re-run the tokenize step for its curated shard"
                )
            self._meta = storage.read_json(side)
        return self._meta

    def document(self, i: int, with_eot: bool = False) -> np.ndarray:
        """Tokens of document i (a view), without its end-of-text token unless asked."""
        if not 0 <= i < self.n_docs:
            raise IndexError(f"document {i} out of range: {self.path} holds {self.n_docs}")
        start, end = int(self.doc_offsets[i]), int(self.doc_offsets[i + 1])
        return self.tokens[start : end if with_eot else end - 1]

    def doc_lengths(self) -> np.ndarray:
        """Tokens per document, end-of-text token included."""
        return np.diff(self.doc_offsets.astype(np.int64))

    def verify(self) -> None:
        """Full check: sha256 against the sidecar, and an end-of-text token closing each document."""
        meta = self.metadata
        sha = storage.sha256_of(self.path)
        if sha != meta.get("sha256"):
            raise ShardFormatError(
                f"{self.path}: sha256 {sha[:16]}... differs from its sidecar's "
                f"{str(meta.get('sha256'))[:16]}...: the file changed after writing; re-tokenize"
            )
        ends = self.doc_offsets[1:].astype(np.int64) - 1
        if np.any(np.diff(self.doc_offsets.astype(np.int64)) < 1) or np.any(self.tokens[ends] != self.eot_id):
            raise ShardFormatError(f"{self.path}: a document does not end with end-of-text {self.eot_id}")


class TokenStream:
    """Token arrays read as one stream, in the order given: gristmill shards (paths) or any
    objects with `n_tokens` and a sliceable `tokens` (the Megatron parts of pipeline/megatron.py)."""

    def __init__(self, parts: list[Any]) -> None:
        self.shards = [p if hasattr(p, "tokens") else TokenShard(p) for p in parts]
        self.starts = np.cumsum([0] + [s.n_tokens for s in self.shards]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, start: int, count: int) -> np.ndarray:
        """Tokens [start, start + count) as int64, crossing shard boundaries as needed."""
        if start < 0 or start + count > len(self):
            raise IndexError(f"tokens [{start}, {start + count}) outside a stream of {len(self)}")
        out = np.empty(count, dtype=np.int64)
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        done = 0
        while done < count:
            shard, base = self.shards[i], int(self.starts[i])
            take = min(count - done, shard.n_tokens - (start + done - base))
            lo = start + done - base
            out[done : done + take] = shard.tokens[lo : lo + take]
            done += take
            i += 1
        return out


def write_blend(
    tokens_dir: str | Path, chunks: Iterable[tuple[np.ndarray, np.ndarray]], n_samples: int,
    source_dtype: np.dtype, sample_dtype: np.dtype,
) -> dict[str, str]:
    """Write the blended index pair from (source_index, sample_index) chunks, streamed: the
    .npy headers first (the length is known), then each chunk, so memory holds one chunk.
    The bytes equal `np.save` of the whole arrays. Returns {file: sha256}."""
    blend = storage.join(storage.normalize(str(tokens_dir)), BLEND_DIR)
    names = (SOURCE_INDEX_FILE, SAMPLE_INDEX_FILE)
    dtypes = (np.dtype(source_dtype), np.dtype(sample_dtype))
    written = 0
    with storage.atomic_writer(storage.join(blend, names[0])) as f_src, \
            storage.atomic_writer(storage.join(blend, names[1])) as f_smp:
        for f, dtype in ((f_src, dtypes[0]), (f_smp, dtypes[1])):
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (n_samples,)}
            np.lib.format.write_array_header_1_0(f, header)
        for src, smp in chunks:
            if len(src) != len(smp):
                raise ValueError(f"{blend}: a chunk of {len(src)} sources but {len(smp)} samples")
            f_src.write(memoryview(np.ascontiguousarray(src, dtypes[0])).cast("B"))
            f_smp.write(memoryview(np.ascontiguousarray(smp, dtypes[1])).cast("B"))
            written += len(src)
        if written != n_samples:  # raised inside the writers: neither file appears
            raise ValueError(f"{blend}: {written} samples written, {n_samples} announced")
    return {f"{BLEND_DIR}/{names[0]}": f_src.result.sha256, f"{BLEND_DIR}/{names[1]}": f_smp.result.sha256}


class BlendedSamples:
    """The blended training samples under `tokens_dir` (a local path or a URL), for the trainer.

    `samples[i]` is an int64 array of seq_len + 1 tokens (inputs = [:-1], targets = [1:]),
    taken from the source and window the blended index names for sample i. The index files
    are memory-mapped (remote ones copied locally first, as remote shards are).
    """

    def __init__(self, tokens_dir: str | Path) -> None:
        self.root = storage.normalize(str(tokens_dir))
        meta_path = storage.join(self.root, METADATA_FILE)
        if not storage.exists(meta_path):
            raise ShardFormatError(f"{meta_path}: missing; run the tokenize step (build_mixture) first")
        self.metadata = storage.read_json(meta_path)
        blend = self.metadata["blend"]
        self.seq_len = int(blend["seq_len"])
        self.sources = [s["name"] for s in blend["sources"]]
        self.streams = [TokenStream([storage.join(self.root, p) for p in s["shards"]]) for s in blend["sources"]]
        index = [storage.join(self.root, BLEND_DIR, f) for f in (SOURCE_INDEX_FILE, SAMPLE_INDEX_FILE)]
        self.source_index = np.load(local_copy(index[0]), mmap_mode="r")
        self.sample_index = np.load(local_copy(index[1]), mmap_mode="r")
        if len(self.source_index) != len(self.sample_index):
            raise ShardFormatError(
                f"{self.root}/{BLEND_DIR}: {len(self.source_index)} source entries but "
                f"{len(self.sample_index)} sample entries; re-run build_mixture"
            )

    def __len__(self) -> int:
        return len(self.source_index)

    def __getstate__(self) -> dict[str, str]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["root"])

    def __getitem__(self, i: int) -> np.ndarray:
        stream = self.streams[int(self.source_index[i])]
        return stream.read(int(self.sample_index[i]) * self.seq_len, self.seq_len + 1)

    def batch(self, indices: list[int] | np.ndarray) -> np.ndarray:
        """Samples stacked as a [len(indices), seq_len + 1] int64 array."""
        return np.stack([self[int(i)] for i in indices]) if len(indices) else np.empty((0, self.seq_len + 1))
