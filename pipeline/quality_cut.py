"""The global `top_fraction` cut of the quality_model stage: keep the best X per collection over the run.

    figures = run_top_fraction([(shard_id, kept_parquet_url), ...], work_dir_url, config, map_fn)

The per-file stage (filters/quality_model.py, rule "top_fraction") only scores; this step decides,
before dedup. Per collection with N scored documents it keeps exactly K = round(fraction * N): the
first K by (quality_model_score descending, doc_id ascending); a document without a score ranks
last. It writes, per shard, through pipeline/storage.py:
  <work_dir>/kept/<shard_id>.parquet     the input's rows minus those cut (same schema and order)
  <work_dir>/dropped/<shard_id>.parquet  doc_id, drop_reason (quality_model_not_top_fraction)

Memory stays bounded whatever the corpus size: no process holds every score. Ranking works on the
score's float32 bit pattern (for scores in [0, 1] it sorts like the score), as a radix select:
  1. one task per shard returns, per collection, a histogram of the top 16 bits (sparse integers);
     the driver sums them and finds the bin that holds the K-th document;
  2. if that bin holds more than `exact_limit` documents, the same again on the low 16 bits inside
     it, which narrows it to one exact float32 value;
  3. the documents of the final bin come back as (key, doc_id) pairs (for an exact value: only the
     `need` smallest doc ids of each shard), the driver ranks them exactly;
  4. one task per shard applies the cut and writes both files.
Nothing depends on shard order, arrival order or worker count.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import storage

MapFn = Callable[[Callable, list], list]
DROP_REASON = "quality_model_not_top_fraction"
DROPPED_SCHEMA = pa.schema([("doc_id", pa.string()), ("drop_reason", pa.string())])
NULL_KEY = -1  # a document without a score: below every score
EXACT_LIMIT = 200_000


def score_keys(scores: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """int64 keys that sort like the float32 scores (non-negative floats sort like their bits); null,
    NaN and negative scores -> NULL_KEY."""
    arr = scores.combine_chunks() if isinstance(scores, pa.ChunkedArray) else scores
    vals = np.asarray(arr.cast(pa.float32()).fill_null(np.float32("nan")).to_numpy(zero_copy_only=False),
                      dtype=np.float32)
    keys = vals.view(np.uint32).astype(np.int64)
    keys[~(vals >= 0)] = NULL_KEY  # NaN compares false
    return keys


@dataclasses.dataclass(frozen=True)
class CutTask:
    shard_id: str
    kept_url: str
    # per collection: (shift, prefix) selects keys with key >> shift == prefix; shift 16 means the
    # low 16 bits inside one top-16 bin, shift 32 every key
    select: tuple[tuple[str, int, int], ...] = ()
    want_pairs: tuple[tuple[str, int, int, int], ...] = ()   # (collection, shift, prefix, cap)


def _read(url: str, columns: list[str]) -> pa.Table:
    return storage.read_parquet(url, columns=columns)


def histogram_task(task: CutTask) -> dict[str, dict[int, int]]:
    """Per collection, counts of the next 16 bits of the key among the keys `task.select` picks."""
    t = _read(task.kept_url, ["collection", "quality_model_score"])
    keys = score_keys(t["quality_model_score"])
    colls = np.asarray(t["collection"].to_pylist(), dtype=object)
    out: dict[str, dict[int, int]] = {}
    # No selection: level 1 for every collection the shard has.
    select = task.select or tuple((c, 32, 0) for c in sorted(set(colls.tolist())))
    for coll, shift, prefix in select:
        mask = colls == coll
        k = keys[mask]
        if shift == 32:  # level 1: the top 16 bits; null gets its own bin
            bins = np.where(k == NULL_KEY, NULL_KEY, k >> 16)
        else:
            k = k[(k != NULL_KEY) & ((k >> shift) == prefix)]
            bins = k & 0xFFFF
        u, c = np.unique(bins, return_counts=True)
        out[coll] = {int(a): int(b) for a, b in zip(u, c, strict=True)}
    return out


def pairs_task(task: CutTask) -> dict[str, list[tuple[int, str]]]:
    """Per collection, (key, doc_id) of the documents in the final bin, sorted by rank; at most `cap`."""
    t = _read(task.kept_url, ["doc_id", "collection", "quality_model_score"])
    keys = score_keys(t["quality_model_score"])
    colls = np.asarray(t["collection"].to_pylist(), dtype=object)
    ids = t["doc_id"].to_pylist()
    out = {}
    for coll, shift, prefix, cap in task.want_pairs:
        sel = (colls == coll) & ((keys == NULL_KEY) if prefix == NULL_KEY else
                                 ((keys != NULL_KEY) & ((keys >> shift) == prefix)))
        pairs = sorted(((int(keys[i]), ids[i]) for i in np.flatnonzero(sel)), key=lambda p: (-p[0], p[1]))
        out[coll] = pairs[:cap]
    return out


@dataclasses.dataclass(frozen=True)
class ApplyTask:
    shard_id: str
    kept_url: str
    work_dir: str
    # per collection: (key above which all are kept, boundary key, last kept doc_id at the boundary
    # key or None for none of them); keep_all / keep_none collections are encoded the same way
    rules: tuple[tuple[str, int, int, str | None], ...]


def apply_task(task: ApplyTask) -> dict[str, Any]:
    t = storage.read_parquet(task.kept_url)
    keys = score_keys(t["quality_model_score"])
    colls = np.asarray(t["collection"].to_pylist(), dtype=object)
    ids = np.asarray(t["doc_id"].to_pylist(), dtype=object)
    keep = np.ones(t.num_rows, dtype=bool)
    per: dict[str, list[int]] = {}
    for coll, above, boundary, last_id in task.rules:
        m = colls == coll
        ok = keys > above
        if last_id is not None:
            ok |= (keys == boundary) & (ids <= last_id)
        keep[m] = ok[m]
        per[coll] = [int(m.sum()), int((m & ok).sum())]
    storage.write_parquet(storage.join(task.work_dir, "kept", f"{task.shard_id}.parquet"),
                          t.filter(pa.array(keep)))
    dropped = ids[~keep].tolist()
    storage.write_parquet(storage.join(task.work_dir, "dropped", f"{task.shard_id}.parquet"),
                          pa.table({"doc_id": pa.array(dropped, pa.string()),
                                    "drop_reason": pa.array([DROP_REASON] * len(dropped), pa.string())},
                                   schema=DROPPED_SCHEMA))
    return {"shard": task.shard_id, "per_collection": per}


def _sum(hists: list[dict[str, dict[int, int]]]) -> dict[str, dict[int, int]]:
    total: dict[str, dict[int, int]] = {}
    for h in hists:
        for coll, bins in h.items():
            acc = total.setdefault(coll, {})
            for b, c in bins.items():
                acc[b] = acc.get(b, 0) + c
    return total


def _boundary(bins: dict[int, int], need: int) -> tuple[int, int, int]:
    """(bin holding the need-th best, documents ranked above that bin, documents in it)."""
    above = 0
    for b in sorted(bins, reverse=True):
        if above + bins[b] >= need:
            return b, above, bins[b]
        above += bins[b]
    raise AssertionError("need exceeds the histogram total")


def _fraction(config: Any) -> float:
    section = config["quality_model"] if hasattr(config, "sections") else config
    return float(section.fraction)


def run_top_fraction(shards: list[tuple[str, str]], work_dir_url: str, config: Any, map_fn: MapFn,
                     exact_limit: int = EXACT_LIMIT) -> dict[str, Any]:
    """Cut every collection to its best `fraction`; returns the `stages` row figures (docs_in,
    docs_out, dropped, drop_reasons, details). `config` is the run's Config or its [quality_model]."""
    t0 = time.perf_counter()
    fraction = _fraction(config)
    ids = [s for s, _ in shards]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate shard ids in the top_fraction input: {sorted(ids)}")
    shards = sorted(shards)
    hist = _sum(map_fn(histogram_task, [CutTask(s, u) for s, u in shards]))
    colls = sorted(hist)
    rules: dict[str, tuple[int, int, str | None]] = {}
    details: dict[str, dict] = {}
    pending = {}  # collection -> (shift, prefix, need within the bin)
    for coll in colls:
        n = sum(hist[coll].values())
        k = math.floor(fraction * n + 0.5)
        details[coll] = {"docs": n, "kept": k}
        if k == 0:
            rules[coll] = (1 << 40, 1 << 40, None)  # above every key: none kept
            continue
        if k == n:
            rules[coll] = (NULL_KEY - 1, NULL_KEY - 1, None)
            continue
        b, above, size = _boundary(hist[coll], k)
        need = k - above
        if b == NULL_KEY:
            pending[coll] = (0, NULL_KEY, need, size)
        elif size > exact_limit:
            pending[coll] = (16, b, need, size)  # narrow with the low 16 bits first
        else:
            pending[coll] = (16, b, need, -1)    # -1: fetch the pairs now
    narrow = {c: p for c, p in pending.items() if p[3] > exact_limit and p[1] != NULL_KEY}
    if narrow:
        level2 = _sum(map_fn(histogram_task, [CutTask(s, u, tuple((c, 16, p[1]) for c, p in narrow.items()))
                                              for s, u in shards]))
        for coll, (_, prefix, need, _) in narrow.items():
            lo, above, _size = _boundary(level2[coll], need)
            pending[coll] = (0, (prefix << 16) | lo, need - above, -1)
    if pending:
        want = tuple((c, shift, prefix, need) for c, (shift, prefix, need, _) in sorted(pending.items()))
        got = map_fn(pairs_task, [CutTask(s, u, want_pairs=want) for s, u in shards])
        for coll, (_shift, _prefix, need, _) in pending.items():
            ranked = list(heapq.merge(*(g[coll] for g in got), key=lambda p: (-p[0], p[1])))
            key, last_id = ranked[need - 1]
            # Every key above the last kept one stays; at its key, doc ids up to it.
            rules[coll] = (key, key, last_id)
            details[coll]["boundary_score"] = float(np.array([key], dtype=np.uint32).view(np.float32)[0]) \
                if key != NULL_KEY else None
            details[coll]["ranked_exactly"] = len(ranked)
    applied = map_fn(apply_task, [ApplyTask(s, u, work_dir_url, tuple((c, *rules[c]) for c in colls))
                                  for s, u in shards])
    docs_in = sum(v[0] for a in applied for v in a["per_collection"].values())
    docs_out = sum(v[1] for a in applied for v in a["per_collection"].values())
    for coll in colls:
        got_k = sum(a["per_collection"].get(coll, [0, 0])[1] for a in applied)
        if got_k != details[coll]["kept"]:
            raise AssertionError(f"top_fraction kept {got_k} of collection {coll!r}, expected {details[coll]['kept']}")
    return {"docs_in": docs_in, "docs_out": docs_out, "dropped": docs_in - docs_out,
            "drop_reasons": json.dumps({DROP_REASON: docs_in - docs_out}, sort_keys=True),
            "seconds": round(time.perf_counter() - t0, 3),
            "details": json.dumps({"fraction": fraction, "collections": details}, sort_keys=True)}
