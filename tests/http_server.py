"""A local HTTP server for tests: serves a folder, honours `Range`, and misbehaves on request.

CommonCrawl's https://data.commoncrawl.org/ answers ranged GETs, and under load it answers 503
or drops connections. This server does the same on a deterministic share of requests, so the
storage layer's retries (pipeline/storage.py) are exercised over a real socket, with aiohttp
and fsspec's HTTP filesystem on the client side, not a patched client:

    with FlakyHTTPServer(folder, share=0.3) as srv:   # 30% of requests misbehave
        url = srv.url("cc/x.warc.gz")

Faults (request numbers n are counted from 1 over the server's life, all paths together):
  - request n misbehaves when frac(n * golden ratio) < share: a low-discrepancy sequence, so the
    share holds over any stretch of requests and no client pattern (a HEAD then a GET, per open)
    falls in step with it, as it would with "every k-th request"; the k-th fault (from 0) is
    `kinds[k % len(kinds)]`:
      "503"    an HTTP 503 with `Retry-After: 0`;
      "reset"  a GET answered with its headers and half its body, then a TCP reset (RST);
               a HEAD is reset before any answer;
  - a path in `broken` (path -> k) is served for its first k GETs, then answers every request
    with a 503 for good (a file that never comes back; k = 0: never served at all).
`stats` counts requests, served ranges and faults by kind, and `log` lists every request
(path, method, Range header, fault), so a test can check that faults really happened and where
a retry resumed. Like fsspec's own test server, it is a `http.server` handler in a thread.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

KINDS = ("503", "reset")
_GOLDEN = (5 ** 0.5 - 1) / 2


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp expects from a real server
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: a test prints what it needs

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner = self.server.owner
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        fault = owner._next_fault(rel, self.command, self.headers.get("Range"))
        if fault == "503":
            self._send_empty(503, {"Retry-After": "0"})
            return
        target = (owner.root / rel).resolve()
        if owner.root not in target.parents or not target.is_file():
            self._send_empty(404, {})
            return
        data = target.read_bytes()
        size = len(data)
        start, end, status = 0, size - 1, 200
        spec = self.headers.get("Range")
        if spec:
            parsed = _parse_range(spec, size)
            if parsed is None:
                self._send_empty(416, {"Content-Range": f"bytes */{size}"})
                return
            (start, end), status = parsed, 206
        chunk = data[start:end + 1]
        if fault == "reset" and not body:
            self._reset()
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        if fault == "reset":
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(chunk)
        with owner._lock:
            owner.stats["bytes_served"] += len(chunk)
            owner.stats["ranged" if status == 206 else "whole"] += 1

    def _send_empty(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees "connection reset".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


def _parse_range(spec: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` -> (first, last) inclusive, or None if unsatisfiable."""
    unit, _, ranges = spec.partition("=")
    if unit.strip() != "bytes" or "," in ranges:
        return None
    first, _, last = ranges.strip().partition("-")
    if first == "":
        n = int(last)
        return (max(size - n, 0), size - 1) if n > 0 and size else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start < size and start <= end else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "FlakyHTTPServer"

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):  # resets (ours or the client's) are expected
            super().handle_error(request, client_address)


class FlakyHTTPServer:
    """Serve `root` on 127.0.0.1 (a free port); see the module docstring for the faults."""

    def __init__(self, root: str | os.PathLike, share: float = 0.0, kinds: tuple[str, ...] = KINDS,
                 broken: dict[str, int] | None = None) -> None:
        self.root = Path(root).resolve()
        self.share = share
        self.kinds = kinds
        self.broken = dict(broken or {})
        self._gets: Counter = Counter()
        self.stats: Counter = Counter()
        self.log: list[tuple[str, str, str | None, str | None]] = []  # (path, method, Range, fault)
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def _next_fault(self, rel: str, method: str, range_spec: str | None) -> str | None:
        with self._lock:
            self.stats["requests"] += 1
            n = self.stats["requests"]
            fault = None
            if rel in self.broken and self._gets[rel] >= self.broken[rel]:
                self.stats["fault_broken"] += 1
                fault = "503"
            elif (n * _GOLDEN) % 1.0 < self.share:
                fault = self.kinds[self.stats["faults"] % len(self.kinds)]
                self.stats["faults"] += 1
                self.stats[f"fault_{fault}"] += 1
            if method == "GET" and fault is None:
                self._gets[rel] += 1
            self.log.append((rel, method, range_spec, fault))
            return fault

    @property
    def faults(self) -> int:
        return self.stats["faults"] + self.stats["fault_broken"]

    @property
    def base(self) -> str:
        assert self._httpd is not None, "start() first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, rel: str) -> str:
        return f"{self.base}/{rel.lstrip('/')}"

    def start(self) -> "FlakyHTTPServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="flaky-http")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FlakyHTTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
