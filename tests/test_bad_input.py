"""A corpus of bad input through the whole pipeline on Ray: no crash, every record has a row
with a reason (issue 7). Built in a temp folder: a 50 MB page, a page that keeps trafilatura
busy past the time limit, invalid UTF-8, a gzip bomb, plus the committed broken fixtures
(truncated gzip, corrupt member, wrong Content-Length, empty file, non-WARC file) and revisit
and resource records (web/pages-001, wget/)."""

from __future__ import annotations

import gzip
import shutil
import sys
from collections import Counter

import pytest
from conftest import FIXTURES, REPO, read_manifest, run_pipeline

from pipeline.readers.warc import WarcReader

sys.path.insert(0, str(REPO / "tests" / "data"))
from make_fixtures import gz, record, warcinfo  # noqa: E402

pytestmark = pytest.mark.ray


def http_response(url: str, body: bytes, headers: str = "Content-Type: text/html; charset=utf-8") -> bytes:
    http = f"HTTP/1.1 200 OK\r\n{headers}\r\n\r\n".encode() + body
    return record("response", url, http, "application/http; msgtype=response")


def test_bad_input_corpus_runs_and_accounts_for_everything(tmp_path):
    corpus = tmp_path / "bad"
    shutil.copytree(FIXTURES / "broken", corpus / "broken")
    shutil.copy(FIXTURES / "wget" / "sample-0000.warc.gz", corpus / "resource-records.warc.gz")
    shutil.copy(FIXTURES / "web" / "pages-001.warc.gz", corpus / "revisit.warc.gz")
    prose = b"<p>" + b"This sentence is ordinary English prose about the weather and the sea. " * 20 + b"</p>"
    (corpus / "huge-page.warc.gz").write_bytes(gz(warcinfo("huge")) + gz(http_response(
        "https://big.example/", b"<html><body>" + prose * (50 * 2**20 // len(prose)) + b"</body></html>")))
    table = b"<table>" + b"".join(b"<tr>" + b"<td>x y z</td>" * 50 + b"</tr>" for _ in range(2200)) + b"</table>"
    (corpus / "slow-page.warc.gz").write_bytes(gz(warcinfo("slow")) + gz(http_response(
        "https://slow.example/", b"<html><body>" + table + b"</body></html>")))
    broken_utf8 = b"<html><body>" + prose.replace(b"weather", b"weath\xff\xfer") * 3 + b"\xc3\x28</body></html>"
    (corpus / "invalid-utf8.warc.gz").write_bytes(gz(warcinfo("utf8")) + gz(http_response(
        "https://utf8.example/", broken_utf8)))
    bomb = gzip.compress(b"\0" * (200 * 2**20), compresslevel=9)
    (corpus / "gzip-bomb.warc.gz").write_bytes(gz(warcinfo("bomb")) + gz(http_response(
        "https://bomb.example/", bomb, "Content-Type: text/html\r\nContent-Encoding: gzip")))
    config = tmp_path / "c.toml"
    config.write_text("[extract]\ntimeout_s = 0.5\n")

    out = tmp_path / "out"
    r = run_pipeline("--input", str(corpus), "--output", str(out), "--workers", "2", "--config", str(config))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]

    docs = read_manifest(out, "documents").to_pylist()
    expected = sum(1 for f in corpus.rglob("*") if f.is_file() for _ in WarcReader(str(f), "x"))
    assert len(docs) == expected
    by_url = {d["url"]: d for d in docs if d["record_type"] == "response"}
    assert by_url["https://big.example/"]["drop_reason"].startswith("payload_too_large")
    assert by_url["https://slow.example/"]["drop_reason"] == "extract_timeout"
    assert by_url["https://bomb.example/"]["drop_reason"].startswith("payload_too_large")
    utf8 = by_url["https://utf8.example/"]
    assert utf8["kept"] or utf8["drop_stage"] not in ("read", "extract_v1"), utf8
    reasons = Counter((d["drop_reason"] or "kept").split(":")[0] for d in docs)
    for reason in ("truncated_record", "corrupt_record", "malformed_record", "empty_file", "no_warc_records",
                   "record_type_revisit", "record_type_resource"):
        assert reasons[reason] >= 1, reason
    assert all(d["kept"] or d["drop_reason"] for d in docs)
