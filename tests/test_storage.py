"""pipeline/storage.py on a local folder, on a real S3 endpoint (moto's server) and over HTTP from a
server that answers 503 and resets connections (tests/http_server.py).

What must hold everywhere: a write is all or nothing (no reader ever sees part of an object),
transient errors are retried and counted and a retried read resumes at the byte offset reached
(the bytes read equal the file's), a file that never comes back gets a `read_failed` row, and
nothing secret survives `redact()`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import FIXTURES
from http_server import FlakyHTTPServer
from services import BUCKET, S3, MotoS3, fresh_filesystems

from pipeline import storage
from pipeline.readers.warc import WarcReader

WARC = FIXTURES / "web" / "pages-000.warc.gz"


@pytest.fixture(scope="module")
def moto_s3():
    """An S3 server for this module's tests."""
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()
        fresh_filesystems()


@pytest.fixture
def s3(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch):
    """The AWS environment pointed at the server, the store wiped, one empty bucket, no cached
    filesystem: each test starts from nothing and leaves nothing behind."""
    for k, v in moto_s3.env().items():
        monkeypatch.setenv(k, v)
    moto_s3.reset()
    fresh_filesystems()
    moto_s3.client().create_bucket(Bucket=BUCKET)
    yield S3(moto_s3, BUCKET)
    fresh_filesystems()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(storage, "BACKOFF_S", 0.005)
    monkeypatch.setattr(storage, "MAX_ATTEMPTS", 4)
    storage.reset_retries()
    yield
    storage.reset_retries()


def _siblings_named(target: str) -> list[str]:
    return [f for f in storage.list_files(storage.parent(target)) if target.rsplit("/", 1)[-1] in f]


# ---------------------------------------------------------------------------------------------
# Atomic writes


@pytest.mark.parametrize("where", ["local", "s3"])
def test_atomic_write_is_all_or_nothing(where, tmp_path, request):
    base = str(tmp_path) if where == "local" else request.getfixturevalue("s3").url("out")
    target = storage.join(base, "part", "x.bin")
    payload = [bytes([i]) * 300_000 for i in range(7)]  # 2.1 MB in pieces

    storage.write_bytes(target, b"old")
    with storage.atomic_writer(target) as f:
        for piece in payload:
            f.write(piece)
            # Mid-write, a reader sees the old object or nothing: never a part of the new one.
            assert storage.read_bytes(target) == b"old"
    data = b"".join(payload)
    assert storage.read_bytes(target) == data
    assert f.result.sha256 == hashlib.sha256(data).hexdigest() == storage.sha256_of(target)
    assert f.result.bytes == len(data)
    assert _siblings_named(target) == [storage.normalize(target)]  # no temporary left beside it

    fresh = storage.join(base, "part", "y.bin")
    with pytest.raises(RuntimeError, match="killed"), storage.atomic_writer(fresh) as f:
        f.write(b"half of it")
        raise RuntimeError("killed mid-write")
    assert not storage.exists(fresh)
    assert _siblings_named(fresh) == []  # the temporary was removed as well
    assert storage.read_bytes(target) == data


