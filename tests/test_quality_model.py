"""The quality_model stage, its global top_fraction cut and its trainer, on the fixture corpus."""

from __future__ import annotations

import math
import random
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, PYTHON, REPO, read_manifest, run_pipeline

from filters.quality_model import DEFAULT_MODEL, normalize, pareto_draws, read_labels
from pipeline import storage
from pipeline.quality_cut import run_top_fraction

STAGES = '["url", "extract", "length", "langid", "quality", "quality_model", "toxicity", "pii"]'


def _config(tmp: Path, body: str, name: str = "qm.toml") -> Path:
    p = tmp / name
    p.write_text(body, encoding="utf-8")
    return p


def _decisions(out: Path) -> dict[str, tuple]:
    t = read_manifest(out, "documents")
    return {d: (k, r, s) for d, k, r, s in zip(t["doc_id"].to_pylist(), t["kept"].to_pylist(),
                                                t["drop_reason"].to_pylist(), t["quality_model_score"].to_pylist())}


@pytest.fixture(scope="module")
def pareto_runs(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("pareto")
    cfg = _config(tmp, f"[pipeline]\nstages = {STAGES}\ndedup = false\ntokenize = false\n"
                       "[quality_model]\nrule = \"pareto\"\nseed = 7\n")
    runs = {}
    for name, workers in (("w0", "0"), ("w1", "1"), ("w2", "2"), ("w0_again", "0")):
        out = tmp / name
        r = run_pipeline("--input", str(FIXTURES / "web"), "--input", str(FIXTURES / "wget"), "--output", str(out),
                         "--config", str(cfg), "--workers", workers, "-q")
        assert r.returncode == 0, r.stderr[-2000:]
        runs[name] = _decisions(out)
    return runs


def test_pareto_decisions_are_identical_across_reruns_and_worker_counts(pareto_runs):
    base = pareto_runs["w0"]
    for name in ("w1", "w2", "w0_again"):
        assert pareto_runs[name] == base, name
    reasons = [r for _, r, _ in base.values()]
    # The rule really decides: some scored documents dropped by it, some kept.
    assert reasons.count("quality_model_pareto") >= 5
    assert sum(1 for k, _, s in base.values() if k and s is not None) >= 3


def test_pareto_keeps_exactly_when_the_hashed_draw_beats_one_minus_the_score(pareto_runs):
    scored = {d: v for d, v in pareto_runs["w0"].items() if v[2] is not None}
    draws = pareto_draws(list(scored), seed=7, alpha=9.0)
    for (doc, (_kept, reason, score)), draw in zip(scored.items(), draws, strict=True):
        assert (reason != "quality_model_pareto") == (draw > 1.0 - np.float32(score)), doc
    assert all(isinstance(v[2], float) and 0.0 <= v[2] <= 1.0 for v in scored.values())


def test_pareto_draws_follow_numpy_pareto_and_depend_on_the_seed():
    ids = [f"doc-{i}" for i in range(100_000)]
    ours = pareto_draws(ids, seed=0, alpha=9.0)
    ref = np.random.default_rng(0).pareto(9.0, 100_000)
    for q in (0.1, 0.5, 0.9, 0.99):
        assert abs(np.quantile(ours, q) - np.quantile(ref, q)) < 0.01, q
    assert not np.array_equal(ours[:100], pareto_draws(ids[:100], seed=1, alpha=9.0))


def _kept_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("url", pa.string()),
                        ("language", pa.string()), ("collection", pa.string()), ("fetch_date", pa.string()),
                        ("quality_score", pa.float32()), ("quality_model_score", pa.float32())])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def scored_shards(pareto_runs, tmp_path_factory) -> tuple[list[tuple[str, str]], list[dict]]:
    """Kept-parquet shards built from real scores (the fixture run), plus ties and missing scores."""
    tmp = tmp_path_factory.mktemp("cut")
    real = sorted((d, s) for d, (_, _, s) in pareto_runs["w0"].items() if s is not None)
    rng = random.Random(5)
    rows = []
    for i, (doc, score) in enumerate(real * 6):  # 6 copies under other ids: several shards, exact ties
        rows.append({"doc_id": f"{doc}#{i // len(real)}", "text": f"text {i}", "url": None, "language": "en",
                     "collection": rng.choice(["cc", "web"]), "fetch_date": None, "quality_score": 0.5,
                     "quality_model_score": rng.choice([score, score, 1.0, None])})
    rng.shuffle(rows)
    shards = []
    for s in range(4):
        part = rows[s::4]
        url = str(tmp / "in" / f"shard-{s}.parquet")
        storage.write_parquet(url, _kept_table(part))
        shards.append((f"shard-{s}", url))
    return shards, rows


def _expected(rows: list[dict], fraction: float) -> set[str]:
    keep = set()
    for coll in {r["collection"] for r in rows}:
        docs = [r for r in rows if r["collection"] == coll]
        f32 = lambda v: -1.0 if v is None else float(np.float32(v))  # noqa: E731
        docs.sort(key=lambda r: (-f32(r["quality_model_score"]), r["doc_id"]))
        keep |= {r["doc_id"] for r in docs[: math.floor(fraction * len(docs) + 0.5)]}
    return keep


