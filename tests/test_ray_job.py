"""README's cluster recipe, run as written, from both states a user's machine can be in.

Ray >= 2.5x keeps a token in ~/.ray/auth_token. Two traps:
  - fresh machine (no token): `RAY_AUTH_MODE=token ray start --head` fails ("no authentication
    token was found");
  - after any local `ray.init()` (which writes the token): a plain `ray start` turns token auth
    on and a plain `ray job submit` fails ("Missing authentication token").
README's recipe (`ray get-auth-token --generate`, then RAY_AUTH_MODE=token for both commands)
must work from both. The test reads the recipe from README.md itself, so the two cannot drift,
and runs it in a throwaway HOME (the real ~/.ray is never touched). The only changes to it: free
ports and a private --temp-dir for `ray start` (other Ray clusters may run on this machine),
the fixture inputs for `run.py`, and the processes stopped by id instead of `ray stop` (which
would stop every Ray on the machine, other people's included).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import FIXTURES, PYTHON, REPO, read_manifest

from pipeline.readers.warc import WarcReader

pytestmark = pytest.mark.ray

BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_recipe() -> list[str]:
    """The commands of the first `sh` block under "Running on a Ray cluster", one per entry."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Running on a Ray cluster\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return [" ".join(line.split("#", 1)[0].split()) for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_readme_recipe_is_the_one_tested():
    steps = readme_recipe()
    assert [s.split()[:2] for s in steps] == [["ray", "get-auth-token"], ["export", "RAY_AUTH_MODE=token"],
                                              ["ray", "start"], ["ray", "job"], ["ray", "stop"]], steps
    assert "--generate" in steps[0].split()


def _ray_processes(marker: str) -> list[int]:
    """Processes whose command line names `marker` (our private temp dir), and their descendants
    (workers retitle themselves `ray::...` and lose it)."""
    parent: dict[int, int] = {}
    found = set()
    for d in Path("/proc").glob("[0-9]*"):
        try:
            parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if marker.encode() in (d / "cmdline").read_bytes():
                found.add(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    grew = True
    while grew:
        kids = {p for p, pp in parent.items() if pp in found} - found
        found |= kids
        grew = bool(kids)
    return sorted(found - {os.getpid()})


def _stop(marker: str) -> None:
    """`ray stop`, but only for the cluster this test started."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        pids = _ray_processes(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _ray_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not _ray_processes(marker), "Ray processes survived SIGKILL"


def _sh(line: str, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, cwd=REPO, **kw)


def _make_trap(home: Path, env: dict) -> None:
    """What a notebook's `ray.init()` leaves behind: a local Ray with RAY_AUTH_MODE unset."""
    tmp = tempfile.mkdtemp(prefix="gm-trap-", dir="/tmp")
    code = (f"import ray; ray.init(num_cpus=1, include_dashboard=False, _temp_dir={tmp!r}); "
            "print(ray.cluster_resources()['CPU']); ray.shutdown()")
    plain = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    try:
        r = subprocess.run([PYTHON, "-c", code], env=plain, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    finally:
        _stop(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    assert (home / ".ray" / "auth_token").is_file(), "a local ray.init() no longer writes the token: README is stale"


@pytest.fixture(params=["fresh", "after_trap"])
def cluster(request, tmp_path):
    """The recipe up to `ray job submit`, from a fresh HOME or one a local ray.init() has used."""
    # Ray's socket paths live under --temp-dir and must stay under 107 bytes (AF_UNIX).
    ray_tmp = tempfile.mkdtemp(prefix="gm-ray-", dir="/tmp")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PATH=f"{BIN}:{os.environ['PATH']}")
    token = home / ".ray" / "auth_token"
    if request.param == "after_trap":
        _make_trap(home, env)
    before = token.read_text() if token.exists() else None
    dash = free_port()
    extra = (f" --port={free_port()} --dashboard-port={dash} --ray-client-server-port={free_port()}"
             f" --dashboard-agent-listen-port={free_port()} --num-cpus=2 --disable-usage-stats --temp-dir={ray_tmp}")
    steps = readme_recipe()
    try:
        if request.param == "fresh":
            # The trap of a fresh machine: token mode without a token.
            r = _sh(f"RAY_AUTH_MODE=token {steps[2]}{extra}", env, timeout=180)
            assert r.returncode != 0 and "no authentication token was found" in (r.stdout + r.stderr).lower(), \
                (r.stdout + r.stderr)[-3000:]
            _stop(ray_tmp)
        for step in steps[:3]:
            if step.startswith("export "):
                for assignment in shlex.split(step)[1:]:
                    k, _, v = assignment.partition("=")
                    env[k] = v
                continue
            r = _sh(step + (extra if step.startswith("ray start") else ""), env, timeout=180)
            assert r.returncode == 0, f"{step}: {(r.stdout + r.stderr)[-3000:]}"
        assert token.is_file() and len(token.read_text().strip()) >= 32
        if before is not None:
            assert token.read_text() == before, "--generate replaced an existing token"
        yield env, steps[3], dash
    finally:
        _stop(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_job_submit_against_local_cluster(cluster, tmp_path):
    env, submit, dash = cluster
    out = tmp_path / "out"
    submit = submit.replace("http://127.0.0.1:8265", f"http://127.0.0.1:{dash}")
    head, _, _ = submit.partition(" pipeline/run.py ")
    assert head.endswith("-- python"), submit
    plain = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    r = _sh(head + " -c 'print(1)'", plain, timeout=300)
    assert r.returncode != 0 and "authentication token" in (r.stdout + r.stderr).lower()  # the other trap
    args = ["--input", f"cc={FIXTURES / 'cc'}", "--input", f"zh={FIXTURES / 'zh'}", "--output", str(out)]
    r = _sh(f"{head} pipeline/run.py {shlex.join(args)}", env, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "succeeded" in r.stdout + r.stderr
    assert "workers: 2 (Ray cluster at" in r.stdout + r.stderr  # the cluster's CPUs, not the machine's
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
