"""Faults and determinism (issue 7): a killed worker, a killed and rerun driver, 1/2/4 workers.

All runs read the same corpus (4 WARCs of real pages from ../shared, big enough that a shard
task is still running when we kill it) and must give byte-identical outputs: curated parquet,
token files and manifests, except what times things (`stages.seconds`, `stages.worker`, the
per-phase timings in dedup's `details`) and the run manifest itself.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import PYTHON, REPO, shared

pytestmark = pytest.mark.ray
sys.path.insert(0, str(REPO / "tests" / "data"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from make_fixtures import gz, response, warcinfo

    base = shared("corpus/pages/trafilatura")
    recs = sorted(json.loads((base / "evaldata_records.json").read_text()), key=lambda r: r["file"])[:480]
    out = tmp_path_factory.mktemp("corpus")
    for k in range(4):
        records = [warcinfo(f"f{k}")]
        for r in recs[k::4]:
            url = r["url"] if "://" in r["url"] else "https://" + r["url"]
            records += response(url, gzip.open(base / "html" / (r["file"] + ".gz")).read())
        (out / f"part-{k}.warc.gz").write_bytes(b"".join(gz(x) for x in records))
    return out


def start(corpus: Path, out: Path, workers: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([PYTHON, str(REPO / "pipeline" / "run.py"), "--input", f"web={corpus}",
                             "--output", str(out), "--workers", str(workers), "-q"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: int = 600) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (out + err)[-4000:]


def fingerprint(out: Path) -> dict[str, str]:
    """sha256 of every output file; stages and run manifests compared without their timing columns."""
    prints = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or rel.startswith("_work/") or rel.startswith("manifests/run-"):
            continue
        if rel.startswith("manifests/stages"):
            rows = pq.read_table(p).drop_columns(["seconds", "worker"]).to_pylist()
            for row in rows:  # dedup's details carry per-phase seconds and peak RSS: timings too
                details = json.loads(row["details"] or "{}")
                details.pop("phases", None)
                row["details"] = details
            prints[rel] = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
        else:
            prints[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    assert any(k.startswith("curated/") for k in prints) and any(k.startswith("manifests/documents") for k in prints)
    return prints


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("ref")
    finish(start(corpus, out, 2))
    return fingerprint(out)


def shard_workers() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::run_shard"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_worker_killed_mid_run_gives_identical_outputs(corpus, reference, tmp_path):
    proc = start(corpus, tmp_path, 2)
    killed, deadline = None, time.monotonic() + 300
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        pids = shard_workers()
        if pids:
            time.sleep(0.5)  # let it get into the shard
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    assert killed, "never saw a shard task running"
    finish(proc)
    assert fingerprint(tmp_path) == reference


def test_driver_killed_then_rerun_finishes_only_the_rest(corpus, reference, tmp_path):
    proc = start(corpus, tmp_path, 1)
    stats = tmp_path / "_work"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(stats.glob("*/stats/*.parquet"))) >= 1:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started: a crash
    proc.wait()
    # Ray's workers are not in the driver's process group: one in the middle of a shard can
    # finish it (and write its stats) after the kill, before it sees its raylet is gone. What
    # the rerun must resume is what is on disk once they are gone.
    deadline = time.monotonic() + 60
    while shard_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    done_before = {p.stem for p in stats.glob("*/stats/*.parquet")}
    assert 1 <= len(done_before) < 4
    finish(start(corpus, tmp_path, 2))
    assert fingerprint(tmp_path) == reference
    runs = [pq.read_table(p).to_pylist() for p in (tmp_path / "manifests").glob("run-*.parquet")]
    (last,) = runs
    assert {r["shard"] for r in last if r["shard_status"] == "resumed"} == done_before


@pytest.mark.parametrize("workers", [1, 4])
def test_worker_count_does_not_change_outputs(corpus, reference, tmp_path, workers):
    finish(start(corpus, tmp_path, workers))
    assert fingerprint(tmp_path) == reference
