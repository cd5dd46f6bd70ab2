"""Dedup benchmark: gristmill's run_dedup beside datasketch's in-memory MinHashLSH and datatrove's
four minhash stages, on the same synthetic documents; plus signature hashing speed, agreement
with human near-duplicate labels, and the Chinese seeds.

    .venv/bin/python bench/dedup.py --docs 100000 --systems ours,datasketch,datatrove
    .venv/bin/python bench/dedup.py --docs 1000000 --systems ours
    .venv/bin/python bench/dedup.py --signatures --labels

Documents: words drawn by frequency from the vocabulary of the Webis news texts
(../shared/corpus/dedup), log-normal lengths (median 250 words); 10% are exact copies (case and
whitespace changed) and 10% near copies (0.5, 1, 2 or 3% of words replaced, deleted or inserted:
Jaccard ~0.95 down to ~0.75, so both sides of the threshold) of an earlier original, spread over
shards. Each copy records its true word 5-gram Jaccard to its original (`planted_jaccard`). Every system runs in its own subprocess with 2 workers
where it has any; peak RSS is the largest process (VmHWM, per task for ours). Every system gets
13 bands x 7 rows (ours from the S-curve). Corpora are cached under --data.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/dedup.py` puts bench/ first on sys.path, where bench/tokenize.py would shadow the
# standard library's tokenize (numpy and scipy import it): run with the repo root instead.
REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO), str(REPO / "tests")] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse
import glob
import json
import resource
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BANDS, ROWS = 13, 7
SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("language", pa.string()),
                    ("quality_score", pa.float32()), ("origin", pa.int64()), ("planted_jaccard", pa.float32())])


# -- corpus ---------------------------------------------------------------------------------------

def vocabulary() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Words of the Webis texts with their cumulative frequency, and each word's normalised
    tokens (ids into one flat array, as `tests/dedup_fixtures.reference_shingles` splits it) so
    that planted Jaccard values are the ones dedup measures."""
    from dedup_fixtures import webis_texts

    words, counts = np.unique(np.array([w for t in webis_texts() for w in t.split()], dtype=object),
                              return_counts=True)
    norm = [re_split(w) for w in words.tolist()]
    ids: dict[str, int] = {}
    flat = [ids.setdefault(tok, len(ids)) for toks in norm for tok in toks]
    n_tok = np.array([len(t) for t in norm], np.int64)
    return words, np.cumsum(counts) / counts.sum(), np.array(flat, np.int64), n_tok


def re_split(word: str) -> list[str]:
    """The normalised tokens of one whitespace-free word (same rule as the reference shingles)."""
    import re
    import unicodedata

    return re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", word).casefold()).split()


def _norm_ids(idx: np.ndarray, flat: np.ndarray, n_tok: np.ndarray) -> np.ndarray:
    """Word indices -> the sequence of normalised token ids of the text they make."""
    starts = np.concatenate(([0], np.cumsum(n_tok)[:-1]))[idx]
    counts = n_tok[idx]
    out_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return flat[np.repeat(starts - out_start, counts) + np.arange(int(counts.sum()))]


def _kind(seed: int, i: int) -> tuple[str, int, float]:
    """(original|exact|near, source index, edit rate) of document i: a pure function of (seed, i)."""
    rng = np.random.default_rng([seed, i, 1])
    r = rng.random()
    if i < 1000 or r >= 0.2:
        return "original", i, 0.0
    j = int(rng.integers(0, i))
    while _kind(seed, j)[0] != "original":
        j = int(rng.integers(0, j)) if j else 0
    return ("exact", j, 0.0) if r < 0.1 else ("near", j, float(rng.choice([0.005, 0.01, 0.02, 0.03])))


