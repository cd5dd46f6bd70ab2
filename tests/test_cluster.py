"""A multi-node Ray cluster that shares nothing but object storage, against a single-process run.

`ray.cluster_utils.Cluster` starts a head (no CPUs: it schedules, it does not work) and two
worker nodes, each its own raylet, object store and temp dir. The input is a CommonCrawl-style
`warc.paths.gz` naming fixture WARCs relative to a prefix, as a crawl publishes it:
  (a) on S3 (moto's server on 127.0.0.1: a real S3 endpoint), with --work-dir and --output on S3;
  (b) on an HTTP server that answers 503 and resets connections on a share of requests;
  (c) as (a), with a worker node removed while it runs a task.
Each must exit 0 and give what `--workers 0` gives on the same files read from local disk:
curated parquet, token files and Megatron parts byte for byte, manifests equal row for row
but for timings, paths, hashes of remote inputs (not computed: a second download) and retries.
The pipeline runs as a user runs it: `python pipeline/run.py` in a subprocess, its cwd an empty
folder that must stay empty (nothing may pass through a local folder).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, PYTHON, REPO
from http_server import FlakyHTTPServer
from services import BUCKET, MotoS3, fresh_filesystems

from pipeline import storage

pytestmark = pytest.mark.ray

FILES = ["cc/CC-MAIN-2020-34-excerpt.warc.gz", "cc/whirlwind.warc.wet.gz", "web/pages-000.warc.gz",
         "web/pages-001.warc.gz"]
# Small tasks: small stage batches, small dedup partitions; everything else as a user gets it.
CONFIG = """
[pipeline]
batch_size = 32