def test_s3_partial_object_invisible_to_plain_s3_client(s3):
    """Checked with boto3 itself, not through storage: no key appears until the write ends."""
    client = s3.server.client()
    with storage.atomic_writer(s3.url("w", "z.bin")) as f:
        f.write(b"x" * 1_000_000)
        assert "w/z.bin" not in s3.server.keys()
    assert client.get_object(Bucket=s3.bucket, Key="w/z.bin")["Body"].read() == b"x" * 1_000_000
    assert s3.server.keys() == ["w/z.bin"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_parquet_stream_writer(where, tmp_path, request):
    base = str(tmp_path) if where == "local" else request.getfixturevalue("s3").url("pq")
    schema = pa.schema([("doc_id", pa.string()), ("n", pa.int64())])
    rows = [{"doc_id": f"d{i}", "n": i} for i in range(1000)]
    url = storage.join(base, "kept.parquet")
    w = storage.ParquetStreamWriter(url, schema, rows_per_group=128)
    for r in rows:
        w.add(r)
    assert not storage.exists(url)
    digest = w.close()
    assert storage.read_parquet(url).to_pylist() == rows
    assert digest == storage.sha256_of(url) == hashlib.sha256(storage.read_bytes(url)).hexdigest()
    assert storage.parquet_file(url).metadata.num_row_groups == 8

    aborted = storage.join(base, "aborted.parquet")
    w = storage.ParquetStreamWriter(aborted, schema)
    w.add(rows[0])
    w.abort()
    assert not storage.exists(aborted)
    assert storage.list_files(base) == [storage.normalize(url)]


# ---------------------------------------------------------------------------------------------
# Reads, listings and helpers on S3


def test_s3_helpers_round_trip(s3, tmp_path):
    storage.write_json(s3.url("a", "m.json"), {"k": [1, 2], "b": "ü"})
    assert storage.read_json(s3.url("a", "m.json")) == {"k": [1, 2], "b": "ü"}
    arr = np.arange(1000, dtype=np.uint32).reshape(10, 100)
    storage.save_npy(s3.url("a", "sub", "x.npy"), arr)
    assert np.array_equal(storage.load_npy(s3.url("a", "sub", "x.npy")), arr)
    assert storage.size_of(s3.url("a", "m.json")) == len(storage.read_bytes(s3.url("a", "m.json")))
    assert storage.isdir(s3.url("a", "sub")) and not storage.isdir(s3.url("a", "m.json"))
    assert storage.list_files(s3.url("a")) == [s3.url("a", "m.json"), s3.url("a", "sub", "x.npy")]
    assert storage.list_files(s3.url("a"), recursive=False) == [s3.url("a", "m.json")]
    assert storage.glob(s3.url("a", "**", "*.npy")) == [s3.url("a", "sub", "x.npy")]

    # Local -> S3 -> local, byte for byte, streamed through open_input.
    storage.copy_tree(str(FIXTURES / "cc"), s3.url("copy"))
    storage.copy_tree(s3.url("copy"), str(tmp_path / "back"))
    for f in (FIXTURES / "cc").iterdir():
        assert (tmp_path / "back" / f.name).read_bytes() == f.read_bytes()
        assert storage.sha256_of(s3.url("copy", f.name)) == storage.sha256_of(str(f))
    with storage.as_local_file(s3.url("copy", "whirlwind.warc.wet.gz")) as p:
        assert open(p, "rb").read() == (FIXTURES / "cc" / "whirlwind.warc.wet.gz").read_bytes()

    storage.remove(s3.url("a", "m.json"))
    storage.rmtree(s3.url("copy"))
    assert s3.server.keys() == ["a/sub/x.npy"]
    assert not storage.exists(s3.url("a", "m.json"))


def test_s3_sees_objects_written_by_other_processes(s3):
    """On a cluster, other nodes write the prefixes this process has listed: a cached listing
    would hide their objects (exists False, read FileNotFoundError, glob short)."""
    storage.write_bytes(s3.url("w", "mine.bin"), b"1")
    assert storage.list_files(s3.url("w")) == [s3.url("w", "mine.bin")]
    assert not storage.exists(s3.url("w", "theirs.bin"))
    s3.server.client().put_object(Bucket=s3.bucket, Key="w/theirs.bin", Body=b"written elsewhere")
    assert storage.exists(s3.url("w", "theirs.bin"))
    assert storage.read_bytes(s3.url("w", "theirs.bin")) == b"written elsewhere"
    assert storage.glob(s3.url("w", "*.bin")) == [s3.url("w", "mine.bin"), s3.url("w", "theirs.bin")]


def test_s3_streamed_read_seeks(s3):
    storage.copy_tree(str(FIXTURES / "web"), s3.url("web"))
    data = WARC.read_bytes()
    with storage.open_input(s3.url("web", WARC.name)) as f:
        f.seek(100_000)
        assert f.read(5000) == data[100_000:105_000]
        f.seek(-10, 2)
        assert f.read() == data[-10:]
    assert storage.retries() == 0


# ---------------------------------------------------------------------------------------------
# Retries over a misbehaving HTTP server


def _read_all(f: io.RawIOBase | io.BufferedIOBase, chunk: int) -> bytes:
    out = bytearray()
    while block := f.read(chunk):
        out += block
    return bytes(out)


def test_http_retries_resume_at_the_offset_reached():
    data = WARC.read_bytes()
    with FlakyHTTPServer(FIXTURES, share=0.3) as srv:
        fresh_filesystems()
        # 64 KiB blocks: ten ranged GETs, so faults land mid-file, not only on the first request.
        with storage.RetryingFile(srv.url("web/" + WARC.name), block_size=64 * 1024) as f:
            got = _read_all(f, 50_000)
    fresh_filesystems()
    assert got == data
    gets = [(rng, fault) for rel, method, rng, fault in srv.log if method == "GET"]
    failed_gets = [rng for rng, fault in gets if fault]
    assert srv.stats["fault_503"] and srv.stats["fault_reset"]
    # Every failed GET costs exactly one counted retry (a failed HEAD is answered by fsspec's GET
    # fallback and costs none).
    assert storage.retries() == len(failed_gets) > 0
    # ... and the retry resumes at the offset the reader had reached (a multiple of its 50,000-byte
    # reads, at most one read behind the failed range, whose cached head was dropped with the
    # broken connection): never from byte 0 again.
    def start(rng: str) -> int:
        return int(rng.split("=")[1].split("-")[0])

    resumed = []
    for (rng, fault), (next_rng, _) in zip(gets[:-1], gets[1:], strict=True):
        if fault and rng:
            assert next_rng is not None and start(next_rng) % 50_000 == 0
            assert 0 <= start(rng) - start(next_rng) < 50_000, (rng, next_rng)
            resumed.append(start(next_rng))
    assert any(s > 0 for s in resumed), f"no fault hit a GET past byte 0: {srv.log}"


def test_http_buffered_input_survives_faults():
    data = WARC.read_bytes()
    with FlakyHTTPServer(FIXTURES, share=0.3) as srv:
        fresh_filesystems()
        for _ in range(4):  # the default 4 MiB blocks: a HEAD and one GET per open, faults on some
            with storage.open_input(srv.url("web/" + WARC.name)) as f:
                assert f.read(3) == data[:3]
                f.seek(200_000)
                assert f.read(1000) == data[200_000:201_000]
                f.seek(0)
                assert _read_all(f, 1 << 16) == data
    fresh_filesystems()
    assert srv.faults > 0 and storage.retries() > 0


def test_http_exists_retries_instead_of_saying_no():
    """fsspec's own HTTP exists() answers False to a 503; a paths list behind a busy server
    would then be 'no such file'."""
    with FlakyHTTPServer(FIXTURES, share=0.5, kinds=("503",)) as srv:
        fresh_filesystems()
        assert all(storage.exists(srv.url("web/" + WARC.name)) for _ in range(4))
        assert not storage.exists(srv.url("web/nothing-here.warc.gz"))
        assert storage.size_of(srv.url("web/" + WARC.name)) == WARC.stat().st_size
    with FlakyHTTPServer(FIXTURES, broken={"web/" + WARC.name: 0}) as srv:
        fresh_filesystems()
        with pytest.raises(FileNotFoundError) as exc:
            storage.exists(srv.url("web/" + WARC.name))  # down for good: an error, not "missing"
        assert storage.is_transient(exc.value)
    fresh_filesystems()


@pytest.mark.parametrize("served, reason", [(1, "read_failed: "), (0, "unreadable_file: ")])
def test_file_that_never_comes_back_gets_a_row(served, reason):
    """Served `served` times (the gzip sniff), then 503 for good: one row saying so, no crash."""
    with FlakyHTTPServer(FIXTURES, broken={"web/" + WARC.name: served}) as srv:
        fresh_filesystems()
        reader = WarcReader(srv.url("web/" + WARC.name), "pages-000")
        docs = list(reader)
    fresh_filesystems()
    assert len(docs) == 1 and not docs[0].kept and docs[0].drop_stage == "read"
    assert docs[0].drop_reason.startswith(reason), docs[0].drop_reason
    assert (reader.read_failed is not None) == (reason == "read_failed: ")
    assert srv.stats["fault_broken"] >= storage.MAX_ATTEMPTS
    assert storage.retries() >= storage.MAX_ATTEMPTS - 1


# ---------------------------------------------------------------------------------------------
# Retry policy and secrets


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


class _HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"{status}, message='...'")
        self.status = status