def _words(seed: int, i: int, cdf: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([seed, i])
    n = int(np.clip(rng.lognormal(np.log(250), 0.6), 20, 3000))
    return np.searchsorted(cdf, rng.random(n))


def _gram_set(idx: np.ndarray) -> np.ndarray:
    if len(idx) < 5:
        return np.unique(idx)
    h = np.zeros(len(idx) - 4, np.int64)
    for k in range(5):
        h = h * 1_000_003 + idx[k: len(idx) - 4 + k]
    return np.unique(h)


def _make_shard(args: tuple) -> int:
    path, shard, n_shards, n, seed = args
    from pipeline.minhash import normalize_text

    words, cdf, flat, n_tok = vocabulary()
    rows = []
    for i in range(shard, n, n_shards):
        kind, j, rate = _kind(seed, i)
        rng = np.random.default_rng([seed, i, 2])
        idx = _words(seed, j, cdf)
        jac = None
        if kind == "near":
            op = rng.random(len(idx))
            new = np.searchsorted(cdf, rng.random((2, len(idx))))
            delete, insert = op < rate / 3, (op >= rate * 2 / 3) & (op < rate)
            count = np.where(delete, 0, np.where(insert, 2, 1))
            edited = np.repeat(np.where((op >= rate / 3) & (op < rate * 2 / 3), new[0], idx), count)
            edited[np.cumsum(count)[insert] - 1] = new[1][insert]  # the word inserted after
            a, b = _gram_set(_norm_ids(idx, flat, n_tok)), _gram_set(_norm_ids(edited, flat, n_tok))
            inter = len(np.intersect1d(a, b))
            jac, idx = inter / (len(a) + len(b) - inter), edited
        text = " ".join(words[idx].tolist())
        if kind == "exact":
            copy = text.upper().replace(" ", "  ") + "\n"
            # upper() then casefold() is casefold() for nearly all text; check, do not assume.
            jac = 1.0 if normalize_text(copy).split() == normalize_text(text).split() else None
            text = copy
        rows.append({"doc_id": f"bench/{i:08d}", "text": text, "language": "en",
                     "quality_score": float(rng.random()), "origin": j, "planted_jaccard": jac})
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=8192)
    return len(rows)


def make_corpus(n: int, data: Path, seed: int = 0) -> list[tuple[str, str]]:
    out = data / f"docs{n}-v2"
    n_shards = max(4, n // 62_500)
    paths = [out / f"shard-{s:03d}.parquet" for s in range(n_shards)]
    if not all(p.exists() for p in paths):
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as ex:
            list(ex.map(_make_shard, [(p, s, n_shards, n, seed) for s, p in enumerate(paths)]))
        print(f"generated {n:,} documents in {n_shards} shards: {time.perf_counter() - t0:.0f}s", flush=True)
    return [(p.stem, str(p)) for p in paths]


def truth(shards: list[tuple[str, str]]) -> pa.Table:
    return pa.concat_tables([pq.read_table(p, columns=["doc_id", "origin", "planted_jaccard"]) for _, p in shards])


def score(removed: set[str], t: pa.Table, threshold: float = 0.8) -> dict:
    """Recall: removals in each origin group up to |members at >= threshold| - 1; false: the rest."""
    ids, origin = t.column("doc_id").to_pylist(), t.column("origin").to_numpy()
    jac = t.column("planted_jaccard").to_numpy(zero_copy_only=False)
    true_dup = np.nan_to_num(jac, nan=0.0) >= threshold
    groups: dict[int, list[int]] = {}
    for i, o in enumerate(origin.tolist()):
        groups.setdefault(o, []).append(i)
    want = found = false = 0
    for members in groups.values():
        w = int(true_dup[members].sum())
        r = sum(ids[i] in removed for i in members)
        want, found, false = want + w, found + min(r, w), false + max(0, r - w)
    return {"removed": len(removed), "should_remove": want, "recall": round(found / max(want, 1), 4),
            "false_removals": false}


# -- systems, each in a child process -------------------------------------------------------------

def _peak() -> int:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(me, kids) * 1024


def child_ours(spec: dict) -> dict:
    from pipeline.dedup import DedupConfig, run_dedup

    shards = [tuple(s) for s in spec["shards"]]
    with ProcessPoolExecutor(spec["workers"]) as ex:
        t0 = time.perf_counter()
        res = run_dedup(shards, spec["work"], DedupConfig(), lambda fn, items: list(ex.map(fn, items)))
        wall = time.perf_counter() - t0
    removed = set()
    for p in res.result_paths.values():
        t = pq.read_table(p, columns=["doc_id", "dup_keep"])
        removed.update(d for d, k in zip(t.column("doc_id").to_pylist(), t.column("dup_keep").to_pylist()) if not k)
    # Tasks reset their process's peak counter (per-task figures), so take the phases' maxima too.
    peak = max([_peak()] + [p["peak_rss_mb"] * 2**20 for p in res.phases.values()])
    # CPU seconds of this process and its (reaped) pool workers: far steadier than wall time on a
    # machine other jobs share.
    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    return {"seconds": wall, "cpu_seconds": cpu, "peak_rss": peak, "phases": res.phases, "removed_ids": sorted(removed),
            "counts": {k: getattr(res, k) for k in ("docs", "exact_removed", "candidate_pairs", "verified_pairs",
                                                     "near_removed", "clusters")}}


def child_datasketch(spec: dict) -> dict:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=BANDS * ROWS, params=(BANDS, ROWS))
    removed, sig_s = [], 0.0
    for _, path in spec["shards"]:
        t = pq.read_table(path, columns=["doc_id", "text"])
        for doc_id, text in zip(t.column("doc_id").to_pylist(), t.column("text").to_pylist()):
            t1 = time.perf_counter()
            w = text.lower().split()
            m = MinHash(num_perm=BANDS * ROWS, seed=1)
            m.update_batch([" ".join(w[i: i + 5]).encode() for i in range(max(1, len(w) - 4))])
            sig_s += time.perf_counter() - t1
            if lsh.query(m):   # greedy: a document near any earlier one is dropped, no verification
                removed.append(doc_id)
            else:
                lsh.insert(doc_id, m)
    return {"seconds": time.perf_counter() - t0, "peak_rss": _peak(), "removed_ids": removed,
            "phases": {"signatures (update_batch)": {"seconds": round(sig_s, 1)}}}


