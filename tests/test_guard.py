"""`tokenize/` must never shadow the standard library's tokenize (inspect, linecache, tracebacks)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig

import pytest
from conftest import PYTHON, REPO

CHECK = ("import tokenize, inspect, sysconfig; "
         "assert tokenize.__file__.startswith(sysconfig.get_paths()['stdlib']), tokenize.__file__; "
         "assert hasattr(tokenize, 'generate_tokens'); inspect.getsource(inspect.getsource); print('ok')")


def test_repo_layout_has_no_tokenize_module():
    assert not (REPO / "tokenize" / "__init__.py").exists()
    assert not (REPO / "tokenize.py").exists()
    for name in ("ray.py", "types.py", "filters.py", "tokenize.py"):
        assert not (REPO / "pipeline" / name).exists(), name


def test_import_tokenize_from_repo_root_is_stdlib():
    r = subprocess.run([PYTHON, "-c", CHECK], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_run_script_does_not_put_pipeline_dir_first():
    r = subprocess.run([PYTHON, "-c", "import runpy, sys; sys.argv=['run.py','--help']; "
                        "runpy.run_path('pipeline/run.py', run_name='x'); import sys; print(sys.path[0])"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == str(REPO), (r.stdout, r.stderr)


@pytest.mark.ray
def test_import_tokenize_inside_ray_worker_with_repo_as_working_dir():
    code = ("import ray, sys; ray.init(num_cpus=1, include_dashboard=False, _node_ip_address='127.0.0.1', "
            f"runtime_env={{'working_dir': {str(REPO)!r}, 'excludes': ['.venv', '.git', '_work', 'tests/data']}}); "
            "f = ray.remote(lambda: __import__('subprocess').run([sys.executable, '-c', " + repr(CHECK) + "], "
            "capture_output=True, text=True).stdout.strip() + '|' + __import__('tokenize').__file__ + '|' + "
            "__import__('os').getcwd()); print(ray.get(f.remote())); ray.shutdown()")
    r = subprocess.run([PYTHON, "-c", code], cwd="/", capture_output=True, text=True, timeout=300,
                       env={"RAY_AUTH_MODE": "disabled", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert r.returncode == 0, r.stderr[-3000:]
    ok, tok_file, cwd = r.stdout.strip().splitlines()[-1].split("|")
    assert ok == "ok"
    assert tok_file.startswith(sysconfig.get_paths()["stdlib"]), tok_file
    assert "runtime_resources" in cwd or "working_dir" in cwd  # the worker really ran in the uploaded repo
    assert sys.version_info >= (3, 11)


def test_bench_scripts_do_not_run_with_bench_first_on_sys_path():
    # Issue 5 names bench/tokenize.py and issue 3 bench/filters.py: run as `python bench/x.py`,
    # bench/ would come first on sys.path and shadow the stdlib tokenize and our filters package.
    # Every bench script replaces sys.path[0] with the repo root before importing anything else.
    for script in sorted((REPO / "bench").glob("*.py")):
        if "__main__" not in script.read_text():
            continue  # a helper module, imported by scripts that have fixed sys.path already
        head = script.read_text().split("\nimport sys\n", 1)
        assert len(head) == 2, f"{script.name}: imports sys late or not at all"
        early = head[1][:1500]
        assert "sys.path[0] = " in early or "sys.path[:] = " in early, f"{script.name}: bench/ stays on sys.path"
    r = subprocess.run([PYTHON, str(REPO / "bench" / "tokenize.py"), "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
