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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.common import RECORD, edge_parts, edges, gather, reset_counters, task_stats, write_parts


@dataclass(frozen=True)
class BucketTask:
    group: int
    exact: bool
    signatures: Sequence[str]     # one partitioned object per signature task
    out: str
    all_pairs_max: int
    partitions: int


def bucket_task(t: BucketTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    rec = gather([(url, 0) for url in t.signatures], t.group, RECORD)
    n_records = len(rec)
    rec = rec[np.lexsort((rec["k"], rec["e"], rec["h"]))]   # one sort: by hash, text, key
    h, k = rec["h"], rec["k"]
    new_h = np.concatenate(([True], h[1:] != h[:-1])) if len(h) else np.zeros(0, bool)
    if not t.exact and len(h):
        # One record per distinct text in each bucket: the smallest key with that exact hash.
        keep = new_h | np.concatenate(([True], rec["e"][1:] != rec["e"][:-1]))
        h, k, new_h = h[keep], k[keep], new_h[keep]
    del rec
    starts = np.flatnonzero(new_h)
    sizes = np.diff(np.append(starts, len(h)))
    run_of = np.repeat(np.arange(len(starts)), sizes)
    centre = np.minimum.reduceat(k, starts) if len(starts) else k    # members are in text order, not key order
    member = k != centre[run_of]
    us, vs = [centre[run_of[member]]], [k[member]]
    if not t.exact:
        small = (sizes >= 3) & (sizes <= t.all_pairs_max)
        for s, n, c in zip(starts[small].tolist(), sizes[small].tolist(), centre[small].tolist()):
            others = [x for x in k[s: s + n].tolist() if x != c]
            pairs = np.array(list(itertools.combinations(others, 2)), np.uint64)
            us.append(pairs[:, 0])
            vs.append(pairs[:, 1])
    e = edges(np.concatenate(us), np.concatenate(vs))
    write_parts(t.out, edge_parts(e, t.partitions))
    return task_stats(t0, group=t.group, records=n_records, buckets=int((sizes >= 2).sum()),
                      largest_bucket=int(sizes.max()) if len(sizes) else 0, edges=len(e))
