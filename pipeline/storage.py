"""The one place that reads and writes files and objects: local paths, `file://`, `s3://`, `gs://`,
`https://` (anything fsspec knows).

Every step goes through this module, so that a multi-node run needs no shared filesystem:
`--work-dir` and `--output` may be `s3://...` and the same code runs.

Writes: ONE atomic path, `atomic_writer(url)`. Locally it writes `.NAME.tmp-<uuid>` beside the
target, fsyncs and renames; on an object store it writes a temporary key and then moves it to the
final key (a server-side copy), so a reader never sees half an object and a killed writer leaves
at most a `.tmp-` key. Every writer built on it (`write_bytes`, `write_json`, `write_parquet`,
`ParquetStreamWriter`, `save_npy`) returns or can report the sha256 of what it wrote: the one
checksum helper is `sha256_of` (for existing files) and the digest `atomic_writer` keeps.
Completion markers are written last, by the caller, through the same path.

Reads: `open_input(url)` streams (no whole-file download first) through `RetryingFile`, which
retries transient errors (connection reset, timeouts, HTTP 429/5xx, S3 SlowDown) with exponential
backoff and resumes from the byte offset reached. Each retry is counted in this process
(`retries()`), so a shard task can report its count in the `stages` manifest.

Credentials and endpoints come from the standard environment (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, ...) and fsspec's own config, never from gristmill's TOML; `redact()` masks
anything secret-looking before a value reaches a manifest or a log line.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
MAX_ATTEMPTS = int(os.environ.get("GRISTMILL_IO_ATTEMPTS", "8"))
BACKOFF_S = float(os.environ.get("GRISTMILL_IO_BACKOFF", "0.5"))
_retry_count = 0


# ---------------------------------------------------------------------------------------------
# URLs and filesystems


def protocol(url: str) -> str:
    m = _URL.match(url)
    return m.group(1).lower() if m else "file"


def is_local(url: str) -> bool:
    return protocol(url) in ("file", "local")


def local_path(url: str) -> str:
    """`file:///a/b` or `/a/b` -> `/a/b` (absolute). Raises for a remote URL."""
    if not is_local(url):
        raise ValueError(f"{url}: not a local path")
    return os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)


def normalize(url: str) -> str:
    """Local paths absolute and without `file://`; remote URLs unchanged but for a trailing `/`."""
    return local_path(url) if is_local(url) else url.rstrip("/")


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return os.path.join(local_path(base), *parts)
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def parent(url: str) -> str:
    if is_local(url):
        return os.path.dirname(local_path(url))
    return url.rstrip("/").rsplit("/", 1)[0]


def basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


_FS_CACHE: dict[str, Any] = {}


def filesystem(url: str) -> Any:
    """The fsspec filesystem for `url`'s protocol, one instance per process and protocol."""
    proto = protocol(url)
    if proto == "local":
        proto = "file"
    fs = _FS_CACHE.get(proto)
    if fs is None:
        import fsspec

        kwargs: dict[str, Any] = {}
        if proto in ("http", "https"):
            # Ranged reads of 4 MiB blocks: streaming with resumable offsets, never a whole-file GET.
            kwargs = {"block_size": 4 * 2**20}
        elif proto != "file":
            # Other nodes write the same prefixes: a listing cached here would hide their objects
            # (exists() False, a read FileNotFoundError, a glob short).
            kwargs = {"use_listings_cache": False}
        fs = fsspec.filesystem(proto, **kwargs)
        _FS_CACHE[proto] = fs
    return fs


def reset_filesystems() -> None:
    """Forget every filesystem this process made: this module's per-protocol cache AND fsspec's
    own instance cache (keyed by constructor arguments, not by the environment), so that a changed
    endpoint or credential (AWS_ENDPOINT_URL, ...) takes effect."""
    import fsspec

    for proto in list(_FS_CACHE) + ["s3", "gs", "http", "https"]:
        try:
            fsspec.get_filesystem_class(proto).clear_instance_cache()
        except (ImportError, ValueError):
            pass  # a protocol whose package is not installed
    _FS_CACHE.clear()


def _fs_path(url: str) -> str:
    return local_path(url) if is_local(url) else url


def with_protocol(fs: Any, path: str, like: str) -> str:
    """fsspec strips the protocol from listings; put it back the way `like` spells it."""
    if is_local(like):
        return path
    proto = protocol(like)
    return path if _URL.match(path) else f"{proto}://{path.lstrip('/') if proto not in ('http', 'https') else path}"


# ---------------------------------------------------------------------------------------------
# Retries


