"""Dedup at cluster scale, in small: synthetic band tables at N = 1M, 2M, 5M, 10M documents,
from the buckets through connected components, with the ground truth known from construction.

    .venv/bin/python bench/dedup_scale.py                          # 1M, 2M, 5M, 10M
    .venv/bin/python bench/dedup_scale.py --sizes 1000000,2000000  # a quicker look

It starts at the band-table phase: each "signature" task writes, through the same
`pipeline.dedup.signatures.pack` the pipeline uses, the hash records its shard would have
(4 LSH bands + the exact hash); no text is hashed, so 10M documents fit in minutes on 2 cores.
Verification is off (there are no texts): every planted collision is an edge. Planted:

  giant     120,000 copies of one boilerplate page: half exact copies (same text, so the same
            exact hash and every band), half near copies sharing band 0 with them;
  Zipf      clusters of Zipf(2) sizes (2..5,000) over 15% of the documents, a third of them exact
            copies, the rest sharing one band;
  chains    N/100,000 chains of 2,000 documents, each sharing a band with the next only (paths,
            the worst case for rounds), in an order unrelated to document keys;
  random    N/1,000 random pairs of documents (any, but exact copies) sharing band 3: cross-band
            collisions that merge clusters, chains and singletons;
  the rest  singletons, with hashes of their own.

Ground truth: each document's planted cluster, merged along the planted collision pairs (a
union-find over cluster ids, in the checker process); the expected output is the star
(smallest key of the merged cluster, key) for every other member.

Each N runs in a fresh child process (the driver: a Ray executor with 2 workers and every task
with max_calls=1, so each task's peak RSS is its own); a second child checks the result.
Per N it prints wall seconds, driver peak RSS, the largest task peak RSS, rounds, objects read
per bucket task and whether the components equal the ground truth. Partitions are N / 1M, so
documents per partition stay constant and per-task memory should stay flat.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse
import json
import shutil
import subprocess
import time
from dataclasses import dataclass

import numpy as np

BANDS = 4
GIANT = 120_000
CHAIN = 2_000
ZIPF_SHARE = 0.15
A = 2_654_435_761   # a prime (Knuth's multiplicative hash): g -> (A*g + 7) mod N is a bijection that scatters


@dataclass(frozen=True)
class Plan:
    n: int
    shards: int
    seed: int = 0

    @property
    def chains(self) -> int:
        return max(1, self.n // 100_000)

    def zipf_starts(self) -> np.ndarray:
        """Start index of each Zipf cluster, and the end of the last one."""
        rng = np.random.default_rng(self.seed)
        target = int(ZIPF_SHARE * self.n)
        sizes = np.clip(rng.zipf(2.0, size=target), 2, 5000)
        sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), target)) + 1]
        return GIANT + self.chains * CHAIN + np.concatenate(([0], np.cumsum(sizes)))


def _h(tag: int, ids: np.ndarray, band: int | np.ndarray = 0) -> np.ndarray:
    """Distinct 64-bit hashes: fmix64 is a bijection, and (tag, id, band) never repeat."""
    from pipeline.minhash import fmix64

    ids = np.asarray(ids, np.uint64)
    return fmix64((np.uint64(tag) << np.uint64(56)) + ids * np.uint64(8) + np.asarray(band, np.uint64))


def structure(plan: Plan, g: np.ndarray) -> dict[str, np.ndarray]:
    """Band hashes, exact hash and planted labels of documents g (global indices)."""
    n = len(g)
    bh = np.stack([_h(1, g, b) for b in range(BANDS)], axis=1)
    e = _h(6, g)
    exact_copy = np.zeros(n, bool)
    cid = (1 << 40) + g                                   # singleton cluster ids
    giant = g < GIANT
    ex = giant & (g % 2 == 0)
    bh[giant, 0] = _h(2, np.zeros(1, np.int64))[0]
    bh[ex] = np.stack([_h(2, np.zeros(1, np.int64), b)[0] for b in range(BANDS)])
    e[ex], exact_copy[ex], cid[giant] = _h(7, np.zeros(1, np.int64))[0], True, 0
    top = GIANT + plan.chains * CHAIN
    ch = (g >= GIANT) & (g < top)
    c, j = (g[ch] - GIANT) // CHAIN, (g[ch] - GIANT) % CHAIN
    rows = np.flatnonzero(ch)
    nxt = j < CHAIN - 1
    bh[rows[nxt], (j[nxt] % 3)] = _h(3, c[nxt] * CHAIN + j[nxt])
    prv = j > 0
    bh[rows[prv], ((j[prv] - 1) % 3)] = _h(3, c[prv] * CHAIN + j[prv] - 1)
    cid[ch] = 1 + c
    starts = plan.zipf_starts()
    zf = (g >= starts[0]) & (g < starts[-1])
    i = np.searchsorted(starts, g[zf], side="right") - 1
    rows = np.flatnonzero(zf)
    exz = i % 3 == 0
    bh[rows[exz]] = np.stack([_h(4, i[exz], b) for b in range(BANDS)], axis=1)
    e[rows[exz]], exact_copy[rows[exz]] = _h(7, i[exz] + 1), True
    bh[rows[~exz], i[~exz] % 3] = _h(4, i[~exz], i[~exz] % 3)
    cid[zf] = 1 + plan.chains + i
    # Random collisions: pair 2i with 2i+1 in a pseudo-random order of all documents.
    inv = pow(A, -1, plan.n)
    pos = ((g - 7) % plan.n * inv) % plan.n
    pair, partner = pos // 2, (pos ^ 1) * A % plan.n
    partner = (partner + 7) % plan.n
    ok = (pair < plan.n // 1000) & ~exact_copy & ~_exact_copy(plan, partner, starts)
    bh[ok, 3] = _h(5, pair[ok], 3)
    return {"bands": bh, "e": e, "first_copy": None, "cid": cid, "partner": np.where(ok, partner, -1)}


def _exact_copy(plan: Plan, g: np.ndarray, starts: np.ndarray) -> np.ndarray:
    out = (g < GIANT) & (g % 2 == 0)
    zf = (g >= starts[0]) & (g < starts[-1])
    out[zf] = (np.searchsorted(starts, g[zf], side="right") - 1) % 3 == 0
    return out


def shard_docs(plan: Plan, s: int) -> np.ndarray:
    return np.arange(s, plan.n, plan.shards, dtype=np.int64)


def key_of(plan: Plan, g: np.ndarray) -> np.ndarray:
    return ((g % plan.shards).astype(np.uint64) << np.uint64(32)) + (g // plan.shards).astype(np.uint64)


def generate(args: tuple) -> dict:
    """One shard's band table, written as its signature object."""
    from pipeline.dedup.common import peak_rss, reset_counters
    from pipeline.dedup.signatures import pack

    plan, s, partitions, out = args
    reset_counters()
    g = shard_docs(plan, s)
    st = structure(plan, g)
    keys = key_of(plan, g)
    _, idx = np.unique(st["e"], return_index=True)
    first = np.zeros(len(g), bool)
    first[idx] = True    # the first row of each exact hash in this shard
    stats = pack(out, keys, st["e"], first, keys[first], st["bands"][first], partitions, BANDS, True)
    return {**stats, "peak_rss": peak_rss(), "objects_read": 0}