def child_datatrove(spec: dict) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    work, files, stage = Path(spec["work"]), len(spec["shards"]), spec["stage"]
    data = str(Path(spec["shards"][0][1]).parent)
    cfg = MinhashConfig(n_grams=5, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=1,
                        hash_config=HashConfig(precision=64))
    def reader() -> ParquetReader:
        return ParquetReader(data, text_key="text", id_key="doc_id", glob_pattern="*.parquet")

    # Built lazily: the signature step loads a spaCy tokenizer when constructed.
    steps = {
        "1 signatures": lambda: ([reader(), MinhashDedupSignature(str(work / "sigs"), config=cfg)], files),
        "2 buckets": lambda: ([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=cfg)], BANDS),
        "3 cluster": lambda: ([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=cfg)], 1),
        "4 filter": lambda: ([reader(), MinhashDedupFilter(str(work / "remove"),
                                                           exclusion_writer=JsonlWriter(str(work / "removed"))),
                              JsonlWriter(str(work / "kept"))], files),
    }
    pipeline, tasks = steps[stage]()
    t0 = time.perf_counter()
    # fork: pool workers are our children, so RUSAGE_CHILDREN sees their peak RSS.
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(2, tasks), logging_dir=str(work / f"logs{stage[0]}"),
                          start_method="fork").run()
    out = {"seconds": time.perf_counter() - t0, "peak_rss": _peak()}
    if stage == "4 filter":
        import gzip

        out["removed_ids"] = []
        for f in sorted(glob.glob(str(work / "removed" / "*.gz"))):
            with gzip.open(f, "rt") as lines:
                out["removed_ids"] += [json.loads(line)["id"] for line in lines]
    return out


def in_child(name: str, spec: dict) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", name, json.dumps(spec)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_system(name: str, shards: list, data: Path, n: int) -> dict:
    import shutil

    work = data / f"work-{name}-{n}"
    shutil.rmtree(work, ignore_errors=True)
    spec = {"shards": shards, "work": str(work), "workers": 2}
    if name != "datatrove":
        return in_child(name, spec)
    out = {"seconds": 0.0, "peak_rss": 0, "phases": {}}
    for stage in ("1 signatures", "2 buckets", "3 cluster", "4 filter"):
        r = in_child(name, {**spec, "stage": stage})
        out["phases"][stage] = {"seconds": round(r["seconds"], 1), "peak_rss_mb": round(r["peak_rss"] / 2**20)}
        out["seconds"] += r["seconds"]
        out["peak_rss"] = max(out["peak_rss"], r["peak_rss"])
        out["removed_ids"] = r.get("removed_ids", [])
    return out