def retries() -> int:
    """Transient I/O errors retried by this process since the last `reset_retries()`."""
    return _retry_count


def reset_retries() -> None:
    global _retry_count
    _retry_count = 0


_TRANSIENT_WORDS = ("slowdown", "slow down", "throttl", "too many requests", "service unavailable",
                    "internal error", "internalerror", "bad gateway", "gateway timeout", "connection reset",
                    "connection aborted", "server disconnected", "timed out", "timeout", "temporarily",
                    "requesttimeout", "payload is not completed", "response payload", "incompleteread",
                    "connection closed", "broken pipe", "eof occurred")
_TRANSIENT_STATUS = re.compile(r"\b(429|500|502|503|504)\b")


def is_transient(exc: BaseException) -> bool:
    """Connection resets, timeouts, HTTP 429/5xx and S3 SlowDown: worth another try."""
    if isinstance(exc, FileNotFoundError) and exc.__cause__ is not None and exc.__cause__ is not exc:
        # fsspec's HTTP info() turns ANY failure of its HEAD-then-GET into FileNotFoundError
        # (a 503 too); the cause says whether the file is really missing.
        return is_transient(exc.__cause__)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE,
                                                 errno.ETIMEDOUT, errno.ECONNREFUSED):
        return True
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    if isinstance(status, int) and (status == 429 or 500 <= status < 600):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    if any(word in text for word in _TRANSIENT_WORDS):
        return True
    return bool(_TRANSIENT_STATUS.search(text)) and ("http" in text or "status" in text or "error" in text)


