"""Phase 5, assign: the keep rule and the result files, with no process holding a whole cluster.

Keep rule: in each cluster the member with the smallest `priority` (the preferred source; null
lowest, as is a missing column), then the highest `quality_score` (null lowest), then the smallest
doc_id survives; its doc_id is the cluster id. A member is "exact" when its normalised text is the
survivor's (same exact hash), else "near"; the survivor is "exact" when every member is.

  members  one per node partition: the final stars (root, x) become member records (x, root) and
           (root, root), split by the member's shard.
  resolve  one per shard: doc_id, priority, quality and exact hash of its clustered rows; per
           cluster, the best of its members here, their count and exact-hash range, split by the
           root's partition (a cluster spread over every shard sends one row per shard).
  roots    one per node partition: the survivor, size and kind of each cluster, sent back to each
           shard that has members of it.
  write    one per shard: work_dir/result/<shard_id>.parquet, a row per input document, in order.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import storage
from pipeline.dedup.common import (
    EDGE,
    RESULT_SCHEMA,
    ROW_BITS,
    ROW_MASK,
    check_columns,
    gather,
    part_of,
    read_array,
    read_rows,
    read_table,
    reset_counters,
    split_by,
    task_stats,
    unique_edges,
    write_parts,
)

MEMBER = np.dtype([("k", "<u8"), ("root", "<u8"), ("e", "<u8")])
PARTIAL_SCHEMA = pa.schema([
    ("root", pa.uint64()), ("count", pa.int64()), ("key", pa.uint64()), ("priority", pa.int64()),
    ("quality", pa.float64()), ("doc_id", pa.string()), ("e", pa.uint64()), ("min_e", pa.uint64()),
    ("max_e", pa.uint64()), ("src", pa.int64()),
])
ROOT_SCHEMA = pa.schema([
    ("root", pa.uint64()), ("key", pa.uint64()), ("doc_id", pa.string()), ("size", pa.int64()),
    ("e", pa.uint64()), ("all_exact", pa.bool_()),
])
# Smallest priority, highest quality, smallest doc_id (nulls last in each), then the key: a total order.
KEEP_ORDER = [("root", "ascending"), ("priority", "ascending"), ("quality", "descending"),
              ("doc_id", "ascending"), ("key", "ascending")]


def _firsts(sorted_roots: np.ndarray) -> np.ndarray:
    if len(sorted_roots) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_roots[1:] != sorted_roots[:-1])))


@dataclass(frozen=True)
class MemberTask:
    part: int
    final: Sequence[str]         # the last round's edge objects
    out: str
    shards: int


def member_task(t: MemberTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    e = gather([(u, 0) for u in t.final], t.part, EDGE)
    roots = np.unique(e["u"])
    m = np.empty(len(e) + len(roots), EDGE)   # (root, member)
    m["u"] = np.concatenate([e["u"], roots])
    m["v"] = np.concatenate([e["v"], roots])
    write_parts(t.out, split_by(m, (m["v"] >> np.uint64(ROW_BITS)).astype(np.int64), t.shards))
    return task_stats(t0, members=len(m))


@dataclass(frozen=True)
class ResolveTask:
    shard_index: int
    path: str
    signature: str               # the signature object of this shard's task (exact hashes at part
    exact_part: int              # exact_part, every document of the task in key order; this
    first_row: int               # shard's rows start at first_row)
    members: Sequence[str]       # member objects, one per partition
    out: str
    partitions: int


def resolve_task(t: ResolveTask) -> dict[str, Any]:
    """Parts [0, P): partial cluster rows by root partition; part P: this shard's MEMBER rows."""
    reset_counters()
    t0 = time.perf_counter()
    m = unique_edges(gather([(u, 0) for u in t.members], t.shard_index, EDGE))  # a root comes once per partition
    m = m[np.argsort(m["v"], kind="stable")]
    rows = (m["v"] & np.uint64(ROW_MASK)).astype(np.int64)
    table = read_rows(t.path, rows, ("doc_id", "quality_score", "priority"), ("doc_id",))
    e = read_array(t.signature, t.exact_part, np.uint64)[t.first_row + rows] if len(rows) else np.zeros(0, np.uint64)
    n = len(m)
    cols = {"root": pa.array(m["u"]), "key": pa.array(m["v"]),
            "priority": (table.column("priority").cast(pa.int64()) if "priority" in table.column_names
                         else pa.nulls(n, pa.int64())),
            "quality": (table.column("quality_score").cast(pa.float64()) if "quality_score" in table.column_names
                        else pa.nulls(n, pa.float64())),
            "doc_id": table.column("doc_id").cast(pa.string()), "e": pa.array(e, pa.uint64())}
    sorted_t = pa.table(cols).sort_by(KEEP_ORDER)
    root = sorted_t.column("root").to_numpy()
    es = sorted_t.column("e").to_numpy()
    first = _firsts(root)
    best = sorted_t.take(pa.array(first))
    partial = pa.table({
        "root": best.column("root"), "count": pa.array(np.diff(np.append(first, len(root))), pa.int64()),
        "key": best.column("key"), "priority": best.column("priority"), "quality": best.column("quality"),
        "doc_id": best.column("doc_id"), "e": best.column("e"),
        "min_e": pa.array(np.minimum.reduceat(es, first) if len(first) else es, pa.uint64()),
        "max_e": pa.array(np.maximum.reduceat(es, first) if len(first) else es, pa.uint64()),
        "src": pa.array(np.full(len(first), t.shard_index, np.int64)),
    }, schema=PARTIAL_SCHEMA)
    dest = part_of(partial.column("root").to_numpy(), t.partitions)
    parts = [partial.filter(pa.array(dest == p)) for p in range(t.partitions)]
    members = np.empty(n, MEMBER)
    members["k"], members["root"], members["e"] = m["v"], m["u"], e
    write_parts(t.out, parts + [members])
    return task_stats(t0, members=n, clusters_here=len(first))