def bench_systems(n: int, systems: list[str], data: Path) -> None:
    shards = make_corpus(n, data)
    t = truth(shards)
    rows = {}
    for name in systems:
        r = run_system(name, shards, data, n)
        r.update(score(set(r.pop("removed_ids")), t))
        rows[name] = r
        cpu = f" ({r['cpu_seconds']:.0f} CPU s)" if "cpu_seconds" in r else ""
        print(f"\n## {name}, {n:,} documents: {r['seconds']:.1f}s{cpu}, peak RSS {r['peak_rss'] / 2**30:.2f} GiB, "
              f"removed {r['removed']:,} (should {r['should_remove']:,}), recall {r['recall']}, "
              f"false removals {r['false_removals']}", flush=True)
        for phase, p in r.get("phases", {}).items():
            print(f"   {phase}: {p}")
        if "counts" in r:
            print(f"   counts: {r['counts']}")
    if "ours" in rows:
        for name in rows.keys() - {"ours"}:
            print(f"ratio {name}/ours wall time: {rows[name]['seconds'] / rows['ours']['seconds']:.1f}x, "
                  f"peak RSS: {rows[name]['peak_rss'] / rows['ours']['peak_rss']:.1f}x")


# -- signature hashing: vectorised vs datasketch ---------------------------------------------------