def with_retries(fn: Callable[[], T], what: str, attempts: int | None = None) -> T:
    """Call `fn`, retrying transient errors with exponential backoff (jittered)."""
    global _retry_count
    attempts = attempts or MAX_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            _retry_count += 1
            delay = BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning("%s: %s (attempt %d/%d); retrying in %.1fs", what, _short(exc), attempt, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _short(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]


class RetryingFile(io.RawIOBase):
    """A read-only, seekable byte stream over `url` that survives transient errors.

    Reads go to an fsspec file (ranged GETs for HTTP and object stores, so nothing is downloaded
    up front); when a read fails with a transient error the underlying file is reopened and the
    read resumes at the offset reached, up to MAX_ATTEMPTS times in a row.
    """

    def __init__(self, url: str, block_size: int = 4 * 2**20) -> None:
        super().__init__()
        self.url = url
        self.block_size = block_size
        self._pos = 0
        self._f: Any = None
        self._size: int | None = None

    def _open(self) -> Any:
        if self._f is None:
            fs = filesystem(self.url)
            path = _fs_path(self.url)
            if is_local(self.url):
                self._f = open(path, "rb")  # noqa: SIM115 (closed in close())
            else:
                self._f = fs.open(path, "rb", block_size=self.block_size, cache_type="readahead")
            self._f.seek(self._pos)
        return self._f

    def _reset(self) -> None:
        with contextlib.suppress(Exception):
            if self._f is not None:
                self._f.close()
        self._f = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        if self._size is None:
            self._size = with_retries(lambda: size_of(self.url), f"size of {self.url}")
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        else:
            pos = self.size() + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        if self._f is not None:
            try:
                self._f.seek(pos)
            except Exception:
                self._reset()
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")

        def attempt() -> int:
            try:
                f = self._open()
                data = f.read(len(view))
            except Exception:
                self._reset()
                raise
            view[: len(data)] = data
            return len(data)

        n = with_retries(attempt, f"read {self.url} at byte {self._pos}")
        self._pos += n
        return n

    def close(self) -> None:
        self._reset()
        super().close()


def open_input(url: str, buffer_size: int = 1 << 20) -> IO[bytes]:
    """A buffered, seekable, retrying binary stream (see RetryingFile). Local files open directly."""
    if is_local(url):
        return open(local_path(url), "rb", buffering=buffer_size)
    return io.BufferedReader(RetryingFile(url), buffer_size=buffer_size)


# ---------------------------------------------------------------------------------------------
# Metadata and listing


def exists(url: str) -> bool:
    if is_local(url):
        return os.path.exists(local_path(url))
    fs = filesystem(url)

    def probe() -> bool:
        # Not fs.exists(): fsspec's HTTP exists() answers False to a 503 or a reset, without retry.
        try:
            fs.info(url)
            return True
        except FileNotFoundError as exc:
            if is_transient(exc):
                raise
            return False

    return with_retries(probe, f"exists {url}")


def isdir(url: str) -> bool:
    if is_local(url):
        return os.path.isdir(local_path(url))
    return with_retries(lambda: filesystem(url).isdir(url), f"isdir {url}")


def size_of(url: str) -> int:
    if is_local(url):
        return os.path.getsize(local_path(url))
    return int(with_retries(lambda: filesystem(url).size(url), f"size of {url}"))


def list_files(url: str, recursive: bool = True) -> list[str]:
    """Every file below a directory/prefix, sorted, as URLs spelled like `url`."""
    if is_local(url):
        root = local_path(url)
        if not os.path.isdir(root):
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            out += [os.path.join(dirpath, n) for n in filenames]
            if not recursive:
                break
        return sorted(out)
    fs = filesystem(url)
    found = with_retries(lambda: fs.find(url) if recursive else  # ls lists "directories" too: files only
                         [e["name"] for e in fs.ls(url, detail=True) if e.get("type") != "directory"], f"list {url}")
    return sorted(with_protocol(fs, p, url) for p in found)


def glob(pattern: str) -> list[str]:
    """Files matching a glob (`**` recursive), local or on an object store, sorted."""
    if is_local(pattern):
        import glob as _glob

        return sorted(p for p in _glob.glob(local_path(pattern), recursive=True) if os.path.isfile(p))
    fs = filesystem(pattern)
    found = with_retries(lambda: fs.glob(pattern, detail=True), f"glob {pattern}")
    return sorted(with_protocol(fs, p, pattern) for p, info in found.items() if info.get("type") != "directory")


def has_magic(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


# ---------------------------------------------------------------------------------------------
# Reading


def read_bytes(url: str) -> bytes:
    if is_local(url):
        with open(local_path(url), "rb") as f:
            return f.read()
    return with_retries(lambda: filesystem(url).cat_file(url), f"read {url}")


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def read_json(url: str) -> Any:
    return json.loads(read_bytes(url))


def read_parquet(url: str, columns: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    if is_local(url):
        return pq.read_table(local_path(url), columns=columns)
    return with_retries(lambda: pq.read_table(io.BytesIO(read_bytes(url)), columns=columns), f"read {url}")


def parquet_file(url: str) -> Any:
    """A `pyarrow.parquet.ParquetFile` that reads row groups on demand (ranged reads remotely)."""
    import pyarrow.parquet as pq

    if is_local(url):
        return pq.ParquetFile(local_path(url))
    return pq.ParquetFile(open_input(url))


def load_npy(url: str, mmap: bool = False) -> Any:
    import numpy as np

    if is_local(url):
        return np.load(local_path(url), mmap_mode="r" if mmap else None, allow_pickle=False)
    return np.load(io.BytesIO(read_bytes(url)), allow_pickle=False)


def sha256_of(url: str, chunk: int = 1 << 22) -> str:
    """The one checksum helper for stored files (streaming, retrying)."""
    digest = hashlib.sha256()
    with open_input(url) as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def as_local_file(url: str) -> Iterator[str]:
    """A local path holding `url`'s bytes (the file itself when local): for readers that mmap."""
    if is_local(url):
        yield local_path(url)
        return
    fd, tmp = tempfile.mkstemp(prefix="gristmill-", suffix="-" + basename(url))
    try:
        with os.fdopen(fd, "wb") as out, open_input(url) as f:
            shutil.copyfileobj(f, out, 1 << 22)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------------------
# Writing: the one atomic path


class _HashingWriter(io.RawIOBase):
    def __init__(self, f: Any) -> None:
        super().__init__()
        self.f = f
        self.digest = hashlib.sha256()
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        self.digest.update(view)
        self.f.write(view)
        self.n += len(view)
        return len(view)

    def tell(self) -> int:
        return self.n

    def flush(self) -> None:
        self.f.flush()


class AtomicWrite:
    """What `atomic_writer` yields: a binary file; `.sha256` and `.bytes` are set on success."""

    def __init__(self, url: str) -> None:
        self.url = normalize(url)
        self.sha256: str | None = None
        self.bytes = 0


@contextlib.contextmanager
def atomic_writer(url: str) -> Iterator[Any]:
    """Write `url` all or nothing: a temporary name, then the final one. Yields a binary file
    whose `.result` (an `AtomicWrite`) holds the sha256 and size after the block ends."""
    result = AtomicWrite(url)
    target = result.url
    tmp_name = f".{basename(target)}.tmp-{uuid.uuid4().hex[:12]}"
    tmp = join(parent(target), tmp_name)
    if is_local(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        raw = open(tmp, "wb")  # noqa: SIM115 (closed below)
    else:
        raw = filesystem(target).open(tmp, "wb")
    writer = _HashingWriter(raw)
    writer.result = result  # type: ignore[attr-defined]
    ok = False
    try:
        yield writer
        raw.flush()
        if is_local(target):
            os.fsync(raw.fileno())
        raw.close()
        if is_local(target):
            os.replace(tmp, target)
        else:
            fs = filesystem(target)
            with_retries(lambda: fs.mv(tmp, target), f"move {tmp} -> {target}")
        result.sha256, result.bytes = writer.digest.hexdigest(), writer.n
        ok = True
    finally:
        if not ok:
            with contextlib.suppress(Exception):
                raw.close()
            with contextlib.suppress(Exception):
                remove(tmp)


def write_bytes(url: str, chunks: bytes | Iterable[bytes | memoryview]) -> str:
    """Write atomically; returns the sha256 of what was written."""
    if isinstance(chunks, (bytes, bytearray, memoryview)):
        chunks = [chunks]

    def attempt() -> str:
        with atomic_writer(url) as f:
            for chunk in chunks:
                f.write(chunk)
        return f.result.sha256

    if is_local(url) or not isinstance(chunks, list):
        return attempt()
    return with_retries(attempt, f"write {url}")


def write_text(url: str, text: str) -> str:
    return write_bytes(url, text.encode("utf-8"))


def write_json(url: str, obj: Any) -> str:
    return write_text(url, json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def write_parquet(url: str, table: Any) -> str:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return write_bytes(url, buf.getbuffer())


def save_npy(url: str, array: Any) -> str:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return write_bytes(url, buf.getbuffer())


class ParquetStreamWriter:
    """Parquet written row group by row group through `atomic_writer`: memory stays at one row
    group whatever the shard's size, and nothing appears at `url` until `close()`."""

    def __init__(self, url: str, schema: Any, rows_per_group: int = 4096) -> None:
        import pyarrow.parquet as pq

        self.url, self.schema, self.rows_per_group = url, schema, rows_per_group
        self._cm = atomic_writer(url)
        self._file = self._cm.__enter__()
        self._writer = pq.ParquetWriter(self._file, schema, compression="zstd")
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.rows_per_group:
            self._flush()

    def write_table(self, table: Any) -> None:
        self._flush()
        self._writer.write_table(table)
        self.count += table.num_rows

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self._writer.write_table(pa.Table.from_pylist(
                [{n: r.get(n) for n in self.schema.names} for r in self.rows], schema=self.schema))
            self.rows = []

    def close(self) -> str:
        self._flush()
        self._writer.close()
        self._cm.__exit__(None, None, None)
        return self._file.result.sha256

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._cm.__exit__(RuntimeError, RuntimeError("aborted"), None)


def makedirs(url: str) -> None:
    if is_local(url):
        os.makedirs(local_path(url), exist_ok=True)
    # Object stores have no directories: a key's prefix exists once something is written under it.


def remove(url: str) -> None:
    if is_local(url):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local_path(url))
        return
    with contextlib.suppress(FileNotFoundError):
        filesystem(url).rm_file(url)


def rmtree(url: str) -> None:
    if is_local(url):
        shutil.rmtree(local_path(url), ignore_errors=True)
        return
    fs = filesystem(url)
    with contextlib.suppress(FileNotFoundError):
        if fs.exists(url):
            fs.rm(url, recursive=True)


def copy_tree(src: str, dst: str) -> None:
    """Every file below `src` to the same relative path below `dst`, each written atomically."""
    for f in list_files(src):
        rel = os.path.relpath(f, local_path(src)) if is_local(src) else f[len(src.rstrip("/")) + 1:]
        with open_input(f) as fin:
            write_bytes(join(dst, *rel.split(os.sep)), iter(lambda: fin.read(1 << 22), b""))


# ---------------------------------------------------------------------------------------------
# Secrets


# Whole key names only: "eot_token" or "tokenize" are settings, not secrets.
_SECRET_KEY = re.compile(r"^(key|token|secret|password|passwd|api_key|auth_token|session_token|access_key"
                         r"|access_key_id|secret_key|secret_access_key|aws_access_key_id|aws_secret_access_key"
                         r"|aws_session_token|client_secret|credentials?|sas_token|account_key)$", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:x-amz-[a-z-]*|signature|sig|token|key|access_key|secret)[^=&]*=)[^&\s]+")
_AWS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def redact_text(text: str) -> str:
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    return _AWS_KEY.sub("***", text)


def redact(obj: Any) -> Any:
    """A copy of `obj` with secret values masked: keys named key/secret/token/password/...,
    user:password@ in URLs, signed-URL query parameters, AWS access key ids."""
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    and not isinstance(v, (dict, list, tuple, bool, int, float)) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
