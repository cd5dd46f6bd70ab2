"""gristmill's command line: plan the run, drive the steps, write the manifests.

Steps, data flowing one way (each a set of Ray tasks unless marked global):
  1. shards    every input file through its collection's per-document stages (pipeline/shard.py)
  2. cut       global: the quality model's top_fraction cut per collection (pipeline/quality_cut.py),
               only when a collection's plan asks for it
  3. dedup     global exact + MinHash LSH near-dedup over all kept documents (pipeline/dedup/)
  4. curate    kept minus cut and duplicates -> DIR/curated/<shard>.parquet
  5. tokenize  token shards per (source, shard), then the global mixture -> DIR/tokens/
  6. account   DIR/manifests/documents-<shard>.parquet: one row per record read
and DIR/manifests/run-<run_id>.parquet last. Every path may be a URL (pipeline/storage.py): with
input, work dir and output on s3:// a multi-node cluster needs no shared filesystem.
Exit codes: 0 ok (also when nothing survives: one warning names what is empty), 2 bad
usage/config/input or a declared mixture source that received nothing (manifests still written),
1 a shard that failed after Ray's retries or an input that could not be read (named on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from importlib import metadata

from pipeline import storage
from pipeline.config import CollectionPlan, Config, ConfigError, load_config
from pipeline.executor import REPO_ROOT, Executor, TaskFailures, cluster_cpus, connect_address
from pipeline.finalize import ShardPaths, account_shard, curate_shard
from pipeline.inputs import DEFAULT_PATHS_PREFIX, GLOBAL_STEP_NAMES, InputError, InputFile, resolve_inputs
from pipeline.manifest import RUN_SCHEMA, STAGES_SCHEMA, table_from_rows
from pipeline.shard import ShardTask, run_shard, stage_columns

log = logging.getLogger("gristmill")

# The demo: GPT-3's five sources from the bundled fixtures (see pipeline/demo.toml).
_DATA = REPO_ROOT / "tests" / "data"
DEMO_INPUTS = [f"cc={_DATA / 'warc'}", f"cc={_DATA / 'sources' / 'cc-copy'}",
               f"webtext={_DATA / 'sources' / 'webtext' / '*.jsonl.gz'}",
               *(f"{name}={_DATA / 'sources' / name}" for name in ("books1", "books2", "wiki"))]
DEMO_CONFIG = REPO_ROOT / "pipeline" / "demo.toml"
PACKAGES = ("gristmill", "pyarrow", "datatrove", "fastwarc", "trafilatura", "fasttext-numpy2-wheel", "ray",
            "datasketch", "tokenizers", "numpy", "torch", "fsspec", "s3fs")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="pipeline/run.py",
        description="Curate WARC, JSONL, Parquet, text and MediaWiki inputs into text, manifests and token "
                    "shards. With no arguments: the demo on the bundled fixture corpus, written under the "
                    "repository root.")
    p.add_argument("--input", action="append", metavar="[NAME=][FORMAT:]PATH",
                   help="a file, glob, directory, URL (s3://, gs://, https://) or *.paths[.gz] list; "
                        "repeatable. NAME= names the collection; FORMAT: (warc, jsonl, parquet, text, "
                        "mediawiki) overrides the choice by suffix.")
    p.add_argument("--paths-prefix", default=DEFAULT_PATHS_PREFIX,
                   help="joined to each relative line of a *.paths list (default: %(default)s; "
                        "s3://commoncrawl/ inside AWS)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N files of the resolved input list (try a dump on 10 files first)")
    p.add_argument("--output", metavar="DIR", help="output directory: local path or URL (s3://...)")
    p.add_argument("--config", metavar="FILE.toml", help="settings (defaults: see README)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel tasks (default: this machine's CPUs, or the cluster's when connected to "
                        "one; 0 = in this process, without Ray)")
    p.add_argument("--ray-address", default=None, help="connect to this Ray cluster (default: $RAY_ADDRESS, "
                                                       "else start an embedded one)")
    p.add_argument("--work-dir", default=None, help="intermediate files (default: DIR/_work); a local path or "
                                                     "URL every node can reach (s3:// on a cluster)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--report", action="store_true", help="also write DIR/report.html (pipeline/report.py)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return p.parse_args(argv)


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclasses.dataclass
class Plan:
    inputs: list[InputFile]
    output: str        # local absolute path or URL: every output is written there through storage
    work_dir: str
    config: Config
    workers: int
    address: str | None
    collections: dict[tuple[str, str], CollectionPlan]   # (collection, format) -> its plan
    report: bool = False

    @property
    def root(self) -> str:
        return self.output

    def plan_of(self, f: InputFile) -> CollectionPlan:
        return self.collections[(f.collection, f.format)]

    def describe(self) -> str:
        p = self.config.pipeline
        lines = [f"gristmill plan (config {self.config.source}, hash {self.config.hash})",
                 f"  inputs: {len(self.inputs)} file(s)"]
        lines += [f"    {f.shard_id:<40} {f.collection:<16} {f.format:<9} {storage.redact_text(f.path)}"
                  for f in self.inputs[:50]]
        if len(self.inputs) > 50:
            lines.append(f"    ... and {len(self.inputs) - 50} more")
        lines.append("  collections (format, kind: per-document stages):")
        for (name, fmt), cp in sorted(self.collections.items()):
            lines.append(f"    {name:<16} {fmt:<9} {cp.kind:<6} read -> {' -> '.join(cp.stages) or '(none)'}")
        steps = ["shards"] + (["quality_cut"] if self.needs_cut() else []) + (["dedup"] if p.dedup else []) + \
            ["curate"] + (["tokenize", "mixture"] if p.tokenize else []) + ["account"]
        where = f"Ray cluster at {self.address}" if self.address else ("this process" if self.workers == 0
                                                                      else "embedded Ray")
        lines += [f"  steps: {' -> '.join(steps)}", f"  workers: {self.workers} ({where})",
                  f"  output: {storage.redact_text(self.output)}", f"  work dir: {storage.redact_text(self.work_dir)}"]
        return "\n".join(lines)

    def needs_cut(self) -> bool:
        return any("quality_model" in cp.stages and cp.config["quality_model"].rule == "top_fraction"
                   for cp in self.collections.values())


def make_plan(args: argparse.Namespace) -> Plan:
    demo = not args.input
    config = load_config(args.config or (DEMO_CONFIG if demo else None))
    specs = args.input or DEMO_INPUTS
    inputs = resolve_inputs(specs, args.paths_prefix, args.limit)
    collections = {}
    for f in inputs:
        if (f.collection, f.format) not in collections:
            collections[(f.collection, f.format)] = config.for_collection(f.collection, f.format)
    unused = sorted(set(config.collections) - {f.collection for f in inputs})
    if unused:
        # A typo in [collections.NAME] would otherwise change nothing, silently. Not an error: one
        # config may serve runs over a subset of its collections.
        log.warning("%s: [collections.%s] match no --input (this run's collections: %s); their settings "
                    "are not used", config.source, "], [collections.".join(unused),
                    ", ".join(sorted({f.collection for f in inputs})))
    output = storage.normalize(args.output or str(REPO_ROOT))
    work_dir = storage.join(storage.normalize(args.work_dir) if args.work_dir else storage.join(output, "_work"),
                            config.hash)
    for flag, url in (("--output", output), ("--work-dir", work_dir)):
        problem = _unwritable(storage.local_path(url)) if storage.is_local(url) else None
        if problem:
            raise ConfigError(f"{flag} {url}: {problem}")
    address = connect_address(args.ray_address)
    if args.workers is not None:
        workers = args.workers
    elif address:
        workers = cluster_cpus(address)
    else:
        workers = os.cpu_count() or 1
    if workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    return Plan(inputs, output, work_dir, config, workers, address if workers else None, collections,
                args.report or not args.input)


def run(plan: Plan, argv: list[str]) -> int:
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    started = dt.datetime.now(dt.timezone.utc)
    cfg = plan.config
    cols = stage_columns(cp.config for cp in plan.collections.values())
    col_items = tuple(cols.items())
    tasks = [ShardTask(f.shard_id, f.path, f.collection, plan.work_dir, cfg, f.format, col_items) for f in plan.inputs]
    paths = [ShardPaths(f.shard_id, plan.work_dir, plan.root, cfg, col_items) for f in plan.inputs]
    names = [f.shard_id for f in plan.inputs]
    shard_results: dict[str, dict] = {}
    accounted: list[dict] = []
    failed: dict[str, str] = {}
    status = "ok"
    exit_code = 0
    totals = {"records": 0, "t0": time.monotonic()}

    def progress(result: dict) -> str:
        totals["records"] += result.get("records", 0)
        rate = totals["records"] / max(time.monotonic() - totals["t0"], 1e-9)
        return f"({totals['records']:,} records, {rate:,.0f} records/s)"

    empty_note = None
    with Executor(plan.workers, plan.address, cfg.pipeline.max_retries) as ex:
        try:
            for r in ex.map(run_shard, tasks, "shards", names, progress, costs=_input_sizes(plan.inputs)):
                shard_results[r["shard"]] = r
        except TaskFailures as exc:
            failed.update(exc.failures)
            status = "failed"
        good = [sp for sp in paths if sp.shard_id not in failed]
        try:
            if plan.needs_cut() and good:
                _quality_cut(ex, plan, good)
            if cfg.pipeline.dedup and good:
                _dedup(ex, plan, good)
            curated = ex.map(curate_shard, good, "curate", [sp.shard_id for sp in good])
            empty_note = _empty_collections(plan, curated)
            if cfg.pipeline.tokenize and good:
                note, exit_code = _tokenize(ex, plan, good)
                empty_note = "; ".join(n for n in (empty_note, note) if n) or None
            accounted = ex.map(account_shard, good, "account", [sp.shard_id for sp in good])
        except TaskFailures as exc:
            failed.update(exc.failures)
            status = "failed"
    unread = {s: r["read_failed"] for s, r in shard_results.items() if r.get("read_failed")}
    if unread and status == "ok":
        status = "read_failed"
    _write_run(plan, run_id, started, status, argv, shard_results, failed)
    if plan.report:
        _report(plan)
    if empty_note:
        log.warning("%s", empty_note)
    try:
        stale = _stale_outputs(plan, tokenized=bool(cfg.pipeline.tokenize and good))
    except Exception as exc:  # noqa: BLE001  (a listing that fails must not fail a finished run)
        log.warning("could not look for an earlier run's files in %s: %s", storage.redact_text(plan.root),
                    storage.redact_text(str(exc))[:200])
        stale = []
    if stale:
        shown = ", ".join(stale[:6]) + (f" (+{len(stale) - 6} more)" if len(stale) > 6 else "")
        log.warning("%s holds %d file(s) this run did not write, left by an earlier run into the same "
                    "--output: %s. They are not part of this run (a glob over curated/ or manifests/ "
                    "would mix them in); remove them, or give each run its own --output",
                    storage.redact_text(plan.root), len(stale), shown)
    if failed or unread:
        for shard, reason in sorted(unread.items()):
            print(f"gristmill: input {shard} could not be read to the end: {reason}", file=sys.stderr)
        if failed:
            print(f"gristmill: {len(failed)} shard(s) failed after retries: "
                  + "; ".join(f"{k} ({v})" for k, v in sorted(failed.items())), file=sys.stderr)
        return 1
    _summary(plan, accounted)
    return exit_code


def _stale_outputs(plan: Plan, tokenized: bool) -> list[str]:
    """Output files (relative to the output folder) that belong to inputs this run did not read,
    or token files this run's tokenize did not write: an earlier run's into the same --output.
    Named in a warning, never deleted: a quick `--limit 10` run into a full run's folder must not
    wipe its results."""
    ids = {f.shard_id for f in plan.inputs}
    out = []
    for url in storage.list_files(storage.join(plan.root, "curated"), recursive=False):
        name = storage.basename(url)
        if name.endswith(".parquet") and name[: -len(".parquet")] not in ids:
            out.append(f"curated/{name}")
    for url in storage.list_files(storage.join(plan.root, "manifests"), recursive=False):
        name = storage.basename(url)
        for prefix in ("documents-", "stages-"):
            shard = name[len(prefix): -len(".parquet")]
            if (name.startswith(prefix) and name.endswith(".parquet") and shard not in ids
                    and not (prefix == "stages-" and shard in GLOBAL_STEP_NAMES)):
                out.append(f"manifests/{name}")
    listing = storage.join(plan.root, "manifests", "shards.parquet")
    if tokenized and storage.exists(listing):
        written = set(storage.read_parquet(listing, columns=["path"]).column("path").to_pylist())
        tokens = storage.join(plan.root, "tokens")
        for url in storage.list_files(tokens):
            rel = "tokens/" + url[len(tokens):].lstrip("/")
            data = rel[: -len(".json")] + ".bin" if rel.endswith(".json") else rel
            if rel.count("/") >= 2 and data.endswith((".bin", ".idx")) and not rel.startswith("tokens/blend/") \
                    and data not in written:
                out.append(rel)
    return out


def _input_sizes(inputs: list[InputFile]) -> list[float] | None:
    """Local input sizes, to start the largest files first (an object store's would cost a
    request per file before any work starts: there the order stays as listed)."""
    if not all(storage.is_local(f.path) for f in inputs):
        return None
    return [float(os.path.getsize(f.path)) if os.path.exists(f.path) else 0.0 for f in inputs]


def _empty_collections(plan: Plan, curated: list[dict]) -> str | None:
    by_coll: dict[str, int] = {f.collection: 0 for f in plan.inputs}
    coll_of = {f.shard_id: f.collection for f in plan.inputs}
    for c in curated:
        by_coll[coll_of[c["shard"]]] += c["curated"]
    if not any(by_coll.values()):
        return "no document survived the stages: curated/ holds empty shards and no tokens were written"
    empty = sorted(k for k, v in by_coll.items() if v == 0)
    return f"collection(s) with no curated document: {', '.join(empty)}" if empty else None


def _quality_cut(ex: Executor, plan: Plan, good: list[ShardPaths]) -> None:
    from pipeline.quality_cut import run_top_fraction

    t0 = time.perf_counter()
    result = run_top_fraction([(sp.shard_id, sp.work("kept")) for sp in good],
                              storage.join(plan.work_dir, "quality_cut"), plan.config["quality_model"],
                              ex.map_fn("quality_cut"))
    row = {"stage": "quality_cut_v1", "shard": "*", "seconds": round(time.perf_counter() - t0, 3),
           "config_hash": plan.config.hash, **(result or {})}
    storage.write_parquet(storage.join(plan.root, "manifests", "stages-quality_cut.parquet"),
                          table_from_rows([row], STAGES_SCHEMA))


def _dedup(ex: Executor, plan: Plan, good: list[ShardPaths]) -> None:
    from pipeline.dedup import run_dedup

    t0 = time.perf_counter()
    result = run_dedup([(sp.shard_id, sp.kept) for sp in good], storage.join(plan.work_dir, "dedup"),
                       plan.config["dedup"], ex.map_fn("dedup"))
    row = {"stage": "dedup_v1", "shard": "*", "seconds": round(time.perf_counter() - t0, 3),
           "config_hash": plan.config.hash, **result.stage_row()}
    storage.write_parquet(storage.join(plan.root, "manifests", "stages-dedup.parquet"),
                          table_from_rows([row], STAGES_SCHEMA))


def _tokenize(ex: Executor, plan: Plan, good: list[ShardPaths]) -> tuple[str | None, int]:
    """Returns (a warning about what is empty or None, the exit code)."""
    from pipeline.mixture import MixtureError
    from pipeline.tokens import run_tokenize

    try:
        result = run_tokenize(ex, plan, good)
    except MixtureError as exc:  # e.g. a declared source that received nothing: manifests are written
        print(f"gristmill: error: {exc}", file=sys.stderr)
        return None, 2
    if result.empty:
        return "tokenize: no curated document, so no token was written", 0
    if result.empty_collections:
        return f"tokenize: collection(s) that reached no token: {', '.join(result.empty_collections)}", 0
    return None, 0


def _write_run(plan: Plan, run_id: str, started, status: str, argv: list[str],
               results: dict[str, dict], failed: dict[str, str]) -> None:
    ended = dt.datetime.now(dt.timezone.utc)
    common = {
        "run_id": run_id, "status": status, "started": started, "ended": ended,
        "argv": json.dumps(storage.redact(list(argv))),
        "workers": plan.workers, "stage_order": json.dumps(list(plan.config.pipeline.stages)),
        "config_json": json.dumps(storage.redact(plan.config.to_dict()), sort_keys=True, ensure_ascii=False),
        "config_hash": plan.config.hash, "versions": json.dumps(versions()),
    }
    rows = []
    for f in plan.inputs:
        r = results.get(f.shard_id, {})
        shard_status = "failed" if f.shard_id in failed else (
            "read_failed" if r.get("read_failed") else ("resumed" if r.get("skipped") else "ok"))
        rows.append({**common, "input_path": storage.redact_text(f.path), "input_collection": f.collection,
                     "input_bytes": r.get("input_bytes"), "input_sha256": r.get("input_sha256"),
                     "shard": f.shard_id, "shard_status": shard_status,
                     "error": failed.get(f.shard_id) or r.get("read_failed"), "input_format": f.format,
                     "collection_stages": json.dumps(list(plan.plan_of(f).stages))})
    storage.write_parquet(storage.join(plan.root, "manifests", f"run-{run_id}.parquet"),
                          table_from_rows(rows, RUN_SCHEMA))


def _report(plan: Plan) -> None:
    from pipeline.report import write_report

    if storage.is_local(plan.root):
        log.info("report: %s", write_report(plan.root))
        return
    # The report reads the manifests from a local folder: copy them, render, upload the page.
    tmp = tempfile.mkdtemp(prefix="gristmill-report-")
    try:
        storage.copy_tree(storage.join(plan.root, "manifests"), os.path.join(tmp, "manifests"))
        page = write_report(tmp)
        storage.write_bytes(storage.join(plan.root, "report.html"), page.read_bytes())
        log.info("report: %s", storage.join(plan.root, "report.html"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _summary(plan: Plan, accounted: list[dict]) -> None:
    # From the account tasks' counts: re-reading every documents manifest would cost gigabytes
    # on a full dump.
    n = sum(r["records"] for r in accounted)
    kept = sum(r["kept"] for r in accounted)
    print(f"gristmill: {n:,} records read, {kept:,} documents curated -> {storage.redact_text(plan.output)}")
    print(f"  manifests: {storage.join(plan.root, 'manifests')}/*.parquet  curated: {storage.join(plan.root, 'curated')}")


def _unwritable(path: str) -> str | None:
    """Why a local output folder cannot be made or written, found before any work (and without
    creating anything, so --dry-run stays free of side effects); None when it can."""
    p = os.path.abspath(path)
    while not os.path.lexists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        return f"{p} is a file, not a folder"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"no permission to write in {p}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        plan = make_plan(args)
    except (ConfigError, InputError) as exc:
        print(f"gristmill: error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(plan.describe())
        return 0
    log.info("%s", plan.describe())
    return run(plan, argv)
