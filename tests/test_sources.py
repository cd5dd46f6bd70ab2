"""Sources beyond WARC through the whole pipeline: cross-source duplicates, the empty cases with
their exit codes and manifests, and the GPT-3 demo mixture that the trainer checks."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from conftest import REPO, read_manifest, run_pipeline

SOURCES = REPO / "tests" / "data" / "sources"
MIX_SOURCES = """
[tokenize]
mix = "gpt3"
seq_len = 64
sources = [
  { name = "Wikipedia", collection = "wiki" }, { name = "WebText2", collection = "webtext" },
  { name = "Books1", collection = "books1" }, { name = "Books2", collection = "books2" },
  { name = "CommonCrawl", collection = "cc" },
]
"""


def test_web_copy_of_a_wikipedia_article_is_dropped_and_the_wikipedia_page_kept(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pipeline]\ntokenize = false\n[dedup]\nsource_priority = ['Wikipedia', 'CommonCrawl']\n"
                   "[tokenize]\nsources = [{ name = 'Wikipedia', collection = 'wiki' }, { name = 'CommonCrawl', collection = 'cc' }]\n")
    out = tmp_path / "o"
    r = run_pipeline("--config", str(cfg), "--input", f"cc={SOURCES / 'cc-copy'}", "--input", f"wiki={SOURCES / 'wiki'}",
                     "--output", str(out), "--workers", "0")
    assert r.returncode == 0, r.stderr
    docs = read_manifest(out, "documents").to_pylist()
    copy = [d for d in docs if d["collection"] == "cc" and d["record_type"] == "response"]
    assert len(copy) == 1 and copy[0]["drop_stage"] == "dedup_v1", copy
    assert copy[0]["drop_reason"] in ("near_duplicate", "exact_duplicate")
    kept = {d["doc_id"]: d for d in docs if d["kept"]}
    survivor = kept[copy[0]["dup_kept_doc_id"]]
    assert survivor["collection"] == "wiki" and survivor["title"] == "Bodmin" and survivor["source"] == "Wikipedia"


def test_nothing_survives_is_exit_0_with_every_manifest_and_one_warning(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[langid]\nkeep = ['io']\n")  # no document is in Ido (lid.176 knows it)
    out = tmp_path / "o"
    r = run_pipeline("--config", str(cfg), "--input", f"wiki={SOURCES / 'wiki'}", "--input",
                     f"books1={SOURCES / 'books1'}", "--output", str(out), "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if "WARNING" in ln and "no document survived" in ln]
    assert len(warnings) == 1, r.stderr
    docs = read_manifest(out, "documents")
    assert docs.num_rows > 0 and not pc.any(docs["kept"]).as_py()
    assert set(pc.unique(docs["drop_reason"]).to_pylist()) >= {"language_not_kept"}
    assert read_manifest(out, "run").column("status").to_pylist()[0] == "ok"
    read_manifest(out, "stages")


def test_one_collection_empty_is_exit_0_and_names_it(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[collections.books1.length]\nmin_chars = 100000000\nmax_chars = 200000000\n"
                   "[collections.books1.langid]\nkeep = ['en']\n")
    out = tmp_path / "o"
    r = run_pipeline("--config", str(cfg), "--input", f"wiki={SOURCES / 'wiki'}", "--input",
                     f"books1={SOURCES / 'books1'}", "--output", str(out), "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert "collection(s) with no curated document: books1" in r.stderr
    docs = read_manifest(out, "documents").to_pylist()
    assert {d["drop_reason"] for d in docs if d["collection"] == "books1"} == {"too_short"}


def test_declared_mixture_source_with_nothing_is_exit_2_with_one_line_and_manifests(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(MIX_SOURCES)
    out = tmp_path / "o"
    r = run_pipeline("--config", str(cfg), "--input", f"wiki={SOURCES / 'wiki'}", "--input",
                     f"books1={SOURCES / 'books1'}", "--output", str(out), "--workers", "0")
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("gristmill: error:")]
    assert len(errors) == 1 and "received no document" in errors[0] and "Traceback" not in r.stderr
    assert "'WebText2'" in errors[0] or "'Books2'" in errors[0] or "'CommonCrawl'" in errors[0]
    assert read_manifest(out, "documents").num_rows > 0
    read_manifest(out, "run")
    read_manifest(out, "mixture")


@pytest.mark.ray
def test_demo_is_the_gpt3_mixture_and_the_trainer_checks_it(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "demo"
    r = run_pipeline("--output", str(out), "--workers", "2", timeout=1200)
    assert r.returncode == 0, r.stderr
    mix = {row["source"]: row for row in read_manifest(out, "mixture").to_pylist()}
    assert set(mix) == {"CommonCrawl", "WebText2", "Books1", "Books2", "Wikipedia"}
    for row in mix.values():
        assert abs(row["realised_share"] - row["normalised_weight"]) < 0.01, row
    assert (out / "report.html").is_file()
    import subprocess
    import sys

    t = subprocess.run([sys.executable, str(REPO / "tokenize" / "train.py"), "--data", str(out), "--config", "tiny",
                        "--steps", "50", "--min-tokens", "0"], capture_output=True, text=True, timeout=1200)
    assert t.returncode == 0, t.stdout + t.stderr
    val = read_manifest(out, "validation").to_pylist()
    last = [v for v in val if v["step"] == max(x["step"] for x in val)]
    assert {v["source"] for v in last} == set(mix)
    for v in last:
        assert abs(v["realised_share"] - v["declared_share"]) < 0.01, v
