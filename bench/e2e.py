"""End to end: the whole gristmill chain against datatrove's FineWeb recipe, same WARCs, same workers.

    .venv/bin/python bench/e2e.py [--pages 990] [--files 6] [--workers 2] [--dup-rate 0.1]

Input: real pages of ../shared/corpus/pages/trafilatura as CommonCrawl-style request + response +
metadata records, dealt round-robin into --files WARCs; --dup-rate of the pages appear again in
the next file under another URL, half verbatim, half with a word cut from two paragraphs (near
copies), so both dedups have cross-file work.
  gristmill: `pipeline/run.py --workers W` as a subprocess: every stage, dedup, tokenize; then
             with `[pipeline] tokenize = false`, and with --workers 1 (scaling); then with
             `[langid] keep = ["en"]` (FineWeb is an English recipe: datatrove's Gopher stop-word
             rule keeps almost only English), with the extraction cascade (the default
             `[extract] mode`) and with `mode = "trafilatura"`, side by side.
  datatrove: examples/fineweb.py on LocalPipelineExecutor(tasks=files, workers=W): WarcReader ->
             URLFilter -> Trafilatura(favour_precision) -> LanguageFilter -> GopherRepetition ->
             GopherQuality -> C4Quality(filter_no_terminal_punct=False) -> FineWebQuality ->
             JsonlWriter, then MinhashDedupSignature -> Buckets (14 tasks) -> Cluster (1 task) ->
             Filter -> PIIFormatter -> JsonlWriter. The recipe's exclusion writers are left out (we
             store no dropped text either; this favours datatrove). Offline: LanguageFilter loads
             our lid.176.ftz, tldextract its bundled suffix list, and a socket guard in every
             datatrove process logs and refuses non-local connections.
Both run as subprocesses timed from start to exit, their process trees polled in /proc (memory,
CPU). Extraction quality: bench/extract.py's quality().
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # else bench/tokenize.py, bench/filters.py shadow stdlib tokenize and filters/
sys.path.insert(1, str(REPO / "tests" / "data"))
SHARED = REPO.parent / "shared" / "corpus" / "pages" / "trafilatura"
MB = 2**20


# -- input ----------------------------------------------------------------------------------------

def near_copy(html: bytes) -> tuple[bytes, bool]:
    """The page with the middle word cut from its first two long <p> texts (other bytes unchanged)."""
    edits = 0

    def cut(m: re.Match) -> str:
        nonlocal edits
        words = m.group(2).split(" ")
        if edits >= 2 or len(words) < 20:
            return m.group(0)
        edits += 1
        return m.group(1) + " ".join(words[:len(words) // 2] + words[len(words) // 2 + 1:])

    text = re.sub(r"(<p\b[^>]*>)([^<]{120,})", cut, html.decode("latin-1"))  # latin-1: bytes round-trip
    return text.encode("latin-1"), edits > 0


def response(url: str, html: bytes) -> list[bytes]:
    """make_fixtures' request + response + metadata; the response gets CommonCrawl's sniffed payload
    type (datatrove's reader trusts it; without it libmagic decides, and skips some pages)."""
    from make_fixtures import response as fixture_response

    recs = fixture_response(url, html)
    recs[1] = recs[1].replace(b"WARC-Type: response\r\n",
                              b"WARC-Type: response\r\nWARC-Identified-Payload-Type: text/html\r\n", 1)
    return recs


def build_warcs(out: Path, pages: int, files: int, dup_rate: float) -> Counter:
    from make_fixtures import gz, warcinfo

    recs = sorted(json.loads((SHARED / "evaldata_records.json").read_text()), key=lambda r: r["file"])[:pages]
    parts: list[list[bytes]] = [[warcinfo(f"e2e-{f:03d}")] for f in range(files)]
    step = max(1, round(1 / dup_rate)) if dup_rate > 0 else 0
    facts: Counter = Counter(files=files)
    for i, r in enumerate(recs):
        url = r["url"] if "://" in r["url"] else "https://" + r["url"]
        with gzip.open(SHARED / "html" / (r["file"] + ".gz")) as fh:
            html = fh.read()
        parts[i % files] += response(url, html)
        facts["pages"] += 1
        if step and i % step == 0:
            if (i // step) % 2 == 0:
                parts[(i + 1) % files] += response(url.rstrip("/") + "?copy=1", html)
                facts["exact_copies"] += 1
            else:
                near, edited = near_copy(html)
                parts[(i + 1) % files] += response(url.rstrip("/") + "?near=1", near)
                facts["near_copies" if edited else "near_copies_unedited"] += 1
    out.mkdir(parents=True)
    for f, part in enumerate(parts):
        (out / f"e2e-{f:03d}.warc.gz").write_bytes(b"".join(gz(x) for x in part))
    facts["records"] = sum(len(p) for p in parts)
    facts["responses"] = (facts["records"] - files) // 3
    facts["bytes"] = sum(p.stat().st_size for p in out.glob("*.warc.gz"))
    return facts


# -- a process tree: wall, CPU, memory --------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class TreeMonitor(threading.Thread):
    """Polls every descendant of `root` 4x a second: per-process peak RSS (VmHWM) under a role
    name, the peak of the tree's summed PSS (pages shared by forks counted once), and CPU seconds
    (user + system; the last 0.25 s of a process that exits can be missed)."""

    def __init__(self, root: int, role) -> None:
        super().__init__(daemon=True)
        self.root, self.role = root, role
        self.peak: dict[int, tuple[str, int]] = {}
        self.cpu: dict[int, int] = {}
        self.total_pss = 0
        self.stop = threading.Event()

    def snapshot(self) -> None:
        parent, cpu = {}, {}
        for name in filter(str.isdigit, os.listdir("/proc")):
            stat = _read(f"/proc/{name}/stat")
            if stat:
                fields = stat[stat.rfind(")") + 2:].split()
                parent[int(name)], cpu[int(name)] = int(fields[1]), int(fields[11]) + int(fields[12])
        kids = defaultdict(list)
        for pid, pp in parent.items():
            kids[pp].append(pid)
        tree, todo = {}, [self.root]
        while todo:
            pid = todo.pop()
            tree[pid] = _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
            todo += kids.get(pid, [])
        pss = 0
        for pid in tree:
            hwm = re.search(r"VmHWM:\s+(\d+)", _read(f"/proc/{pid}/status"))
            if hwm:
                role = self.role(pid, self.root, tree, parent)
                self.cpu[pid] = max(self.cpu.get(pid, 0), cpu.get(pid, 0))
                self.peak[pid] = (role, max(self.peak.get(pid, ("", 0))[1], int(hwm.group(1)) * 1024))
                m = re.search(r"^Pss:\s+(\d+)", _read(f"/proc/{pid}/smaps_rollup"), re.MULTILINE)
                pss += int(m.group(1)) * 1024 if m else 0
        self.total_pss = max(self.total_pss, pss)

    def run(self) -> None:
        while not self.stop.is_set():
            self.snapshot()
            self.stop.wait(0.25)

    def by_role(self) -> dict[str, tuple[int, float]]:
        """role -> (processes, largest peak RSS in MB)."""
        roles = Counter(role for role, _ in self.peak.values())
        return {k: (n, max(rss for r, rss in self.peak.values() if r == k) / MB) for k, n in roles.items()}


def gristmill_role(pid: int, root: int, tree: dict, parent: dict) -> str:
    # Ray's per-node agents also call themselves "ray::DashboardAgent", "ray::RuntimeEnvAgent"
    worker = tree[pid].startswith("ray::") and not tree[pid].startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))
    return "driver" if pid == root else "worker" if worker else "ray system"