@pytest.mark.parametrize("exc, transient", [
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
    (TimeoutError("read timed out"), True),
    (OSError(errno.EPIPE, "Broken pipe"), True),
    (_HTTPError(503), True),
    (_HTTPError(429), True),
    (_HTTPError(404), False),
    (_HTTPError(403), False),
    (OSError("An error occurred (SlowDown) when calling the GetObject operation: Please reduce your request rate."), True),
    (FileNotFoundError("s3://b/k"), False),
    (_caused(FileNotFoundError("http://h/x"), _HTTPError(503)), True),
    (_caused(FileNotFoundError("http://h/x"), _HTTPError(404)), False),
    (PermissionError("denied"), False),
    (ValueError("bad value"), False),
])
def test_is_transient(exc, transient):
    assert storage.is_transient(exc) is transient


def test_with_retries_counts_and_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return "ok"

    assert storage.with_retries(flaky, "flaky") == "ok" and storage.retries() == 2
    with pytest.raises(ValueError):
        storage.with_retries(lambda: (_ for _ in ()).throw(ValueError("no")), "bad")
    assert storage.retries() == 2  # not transient: no retry
    with pytest.raises(ConnectionResetError):
        storage.with_retries(lambda: (_ for _ in ()).throw(ConnectionResetError("reset")), "down")
    assert storage.retries() == 2 + storage.MAX_ATTEMPTS - 1


