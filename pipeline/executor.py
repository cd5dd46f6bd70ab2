"""The one place that talks to Ray.

`Executor.map(fn, items)` runs a top-level function over items as Ray tasks, at most
`workers` at a time, and returns results in item order. A task whose worker dies is retried by
Ray (`max_retries`); a task that raises is retried too (`retry_exceptions`), then counted as
failed: `map` raises `TaskFailures` naming every failed item after all others finished, so the
caller can exit 1 with the names (datatrove's Ray executor logs "0/2 tasks completed" and exits
0; we do not).

Embedded mode (no RAY_ADDRESS, no --ray-address): a local Ray on 127.0.0.1 with no dashboard.
Its token auth is turned off unless RAY_AUTH_MODE is set: Ray >= 2.5x turns token auth on for a
new local cluster and writes ~/.ray/auth_token, after which a plain `ray start` also turns it on
and a plain `ray job submit` fails (see README, "Running on a Ray cluster").
`workers=0` runs everything in this process without Ray (debugging; tests of pure logic).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


def connect_address(flag: str | None) -> str | None:
    """The cluster to use: `--ray-address`, else $RAY_ADDRESS (set by `ray job submit` for the
    job's driver), else None (an embedded Ray)."""
    return flag or os.environ.get("RAY_ADDRESS") or None


def cluster_cpus(address: str) -> int:
    """Connect to the cluster (kept connected for the run) and count its CPUs: the default
    number of parallel tasks, so a 100-node cluster runs 100 nodes' worth at once."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=True)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class TaskFailures(RuntimeError):
    def __init__(self, label: str, failures: list[tuple[str, str]]):
        self.failures = failures
        names = ", ".join(name for name, _ in failures[:20])
        more = f" (+{len(failures) - 20} more)" if len(failures) > 20 else ""
        super().__init__(f"{label}: {len(failures)} task(s) failed after retries: {names}{more}")


class Executor:
    def __init__(self, workers: int = 2, address: str | None = None, max_retries: int = 3) -> None:
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.max_retries = max_retries
        self._started = False

    def __enter__(self) -> "Executor":
        if self.workers == 0:
            return self
        import ray

        if ray.is_initialized():
            return self
        if self.address:
            ray.init(address=self.address, log_to_driver=True)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # Workers must import `pipeline`/`filters` from this checkout whatever their cwd, and
            # run one tokenizer thread each (Ray already runs one task per core). The variables go
            # to the raylet through this process's environment, not a job `runtime_env`: with one,
            # Ray cannot use the workers it prestarts and the first wave waits ~0.8 s for new ones.
            env = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
                   "RAYON_RS_NUM_CPUS": "1"}
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                # address="local": a new cluster even when `ray start` runs on this machine (a bare
                # ray.init() would attach to that one, and fail on num_cpus).
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                         _node_ip_address="127.0.0.1", log_to_driver=True, configure_logging=False)
            finally:  # the raylet has its copy; this process keeps its own settings
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        self._started = True
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            import ray

            if not self.address:
                _stop_embedded_monitor()
            ray.shutdown()
            self._started = False

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], label: str,
            names: Sequence[str] | None = None, progress: Callable[[Any], str] | None = None,
            max_calls: int = 0, costs: Sequence[float] | None = None) -> list[Any]:
        """`max_calls=1` gives every task a fresh worker process (peak RSS per task, not per worker).
        `costs` (e.g. input bytes): tasks start largest first, so one big file does not start last
        and leave the other workers idle (results still come back in item order)."""
        names = list(names) if names is not None else [str(i) for i in range(len(items))]
        if self.workers == 0:
            return self._map_local(fn, items, label, names, progress)
        import ray

        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=True,
                            max_calls=max_calls)(fn)
        results: list[Any] = [None] * len(items)
        failures: list[tuple[str, str]] = []
        pending: dict[Any, int] = {}
        order = list(range(len(items)))
        if costs is not None:
            order.sort(key=lambda i: (-costs[i], i))
        next_i, done, t0 = 0, 0, time.monotonic()
        limit = self.workers
        while next_i < len(items) or pending:
            while next_i < len(items) and len(pending) < limit:
                pending[remote.remote(items[order[next_i]])] = order[next_i]
                next_i += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except Exception as exc:  # the task failed after all its retries
                    failures.append((names[i], _short(exc)))
                    log.error("%s: task %s failed: %s", label, names[i], _short(exc))
                done += 1
                self._report(label, done, len(items), t0, results[i], progress)
        if failures:
            raise TaskFailures(label, failures)
        return results

    def _map_local(self, fn, items, label, names, progress) -> list[Any]:
        results, failures, t0 = [], [], time.monotonic()
        for i, item in enumerate(items):
            try:
                results.append(fn(item))
            except Exception as exc:
                failures.append((names[i], _short(exc)))
                log.exception("%s: task %s failed", label, names[i])
                results.append(None)
            self._report(label, i + 1, len(items), t0, results[-1], progress)
        if failures:
            raise TaskFailures(label, failures)
        return results

    _last_report = 0.0

    def _report(self, label: str, done: int, total: int, t0: float, result: Any, progress) -> None:
        extra = ""
        if progress is not None and result is not None:
            extra = " " + progress(result)
        now = time.monotonic()
        if done < total and now - self._last_report < 5.0:
            return  # a line every 5 s at most, and always the last one
        self._last_report = now
        elapsed = time.monotonic() - t0
        # short phases (a dedup round on a small corpus) keep two decimals: "0.0s" says nothing
        log.info("[%s] %d/%d tasks done, %.*fs%s", label, done, total, 2 if elapsed < 1 else 1, elapsed, extra)

    def map_fn(self, label: str, max_calls: int = 0) -> Callable[[Callable, list], list]:
        """A plain `map_fn(fn, items)` for global steps that take one (dedup). Progress lines name
        the phase by its task function ("[dedup bucket] 14/14 tasks done")."""
        return lambda fn, items: self.map(fn, items, f"{label} {fn.__name__.removesuffix('_task')}",
                                          max_calls=max_calls)


def _stop_embedded_monitor() -> None:
    """Kill the autoscaler monitor of the cluster this process started, before `ray.shutdown()`.

    `ray.shutdown()` stops the raylet and the GCS first, then sends the monitor SIGTERM; its
    handler tries to report the signal to the GCS that is already gone and is killed after a
    1 s grace period: 1.3 s of every run's 1.4 s shutdown, for an embedded single-machine cluster
    whose monitor has nothing to report or save. Ray's own private handle, so any change there
    only brings the slow path back (never an error).
    """
    try:
        from ray._private import worker as ray_worker

        node = getattr(ray_worker, "_global_node", None)
        for info in (getattr(node, "all_processes", None) or {}).get("monitor", []):
            if info.process.poll() is None:
                info.process.kill()
                info.process.wait(timeout=5)
    except Exception as exc:  # noqa: BLE001  (a faster shutdown is an optimisation, not a requirement)
        log.debug("could not stop Ray's monitor early: %s", exc)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    # Ray wraps the remote traceback in the message; its last line is the useful one.
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else text)[:500]