def datatrove_role(pid: int, root: int, tree: dict, parent: dict) -> str:
    up = [tree.get(parent.get(pid), ""), tree.get(parent.get(parent.get(pid)), "")]
    if pid == root or "forkserver" not in tree[pid]:
        return "driver" if pid == root else "executor manager"
    return "forkserver" if "forkserver" not in up[0] else "worker" if "forkserver" not in up[1] \
        else "extractor sandbox"


def run_tracked(cmd: list[str], log: Path, role) -> dict:
    """Run `cmd` in the repo: wall and CPU seconds, peak memory by role, load average before/after."""
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        # A private Ray temp dir: with another Ray cluster running on this machine (other
        # people's tests), an embedded ray.init() would find /tmp/ray/ray_current_cluster and
        # try to join that cluster instead of starting its own.
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="gme2e", dir="/tmp")
        p = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    mon = TreeMonitor(p.pid, role)
    mon.start()
    _, status, usage = os.wait4(p.pid, 0)   # max RSS of the child and the descendants reaped up the chain
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    mon.stop.set()
    mon.join()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}; the end of {log}:\n"
                         + "\n".join(log.read_text().splitlines()[-20:]))
    return {"wall": wall, "cpu": sum(mon.cpu.values()) / os.sysconf("SC_CLK_TCK"), "roles": mon.by_role(),
            "pss_mb": mon.total_pss / MB, "wait4_mb": usage.ru_maxrss / 1024,
            "load": (load0[0], os.getloadavg()[0])}