def test_redact_masks_secrets_and_keeps_settings():
    cfg = {"storage": {"key": "AKIAIOSFODNN7EXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG", "token": "t0k",
                       "client_kwargs": {"aws_secret_access_key": "s3cr3t", "region_name": "us-east-1"}},
           "tokenize": {"eot_token": "<|endoftext|>", "tokenizer": "gpt2", "max_tokens": 5},
           "pii": {"mode": "fake", "password": ""},
           "inputs": ["s3://AKIAIOSFODNN7EXAMPLE:pw@bucket/x.warc.gz",
                      "https://h/x.warc.gz?X-Amz-Signature=abc123&X-Amz-Credential=ASIAABCDEFGHIJKLMNOP%2F&part=1",
                      "--output", "gs://b/out"]}
    out = storage.redact(cfg)
    text = json.dumps(out)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "t0k", "s3cr3t", ":pw@", "abc123", "ASIAABCDEFGHIJKLMNOP"):
        assert secret not in text, secret
    assert out["storage"]["client_kwargs"]["region_name"] == "us-east-1"
    assert out["tokenize"] == cfg["tokenize"]  # "eot_token" is a setting, not a secret
    assert out["pii"] == {"mode": "fake", "password": ""}  # nothing to hide in an empty value
    assert out["inputs"][1].endswith("&part=1") and out["inputs"][2:] == ["--output", "gs://b/out"]
    assert storage.redact_text("ConnectionError for https://user:pw@host/a") == "ConnectionError for https://***@host/a"


def test_url_helpers(tmp_path):
    assert storage.join("s3://b/x/", "y", "/z.bin") == "s3://b/x/y/z.bin"
    assert storage.join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    assert storage.normalize(f"file://{tmp_path}/") == str(tmp_path)
    assert storage.parent("s3://b/x/y.bin") == "s3://b/x" and storage.basename("s3://b/x/y.bin") == "y.bin"
    assert storage.protocol("HTTPS://h/x") == "https" and storage.is_local("rel/path")
    with pytest.raises(ValueError):
        storage.local_path("s3://b/k")
