"""The embedded executor: what its workers see, that it leaves the driver's settings alone, and
that it leaves no Ray process running."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import PYTHON, REPO

pytestmark = pytest.mark.ray

CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from pipeline.executor import Executor

def probe(i):
    import os
    return os.getpid(), os.environ.get("PYTHONPATH", ""), os.environ.get("RAYON_RS_NUM_CPUS")

os.environ.pop("RAYON_RS_NUM_CPUS", None)
before = dict(os.environ)
with Executor(workers=2) as ex:
    during = dict(os.environ)
    got = ex.map(probe, list(range(6)), "probe", costs=[1, 5, 2, 6, 3, 4])
    from ray._private import worker as ray_worker
    started = {kind: [i.process.pid for i in infos] for kind, infos in ray_worker._global_node.all_processes.items()}
    workers = sorted({pid for pid, _, _ in got})

def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False

import time
pids = [p for ps in [*started.values(), workers] for p in ps]
deadline = time.monotonic() + 10  # workers exit when their raylet is gone: give that a moment
while any(map(running, pids)) and time.monotonic() < deadline:
    time.sleep(0.1)
keys = ("PYTHONPATH", "RAYON_RS_NUM_CPUS")
print(json.dumps({"got": got, "same_env": all(before.get(k) == during.get(k) == os.environ.get(k) for k in keys),
                  "started": started, "still_running": [p for p in pids if running(p)]}))
"""


def test_workers_import_this_checkout_with_one_tokenizer_thread_and_the_driver_env_is_untouched(tmp_path):
    # Run from elsewhere, with no PYTHONPATH: the workers must still import `pipeline` from the repo.
    out = subprocess.run([PYTHON, "-c", CHILD, str(REPO)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["same_env"]
    assert len(res["got"]) == 6
    for _pid, path, threads in res["got"]:
        assert str(REPO) in path.split(":")
        assert threads == "1"
    # Every process the embedded cluster started is gone when the executor exits: the
    # autoscaler monitor, killed first (it would hold shutdown for 1 s), and the rest.
    assert "monitor" in res["started"] and "raylet" in res["started"] and "gcs_server" in res["started"]
    assert res["still_running"] == []