# -- gristmill ------------------------------------------------------------------------------------

def run_gristmill(warcs: Path, out: Path, workers: int, tokenize: bool, extra: str = "") -> dict:
    import pyarrow.parquet as pq

    cfg, log = out.with_suffix(".toml"), out.with_suffix(".log")
    cfg.write_text(f"[pipeline]\ntokenize = {str(tokenize).lower()}\n[dedup]\nkeep_work = true\n{extra}")
    r = run_tracked([sys.executable, "pipeline/run.py", "--input", f"bench={warcs}", "--output", str(out),
                     "--workers", str(workers), "--config", str(cfg)], log, gristmill_role)
    steps: dict[str, float] = defaultdict(float)   # the executor's "[label] n/n tasks done, Xs" lines
    # a global step's phases are labelled "[dedup bucket]", "[dedup star]", ...: summed under "dedup"
    for m in re.finditer(r"\[(\w+)(?: \w+)?\] (\d+)/(\d+) tasks done, ([\d.]+)s", log.read_text()):
        steps[m.group(1)] += float(m.group(4)) if m.group(2) == m.group(3) else 0.0
    docs = pq.ParquetDataset(sorted(map(str, (out / "manifests").glob("documents-*.parquet")))).read(
        columns=["record_type", "kept", "drop_stage", "drop_reason", "language"])
    rows = docs.to_pylist()
    stage_s: dict[str, float] = defaultdict(float)
    for p in (out / "manifests").glob("stages-*.parquet"):
        for s in pq.read_table(p).to_pylist() if p.name != "stages-dedup.parquet" else []:
            stage_s[s["stage"]] += s["seconds"]
    dedup = pq.read_table(out / "manifests" / "stages-dedup.parquet").to_pylist()[0]
    r.update(kept=sum(bool(x["kept"]) for x in rows), steps=dict(steps), stage_seconds=dict(stage_s),
             busy=sum(stage_s.values()), dedup=dedup, dedup_details=json.loads(dedup["details"] or "{}"),
             summary_bytes=docs.select(["kept", "language"]).nbytes / docs.num_rows,
             langs=Counter(x["language"] for x in rows if x["kept"]),
             early=sum(x["drop_reason"] == "cascade_language_not_kept" for x in rows),
             drops=Counter(x["drop_stage"] for x in rows if x["record_type"] == "response" and not x["kept"]))
    return r


def du(path: Path, pattern: str = "**/*") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file()) if path.exists() else 0


def scale_inputs(out: Path, g: dict) -> dict:
    """Bytes per record / document of the full run's work dir and outputs, and what a tokenize task
    returns to the driver per document."""
    import numpy as np

    from pipeline.tokens import TokenizeConfig, prepare_tokenizer, tokenize_shard

    work, d = next((out / "_work").iterdir()), g["dedup_details"]
    edges: Counter = Counter()
    for p in (work / "dedup" / "edges").glob("*.npy"):
        kind = "exact" if int(p.stem) >= d["bands"] * d["partitions"] else "near"
        edges[kind] += np.load(p, mmap_mode="r").shape[0]
    cfg, probe, shuffle = TokenizeConfig(), str(out / "tok-probe"), work / "dedup" / "shuffle"
    first = str(min((out / "curated").glob("*.parquet")))
    res = tokenize_shard(first, probe, cfg, prepare_tokenizer(cfg, probe))
    return {"records": du(work / "records"), "kept": du(work / "kept"), "shuffle": du(shuffle),
            "shuffle_records": sum(np.load(p, mmap_mode="r").shape[0] for p in shuffle.glob("*[0-9].npy")),
            "groups": (d["bands"] + 1) * d["partitions"], "edges": dict(edges),
            "curated": du(out / "curated"),
            "tokens": du(out / "tokens", "bench/*.bin"), "manifests": du(out / "manifests", "documents-*"),
            "tok_result": len(pickle.dumps(res)) / max(len(res.documents), 1)}


