"""run_dedup: the phases in order, each a `map_fn` over top-level tasks; the driver holds paths
and adds up the integers the tasks return, never edges, nodes or documents.

    signatures  one task per shard                       -> signatures/<shard>.bin
    buckets     one task per (band, hash range) + exact  -> buckets/<group>.bin
    verify      pairs per partition, shingles per shard, jaccard per partition -> verify/
    components  rounds of large-star / small-star, three waves of P tasks each -> components/
    assign      members per partition, resolve per shard, roots per partition,
                write per shard                          -> result/<shard_id>.parquet

P node partitions (`partitions`, or one per `partition_docs` documents) fix every task's size:
a signature task holds one shard's hash records, a bucket task 1/P of one band, every later task
one partition's edges, pairs or clusters. Nothing depends on worker count, shard order or arrival
order: keys sort shards by id, every array is sorted before use, and the same input gives
byte-identical result files, locally or on object storage.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Self

from pipeline import storage
from pipeline.dedup.assign import (
    MemberTask,
    ResolveTask,
    RootTask,
    WriteTask,
    member_task,
    resolve_task,
    root_task,
    write_task,
)
from pipeline.dedup.buckets import BucketTask, bucket_task
from pipeline.dedup.common import ROW_MASK, Objects, peak_rss, reset_peak_rss
from pipeline.dedup.components import run_components
from pipeline.dedup.config import DedupConfig, DedupResult
from pipeline.dedup.signatures import SignatureTask, count_rows, signature_task
from pipeline.dedup.verify import JaccardTask, PairTask, ShingleTask, jaccard_task, pair_task, shingle_task

MapFn = Callable[[Callable, list], list]
SCRATCH = ("signatures", "buckets", "verify", "components", "assign")


class _Phase:
    """Wall seconds of a phase, its task count, and the largest peak RSS of its tasks and the driver."""

    def __init__(self, result: DedupResult, name: str) -> None:
        self.result, self.name = result, name

    def __enter__(self) -> Self:
        reset_peak_rss()
        self.t0, self.task_peak, self.tasks, self.objects = time.perf_counter(), 0, 0, 0
        return self

    def done(self, outputs: list[dict]) -> list[dict]:
        self.tasks += len(outputs)
        self.task_peak = max([self.task_peak] + [o["peak_rss"] for o in outputs])
        self.objects = max([self.objects] + [o["objects_read"] for o in outputs])
        return outputs

    def __exit__(self, *exc) -> None:
        self.result.phases[self.name] = {
            "seconds": round(time.perf_counter() - self.t0, 3), "tasks": self.tasks,
            "peak_rss_mb": round(max(self.task_peak, peak_rss()) / 2**20, 1),
            "task_peak_rss_mb": round(self.task_peak / 2**20, 1), "max_objects_read": self.objects}


def run_dedup(shards: list[tuple[str, str]], work_dir: str, config: DedupConfig, map_fn: MapFn) -> DedupResult:
    """Dedup all documents of `shards` [(shard_id, kept parquet URL)]; writes work_dir/result/<shard_id>.parquet."""
    config.validate()
    ids = [s for s, _ in shards]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate shard ids in dedup input: {sorted(s for s, n in Counter(ids).items() if n > 1)}")
    shards = sorted(shards)  # keys follow shard ids, not the order they came in
    work = storage.normalize(work_dir)
    for name in SCRATCH:
        storage.rmtree(storage.join(work, name))  # never mix in a previous run's objects
    params = config.sig_params()
    paths = tuple(p for _, p in shards)
    n_shards = len(shards)
    counts = map_fn(count_rows, list(paths))
    if max(counts, default=0) > ROW_MASK:
        raise ValueError(f"a dedup input shard has {max(counts)} rows; at most {ROW_MASK} are supported")
    P = config.partitions or max(1, math.ceil(sum(counts) / config.partition_docs))
    res = DedupResult({sid: storage.join(work, "result", f"{sid}.parquet") for sid, _ in shards},
                      docs=sum(counts), bands=params.bands, rows=params.rows, partitions=P)

    def at(*parts: str) -> str:
        return storage.join(work, *parts)

    groups = _group(counts, config.signature_docs)
    objects = Objects(at("signatures"), "{:05d}.bin", len(groups))
    G = (params.bands + 1) * P
    with _Phase(res, "signatures") as ph:
        ph.done(map_fn(signature_task, [SignatureTask(tuple((i, paths[i]) for i in g), objects[j], params, P)
                                        for j, g in enumerate(groups)]))
    # Per shard: its signature object, and where its rows start among that object's documents.
    sig_of = [objects[j] for j, g in enumerate(groups) for _ in g]
    first_row = [sum(counts[g[0]: i]) for g in groups for i in g]

    final = link(res, objects, n_shards, paths, config, map_fn, work)

    with _Phase(res, "assign") as ph:
        mb = Objects(at("assign"), "members-{:05d}.bin", P)
        ph.done(map_fn(member_task, [MemberTask(p, final, mb[p], n_shards) for p in range(P)]))
        rs = Objects(at("assign"), "resolve-{:05d}.bin", n_shards)
        ph.done(map_fn(resolve_task, [ResolveTask(s, paths[s], sig_of[s], G + P, first_row[s], mb, rs[s], P) for s in range(n_shards)]))
        rt = Objects(at("assign"), "roots-{:05d}.bin", P)
        outs = ph.done(map_fn(root_task, [RootTask(p, rs, rt[p]) for p in range(P)]))
        res.clusters = sum(o["clusters"] for o in outs)
        hist: Counter[int] = Counter()
        for o in outs:
            hist.update({int(size): int(n) for size, n in o["histogram"]})
        res.histogram = sorted(hist.items())
        outs = ph.done(map_fn(write_task, [WriteTask(s, paths[s], rs[s], P, rt, res.result_paths[sid])
                                           for s, (sid, _) in enumerate(shards)]))
        res.exact_removed = sum(o["exact_removed"] for o in outs)
        res.near_removed = sum(o["near_removed"] for o in outs)
    if not config.keep_work:
        for name in SCRATCH:
            storage.rmtree(at(name))
    return res


def _group(counts: list[int], docs: int) -> list[list[int]]:
    """Consecutive shard indices, a group closed once it reaches `docs` documents."""
    groups: list[list[int]] = []
    size = docs
    for i, n in enumerate(counts):
        if size >= docs:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += n
    return groups


def link(res: DedupResult, sig: Sequence[str], n_shards: int, paths: tuple[str, ...], config: DedupConfig,
         map_fn: MapFn, work: str) -> Sequence[str]:
    """Buckets, verification and connected components, from the signature objects `sig` to the
    last round's edge objects: every clustered document x as an edge (smallest document of its
    cluster, x) in x's partition. bench/dedup_scale.py starts here."""
    P = res.partitions
    bands = res.bands
    G = (bands + 1) * P

    def at(*parts: str) -> str:
        return storage.join(work, *parts)

    with _Phase(res, "buckets") as ph:
        # Groups 0 .. bands*P - 1 are the near buckets (band b, partition p: b * P + p), then P exact.
        near = Objects(at("buckets"), "{:06d}.bin", bands * P if config.near else 0)
        exact = Objects(at("buckets"), "{:06d}.bin", P if config.exact else 0, start=bands * P)
        ph.done(map_fn(bucket_task, [BucketTask(near.start + i, False, sig, url, config.bucket_all_pairs, P)
                                     for i, url in enumerate(near)]
                       + [BucketTask(exact.start + i, True, sig, url, config.bucket_all_pairs, P)
                          for i, url in enumerate(exact)]))

    verified: Sequence[str] = ()
    with _Phase(res, "verify") as ph:
        if len(near):
            pr = Objects(at("verify"), "pairs-{:05d}.bin", P)
            outs = ph.done(map_fn(pair_task, [PairTask(q, near, pr[q], n_shards, P,
                                                       config.verify) for q in range(P)]))
            res.candidate_pairs = sum(o["candidates"] for o in outs)
            verified = pr
            if config.verify:
                params = config.sig_params()
                sh = Objects(at("verify"), "shingles-{:05d}.bin", n_shards)
                ph.done(map_fn(shingle_task, [ShingleTask(s, paths[s], pr, sh[s], params) for s in range(n_shards)]))
                jc = Objects(at("verify"), "jaccard-{:05d}.bin", P)
                outs = ph.done(map_fn(jaccard_task, [JaccardTask(q, pr[q], sh, jc[q], n_shards, P, config.threshold)
                                                     for q in range(P)]))
                verified = jc
            res.verified_pairs = sum(o["verified"] for o in outs)

    with _Phase(res, "components") as ph:
        # Round 0 reads the exact stars, each shard's in-shard exact edges and the verified forests.
        sources = tuple((objs, base) for objs, base in ((exact, 0), (sig, G), (verified, 0)) if len(objs))
        final, res.rounds = run_components(sources, at("components"), P, map_fn, config.max_rounds,
                                           on_round=lambda r, outs, changed: ph.done(outs))
    return final