@dataclass(frozen=True)
class RootTask:
    part: int
    resolved: Sequence[str]      # resolve objects, one per shard
    out: str


def root_task(t: RootTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    tables = [read_table(u, t.part, PARTIAL_SCHEMA) for u in t.resolved]
    partial = pa.concat_tables(tables) if tables else PARTIAL_SCHEMA.empty_table()
    partial = partial.sort_by(KEEP_ORDER)
    root = partial.column("root").to_numpy()
    first = _firsts(root)
    run = np.repeat(np.arange(len(first)), np.diff(np.append(first, len(root))))
    size = np.add.reduceat(partial.column("count").to_numpy(), first) if len(first) else np.zeros(0, np.int64)
    es_min = partial.column("min_e").to_numpy()
    es_max = partial.column("max_e").to_numpy()
    all_exact = ((np.minimum.reduceat(es_min, first) == np.maximum.reduceat(es_max, first))
                 if len(first) else np.zeros(0, bool))
    info = pa.table({
        "root": pa.array(root, pa.uint64()),
        "key": pa.array(partial.column("key").to_numpy()[first][run], pa.uint64()),
        "doc_id": partial.column("doc_id").take(pa.array(first[run])),
        "size": pa.array(size[run], pa.int64()),
        "e": pa.array(partial.column("e").to_numpy()[first][run], pa.uint64()),
        "all_exact": pa.array(all_exact[run], pa.bool_()),
    }, schema=ROOT_SCHEMA)
    src = partial.column("src").to_numpy()
    parts = [info.filter(pa.array(src == s)) for s in range(len(t.resolved))]
    write_parts(t.out, parts)
    return task_stats(t0, clusters=len(first), histogram=sorted(Counter(size.tolist()).items()))


@dataclass(frozen=True)
class WriteTask:
    shard_index: int
    path: str
    resolved: str                # this shard's resolve object (members at part `member_part`)
    member_part: int
    roots: Sequence[str]         # root objects, one per partition
    out: str


def write_task(t: WriteTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    pf = storage.parquet_file(t.path)
    check_columns(t.path, set(pf.schema_arrow.names), ("doc_id",))
    doc_id = pf.read(columns=["doc_id"]).column("doc_id").combine_chunks().cast(pa.string())
    n = len(doc_id)
    members = read_array(t.resolved, t.member_part, MEMBER)
    tables = [read_table(u, t.shard_index, ROOT_SCHEMA) for u in t.roots]
    info = pa.concat_tables(tables) if tables else ROOT_SCHEMA.empty_table()
    info = info.sort_by([("root", "ascending")])
    pos = np.searchsorted(info.column("root").to_numpy(), members["root"])
    surv_key = info.column("key").to_numpy()[pos]
    keep_m = surv_key == members["k"]
    exact_m = np.where(keep_m, info.column("all_exact").to_numpy(zero_copy_only=False)[pos],
                       info.column("e").to_numpy()[pos] == members["e"])
    rows = (members["k"] & np.uint64(ROW_MASK)).astype(np.int64)
    surv_id = info.column("doc_id").take(pa.array(pos))
    cluster = pa.nulls(n, pa.string()).to_pylist()
    kind: list[str | None] = [None] * n
    kept = doc_id.to_pylist()
    for r, s, x in zip(rows.tolist(), surv_id.to_pylist(), exact_m.tolist()):
        cluster[r], kept[r], kind[r] = s, s, "exact" if x else "near"
    size = np.ones(n, np.int32)
    size[rows] = info.column("size").to_numpy()[pos]
    keep = np.ones(n, bool)
    keep[rows] = keep_m
    table = pa.Table.from_arrays(
        [doc_id, pa.array(cluster, pa.string()), pa.array(size, pa.int32()), pa.array(kind, pa.string()),
         pa.array(kept, pa.string()), pa.array(keep, pa.bool_())], schema=RESULT_SCHEMA)
    storage.write_parquet(t.out, table)
    dropped = ~keep_m
    return task_stats(t0, docs=n, exact_removed=int((dropped & exact_m).sum()),
                      near_removed=int((dropped & ~exact_m).sum()))