# -- the driver (one child process per N) ------------------------------------------------------------

def child_run(n: int, per_part: int, data: Path, workers: int) -> dict:
    from pipeline import storage
    from pipeline.dedup.common import Objects, peak_rss
    from pipeline.dedup.config import DedupConfig, DedupResult
    from pipeline.dedup.driver import link
    from pipeline.executor import Executor

    work = data / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    partitions = max(1, n // per_part)
    plan = Plan(n, shards=max(4, n // 250_000))
    config = DedupConfig(verify=False, partitions=partitions, bands=BANDS, rows=1, keep_work=True)
    import os

    import ray

    # A local Ray of our own even when another one runs on this machine (ray.init would join it).
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}})
    with Executor(workers=workers) as ex:
        def map_fn(fn, items):
            return ex.map(fn, items, "scale", max_calls=1)

        sig = Objects(storage.join(str(work), "signatures"), "{:05d}.bin", plan.shards)
        t0 = time.perf_counter()
        gen = map_fn(generate, [(plan, s, partitions, sig[s]) for s in range(plan.shards)])
        t_gen = time.perf_counter() - t0
        res = DedupResult({}, docs=n, bands=BANDS, rows=1, partitions=partitions)
        t0 = time.perf_counter()
        final = link(res, sig, plan.shards, (), config, map_fn, str(work))
        wall = time.perf_counter() - t0
    ray.shutdown()
    # The pipeline's tasks (buckets onwards); the band-table writers stand in for signature tasks.
    task_peak = max(p["task_peak_rss_mb"] * 2**20 for p in res.phases.values())
    gen_peak = max(g["peak_rss"] for g in gen)
    return {"n": n, "partitions": partitions, "shards": plan.shards, "generate_s": round(t_gen, 1),
            "wall_s": round(wall, 1), "driver_peak_mb": round(peak_rss() / 2**20, 1),
            "task_peak_mb": round(task_peak / 2**20, 1), "writer_peak_mb": round(gen_peak / 2**20, 1), "rounds": res.rounds,
            "objects_per_bucket_task": res.phases["buckets"]["max_objects_read"],
            "candidate_edges": res.candidate_pairs, "phases": res.phases, "final": list(final)}