def bench_signatures(n_docs: int = 1200) -> None:
    from datasketch import LeanMinHash, MinHash
    from dedup_fixtures import webis_texts

    from pipeline.minhash import MinHasher, Shingler

    texts = (webis_texts() * 10)[:n_docs]
    perm = BANDS * ROWS
    t0 = time.perf_counter()
    shingles = []
    for text in texts:
        w = text.lower().split()
        shingles.append([" ".join(w[i: i + 5]).encode() for i in range(max(1, len(w) - 4))])
    t_sh = time.perf_counter() - t0
    n_sh = sum(map(len, shingles))
    timings = {}
    t0 = time.perf_counter()
    for s in shingles:
        m = MinHash(num_perm=perm, seed=1)
        for x in s:
            m.update(x)
    timings["datasketch MinHash.update loop"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in shingles:
        m = MinHash(num_perm=perm, seed=1)
        m.update_batch(s)
    timings["datasketch update_batch"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    [LeanMinHash(m) for m in MinHash.bulk(shingles, num_perm=perm, seed=1)]
    timings["datasketch MinHash.bulk + LeanMinHash"] = time.perf_counter() - t0
    sh, mh = Shingler(), MinHasher(perm, 1)
    mh.signatures(*sh.batch(texts[:50]))  # warm-up: pyarrow kernels and regex compile on first use
    t0 = time.perf_counter()
    keys, offsets = sh.batch(texts)
    t_ours_sh = time.perf_counter() - t0
    t0 = time.perf_counter()
    mh.signatures(keys, offsets)
    timings["ours: numpy multiply-add-shift"] = time.perf_counter() - t0
    base = timings["datasketch MinHash.update loop"]
    print(f"\n## signatures: {n_docs} real documents (Webis texts x5), {n_sh:,} word 5-grams, {perm} permutations, 1 core")
    print(f"   shingling: datasketch input (Python lower/split/join, bytes): {t_sh:.2f}s; "
          f"ours (NFKC, casefold, pyarrow regex split, numpy token and shingle hashes): {t_ours_sh:.2f}s")
    for name, s in timings.items():
        print(f"   {name}: {s:.2f}s, {n_sh / s / 1e6:.2f}M shingles/s, {base / s:.0f}x the update loop")
    ours = t_ours_sh + timings["ours: numpy multiply-add-shift"]
    print(f"   text -> signature: ours {ours:.2f}s vs datasketch update_batch {t_sh + timings['datasketch update_batch']:.2f}s "
          f"({(t_sh + timings['datasketch update_batch']) / ours:.1f}x), vs update loop {t_sh + base:.2f}s "
          f"({(t_sh + base) / ours:.1f}x)")


# -- human labels and the Chinese seeds -------------------------------------------------------------

def bench_labels(data: Path) -> None:
    from dedup_fixtures import webis_rows, webis_texts

    from pipeline.dedup import DedupConfig, run_dedup
    from pipeline.minhash import Shingler, jaccard

    rows, texts = webis_rows(), webis_texts()
    index = {t: i for i, t in enumerate(texts)}
    path = data / "webis.parquet"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"doc_id": f"w{i:03d}", "text": t, "language": "en", "quality_score": 0.5}
                                         for i, t in enumerate(texts)], schema=SCHEMA), path)
    res = run_dedup([("webis", str(path))], str(data / "work-webis"), DedupConfig(), lambda f, xs: [f(x) for x in xs])
    kept = pq.read_table(res.result_paths["webis"]).column("dup_kept_doc_id").to_pylist()
    sets = Shingler().doc_sets(texts)
    jac = np.array([jaccard(sets[index[r["text_a"]]], sets[index[r["text_b"]]]) for r in rows])
    label = np.array([r["label"] for r in rows])
    same = np.array([kept[index[r["text_a"]]] == kept[index[r["text_b"]]] for r in rows])
    pos = label >= 1

    def table(pred: np.ndarray) -> str:
        tp, fp = int((pred & pos).sum()), int((pred & ~pos).sum())
        fn, tn = int((~pred & pos).sum()), int((~pred & ~pos).sum())
        return (f"TP {tp} FP {fp} FN {fn} TN {tn}; precision {tp / max(tp + fp, 1):.2f} recall {tp / max(tp + fn, 1):.2f} "
                f"accuracy {(tp + tn) / len(pred):.2f}")

    print(f"\n## Webis CORE 2018 pairs: {len(rows)} pairs, near-duplicate = label >= 1 ({int(pos.sum())} pairs)")
    print(f"   pipeline at threshold 0.8: {table(same)}")
    for lab in range(4):
        print(f"   label {lab}: {int(same[label == lab].sum())}/{int((label == lab).sum())} merged, "
              f"Jaccard median {np.median(jac[label == lab]):.2f}")
    sweep = [(float(((jac >= t) == pos).mean()), t) for t in np.round(np.arange(0.3, 0.96, 0.01), 2)]
    best_t = max(sweep)[1]
    print(f"   best threshold on raw Jaccard (accuracy): {best_t:.2f}: {table(jac >= best_t)}")
    acc2, t2 = max((float(((jac >= t) == (label >= 2)).mean()), float(t)) for t in np.round(np.arange(0.3, 0.96, 0.01), 2))
    print(f"   with label >= 2 as near-duplicate instead: best threshold {t2:.2f}, accuracy {acc2:.2f}")
    s0, s1 = (Path(p).read_text(encoding="utf-8") for p in sorted(glob.glob(str(REPO.parent / "shared/seeds/00[01]_*.txt"))))
    a, b = Shingler().doc_sets([s0, s1], ["zh", "zh"])
    inter = len(np.intersect1d(a, b))
    print(f"\n## Chinese seeds 000/001: character 5-gram Jaccard {jaccard(a, b):.3f}; shared shingles are "
          f"{inter / len(a):.1%} of 000's and {inter / len(b):.1%} of 001's")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, nargs="*", default=[], help="corpus sizes for the system comparison")
    ap.add_argument("--systems", default="ours,datasketch,datatrove")
    ap.add_argument("--signatures", action="store_true", help="hashing speed vs datasketch")
    ap.add_argument("--labels", action="store_true", help="Webis human labels and Chinese seeds")
    ap.add_argument("--data", default="/tmp/gristmill-bench-dedup", help="corpus cache and work dirs")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, spec = args.child
        print(json.dumps(globals()[f"child_{name}"](json.loads(spec))))
        return
    data = Path(args.data)
    if args.signatures:
        bench_signatures()
    if args.labels:
        bench_labels(data)
    for n in args.docs:
        bench_systems(n, args.systems.split(","), data)


if __name__ == "__main__":
    main()