[dedup]
partitions = 2
"""
# Differ by design between a local and a remote or cluster run; everything else must be equal.
VOLATILE = {"started", "ended", "run_id", "worker", "argv", "workers", "input_path", "warc_path",
            "input_sha256", "retries", "versions"}


def volatile(key: str) -> bool:
    """Timings (`seconds`, `cpu_seconds`, ...) and memory peaks (`peak_rss_mb`, ...) vary too."""
    return key in VOLATILE or "seconds" in key or key.endswith("_mb")


JSON_COLUMNS = ("details",)  # JSON text whose timings and memory peaks vary as well


def _paths_gz() -> bytes:
    return gzip.compress(("\n".join(FILES) + "\n").encode(), mtime=0)


def snapshot(root: str) -> dict[str, object]:
    """Every output file below `root` (the work dir aside): parquet as rows minus volatile()
    columns, and kept as bytes too where no column is volatile; other files as bytes."""
    out: dict[str, object] = {}
    for url in storage.list_files(root):
        rel = url[len(root.rstrip("/")) + 1:]
        if rel.startswith("_work/") or rel == "report.html":
            continue
        data = storage.read_bytes(url)
        if rel.startswith("manifests/run-"):
            rel = "manifests/run.parquet"  # its name holds the run id
        if rel.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(data))
            dropped = [c for c in table.column_names if volatile(c)]
            rows = table.drop_columns(dropped).to_pylist()
            for row in rows:
                for c in JSON_COLUMNS:
                    if row.get(c):
                        row[c] = _strip(json.loads(row[c]))
            out[rel] = rows
            if not dropped:
                out[rel + " (bytes)"] = data
        elif rel.endswith(".json"):
            out[rel] = _strip(json.loads(data))
        else:
            out[rel] = data
    return out


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not volatile(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in sorted(want):
        if isinstance(want[k], list) and got[k] != want[k]:
            assert len(got[k]) == len(want[k]), f"{k}: {len(got[k])} rows, {len(want[k])} in the local run"
            for g, w in zip(got[k], want[k], strict=True):
                diff = {c: (g.get(c), w.get(c)) for c in set(g) | set(w) if g.get(c) != w.get(c)}
                assert not diff, f"{k} differs from the local single-process run (got, local): {diff}"
        assert got[k] == want[k], f"{k} differs from the local single-process run"
    for kind in ("curated/", "tokens/", "tokens/megatron/"):  # nothing vacuous: each step wrote files
        assert any(k.startswith(kind) for k in want), kind


def run(args: list[str], env: dict, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run([PYTHON, str(REPO / "pipeline" / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert not any(cwd.iterdir()), f"files appeared in the driver's cwd: {list(cwd.iterdir())}"
    return r


@pytest.fixture(scope="module")
def env():
    """The standard AWS environment pointing at moto, for the driver AND for the nodes' workers
    (raylets inherit the environment they start in, so it is set before the cluster starts)."""
    server = MotoS3()
    # A private RAY_TMPDIR: Cluster() records its address in $RAY_TMPDIR/ray/ray_current_cluster,
    # and in the shared /tmp/ray any other bare ray.init() on this machine would attach to it.
    ray_tmpdir = tempfile.mkdtemp(prefix="gm-rt-", dir="/tmp")
    os.makedirs(os.path.join(ray_tmpdir, "ray"))
    with pytest.MonkeyPatch.context() as mp:
        extra = {**server.env(), "RAY_AUTH_MODE": "disabled", "GRISTMILL_IO_BACKOFF": "0.05",
                 "RAY_DEDUP_LOGS": "0", "RAY_TMPDIR": ray_tmpdir}
        for k, v in extra.items():
            mp.setenv(k, v)
        mp.delenv("RAY_ADDRESS", raising=False)
        fresh_filesystems()
        yield server, {**os.environ}
        fresh_filesystems()
    server.stop()
    shutil.rmtree(ray_tmpdir, ignore_errors=True)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "small.toml"
    p.write_text(CONFIG)
    return p


@pytest.fixture(scope="module")
def local(env, config, tmp_path_factory) -> dict:
    """The reference: one process, no Ray, the same paths list resolved against local disk."""
    d = tmp_path_factory.mktemp("local")
    (d / "warc.paths.gz").write_bytes(_paths_gz())
    cwd = d / "cwd"
    cwd.mkdir()
    run(["--input", str(d / "warc.paths.gz"), "--paths-prefix", str(FIXTURES), "--output", str(d / "out"),
         "--config", str(config), "--workers", "0"], env[1], cwd)
    return snapshot(str(d / "out"))


@pytest.fixture(scope="module")
def cluster(env):
    from ray.cluster_utils import Cluster

    # Ray's socket paths live under the temp dir and must stay under 107 bytes (AF_UNIX).
    dirs = [tempfile.mkdtemp(prefix=f"gm-n{i}-", dir="/tmp") for i in range(4)]
    # The nodes take the machine's address, not 127.0.0.1: on Linux a driver's ray.init() turns
    # 127.0.0.1 into that address (services.resolve_ip_for_localhost) and would find no GCS there.
    small = {"object_store_memory": 80 * 2**20}
    c = None
    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "temp_dir": dirs[0],
                                                          "include_dashboard": False, **small})
        c.spare_dir, c.small = dirs[3], small  # type: ignore[attr-defined]
        for d in dirs[1:3]:
            c.add_node(num_cpus=1, temp_dir=d, **small)
        c.wait_for_nodes()
        yield c
    finally:
        if c is not None:
            c.shutdown()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def s3_input(env) -> str:
    """The fixture WARCs and their warc.paths.gz on a fresh S3 bucket; returns the bucket URL."""
    server, _ = env
    server.reset()
    fresh_filesystems()
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    for rel in FILES:
        client.put_object(Bucket=BUCKET, Key=f"crawl/{rel}", Body=(FIXTURES / rel).read_bytes())
    client.put_object(Bucket=BUCKET, Key="crawl/warc.paths.gz", Body=_paths_gz())
    return f"s3://{BUCKET}"


def test_s3_to_s3_on_a_multi_node_cluster(cluster, env, config, local, s3_input, tmp_path):
    _, e = env
    args = ["--input", f"{s3_input}/crawl/warc.paths.gz", "--paths-prefix", f"{s3_input}/crawl/",
            "--work-dir", f"{s3_input}/work", "--output", f"{s3_input}/out", "--config", str(config),
            "--ray-address", cluster.address]
    dry = run([*args, "--dry-run"], e, tmp_path)
    assert f"workers: 2 (Ray cluster at {cluster.address})" in dry.stdout  # the cluster's CPUs
    run(args, e, tmp_path)
    assert_same(snapshot(f"{s3_input}/out"), local)
    keys = env[0].keys()
    assert any(k.startswith("work/") and "/stats/" in k for k in keys) and not any(k.startswith("out/_work") for k in keys)
    assert not [k for k in keys if ".tmp-" in k]  # every atomic write finished its move


def test_flaky_https_input_on_a_cluster(cluster, env, config, local, s3_input, tmp_path):
    _, e = env
    served = tmp_path / "served"
    for rel in FILES:
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / rel, served / rel)
    (served / "crawl-data").mkdir()
    (served / "crawl-data" / "warc.paths.gz").write_bytes(_paths_gz())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with FlakyHTTPServer(served, share=0.2) as srv:
        run(["--input", srv.url("crawl-data/warc.paths.gz"), "--paths-prefix", srv.base + "/",
             "--work-dir", f"{s3_input}/work", "--output", f"{s3_input}/out", "--config", str(config),
             "--ray-address", cluster.address], e, cwd)
    got = snapshot(f"{s3_input}/out")
    assert_same(got, local)
    assert srv.stats["fault_503"] > 0 and srv.stats["fault_reset"] > 0
    stages = [r for u in storage.glob(f"{s3_input}/out/manifests/stages-*.parquet")
              for r in storage.read_parquet(u).to_pylist()]
    retries = sum(r["retries"] or 0 for r in stages if r["stage"] == "read_v1")
    assert retries > 0, "faults were served but no read counted a retry"


def _running_task(node) -> str | None:
    """The name of a task a worker of `node` is running (its process title `ray::NAME`), if any."""
    raylet = node.all_processes["raylet"][0].process.pid
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != raylet:
                continue
            title = (stat.parent / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        # A task's worker is titled after its function (`ray::run_shard`); Ray's own processes
        # under the raylet are CamelCase (`ray::IDLE`, `ray::DashboardAgent`, ...).
        if re.match(r"ray::[a-z_]", title):
            return title
    return None


def test_worker_node_removed_mid_run(cluster, env, config, local, s3_input, tmp_path):
    _, e = env
    doomed = cluster.add_node(num_cpus=1, temp_dir=cluster.spare_dir, **cluster.small)
    cluster.wait_for_nodes()
    args = ["--input", f"{s3_input}/crawl/warc.paths.gz", "--paths-prefix", f"{s3_input}/crawl/",
            "--work-dir", f"{s3_input}/work", "--output", f"{s3_input}/out", "--config", str(config),
            "--ray-address", cluster.address]
    proc = subprocess.Popen([PYTHON, str(REPO / "pipeline" / "run.py"), *args], cwd=tmp_path, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed_during = None
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            killed_during = _running_task(doomed)
            if killed_during:
                cluster.remove_node(doomed, allow_graceful=False)
                break
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        if doomed in cluster.worker_nodes:
            cluster.remove_node(doomed)
    assert killed_during, "the node never ran a task before the job ended: nothing was tested"
    print(f"removed a worker node while it ran {killed_during}")  # shown with -rP
    assert proc.returncode == 0, out[-6000:]
    assert_same(snapshot(f"{s3_input}/out"), local)
