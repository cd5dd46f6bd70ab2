"""Phase 3, verify: candidate pairs are kept only if their true Jaccard reaches the threshold.

Three task kinds, each writing one partitioned object:

  pairs    one per node partition q: its candidate edges from every near bucket object (each pair
           lives in the partition of its larger endpoint, so a pair proposed by several bands meets
           itself here and is counted once); writes the keys it needs, split by shard, and the pairs.
  shingles one per shard: reads which of its documents each partition needs, reads those texts
           once (only their row groups), writes their shingle sets split by requesting partition.
  jaccard  one per node partition: true Jaccard of its pairs from the sets sent to it, then a
           local union-find over the verified edges; writes the forest (each node -> the smallest
           node of its local component), split by the larger endpoint's partition.

With verification off, the pairs task runs the local union-find over the candidates directly.
A document in many pairs (the centre of a large cluster) has its set sent once per partition
that needs it, never once per pair.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.common import (
    EDGE,
    ROW_BITS,
    ROW_MASK,
    SigParams,
    edge_parts,
    edges,
    gather,
    local_components,
    read_array,
    read_part,
    read_rows,
    reset_counters,
    split_by,
    task_stats,
    unique_edges,
    write_parts,
)
from pipeline.minhash import jaccard


def forest(e: np.ndarray) -> np.ndarray:
    """Edges (smallest node of the local component, node) that connect the same nodes as `e`."""
    if len(e) == 0:
        return np.zeros(0, EDGE)
    nodes, root = local_components(e["u"], e["v"])
    return edges(root, nodes)


@dataclass(frozen=True)
class PairTask:
    part: int
    buckets: Sequence[str]       # the near bucket objects
    out: str
    shards: int
    partitions: int
    verify: bool


def pair_task(t: PairTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    # The bucket objects hold distinct pairs each; across bands the same pair recurs.
    e = gather([(u, 0) for u in t.buckets], t.part, EDGE)
    raw = len(e)
    e = unique_edges(e)
    if not t.verify:
        f = forest(e)
        write_parts(t.out, edge_parts(f, t.partitions))
        return task_stats(t0, raw=raw, candidates=len(e), verified=len(e), forest=len(f))
    keys = np.unique(np.concatenate([e["u"], e["v"]]))
    by_shard = split_by(keys, (keys >> np.uint64(ROW_BITS)).astype(np.int64), t.shards)
    write_parts(t.out, by_shard + [e])
    return task_stats(t0, raw=raw, candidates=len(e))


@dataclass(frozen=True)
class ShingleTask:
    shard_index: int
    path: str
    pairs: Sequence[str]         # the pair objects, one per partition
    out: str
    params: SigParams


def _set_blob(keys: np.ndarray, sets: list[np.ndarray]) -> bytes:
    offsets = np.zeros(len(sets) + 1, np.int64)
    np.cumsum([len(s) for s in sets], out=offsets[1:])
    flat = np.concatenate(sets) if sets else np.zeros(0, np.uint32)
    return b"".join([np.uint64(len(keys)).tobytes(), keys.astype(np.uint64).tobytes(), offsets.tobytes(),
                     flat.astype(np.uint32).tobytes()])


def _read_set_blob(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not data:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros(0, np.uint32)
    n = int(np.frombuffer(data[:8], np.uint64)[0])
    keys = np.frombuffer(data, np.uint64, n, 8)
    offsets = np.frombuffer(data, np.int64, n + 1, 8 + 8 * n)
    sets = np.frombuffer(data, np.uint32, int(offsets[-1]), 8 + 8 * n + 8 * (n + 1))
    return keys, offsets, sets


def shingle_task(t: ShingleTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    wanted = [read_array(url, t.shard_index, np.uint64) for url in t.pairs]
    keys = np.unique(np.concatenate(wanted)) if wanted else np.zeros(0, np.uint64)
    table = read_rows(t.path, (keys & np.uint64(ROW_MASK)).astype(np.int64), ("doc_id", "text", "language"),
                      ("doc_id", "text"))
    texts = table.column("text").to_pylist()
    langs = table.column("language").to_pylist() if "language" in table.column_names else None
    shingler, step = t.params.shingler(), t.params.batch_size
    sets: list[np.ndarray] = []
    for i in range(0, len(texts), step):
        sets += [s.astype(np.uint32) for s in  # keys are < 2**32: half the memory
                 shingler.doc_sets(texts[i: i + step], langs[i: i + step] if langs else None)]
    blobs = []
    for want in wanted:
        pos = np.searchsorted(keys, want)
        blobs.append(_set_blob(want, [sets[i] for i in pos.tolist()]) if len(want) else b"")
    write_parts(t.out, blobs)
    return task_stats(t0, docs=len(keys))


@dataclass(frozen=True)
class JaccardTask:
    part: int
    pairs: str                   # this partition's pair object
    shingles: Sequence[str]      # the shingle objects, one per shard
    out: str
    shards: int
    partitions: int
    threshold: float


def jaccard_task(t: JaccardTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    pairs = read_array(t.pairs, t.shards, EDGE)
    ends = np.concatenate([pairs["u"], pairs["v"]])
    keys_l, offs_l, sets_l = [], [], []
    base = 0
    for s in np.unique(ends >> np.uint64(ROW_BITS)).tolist():  # only the shards this partition needs
        k, o, st = _read_set_blob(read_part(t.shingles[s], t.part))
        keys_l.append(k)
        offs_l.append(o[:-1] + base)
        sets_l.append(st)
        base += len(st)
    keys = np.concatenate(keys_l) if keys_l else np.zeros(0, np.uint64)  # sorted: shard-major keys
    offsets = np.append(np.concatenate(offs_l), base) if offs_l else np.zeros(1, np.int64)
    sets = np.concatenate(sets_l) if sets_l else np.zeros(0, np.uint32)
    iu, iv = np.searchsorted(keys, pairs["u"]).tolist(), np.searchsorted(keys, pairs["v"]).tolist()
    jac = np.fromiter((jaccard(sets[offsets[a]: offsets[a + 1]], sets[offsets[b]: offsets[b + 1]])
                       for a, b in zip(iu, iv)), np.float32, len(pairs))
    verified = pairs[jac >= np.float32(t.threshold)]
    f = forest(verified)
    write_parts(t.out, edge_parts(f, t.partitions))
    return task_stats(t0, pairs=len(pairs), verified=len(verified), forest=len(f))
