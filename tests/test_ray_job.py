"""`ray start --head` on loopback, `ray job submit --working-dir .`, the manifests, `ray stop`.

Token auth: Ray >= 2.5x writes ~/.ray/auth_token on a local ray.init(); a plain `ray start` then
turns token auth on and a plain `ray job submit` fails with "Missing authentication token".
README's recipe sets RAY_AUTH_MODE=token for both commands; this test follows it in a fresh HOME
that already holds a token (the trap's state), and checks the plain submit does fail there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import FIXTURES, PYTHON, REPO, read_manifest

from pipeline.readers.warc import WarcReader

pytestmark = pytest.mark.ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    # Ray's socket paths live under --temp-dir and must stay under 107 bytes (AF_UNIX).
    ray_tmp = tempfile.mkdtemp(prefix="gm-ray-", dir="/tmp")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 64)  # as left by an earlier local ray.init()
    bin_dir = str(Path(PYTHON).parent)
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    port, dash = free_port(), free_port()
    ray = str(Path(bin_dir) / "ray")
    r = subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2",
                        "--disable-usage-stats", f"--temp-dir={ray_tmp}"],
                       env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    try:
        yield ray, env, f"http://127.0.0.1:{dash}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_job_submit_against_local_cluster(cluster, tmp_path):
    ray, env, address = cluster
    out = tmp_path / "out"
    plain = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    r = subprocess.run([ray, "job", "submit", "--address", address, "--", "python", "-c", "print(1)"],
                       env=plain, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert "authentication token" in (r.stdout + r.stderr).lower()  # the trap, as documented
    r = subprocess.run(
        [ray, "job", "submit", "--address", address, "--working-dir", ".", "--", "python", "pipeline/run.py",
         "--input", f"cc={FIXTURES / 'cc'}", "--input", f"zh={FIXTURES / 'zh'}", "--output", str(out), "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "succeeded" in r.stdout + r.stderr
    docs = read_manifest(out, "documents").to_pylist()
    expected = sum(1 for f in sorted((FIXTURES / "cc").iterdir()) + sorted((FIXTURES / "zh").iterdir())
                   for _ in WarcReader(str(f), "x"))
    assert len(docs) == expected
    seeds = [d for d in docs if d["record_type"] == "response" and (d["url"] or "").startswith("https://zh.example.cn/")]
    assert len(seeds) == 5 and all(d["language"] == "zh" for d in seeds)
    cc_zh = Counter(d["language"] for d in docs if d["collection"] == "cc" and d["record_type"] == "response")
    assert cc_zh["zh"] >= 10
    run = read_manifest(out, "run").to_pylist()
    assert {row["status"] for row in run} == {"ok"}
