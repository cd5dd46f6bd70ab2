"""What every dedup phase shares: document keys, record layouts, the partitioned-object format
that carries every shuffle, the parameters a task needs, and per-task peak RSS.

Document keys are uint64: shard index (shards sorted by id) << 32 | row in the shard's parquet.
They order documents the same way whatever the worker count or the order shards came in.

A partitioned object is ONE stored object per map task holding all of its output partitions:

    b"GMPARTS1" | n (uint64) | byte offsets (int64 x n+1, relative to the payload) | payload

A reader of partition i reads 16 bytes of header, 16 bytes of offsets and its slice: three ranged
reads of one object, whatever n is (an offsets array read whole, as a `.npy` beside every shuffle
file, would cost n x 8 bytes per read). Every object goes through `pipeline.storage`, so the work
dir may be local or `s3://...`.
"""

from __future__ import annotations

import io
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import storage
from pipeline.minhash import Shingler, fmix64

ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1
RECORD = np.dtype([("h", "<u8"), ("k", "<u8"), ("e", "<u8")])  # band hash, document key, exact hash
EDGE = np.dtype([("u", "<u8"), ("v", "<u8")])                  # undirected pair, u < v; keyed by v
MAGIC = b"GMPARTS1"

RESULT_SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("dup_cluster", pa.string()),       # doc_id of the cluster's kept document; null when unique
    ("dup_cluster_size", pa.int32()),   # 1 when unique
    ("dup_kind", pa.string()),          # "exact" | "near" | null
    ("dup_kept_doc_id", pa.string()),   # the document kept in its place (itself when kept)
    ("dup_keep", pa.bool_()),
])


@dataclass(frozen=True)
class Objects(Sequence[str]):
    """Numbered objects of one folder: `folder/pattern.format(start + i)` for i < count.

    Task specs name the objects they read with this, not with a tuple of URLs, so a spec is a
    few hundred bytes whatever the corpus size: at a full dump a tuple of the 90,000 shard objects
    is ~5 MB per task (times 2,380 partition tasks), of the 9,520 signature objects ~0.8 MB per
    bucket task (27 GB of task arguments over 33,320 tasks)."""

    folder: str
    pattern: str
    count: int
    start: int = 0

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):  # an index or a slice, like a tuple
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.count))]
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(f"object {i} of {self.count} in {self.folder}")
        return storage.join(self.folder, self.pattern.format(self.start + i))


@dataclass(frozen=True)
class SigParams:
    """What signature and shingle tasks need of the dedup configuration."""
    exact: bool
    near: bool
    bands: int
    rows: int
    seed: int
    word_ngram: int
    char_ngram: int
    char_languages: tuple[str, ...]
    batch_size: int

    def shingler(self) -> Shingler:
        return Shingler(self.word_ngram, self.char_ngram, self.char_languages)


# -- keys and partitions --------------------------------------------------------------------------

def part_of(keys: np.ndarray, n_parts: int) -> np.ndarray:
    """Partition of each key: a mixed hash, so that neighbouring rows of a shard spread out."""
    if n_parts == 1:
        return np.zeros(len(keys), np.int64)
    return (fmix64(keys.astype(np.uint64)) % np.uint64(n_parts)).astype(np.int64)