@pytest.mark.parametrize("fraction,exact_limit", [(0.1, 200_000), (0.37, 2), (0.9, 0), (1.0, 10), (0.001, 10)])
def test_top_fraction_keeps_exactly_the_best_per_collection_across_shards(scored_shards, tmp_path, fraction,
                                                                         exact_limit):
    shards, rows = scored_shards

    class Section:
        pass

    Section.fraction = fraction
    fig = run_top_fraction(shards, str(tmp_path), Section, lambda fn, items: [fn(x) for x in items],
                           exact_limit=exact_limit)
    kept, dropped = set(), set()
    for shard, url in shards:
        before = pq.read_table(url)
        after = pq.read_table(tmp_path / "kept" / f"{shard}.parquet")
        assert after.schema == before.schema
        ids = before["doc_id"].to_pylist()
        got = after["doc_id"].to_pylist()
        assert got == [d for d in ids if d in set(got)]  # row order kept
        drops = pq.read_table(tmp_path / "dropped" / f"{shard}.parquet").to_pylist()
        assert {d["drop_reason"] for d in drops} <= {"quality_model_not_top_fraction"}
        assert set(got) | {d["doc_id"] for d in drops} == set(ids)
        kept |= set(got)
        dropped |= {d["doc_id"] for d in drops}
    assert kept == _expected(rows, fraction)
    assert fig["docs_in"] == len(rows) and fig["docs_out"] == len(kept) and fig["dropped"] == len(dropped)


def _dry_run(tmp: Path, model: Path, label: str = "__label__hq") -> subprocess.CompletedProcess:
    cfg = _config(tmp, f"[pipeline]\nstages = {STAGES}\n[quality_model]\nmodel = \"{model}\"\n"
                       f"positive_label = \"{label}\"\n", name="bad.toml")
    return run_pipeline("--dry-run", "--config", str(cfg), "--input", str(FIXTURES / "web"))


def test_a_file_that_is_not_a_fasttext_model_is_exit_2_with_one_line_naming_it(tmp_path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"PK\x03\x04 this is a zip, not a fastText model" * 10)
    r = _dry_run(tmp_path, bogus)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bogus) in lines[0] and "not a fastText model" in lines[0], r.stderr


def test_a_model_without_the_positive_label_is_exit_2_listing_its_labels(tmp_path):
    r = _dry_run(tmp_path, REPO / "filters" / "data" / "toxicity" / "toxicity.ftz", "__label__hq")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "toxicity.ftz" in lines[0] and "'__label__hq'" in lines[0]
    assert "__label__ok" in lines[0] and "__label__toxic" in lines[0]


def test_shipped_model_has_the_label_and_its_card_states_the_normalisation():
    assert read_labels(DEFAULT_MODEL) == ["__label__hq", "__label__cc"] or \
        sorted(read_labels(DEFAULT_MODEL)) == ["__label__cc", "__label__hq"]
    import json

    card = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert card["normalisation"] == {"max_chars": 10_000, "lowercase": True, "newline": " "}
    assert DEFAULT_MODEL.stat().st_size < 2_000_000
    assert normalize("A\nB  C", 3) == "a b"


def _train(tmp: Path, out: Path) -> subprocess.CompletedProcess:
    # English pages (the wget crawl) against the mostly German trafilatura pages: two fixture
    # sources read through the WARC reader and extraction.
    cfg = _config(tmp, '[pipeline]\nstages = ["extract", "length"]\n', name="train.toml")
    return subprocess.run([PYTHON, "-m", "filters.train_quality", "--positive", str(FIXTURES / "wget"),
                           "--negative", f"web={FIXTURES / 'web'}", "--output", str(out), "--config", str(cfg),
                           "--holdout", "0.3", "--min-count", "1", "--epoch", "15"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_train_quality_on_two_fixture_sources_prints_auc_writes_the_card_and_is_byte_reproducible(tmp_path):
    import json

    first = _train(tmp_path, tmp_path / "a" / "model.bin")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "held-out ROC-AUC 0." in first.stdout or "held-out ROC-AUC 1." in first.stdout, first.stdout
    card = json.loads((tmp_path / "a" / "model.json").read_text())
    assert card["counts"]["holdout"]["positive"] >= 2 and card["counts"]["holdout"]["negative"] >= 2
    assert card["metrics_holdout"]["float"]["roc_auc"] > 0.5
    assert {s["class"] for s in card["sources"]} == {"positive", "negative"}
    assert card["config_hash"] and card["created"] and (tmp_path / "a" / "model.md").is_file()
    assert read_labels(tmp_path / "a" / "model.bin") == ["__label__hq", "__label__cc"] or \
        sorted(read_labels(tmp_path / "a" / "model.bin")) == ["__label__cc", "__label__hq"]
    second = _train(tmp_path, tmp_path / "b" / "model.bin")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "a" / "model.bin").read_bytes() == (tmp_path / "b" / "model.bin").read_bytes()


def test_train_quality_source_that_no_reader_claims_is_exit_2_with_one_line(tmp_path):
    odd = tmp_path / "notes.unknownformat"
    odd.write_text("hello")
    r = subprocess.run([PYTHON, "-m", "filters.train_quality", "--positive", str(odd), "--negative", str(odd),
                        "--output", str(tmp_path / "m.bin")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "notes.unknownformat" in lines[0], r.stderr