# -- datatrove: runs in a child process (python bench/e2e.py --datatrove-child DIR ...) -----------

def _no_network(data=None, rank: int = 0, world_size: int = 1):
    """First step of every pipeline: in this process, log to $E2E_NET_LOG and refuse non-local connects."""
    import socket

    if not getattr(socket.socket, "_e2e_guard", False):
        connect = socket.socket.connect

        def guarded(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
                with open(os.environ["E2E_NET_LOG"], "a") as f:
                    f.write(f"{os.getpid()} {address}\n")
                raise OSError(f"bench/e2e.py: network disabled, refused {address}")
            return connect(self, address)

        socket.socket.connect, socket.socket._e2e_guard = guarded, True
    return data


def fineweb_filters() -> list:
    """FineWeb's URLFilter -> Trafilatura -> LanguageFilter -> Gopher x2 -> C4 -> FineWeb, offline."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.utils.lid import FT176LID
    from tldextract import TLDExtract

    from filters.langid import MODEL_PATH

    class LocalFT176(FT176LID):
        """The ft176 backend on our lid.176.ftz, loaded in each worker on first use (a loaded
        fastText model cannot be pickled to the executor's processes)."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(str(MODEL_PATH))
            return self._model

    url = URLFilter()
    url.tldextractor = TLDExtract(suffix_list_urls=())   # the bundled public-suffix snapshot
    lang = LanguageFilter()
    lang.model = LocalFT176(None)
    return [url, Trafilatura(favour_precision=True), lang, GopherRepetitionFilter(), GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]


def datatrove_setup(doc: dict) -> dict[str, float]:
    """Per-process setup of each filter (block lists, tokenizers, model: loaded on the first
    document): a fresh filter's first call on `doc` minus its second."""
    from datatrove.data import Document

    out = {}
    for step in [s for s in fineweb_filters() if hasattr(s, "filter")]:
        times = []
        for _ in range(2):
            d = Document(text=doc["text"], id="probe", metadata=dict(doc["metadata"]))
            t0 = time.perf_counter()
            step.filter(d)
            times.append(time.perf_counter() - t0)
        out[step.name] = times[0] - times[1]
    return out


def datatrove_child(work: Path, warcs: Path, tasks: int, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    os.environ["E2E_NET_LOG"] = str(work / "network.log")
    _no_network()
    mh = MinhashConfig(num_buckets=14, hashes_per_bucket=8, n_grams=5)   # FineWeb's; 64-bit hashes (default)
    d = {k: str(work / k) for k in ("filtered", "sigs", "buckets", "remove", "deduped")}
    reader = WarcReader(str(warcs), glob_pattern="*.warc.gz")
    plans = {
        "filter": ([reader, *fineweb_filters(), JsonlWriter(d["filtered"])], tasks, "filtered"),
        "signatures": ([JsonlReader(d["filtered"]), MinhashDedupSignature(d["sigs"], config=mh)], tasks,
                       "sigs"),
        "buckets": ([MinhashDedupBuckets(d["sigs"], d["buckets"], config=mh)], mh.num_buckets, "buckets"),
        "cluster": ([MinhashDedupCluster(d["buckets"], d["remove"], config=mh)], 1, "remove"),
        "dedup_filter": ([JsonlReader(d["filtered"]), MinhashDedupFilter(d["remove"]), PIIFormatter(),
                          JsonlWriter(d["deduped"])], tasks, "deduped"),
    }
    out: dict = {"steps": {}, "failures": {}}
    for name, (pipeline, n, folder) in plans.items():
        logs = work / "logs" / name
        t0 = time.perf_counter()
        try:
            LocalPipelineExecutor([_no_network, *pipeline], tasks=n, workers=min(workers, n),
                                  logging_dir=str(logs)).run()
        except Exception as exc:  # noqa: BLE001 - a task that raised comes out of the pool: report it
            out["failures"][name] = f"{type(exc).__name__}: {exc}"
        done = len(list((logs / "completions").glob("*")))
        if done != n:
            out["failures"].setdefault(name, f"{done} of {n} tasks completed")
        stats = json.loads((logs / "stats.json").read_text()) if (logs / "stats.json").exists() else []
        out["steps"][name] = {"seconds": time.perf_counter() - t0, "tasks": n, "stats": stats,
                              "bytes": du(Path(d[folder]))}

    def docs(key: str) -> list[dict]:
        rows = []
        for p in Path(d[key]).glob("*.jsonl.gz"):
            with gzip.open(p, "rt") as fh:
                rows += [json.loads(line) for line in fh]
        return rows

    kept, net = docs("deduped"), work / "network.log"
    out.update(filtered=len(docs("filtered")), kept=len(kept),
               probe=max(kept, key=lambda x: len(x["text"]), default=None),
               langs=Counter(x["metadata"].get("language") for x in kept),
               network=net.read_text().splitlines() if net.exists() else [])
    (work / "summary.json").write_text(json.dumps(out))


def run_datatrove(warcs: Path, work: Path, tasks: int, workers: int) -> dict:
    work.mkdir(parents=True)
    r = run_tracked([sys.executable, "bench/e2e.py", "--datatrove-child", str(work), "--warcs", str(warcs),
                     "--files", str(tasks), "--workers", str(workers)], work / "run.log", datatrove_role)
    r.update(json.loads((work / "summary.json").read_text()))
    r["langs"] = Counter(r["langs"])
    return r


# -- report ---------------------------------------------------------------------------------------

def _n(v) -> float:
    return v.get("total", 0) if isinstance(v, dict) else (v or 0)


def report(f: Counter, w: int, dt: dict, g: dict, g_nt: dict, g1: dict, s: dict | None,
           en: dict[str, dict]) -> None:
    runs = [("datatrove FineWeb + MinHash + PII", w, dt), ("gristmill, all steps", w, g),
            ("gristmill, tokenize = false", w, g_nt), ("gristmill, all steps", 1, g1),
            *[(f"gristmill, keep en, {mode}", w, r) for mode, r in en.items()]]
    print(f"\n{'run':<34}{'W':>2}{'wall s':>7}{'CPU s':>7}{'resp/s/core':>12}{'rec/s/core':>11}"
          f"{'resp/CPU s':>11}{'kept':>5}{'worker MB':>10}{'tree PSS MB':>12}{'wait4 MB':>9}{'load':>10}")
    for name, k, r in runs:
        print(f"{name:<34}{k:>2}{r['wall']:>7.1f}{r['cpu']:>7.1f}{f['responses'] / r['wall'] / k:>12.2f}"
              f"{f['records'] / r['wall'] / k:>11.2f}{f['responses'] / r['cpu']:>11.2f}{r['kept']:>5}"
              f"{r['roles'].get('worker', (0, 0))[1]:>10.0f}{r['pss_mb']:>12.0f}{r['wait4_mb']:>9.0f}"
              f"{r['load'][0]:>5.1f}/{r['load'][1]:.1f}")
    for name, k, r in runs[:2]:
        print(f"  {name} (W={k}), peak RSS by role: "
              + ", ".join(f"{role} x{n} {mb:.0f} MB" for role, (n, mb) in sorted(r["roles"].items())))
    print(f"ratio gristmill / datatrove, docs/s per core (wall): all steps {dt['wall'] / g['wall']:.2f}x, "
          f"without tokenize {dt['wall'] / g_nt['wall']:.2f}x; by CPU seconds of the process trees: "
          f"{dt['cpu'] / g['cpu']:.2f}x and {dt['cpu'] / g_nt['cpu']:.2f}x")
    for mode, r in en.items():
        print(f"ratio with [langid] keep = [\"en\"], [extract] mode = {mode} (all steps): wall "
              f"{dt['wall'] / r['wall']:.2f}x, CPU {dt['cpu'] / r['cpu']:.2f}x; {r['early']} pages dropped before "
              f"trafilatura; kept {r['kept']} ({dict(r['langs'].most_common(4))}); extract_v1 "
              f"{r['stage_seconds'].get('extract_v1', 0):.1f}s of {r['busy']:.1f}s in stages")
    if en and not next(iter(en.values()))["early"]:
        print("  (no page was dropped before trafilatura: the cascade needs Extract.from_config, which "
              "pipeline/registry.build_stages does not call yet)")
    fs = {x["name"]: (x["time_stats"], x["stats"]) for x in dt["steps"]["filter"]["stats"]}
    busy, n = sum(t.get("total", 0) for t, _ in fs.values()), dt["steps"]["filter"]["tasks"]
    setup, ours = sum(dt["setup"].values()), g["busy"]
    parts = ", ".join(f"{k.split()[-1]} {v:.2f}s" for k, v in dt["setup"].items() if v > 0.05)
    print(f"per-document chain, seconds inside the steps (gristmill stages-*.parquet; datatrove's step "
          f"totals): {ours:.1f} vs {busy:.1f} = {busy / ours:.2f}x; less datatrove's per-task setup "
          f"({setup:.1f}s x {n} tasks: {parts}): {busy - setup * n:.1f}s = {(busy - setup * n) / ours:.2f}x")
    rest = {x: x_["wall"] - sum(x_["steps"].values()) for x, x_ in (("g1", g1), ("g", g))}
    per_step = ", ".join(f"{k} {g1['steps'][k]:.1f}/{g['steps'][k]:.1f}s = {g1['steps'][k] / (w * g['steps'][k]):.2f}"
                         for k in g["steps"] if g["steps"][k] > 0 and k in g1["steps"])
    print(f"scaling (gristmill, all steps): t1 / ({w} x t{w}) = {g1['wall'] / (w * g['wall']):.2f}; per step (W=1 / "
          f"W={w} wall): {per_step}, startup+driver+shutdown {rest['g1']:.1f}/{rest['g']:.1f}s = "
          f"{rest['g1'] / (w * rest['g']):.2f}; CPU s at W=1 / at W={w}: {g1['cpu'] / g['cpu']:.2f}")
    print(f"kept by language: gristmill {dict(g['langs'].most_common(8))}; "
          f"datatrove {dict(dt['langs'].most_common(8))}")

    steps = dict(g["steps"], **{"startup, driver, shutdown": g["wall"] - sum(g["steps"].values())})
    print(f"\ngristmill W={w} steps (wall of each Ray map): "
          + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))
    stages = sorted(g["stage_seconds"].items(), key=lambda x: -x[1])
    print("gristmill per-document stages (stages-*.parquet, seconds summed over shards): "
          + ", ".join(f"{k} {v:.2f}s ({100 * v / ours:.0f}%)" for k, v in stages)
          + f"; total {ours:.2f}s = {f['records'] / ours:.1f} records/s, {f['responses'] / ours:.2f} "
          f"responses/s per busy core (W=1 run: {g1['busy']:.2f}s = {f['responses'] / g1['busy']:.2f} "
          "responses/s)")
    try:  # the dedup step's details change with its implementation: report what is there
        d = g["dedup_details"]
        phases = ", ".join(f"{k} {v['seconds']:.3f}s ({v['tasks']} tasks, peak {v['peak_rss_mb']:.0f} MB)"
                           for k, v in d["phases"].items())
        print(f"gristmill dedup ({d['bands']} bands x {d['rows']} rows, {d['partitions']} partition): "
              f"{g['dedup']['docs_in']} docs, {d['exact_removed']} exact + {d['near_removed']} near removed, "
              f"{d['candidate_pairs']} candidate / {d['verified_pairs']} verified pairs, {d['clusters']} "
              f"clusters; phases: {phases}")
    except (KeyError, TypeError) as exc:
        print(f"gristmill dedup: {g['dedup'].get('docs_in')} docs in, {g['dedup'].get('dropped')} removed "
              f"(details not in the expected shape: {exc!r})")
    print("gristmill responses dropped, by stage: "
          + ", ".join(f"{k} {v}" for k, v in g["drops"].most_common()))

    print("\ndatatrove executors (wall): " + ", ".join(
        f"{k} {v['seconds']:.1f}s ({v['tasks']} tasks, {v['bytes'] / 1024:.0f} KiB out)"
        for k, v in dt["steps"].items()))
    print("datatrove filter steps: seconds summed over tasks, slowest document, docs in, dropped")
    for name, (t, st) in fs.items():
        extra = {k: _n(st[k]) for k in ("timeout", "broken_process", "clean_error") if k in st}
        print(f"  {name:<30}{t.get('total', 0):>7.2f}{t.get('max', 0):>7.2f}"
              f"{_n(st.get('total', st.get('documents'))):>6.0f}{_n(st.get('dropped')):>6.0f} {extra or ''}")
    print(f"  {dt['filtered']} docs after the filters, {dt['kept']} after MinHash dedup; executor failures: "
          f"{dt['failures'] or 'none'}; non-local connections: {len(dt['network'])}")

    if s is None:
        print("\nper-task figures for the scale-out arithmetic: not measured (see the error above)")
        return
    kept_in = g["dedup"]["docs_in"]
    print(f"\nper-task figures for the scale-out arithmetic (gristmill W={w}, all steps):\n"
          f"  {f['bytes'] / f['responses'] / 1024:.1f} KiB of WARC.gz per response; _work/records "
          f"{s['records'] / f['records']:.0f} B/record; _work/kept {s['kept'] / kept_in:.0f} B/kept doc; "
          f"curated {s['curated'] / g['kept']:.0f} B/doc; token .bin {s['tokens'] / g['kept']:.0f} B/doc; "
          f"documents manifests {s['manifests'] / f['records']:.0f} B/record; (kept, language) in memory "
          f"{g['summary_bytes']:.1f} B/record; a tokenize task's result pickled to the driver: "
          f"{s['tok_result']:.0f} B/doc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=990, help="real pages to use (at most 990)")
    ap.add_argument("--files", type=int, default=6, help="WARC files = tasks of both systems")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dup-rate", type=float, default=0.1, help="share of pages copied into another file")
    ap.add_argument("--quality-pages", type=int, default=990, help="0: skip the extraction-quality table")
    ap.add_argument("--datatrove-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--warcs", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.datatrove_child:
        return datatrove_child(args.datatrove_child, args.warcs, args.files, args.workers)
    if not SHARED.is_dir():
        raise SystemExit(f"needs the real pages at {SHARED}")
    w = args.workers
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="gristmill-e2e-") as tmp:
        tmp = Path(tmp)
        f = build_warcs(tmp / "warc", args.pages, args.files, args.dup_rate)
        print(f"input: {f['pages']} pages + {f['exact_copies']} exact and {f['near_copies']} near copies "
              f"({f['near_copies_unedited']} without a long <p>, so exact) = {f['responses']} responses, "
              f"{f['records']} records in {f['files']} WARC files, {f['bytes'] / MB:.1f} MB")
        dt = run_datatrove(tmp / "warc", tmp / "datatrove", args.files, w)
        g = run_gristmill(tmp / "warc", tmp / f"g{w}", w, tokenize=True)
        g_nt = run_gristmill(tmp / "warc", tmp / f"g{w}-notok", w, tokenize=False)
        g1 = run_gristmill(tmp / "warc", tmp / "g1", 1, tokenize=True)
        en = {mode: run_gristmill(tmp / "warc", tmp / f"g{w}-en-{mode}", w, tokenize=True,
                                  extra=f'[langid]\nkeep = ["en"]\n[extract]\nmode = "{mode}"\n')
              for mode in ("cascade", "trafilatura")}
        try:  # reads the work dir's layout, which the dedup and tokenize steps own
            scale = scale_inputs(tmp / f"g{w}", g)
        except Exception as exc:  # noqa: BLE001 - the comparison above must still be printed
            print(f"scale-out figures not measured: {type(exc).__name__}: {exc}")
            scale = None
    dt["setup"] = datatrove_setup(dt["probe"]) if dt["probe"] else {}
    # the raw results, so a report that fails on a changed manifest loses no measurement
    Path(tempfile.gettempdir(), "gristmill-e2e-last.json").write_text(json.dumps(
        {"input": f, "datatrove": dt, "g": g, "g_nt": g_nt, "g1": g1, "scale": scale, "en": en}, default=str))
    report(f, w, dt, g, g_nt, g1, scale, en)
    if args.quality_pages:
        spec = importlib.util.spec_from_file_location("bench_extract", REPO / "bench" / "extract.py")
        extract = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(extract)
        print(f"\nextraction quality: bench/extract.py quality() on {args.quality_pages} pages of "
              "trafilatura's evaluation set")
        print(f"{'settings':<52}{'with found':>11}{'without avoided':>16}{'precision':>10}{'F1':>7}")
        for r in extract.quality(args.quality_pages):
            print(f"{r['settings']:<52}{r['with_found']:>11.3f}{r['without_avoided']:>16.3f}"
                  f"{r['precision']:>10.3f}{r['f1']:>7.3f}")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
