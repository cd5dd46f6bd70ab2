"""Decoding by header, meta, detection; extraction with a time limit; the length check."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from conftest import shared

from pipeline.document import Document
from filters.length import LengthFilter
from pipeline.extract import Extract, ExtractConfig, decode_html

ZH = "大模型是指具有数千万甚至数亿参数的深度学习模型。近年来，随着计算机技术和大数据的快速发展，深度学习在各个领域取得了显著的成果。" * 3


def test_decoding_follows_header_then_meta_then_detection():
    page = f"<html><head><title>t</title></head><body><p>{ZH}</p></body></html>"
    text, how = decode_html(page.encode("gb18030"), "text/html; charset=GBK")
    assert ZH in text and how == "gb18030/http"
    meta = page.replace("<head>", '<head><meta charset="big5">')
    text, how = decode_html(meta.encode("big5hkscs", "xmlcharrefreplace"), "text/html")
    assert how == "big5hkscs/meta" and "深度" in text or "&#" in text
    text, how = decode_html(page.encode("gb18030"), "text/html")
    assert ZH in text and how.endswith("/detected")


def test_latin1_label_on_utf8_page_decodes_as_utf8():
    text, how = decode_html("<p>Größe und Übermaß</p>".encode(), "text/html; charset=ISO-8859-1")
    assert "Größe" in text and how == "utf-8/http"
    text, how = decode_html("<p>Größe und Übermaß</p>".encode("cp1252"), "text/html; charset=ISO-8859-1")
    assert "Größe" in text and how == "cp1252/http"


def test_wrong_declaration_falls_through():
    text, how = decode_html(f"<p>{ZH}</p>".encode("utf-8"), "text/html; charset=shift_jis")
    assert ZH in text and how.startswith("utf-8")


def _doc(raw: bytes, ctype="text/html; charset=utf-8") -> Document:
    return Document(doc_id="t/0", warc_path="x", warc_offset=0, record_type="response", raw=raw, content_type=ctype)


def test_extracts_main_text_of_a_real_page():
    base = shared("corpus/pages/trafilatura")
    ev = json.loads((base / "evaldata.json").read_text())
    url, entry = next((u, e) for u, e in ev.items() if e["file"] == "die-partei.net.luebeck.html")
    stage = Extract()
    stage.ensure_setup()
    doc = _doc(gzip.open(base / "html" / (entry["file"] + ".gz")).read(), "text/html")
    stage.process(doc)
    assert doc.kept and doc.raw is None
    assert "Die GEMA dreht völlig am Zeiger!" in doc.text
    assert "Impressum" not in doc.text
    assert doc.n_chars == len(doc.text)


def test_timeout_and_errors_drop_with_reasons(monkeypatch):
    stage = Extract(ExtractConfig(timeout_s=0.2))
    stage.ensure_setup()
    monkeypatch.setattr(stage, "_run", lambda html, url: time.sleep(5))
    doc = _doc(b"<html><body><p>x</p></body></html>")
    t0 = time.monotonic()
    stage.process(doc)
    assert doc.drop_reason == "extract_timeout" and time.monotonic() - t0 < 2

    def boom(html, url):
        raise RecursionError("deep")
    monkeypatch.setattr(stage, "_run", boom)
    doc = _doc(b"<html><body><p>x</p></body></html>")
    stage.process(doc)
    assert doc.drop_reason == "extract_error: RecursionError"


def test_empty_and_oversized_pages():
    stage = Extract(ExtractConfig(max_html_chars=1000))
    stage.ensure_setup()
    doc = _doc(b"<html><head><title>t</title></head><body><script>var x = 1;</script></body></html>")
    stage.process(doc)
    assert doc.drop_reason == "extract_empty"
    doc = _doc(b"<html><body>" + b"<p>word</p>" * 500 + b"</body></html>")
    stage.process(doc)
    assert doc.drop_reason == "html_too_large"


def test_length_filter_reasons():
    f = LengthFilter()
    short, ok = _doc(b""), _doc(b"")
    short.text, ok.text = "too little", ZH * 2
    f.process_batch([short, ok])
    assert short.drop_reason == "too_short" and ok.kept
    with pytest.raises(ValueError, match="min_chars"):
        LengthFilter.config_cls(min_chars=10, max_chars=5).validate()