def child_check(spec: dict) -> dict:
    """Compare the final stars with the planted truth (holds all N documents: not the driver)."""
    from pipeline.dedup.common import EDGE, gather

    plan = Plan(spec["n"], shards=spec["shards"])
    g = np.arange(plan.n, dtype=np.int64)
    st = structure(plan, g)
    cid, partner = st["cid"], st["partner"]
    del st
    # Merge planted clusters along the collision pairs: union-find over cluster ids.
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(cid[partner >= 0].tolist(), cid[partner[partner >= 0]].tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    if parent:
        keys_ = np.array(sorted(parent), np.int64)
        roots = np.array([find(int(k)) for k in keys_], np.int64)
        hit = np.searchsorted(keys_, cid)
        hit = np.minimum(hit, len(keys_) - 1)
        cid = np.where(keys_[hit] == cid, roots[hit], cid)
    keys = key_of(plan, g)
    order = np.lexsort((keys, cid))
    c, k = cid[order], keys[order]
    start = np.concatenate(([True], c[1:] != c[:-1]))
    run = np.cumsum(start) - 1
    root = k[start][run]
    sizes = np.bincount(run)
    member = (sizes[run] >= 2) & (k != root)
    want = np.empty(int(member.sum()), EDGE)
    want["u"], want["v"] = root[member], k[member]
    want = want[np.argsort(want["v"])]
    got = np.concatenate([gather([(f, 0) for f in spec["final"]], p, EDGE) for p in range(spec["partitions"])])
    got = got[np.argsort(got["v"])]
    return {"components_equal": bool(len(got) == len(want) and np.array_equal(got, want)),
            "expected_edges": len(want), "got_edges": len(got), "largest_component": int(sizes.max()),
            "clustered_docs": int((sizes[sizes >= 2]).sum())}


def in_child(*args: str) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,2000000,5000000,10000000")
    ap.add_argument("--docs-per-partition", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default="/tmp/gristmill-bench-dedup-scale")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "run":
        print(json.dumps(child_run(int(a.spec), a.docs_per_partition, Path(a.data), a.workers)))
        return
    if a.child == "check":
        print(json.dumps(child_check(json.loads(Path(a.spec).read_text()))))
        return
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        r = in_child("--child", "run", "--spec", str(n), "--docs-per-partition", str(a.docs_per_partition),
                     "--workers", str(a.workers), "--data", a.data)
        spec = Path(a.data) / f"n{n}.json"
        spec.write_text(json.dumps(r))
        r.update(in_child("--child", "check", "--spec", str(spec), "--data", a.data))
        shutil.rmtree(Path(a.data) / f"n{n}", ignore_errors=True)
        rows.append(r)
        print(f"N={n:,}: partitions {r['partitions']}, shards {r['shards']}; wall {r['wall_s']} s "
              f"(+{r['generate_s']} s writing band tables); driver peak RSS {r['driver_peak_mb']} MB; "
              f"largest task peak RSS {r['task_peak_mb']} MB (band-table writers {r['writer_peak_mb']} MB); rounds {r['rounds']}; objects read per bucket "
              f"task {r['objects_per_bucket_task']}; components == ground truth: {r['components_equal']} "
              f"({r['got_edges']:,} member edges, largest component {r['largest_component']:,}, "
              f"{r['clustered_docs']:,} clustered docs)", flush=True)
        print("   phases: " + "; ".join(f"{k} {v['seconds']} s, {v['tasks']} tasks, task peak {v['task_peak_rss_mb']} MB"
                                        for k, v in r["phases"].items()), flush=True)
    growth = rows[-1]["driver_peak_mb"] - rows[0]["driver_peak_mb"]
    peak = max(r["task_peak_mb"] for r in rows)
    print(f"dedup_scale: driver_growth_mb={growth:.1f} task_peak_mb={peak:.1f} "
          f"components_equal={str(all(r['components_equal'] for r in rows)).lower()}")


if __name__ == "__main__":
    main()