def split_by(values: np.ndarray, part: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """`values` cut into n_parts arrays by `part` (stable: each keeps its input order)."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
    v = values[order]
    return [v[bounds[i]: bounds[i + 1]] for i in range(n_parts)]


def edges(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """EDGE array from endpoint arrays, smaller endpoint first, self-loops dropped."""
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    keep = lo != hi
    out = np.empty(int(keep.sum()), EDGE)
    out["u"], out["v"] = lo[keep], hi[keep]
    return out


def unique_edges(e: np.ndarray) -> np.ndarray:
    """Distinct edges sorted by (v, u): each larger endpoint's smaller neighbours together, smallest first."""
    if len(e) == 0:
        return np.zeros(0, EDGE)
    order = np.lexsort((e["u"], e["v"]))
    e = e[order]
    first = np.concatenate(([True], (e["u"][1:] != e["u"][:-1]) | (e["v"][1:] != e["v"][:-1])))
    return e[first]


def edge_parts(e: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Edges split by the partition of their LARGER endpoint. A star around a cluster's smallest
    document (what buckets, local union-find and small-star emit) then spreads over all partitions
    instead of landing in its centre's."""
    return split_by(e, part_of(e["v"], n_parts), n_parts)


def local_components(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct nodes, smallest node of each one's component) for the edges (u, v).

    Union-find in numpy: hook every root to the smallest root across its edges, then jump
    pointers until every label is a root; repeat until no edge joins two roots. Labels only
    decrease and the smallest node of a component is never relabelled, so it ends as the root.
    """
    nodes = np.unique(np.concatenate([u, v]))
    iu, iv = np.searchsorted(nodes, u), np.searchsorted(nodes, v)
    lab = np.arange(len(nodes))
    while True:
        lu, lv = lab[iu], lab[iv]
        cross = lu != lv
        if not cross.any():
            break
        lu, lv = lu[cross], lv[cross]
        low = np.minimum(lu, lv)
        np.minimum.at(lab, lu, low)
        np.minimum.at(lab, lv, low)
        while True:
            jumped = lab[lab]
            if np.array_equal(jumped, lab):
                break
            lab = jumped
    return nodes, nodes[lab]


# -- partitioned objects ----------------------------------------------------------------------------

_objects_read = 0


def objects_read() -> int:
    """Objects this process opened for reading since `reset_counters` (one per partitioned object)."""
    return _objects_read


def reset_counters() -> None:
    global _objects_read
    _objects_read = 0
    reset_peak_rss()


def _as_bytes(blob: Any) -> memoryview:
    if isinstance(blob, np.ndarray):
        return memoryview(np.ascontiguousarray(blob).view(np.uint8).reshape(-1))
    return memoryview(blob).cast("B")


def write_parts(url: str, blobs: Sequence[Any]) -> int:
    """Write one partitioned object; `blobs` are numpy arrays, Arrow tables or bytes. Returns bytes."""
    views = [_as_bytes(table_blob(b) if isinstance(b, pa.Table) else b) for b in blobs]
    offsets = np.zeros(len(views) + 1, np.int64)
    np.cumsum([v.nbytes for v in views], out=offsets[1:])
    header = MAGIC + np.uint64(len(views)).tobytes() + offsets.tobytes()
    storage.write_bytes(url, [header, *views])
    return len(header) + int(offsets[-1])


def _open(url: str) -> io.BufferedIOBase:
    global _objects_read
    _objects_read += 1
    if storage.is_local(url):
        return storage.open_input(url, buffer_size=1 << 16)
    # Small blocks: a reader wants 32 bytes of header and one slice, not 4 MiB of read-ahead.
    return io.BufferedReader(storage.RetryingFile(url, block_size=1 << 18), buffer_size=1 << 16)


def read_part(url: str, i: int) -> bytes:
    """Partition i of a partitioned object: three ranged reads."""
    with _open(url) as f:
        head = f.read(16)
        if head[:8] != MAGIC:
            raise ValueError(f"{url}: not a dedup partitioned object (bad magic); delete the dedup work dir")
        n = int(np.frombuffer(head[8:16], np.uint64)[0])
        if not 0 <= i < n:
            raise ValueError(f"{url}: has {n} partitions, partition {i} asked for")
        f.seek(16 + 8 * i)
        start, end = np.frombuffer(f.read(16), np.int64).tolist()
        f.seek(16 + 8 * (n + 1) + start)
        data = f.read(end - start)
    if len(data) != end - start:
        raise ValueError(f"{url}: truncated (partition {i} needs {end - start} bytes, got {len(data)})")
    return data


def read_array(url: str, i: int, dtype: np.dtype) -> np.ndarray:
    return np.frombuffer(read_part(url, i), dtype).copy()


def gather(sources: Sequence[tuple[str, int]], i: int, dtype: np.dtype) -> np.ndarray:
    """Partition base+i of every (url, base) source, concatenated in source order."""
    arrays = [np.frombuffer(read_part(url, base + i), dtype) for url, base in sources]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def table_blob(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def read_table(url: str, i: int, schema: pa.Schema) -> pa.Table:
    data = read_part(url, i)
    if not data:
        return schema.empty_table()
    return pa.ipc.open_stream(data).read_all()


# -- memory ------------------------------------------------------------------------------------------

def reset_peak_rss() -> None:
    """Restart this process's peak-RSS counter (Linux); a pooled worker then reports per task."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not allowed: peak_rss() falls back to the process lifetime peak


def peak_rss() -> int:
    """Peak resident set size in bytes since the last `reset_peak_rss` (or process start)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def task_stats(t0: float, **counts: Any) -> dict[str, Any]:
    """What every task returns: its counts, seconds, peak RSS and objects read."""
    import time

    return {**counts, "seconds": time.perf_counter() - t0, "peak_rss": peak_rss(), "objects_read": _objects_read}


def read_rows(url: str, rows: np.ndarray, columns: tuple[str, ...], required: tuple[str, ...]) -> pa.Table:
    """The given rows (sorted, distinct) of a parquet file, reading only the row groups they are in."""
    pf = storage.parquet_file(url)
    names = set(pf.schema_arrow.names)
    check_columns(url, names, required)
    cols = [c for c in columns if c in names]
    bounds = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
    if len(rows) and rows[-1] >= bounds[-1]:
        raise ValueError(f"{url} has {bounds[-1]} rows but dedup needs row {rows[-1]}: "
                         "the file changed since the signature phase; rerun dedup")
    if len(rows) == 0:
        return pf.schema_arrow.empty_table().select(cols)
    rg = np.searchsorted(bounds, rows, side="right") - 1
    needed = np.unique(rg)
    table = pf.read_row_groups(needed.tolist(), columns=cols)
    base = np.concatenate(([0], np.cumsum([bounds[g + 1] - bounds[g] for g in needed])[:-1]))
    local = rows - bounds[rg] + base[np.searchsorted(needed, rg)]
    return table.take(pa.array(local))


def check_columns(url: str, names: set[str], required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(f"dedup input {url} lacks column(s) {missing}; it has {sorted(names)}. "
                         "Dedup reads the kept-documents parquet that the shard stages write.")
