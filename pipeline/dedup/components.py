"""Phase 4, connected components: alternating large-star and small-star (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014) over hash-partitioned nodes, through storage.

Edges are stored keyed by their LARGER endpoint: partition p holds every edge (a, b), a < b, whose
b hashes to p, so p sees each of its nodes' smaller neighbours. In the final state every component
is a star around its smallest node m, stored as (m, x) in x's partition: spread over all
partitions however large the component is (a star around m keyed by m would put a 100,000-copy
boilerplate page in one task).

One round, three waves of one task per partition, each writing one partitioned object:

  large-a  dedupe the partition's edges; m(b) = smallest neighbour of each of its nodes b (only
           smaller neighbours can be smaller); ask each smaller endpoint's partition for its m.
  large-b  answer the requests from the table (only nodes that have a smaller neighbour answer;
           a node asked by many partitions is asked once per partition, not once per edge).
  large-c  large-star: each edge (a, b) becomes (m(a), b), still keyed by b, so it stays put;
  + small  small-star in the same task: for each b with smaller neighbours N, m = min N; emit
           (m, x) for every x in N + {b} other than m, each to x's partition.

The driver adds up the edges that changed; a round in which none did leaves only stars around
each component's smallest node. Kiveris et al. prove O(log^2 n) rounds and report about log n;
`bench/dedup_scale.py` measures them. A task holds its partition's edges (and the requests to and
answers from others), never a whole component.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.common import (
    EDGE,
    Objects,
    edge_parts,
    edges,
    gather,
    part_of,
    read_array,
    reset_counters,
    split_by,
    task_stats,
    unique_edges,
    write_parts,
)

Sources = tuple[tuple[Sequence[str], int], ...]   # (partitioned objects, first partition of their edge parts)


@dataclass(frozen=True)
class LargeATask:
    part: int
    sources: Sources
    out: str
    partitions: int


def large_a_task(t: LargeATask) -> dict[str, Any]:
    """Parts [0, P): requested nodes by owner; part P: the deduped edges; part P+1: (m(b), b)."""
    reset_counters()
    t0 = time.perf_counter()
    e = unique_edges(gather([(u, base) for objs, base in t.sources for u in objs], t.part, EDGE))  # by (v, u)
    first = np.concatenate(([True], e["v"][1:] != e["v"][:-1])) if len(e) else np.zeros(0, bool)
    table = e[first]                                     # (smallest neighbour, node)
    asked = np.unique(e["u"])
    write_parts(t.out, split_by(asked, part_of(asked, t.partitions), t.partitions) + [e, table])
    return task_stats(t0, edges=len(e), nodes=len(table), asked=len(asked))


@dataclass(frozen=True)
class LargeBTask:
    part: int
    large_a: Sequence[str]       # the large-a objects of all partitions, by partition
    partitions: int
    out: str


def large_b_task(t: LargeBTask) -> dict[str, Any]:
    """Part q: (m(a), a) for each a that partition q asked about and that has a smaller neighbour."""
    reset_counters()
    t0 = time.perf_counter()
    table = read_array(t.large_a[t.part], t.partitions + 1, EDGE)   # sorted by node
    answers, answered = [], 0
    for url in t.large_a:
        asked = read_array(url, t.part, np.uint64)
        pos = np.minimum(np.searchsorted(table["v"], asked), max(len(table) - 1, 0))
        hit = table[pos][table["v"][pos] == asked] if len(table) else table
        answers.append(hit)
        answered += len(hit)
    write_parts(t.out, answers)
    return task_stats(t0, answered=answered)


@dataclass(frozen=True)
class StarTask:
    part: int
    large_a: str                 # this partition's large-a object
    large_b: Sequence[str]       # the large-b objects of all partitions
    partitions: int
    out: str


def star_task(t: StarTask) -> dict[str, Any]:
    """Large-star on this partition's edges, then small-star; parts [0, P): the new edges."""
    reset_counters()
    t0 = time.perf_counter()
    e = read_array(t.large_a, t.partitions, EDGE)                   # part P: deduped edges
    ans = gather([(u, 0) for u in t.large_b], t.part, EDGE)          # (m(a), a), a distinct
    ans = ans[np.argsort(ans["v"], kind="stable")]
    a = e["u"]
    if len(ans):
        pos = np.minimum(np.searchsorted(ans["v"], a), len(ans) - 1)
        hit = ans["v"][pos] == a
        m = np.where(hit, ans["u"][pos], a)
    else:
        m = a
    large_changed = int((m != a).sum())
    e = unique_edges(edges(m, e["v"]))                               # (m(a), b): b unchanged, stays here
    # Small-star: b's smaller neighbours, smallest first; m = the first.
    starts = np.flatnonzero(np.concatenate(([True], e["v"][1:] != e["v"][:-1]))) if len(e) else np.zeros(0, np.int64)
    sizes = np.diff(np.append(starts, len(e)))
    centre = np.repeat(e["u"][starts], sizes)
    rest = np.ones(len(e), bool)
    rest[starts] = False
    small_changed = int(rest.sum())
    out = np.concatenate([edges(e["u"][starts], e["v"][starts]), edges(centre[rest], e["u"][rest])])
    out = unique_edges(out)
    write_parts(t.out, edge_parts(out, t.partitions))
    return task_stats(t0, edges=len(out), large_changed=large_changed, small_changed=small_changed)


def run_components(sources: Sources, work: str, partitions: int, map_fn, max_rounds: int,
                   on_round=None) -> tuple[Sequence[str], int]:
    """Iterate rounds until no edge changes; returns (final edge objects, rounds run)."""
    from pipeline import storage

    prev_dir = None
    for r in range(max_rounds):
        rdir = storage.join(work, f"round-{r:03d}")
        la = Objects(rdir, "large-a-{:05d}.bin", partitions)
        lb = Objects(rdir, "large-b-{:05d}.bin", partitions)
        st = Objects(rdir, "star-{:05d}.bin", partitions)
        outs = map_fn(large_a_task, [LargeATask(p, sources, la[p], partitions) for p in range(partitions)])
        outs += map_fn(large_b_task, [LargeBTask(p, la, partitions, lb[p]) for p in range(partitions)])
        star = map_fn(star_task, [StarTask(p, la[p], lb, partitions, st[p]) for p in range(partitions)])
        outs += star
        changed = sum(o["large_changed"] + o["small_changed"] for o in star)
        if on_round is not None:
            on_round(r, outs, changed)
        if prev_dir is not None:
            storage.rmtree(prev_dir)   # the previous round's edges are no longer read
        prev_dir = rdir
        sources = ((st, 0),)
        if changed == 0:
            return st, r + 1
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds; "
                       "raise [dedup] max_rounds (large/small-star needs O(log^2 n) rounds)")
