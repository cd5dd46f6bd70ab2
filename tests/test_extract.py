"""Decoding by header, meta, detection; extraction with a time limit; the length check."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from conftest import shared

from filters.length import LengthFilter
from pipeline.document import Document
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


# --- the cascade (pipeline/cascade.py) ------------------------------------------------------

def _eval_pages(n: int | None = None) -> list[tuple[str, bytes]]:
    base = shared("corpus/pages/trafilatura")
    ev = json.loads((base / "evaldata.json").read_text())
    items = sorted(ev.items(), key=lambda kv: kv[1]["file"])
    return [(url, gzip.open(base / "html" / (e["file"] + ".gz")).read()) for url, e in items[:n]]


def _extract_all(stage: Extract, pages: list[tuple[str, bytes]]) -> list[Document]:
    stage.ensure_setup()
    docs = []
    for url, raw in pages:
        d = _doc(raw, "text/html")
        d.url = url
        docs.append(d)
    stage.process_batch(docs)
    return docs


def test_cascade_drops_other_languages_without_running_trafilatura(monkeypatch):
    from filters.langid import LangIdConfig

    pages = {url: raw for url, raw in _eval_pages()}
    german = next(raw for url, raw in pages.items() if "die-partei.net" in url)
    stage = Extract(ExtractConfig(mode="cascade"), langid=LangIdConfig(keep=("en",)))
    stage.ensure_setup()
    calls = []
    real = stage._run
    monkeypatch.setattr(stage, "_run", lambda html, url: calls.append(url) or real(html, url))
    doc = _doc(german, "text/html")
    stage.process(doc)
    assert doc.drop_reason == "cascade_language_not_kept" and doc.language == "de" and not calls
    # keeping German: the page goes on to trafilatura and gets exactly the trafilatura text
    stage = Extract(ExtractConfig(mode="cascade"), langid=LangIdConfig(keep=("de",)))
    plain = Extract(ExtractConfig(mode="trafilatura"))
    a, b = _extract_all(stage, [("u", german)])[0], _extract_all(plain, [("u", german)])[0]
    assert a.kept and a.text == b.text and "Die GEMA dreht völlig am Zeiger!" in a.text


def test_cascade_decides_nothing_early_without_a_keep_list_or_language_id():
    from filters.langid import LangIdConfig

    assert Extract(ExtractConfig(mode="cascade"), langid=LangIdConfig(keep=("*",)))._first_pass is None
    assert Extract(ExtractConfig(mode="cascade"), langid=None)._first_pass is None
    assert Extract(ExtractConfig(mode="trafilatura"), langid=LangIdConfig(keep=("en",)))._first_pass is None


def test_cascade_reads_langid_keep_from_the_pipeline_config(tmp_path):
    from pipeline.config import load_config

    toml = tmp_path / "g.toml"
    toml.write_text('[langid]\nkeep = ["en", "de"]\n[extract]\ncascade_min_language_score = 0.8\n')
    first = Extract.from_config(load_config(toml))._first_pass
    assert first.keep == {"en", "de"} and first.min_score == 0.8
    # language ID not among the stages: the cascade must not decide languages
    toml.write_text('[pipeline]\nstages = ["extract", "length", "quality"]\n[langid]\nkeep = ["en"]\n')
    assert Extract.from_config(load_config(toml))._first_pass is None


def test_extract_mode_is_validated():
    from pipeline.config import ConfigError, build_section

    with pytest.raises(ConfigError, match=r"mode must be one of \['cascade', 'trafilatura', 'resiliparse'\]"):
        build_section("extract", {"mode": "fast"}, "g.toml")
    assert build_section("extract", {"mode": "resiliparse"}, "g.toml").mode == "resiliparse"


def test_resiliparse_mode_extracts_the_article():
    page = next(raw for url, raw in _eval_pages() if "die-partei.net" in url)
    doc = _extract_all(Extract(ExtractConfig(mode="resiliparse")), [("u", page)])[0]
    assert doc.kept and "Die GEMA dreht völlig am Zeiger!" in doc.text


def test_cascade_kept_set_matches_the_full_pass_on_real_pages():
    """200 evaluation pages, keep = en: the cascade keeps (after length and language ID, the
    stages it anticipates) the same pages as trafilatura alone, within 0.5%, and every page
    it keeps has the same text."""
    from filters.langid import LangId, LangIdConfig
    from filters.length import LengthFilter as Length

    pages = _eval_pages(200)
    keep = LangIdConfig(keep=("en",))
    kept = {}
    for mode in ("cascade", "trafilatura"):
        docs = _extract_all(Extract(ExtractConfig(mode=mode), langid=keep), pages)
        for stage in (Length(), LangId(keep)):
            stage.ensure_setup()
            stage.process_batch([d for d in docs if d.kept])
        kept[mode] = {d.url: d.text for d in docs if d.kept}
        if mode == "cascade":  # most pages are German: trafilatura never ran on them
            assert sum(d.drop_reason == "cascade_language_not_kept" for d in docs) > 100
    assert len(kept["trafilatura"]) > 10 and len(kept["cascade"]) > 10
    differ = set(kept["cascade"]) ^ set(kept["trafilatura"])
    assert len(differ) <= 0.005 * len(pages), differ
    assert all(kept["cascade"][u] == kept["trafilatura"][u] for u in kept["cascade"].keys() & kept["trafilatura"])


def test_fallback_runs_trafilatura_defaults_only_below_the_threshold():
    """The first pass (precision, no fallback) decides; a page with less than
    fallback_below_chars characters is extracted again with trafilatura's own defaults
    (recall settings, fallback extractors), which give more of a short page's text."""
    import trafilatura

    pages = sorted(shared("corpus/pages/trafilatura/html").glob("*.gz"))[:60]
    ex = Extract(ExtractConfig(mode="trafilatura"))
    ex.ensure_setup()
    short = 0
    for p in pages:
        html = decode_html(gzip.open(p).read(), None)[0]
        first = trafilatura.extract(html, favor_precision=True, no_fallback=True, include_tables=True,
                                    include_comments=False) or ""
        if len(first) >= 1500:
            assert ex._run(html, None) == first
            continue
        short += 1
        fallback = trafilatura.extract(html, favor_precision=False, no_fallback=False, include_tables=True,
                                       include_comments=False)
        assert ex._run(html, None) == (fallback or first)
    assert 0 < short < len(pages)  # both branches were exercised
