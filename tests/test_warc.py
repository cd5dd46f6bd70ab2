"""The reader gives every WARC record a Document, broken ones included, with a reason."""

from __future__ import annotations

import gzip
import io
from collections import Counter

from conftest import FIXTURES, shared

from pipeline.readers.warc import WarcReader


def read(path) -> list:
    return list(WarcReader(str(path), "t"))


def reasons(docs) -> Counter:
    return Counter((d.drop_reason or "kept").split(":")[0] for d in docs)


def test_real_commoncrawl_excerpt_every_record():
    # SOURCES.md (warcio's count): 1 warcinfo, 17 request, 16 response, 16 metadata.
    docs = read(shared("corpus/warc/resiliparse/CC-MAIN-2020-34_warcfile.warc.gz"))
    assert Counter(d.record_type for d in docs) == {"warcinfo": 1, "request": 17, "response": 16, "metadata": 16}
    responses = [d for d in docs if d.record_type == "response"]
    assert all(d.kept and d.raw and d.url and d.warc_record_id for d in responses)
    assert len({d.doc_id for d in docs}) == len(docs)
    assert all(d.doc_id == f"t/{d.warc_offset}" for d in docs)


def test_truncated_gzip_member_is_recorded_and_rest_read():
    docs = read(FIXTURES / "broken" / "truncated.warc.gz")
    r = reasons(docs)
    assert r["truncated_record"] == 1
    assert r["kept"] == 2  # the two complete responses before the cut


def test_corrupt_member_in_the_middle_does_not_lose_the_rest():
    docs = read(FIXTURES / "broken" / "corrupt-member.warc.gz")
    r = reasons(docs)
    assert r["corrupt_record"] == 1
    # 1 warcinfo + 3 pages x (request, response, metadata) = 10 members; one is corrupt.
    assert len(docs) == 10
    assert r["kept"] == 3
    assert max(d.warc_offset for d in docs if d.kept) > next(d.warc_offset for d in docs if d.drop_reason and d.drop_reason.startswith("corrupt"))


def test_wrong_content_length_skipped_record_gets_a_row():
    docs = read(FIXTURES / "broken" / "wrong-length.warc.wet")
    urls = {d.url for d in docs if d.record_type == "conversion"}
    assert urls == {"http://sample_english.com", "http://sample_chinese.zh", "http://sample_russian.ru"}
    skipped = [d for d in docs if d.drop_reason and d.drop_reason.startswith("malformed_record")]
    assert [d.url for d in skipped] == ["http://sample_english.com"]


def test_empty_unreadable_and_non_warc_files():
    assert [d.drop_reason for d in read(FIXTURES / "broken" / "empty.warc.gz")] == ["empty_file"]
    assert reasons(read(FIXTURES / "broken" / "not-a-warc.warc.gz")) == {"no_warc_records": 1}
    missing = read(FIXTURES / "broken" / "no-such-file.warc.gz")
    assert len(missing) == 1 and missing[0].drop_reason.startswith("unreadable_file")


def test_non_html_revisit_404_are_dropped_with_reasons():
    r = reasons(read(FIXTURES / "web" / "pages-001.warc.gz"))
    assert r["not_html"] == 2 and r["http_status_404"] == 1 and r["record_type_revisit"] == 1


def test_wet_conversion_records_are_text():
    docs = read(shared("corpus/warc/whirlwind/whirlwind.warc.wet.gz"))
    conv = [d for d in docs if d.record_type == "conversion"]
    assert len(conv) == 1 and conv[0].kept and b"Escopete" in conv[0].raw


def _warc(tmp_path, http: bytes):
    block = http
    rec = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://x.test/\r\n"
           b"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000001>\r\n"
           b"Content-Type: application/http; msgtype=response\r\nContent-Length: " + str(len(block)).encode()
           + b"\r\n\r\n" + block + b"\r\n\r\n")
    p = tmp_path / "one.warc.gz"
    p.write_bytes(gzip.compress(rec))
    return p


def test_gzip_bomb_payload_is_capped(tmp_path):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        f.write(b"\0" * (64 * 2**20))  # 64 MB of zeros, about 64 kB compressed
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n" + buf.getvalue()
    docs = list(WarcReader(str(_warc(tmp_path, http)), "t", max_payload_bytes=2**20))
    assert len(docs) == 1 and docs[0].drop_reason.startswith("payload_too_large")


def test_chunked_and_gzip_encoded_page_is_decoded(tmp_path):
    body = gzip.compress(b"<html><body><p>hello chunked world</p></body></html>")
    chunked = b"%x\r\n" % 10 + body[:10] + b"\r\n" + b"%x\r\n" % (len(body) - 10) + body[10:] + b"\r\n0\r\n\r\n"
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Encoding: gzip\r\n\r\n" + chunked)
    (doc,) = read(_warc(tmp_path, http))
    assert doc.kept and doc.raw == b"<html><body><p>hello chunked world</p></body></html>"
