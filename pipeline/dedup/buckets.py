"""Phase 2, buckets: one task per group (band, hash range), plus the exact pseudo-band.

A task reads its slice of every signature object (three ranged reads of one object per
signature task), sorts by hash and writes candidate edges as ONE partitioned object, split by the
node partition of each edge's larger endpoint (the partitioning every later phase uses).

A near bucket first collapses documents with the same exact hash to the smallest of them: all
copies of a text have the same band hashes, and the first copy of a text in the whole corpus is
always signed (it is the first in its shard), so the smallest key with that exact hash is in every
bucket its copies are in. Then a bucket of k distinct texts yields the star (smallest key, each
other member); a bucket of 3..all_pairs_max also yields every other pair, so that verification
can join two members that are both far from the smallest. Stars keep a huge bucket linear.
An exact bucket yields the star only: its edges need no verification.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.common import RECORD, edge_parts, edges, gather, reset_counters, task_stats, write_parts


@dataclass(frozen=True)
class BucketTask:
    group: int
    exact: bool
    signatures: tuple[str, ...]   # one partitioned object per signature task
    out: str
    all_pairs_max: int
    partitions: int


def bucket_task(t: BucketTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    rec = gather([(url, 0) for url in t.signatures], t.group, RECORD)
    n_records = len(rec)
    if not t.exact:
        # One record per distinct text in each bucket: the smallest key with that exact hash.
        rec = rec[np.lexsort((rec["k"], rec["e"], rec["h"]))]
        first = np.concatenate(([True], (rec["h"][1:] != rec["h"][:-1]) | (rec["e"][1:] != rec["e"][:-1])))
        rec = rec[first[:len(rec)]] if len(rec) else rec
    order = np.lexsort((rec["k"], rec["h"]))
    h, k = rec["h"][order], rec["k"][order]
    del rec
    starts = np.flatnonzero(np.concatenate(([True], h[1:] != h[:-1]))) if len(h) else np.zeros(0, np.int64)
    sizes = np.diff(np.append(starts, len(h)))
    run_of = np.repeat(np.arange(len(starts)), sizes)
    member = np.ones(len(h), bool)
    member[starts] = False
    us, vs = [k[starts][run_of[member]]], [k[member]]
    if not t.exact:
        small = (sizes >= 3) & (sizes <= t.all_pairs_max)
        for s, n in zip(starts[small].tolist(), sizes[small].tolist()):
            pairs = np.array(list(itertools.combinations(k[s + 1: s + n].tolist(), 2)), np.uint64)
            us.append(pairs[:, 0])
            vs.append(pairs[:, 1])
    e = edges(np.concatenate(us), np.concatenate(vs))
    write_parts(t.out, edge_parts(e, t.partitions))
    return task_stats(t0, group=t.group, records=n_records, buckets=int((sizes >= 2).sum()),
                      largest_bucket=int(sizes.max()) if len(sizes) else 0, edges=len(e))
