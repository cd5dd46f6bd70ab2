"""The golden end-to-end run: the whole fixture corpus through every stage on embedded Ray.

Checks what a user relies on: every record read has exactly one `documents` row, every drop
has a stage and a reason, Chinese pages come out as zh and their articles are kept, no
e-mail, card number or IP of the input survives anywhere under the output directory, and the
manifests agree with each other and with the files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, read_manifest, run_pipeline

from pipeline.readers.warc import WarcReader

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    r = run_pipeline("--input", str(FIXTURES), "--output", str(out), "--workers", "2", "--report")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    (out / "log.txt").write_text(r.stdout + r.stderr)  # the logs are output too: scanned for PII below
    return out


@pytest.fixture(scope="module")
def docs(out) -> list[dict]:
    return read_manifest(out, "documents").to_pylist()


def test_every_record_has_exactly_one_row(docs):
    expected = Counter()
    for f in sorted(p for p in FIXTURES.rglob("*") if p.is_file()):
        for d in WarcReader(str(f), "x"):
            expected[d.record_type] += 1
    assert Counter(d["record_type"] for d in docs) == expected
    assert len({d["doc_id"] for d in docs}) == len(docs)


def test_every_drop_has_stage_and_reason(docs):
    for d in docs:
        assert d["kept"] == (d["drop_stage"] is None), d["doc_id"]
        assert d["kept"] or d["drop_reason"], d["doc_id"]
    stages = Counter(d["drop_stage"] for d in docs if not d["kept"])
    assert {"read", "length_v1", "quality_v1", "dedup_v1"} <= set(stages)


def test_chinese_pages_are_zh_and_seed_articles_kept(docs):
    seeds = [d for d in docs if d["record_type"] == "response" and (d["url"] or "").startswith("https://zh.example.cn/")]
    assert len(seeds) == 5
    assert all(d["language"] == "zh" and d["kept"] for d in seeds), [(d["doc_id"], d["drop_reason"]) for d in seeds]
    cc = [d for d in docs if d["collection"] == "cc" and d["record_type"] == "response" and d["language"]]
    assert Counter(d["language"] for d in cc)["zh"] >= 10


def test_exact_copy_is_removed_by_dedup(docs):
    dups = [d for d in docs if d["drop_stage"] == "dedup_v1"]
    assert any("?copy=1" in (d["url"] or "") or d["dup_kind"] == "exact" for d in dups)
    for d in dups:
        kept = next(x for x in docs if x["doc_id"] == d["dup_kept_doc_id"])
        assert kept["kept"] and kept["dup_cluster"] == d["dup_cluster"]


def test_curated_matches_manifest_and_tokens(out, docs):
    curated = read_manifest_dir(out / "curated")
    kept = {d["doc_id"]: d for d in docs if d["kept"]}
    assert set(curated) == set(kept)
    for doc_id, row in curated.items():
        assert row["source"] == kept[doc_id]["source"]
        assert kept[doc_id]["n_tokens"] and kept[doc_id]["n_tokens"] > 0
    shards = read_manifest(out, "shards").to_pylist()
    for s in shards:
        p = out / s["path"]
        assert hashlib.sha256(p.read_bytes()).hexdigest() == s["sha256"], s["path"]


def read_manifest_dir(folder: Path) -> dict[str, dict]:
    rows = {}
    for f in sorted(folder.glob("*.parquet")):
        for r in pq.read_table(f).to_pylist():
            rows[r["doc_id"]] = r
    return rows


PII_IN_INPUT = ["support.team@example-shop.com", "accounts.dept@example-shop.com", "4111 1111 1111 1111",
                "4111111111111111", "DE89 3704 0044 0532 0130 00", "93.184.216.34", "151.101.1.69",
                "2001:4860:4860::8844", "186 6662 7370", "185 8882 0121"]


def test_no_input_pii_anywhere_in_the_output(out):
    hits = []
    for p in sorted(out.rglob("*")):
        if not p.is_file() or "_work" in p.parts:
            continue
        data = p.read_bytes()
        if p.suffix == ".parquet":
            data = json.dumps(pq.read_table(p).to_pylist(), default=str, ensure_ascii=False).encode()
        for needle in PII_IN_INPUT:
            if needle.encode() in data:
                hits.append((p.relative_to(out).as_posix(), needle))
    assert not hits, hits


def test_curated_text_has_placeholders_and_keeps_non_pii(out):
    curated = read_manifest_dir(out / "curated")
    contact = next(r for r in curated.values() if r["url"] == "https://example-shop.com/contact")
    for tag in ("<EMAIL>", "<PHONE>", "<CREDIT_CARD>", "<IBAN>", "<IP_ADDRESS>"):
        assert tag in contact["text"], tag
    for keep in ("2024-07-10", "$12.99", "978-3-16-148410-0", "2.4.1"):
        assert keep in contact["text"], keep
    assert not re.search(r"[\w.]+@[\w-]+\.[a-z]{2,}", " ".join(r["text"] for r in curated.values()))


def test_stages_manifest_adds_up(out, docs):
    stages = read_manifest(out, "stages").to_pylist()
    per_shard = [s for s in stages if s["shard"] != "*"]
    read = sum(s["docs_in"] for s in per_shard if s["stage"] == "read_v1")
    assert read == len(docs)
    for s in per_shard:
        assert s["docs_in"] - s["docs_out"] == s["dropped"] == sum(json.loads(s["drop_reasons"]).values())
    dedup = [s for s in stages if s["stage"] == "dedup_v1"]
    assert len(dedup) == 1 and json.loads(dedup[0]["details"])


def test_run_manifest_and_report(out):
    run = read_manifest(out, "run").to_pylist()
    assert {r["status"] for r in run} == {"ok"}
    assert all(len(r["input_sha256"]) == 64 for r in run if r["shard"] != "empty")
    order = json.loads(run[0]["stage_order"])
    assert order.index("url") < order.index("extract") < order.index("length") < order.index("langid") \
        < order.index("quality")
    assert json.loads(run[0]["config_json"])["langid"]["threshold"] == 0.65
    assert (out / "report.html").stat().st_size > 10_000
