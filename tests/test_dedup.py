"""Global dedup (pipeline/dedup.py): quality on planted duplicates of real text, determinism,
the keep rule, Chinese character shingles, and agreement with human near-duplicate labels."""

from __future__ import annotations

import glob
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared
from dedup_fixtures import (
    KEPT_SCHEMA,
    brute_force_pairs,
    components,
    planted_corpus,
    reference_shingles,
    same_cluster_pairs,
    variant,
    webis_rows,
    webis_texts,
    write_shards,
)

from pipeline.config import ConfigError, build_section
from pipeline.dedup import RESULT_SCHEMA, DedupConfig, run_dedup
from pipeline.minhash import MinHasher, Shingler, choose_bands, jaccard, s_curve


def serial(fn, items):
    return [fn(x) for x in items]


def pool_map(fn, items):
    with ProcessPoolExecutor(2) as ex:
        return list(ex.map(fn, items))


def results(res) -> dict[str, dict]:
    rows = pa.concat_tables([pq.read_table(p) for p in res.result_paths.values()]).to_pylist()
    return {r["doc_id"]: r for r in rows}


def write_one(path: Path, docs: list[dict]) -> tuple[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{k: d.get(k) for k in KEPT_SCHEMA.names} for d in docs],
                                        schema=KEPT_SCHEMA), path)
    return path.stem, str(path)


# -- parameters ----------------------------------------------------------------------------------

def test_s_curve_choice_reaches_recall_where_fineweb_does_not():
    assert choose_bands(0.8, 0.95, 128) == (13, 7)
    assert s_curve(0.8, 13, 7) >= 0.95
    assert s_curve(0.8, 14, 8) == pytest.approx(0.9235, abs=1e-4)  # FineWeb's 14x8
    assert s_curve(0.5, 13, 7) < 0.1  # few candidates far below the threshold
    assert DedupConfig().lsh_params() == (13, 7)
    assert DedupConfig(threshold=0.7).lsh_params() != (13, 7)
    with pytest.raises(ValueError, match=r"0\.924 < min_recall 0\.95"):
        DedupConfig(bands=14, rows=8).validate()
    with pytest.raises(ValueError, match="both"):
        DedupConfig(bands=5).validate()
    with pytest.raises(ConfigError, match=r"\[dedup\] threshold must be in \(0, 1\]"):
        build_section("dedup", {"threshold": 1.5}, "run.toml")
    assert build_section("dedup", {"char_languages": ["zh", "ja"]}, "run.toml").char_languages == ("zh", "ja")


# -- shingles and signatures ---------------------------------------------------------------------

def test_vectorised_shingles_match_python_reference_on_real_text():
    shared("corpus/dedup/webis_pairs.jsonl")
    texts = webis_texts()[:40]
    sets = Shingler().doc_sets(texts, ["en"] * len(texts))
    ref = [reference_shingles(t) for t in texts]
    assert [len(s) for s in sets] == [len(r) for r in ref]  # no hash collisions, same tokenisation
    for i in range(0, 40, 2):
        want = len(ref[i] & ref[i + 1]) / len(ref[i] | ref[i + 1])
        assert jaccard(sets[i], sets[i + 1]) == pytest.approx(want, abs=1e-12)
    assert Shingler().batch(["", None, "one", "a b c d e f"])[1].tolist() == [0, 0, 0, 1, 3]


def test_minhash_agreement_estimates_jaccard():
    shared("corpus/dedup/webis_pairs.jsonl")
    rows = webis_rows()[:60]
    sh, mh = Shingler(), MinHasher(256, seed=3)
    errors = []
    for r in rows:
        keys, off = sh.batch([r["text_a"], r["text_b"]])
        sig, _ = mh.signatures(keys, off)
        a, b = sh.doc_sets([r["text_a"], r["text_b"]])
        errors.append(float((sig[0] == sig[1]).mean()) - jaccard(a, b))
    # 256 permutations: standard error sqrt(J(1-J)/256) <= 0.031; the mean must be ~unbiased.
    assert abs(np.mean(errors)) < 0.02 and np.max(np.abs(errors)) < 0.13


# -- quality on planted near-duplicates of real text ---------------------------------------------

@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    shared("corpus/dedup/webis_pairs.jsonl")
    tmp = tmp_path_factory.mktemp("planted")
    docs = planted_corpus(n_base=120, n_variants=150, seed=0)
    shards = write_shards(docs, tmp / "in", 4)
    res = run_dedup(shards, str(tmp / "work1"), DedupConfig(), serial)
    truth = brute_force_pairs([d["text"] for d in docs], 0.8)
    return {"docs": docs, "shards": shards, "res": res, "truth": truth, "tmp": tmp}


def _labels(docs, rows):
    return [rows[d["doc_id"]]["dup_cluster"] for d in docs]


def test_planted_duplicates_precision_and_recall_against_brute_force(planted):
    docs, res, truth = planted["docs"], planted["res"], planted["truth"]
    rows = results(res)
    assert len(rows) == len(docs) == res.docs
    found = same_cluster_pairs(_labels(docs, rows))
    gt = same_cluster_pairs(components(len(docs), truth))
    precision, recall = len(found & gt) / len(found), len(found & gt) / len(gt)
    print(f"planted: {len(gt)} true same-cluster pairs, precision {precision:.3f}, recall {recall:.3f}")
    assert len(gt) > 100 and precision >= 0.95 and recall >= 0.95
    # Direct pairs above the threshold end in one cluster too.
    assert sum(p in found for p in truth) >= 0.95 * len(truth)
    # Whitespace/case-only copies are dropped as exact duplicates of their base, never kept twice.
    for d in docs:
        if d["kind"] == "exact":
            r = rows[d["doc_id"]]
            assert r["dup_cluster"] is not None and r["dup_cluster_size"] >= 2
    dropped = {k: r["dup_kind"] for k, r in rows.items() if not r["dup_keep"]}
    assert res.exact_removed == sum(v == "exact" for v in dropped.values()) > 0
    assert res.near_removed == sum(v == "near" for v in dropped.values()) > 0
    assert res.candidate_pairs > res.verified_pairs > 0
    assert sum(size * n for size, n in res.histogram) == sum(r["dup_cluster"] is not None for r in rows.values())


def test_keep_rule_highest_quality_then_smallest_doc_id(planted):
    rows = results(planted["res"])
    clusters: dict[str, list[dict]] = {}
    for r in rows.values():
        if r["dup_cluster"] is not None:
            clusters.setdefault(r["dup_cluster"], []).append(r)
    quality = {d["doc_id"]: d["quality_score"] for d in planted["docs"]}
    for cid, members in clusters.items():
        best = min(members, key=lambda r: (-(quality[r["doc_id"]] if quality[r["doc_id"]] is not None
                                             else -np.inf), r["doc_id"]))
        assert [r["doc_id"] for r in members if r["dup_keep"]] == [best["doc_id"]] == [cid]
        assert all(r["dup_kept_doc_id"] == cid and r["dup_cluster_size"] == len(members) for r in members)


def test_without_verification_precision_collapses(planted):
    docs, truth = planted["docs"], planted["truth"]
    res = run_dedup(planted["shards"], str(planted["tmp"] / "noverify"), DedupConfig(verify=False), serial)
    found = same_cluster_pairs(_labels(docs, results(res)))
    gt = same_cluster_pairs(components(len(docs), truth))
    assert res.verified_pairs == res.candidate_pairs
    assert len(found & gt) / len(found) < 0.8  # LSH candidates alone: pairs at 0.5-0.8 get merged


def test_two_processes_shuffled_shards_and_partitions_give_identical_bytes(planted):
    shards = list(planted["shards"])
    random.Random(5).shuffle(shards)
    res = run_dedup(shards, str(planted["tmp"] / "work2"), DedupConfig(partitions=3), pool_map)
    assert res.phases["buckets"]["tasks"] == (13 + 1) * 3
    for sid, path in planted["res"].result_paths.items():
        assert Path(res.result_paths[sid]).read_bytes() == Path(path).read_bytes(), sid


# -- the keep rule, kinds and the result file, on a small hand-built set -------------------------

def test_result_rows_kinds_and_survivors(tmp_path):
    shared("corpus/dedup/webis_pairs.jsonl")
    a, b = webis_texts()[0], webis_texts()[4]  # from different Webis pairs
    near = variant(a, "edit1", a.split(), random.Random(1))
    docs = [
        {"doc_id": "a-low", "text": a, "quality_score": 0.2},
        {"doc_id": "a-copy-high", "text": "  " + a.upper() + "\n", "quality_score": 0.9},
        {"doc_id": "a-copy-null", "text": a, "quality_score": None},
        {"doc_id": "a-near", "text": near, "quality_score": 0.5},
        {"doc_id": "b-2", "text": b, "quality_score": 0.4},
        {"doc_id": "b-1", "text": b, "quality_score": 0.4},
        {"doc_id": "unique", "text": webis_texts()[6], "quality_score": 0.1},
    ]
    shards = [write_one(tmp_path / "in" / "s1.parquet", docs[:4]), write_one(tmp_path / "in" / "s2.parquet", docs[4:]),
              write_one(tmp_path / "in" / "s0.parquet", [])]
    res = run_dedup(shards, str(tmp_path / "work"), DedupConfig(), serial)
    table = pq.read_table(res.result_paths["s1"])
    assert table.schema.equals(RESULT_SCHEMA)
    assert table.column("doc_id").to_pylist() == ["a-low", "a-copy-high", "a-copy-null", "a-near"]  # input order
    assert pq.read_table(res.result_paths["s0"]).num_rows == 0
    rows = results(res)
    assert {k: (r["dup_keep"], r["dup_kind"], r["dup_kept_doc_id"]) for k, r in rows.items()} == {
        "a-copy-high": (True, "near", "a-copy-high"),   # survivor; its cluster holds a near copy
        "a-low": (False, "exact", "a-copy-high"),
        "a-copy-null": (False, "exact", "a-copy-high"),
        "a-near": (False, "near", "a-copy-high"),
        "b-1": (True, "exact", "b-1"),                   # quality tie: smallest doc_id
        "b-2": (False, "exact", "b-1"),
        "unique": (True, None, "unique"),
    }
    assert rows["a-low"]["dup_cluster_size"] == 4 and rows["unique"]["dup_cluster_size"] == 1
    assert rows["unique"]["dup_cluster"] is None
    assert (res.exact_removed, res.near_removed, res.kept) == (3, 1, 3)
    assert res.histogram == [(2, 1), (4, 1)]
    row = res.stage_row()
    assert (row["docs_in"], row["docs_out"], row["dropped"]) == (7, 3, 4)
    assert '"near_duplicate": 1' in row["drop_reasons"]


def test_bad_inputs_say_what_is_wrong(tmp_path):
    p = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"doc_id": ["x"], "body": ["text"]}), p)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text'\]"):
        run_dedup([("bad", str(p))], str(tmp_path / "w"), DedupConfig(), serial)
    with pytest.raises(ValueError, match="duplicate shard ids"):
        run_dedup([("s", str(p)), ("s", str(p))], str(tmp_path / "w"), DedupConfig(), serial)


# -- Chinese: character shingles -----------------------------------------------------------------

@pytest.mark.parametrize("language", ["zh", None])
def test_chinese_near_copy_found_with_character_shingles(tmp_path, language):
    shared("seeds")
    s0, s1 = (Path(p).read_text(encoding="utf-8") for p in sorted(glob.glob(str(shared("seeds") / "00[01]_*.txt"))))
    chars = list(s0)
    rng = random.Random(7)
    for i in rng.sample([i for i, c in enumerate(chars) if "\u4e00" <= c <= "\u9fff"], 6):
        chars[i] = "的" if chars[i] != "的" else "是"
    edited = "".join(chars)
    sets = Shingler().doc_sets([s0, s1, edited], [language] * 3)
    j01, j0e = jaccard(sets[0], sets[1]), jaccard(sets[0], sets[2])
    print(f"seeds 000/001 share a section: character 5-gram Jaccard {j01:.3f}; 6-char edit of 000: {j0e:.3f}")
    assert j01 < 0.1 and 0.8 <= j0e < 1.0
    docs = [{"doc_id": n, "text": t, "language": language, "quality_score": q}
            for n, t, q in (("seed-000", s0, 0.7), ("seed-001", s1, 0.7), ("seed-000-edited", edited, 0.6))]
    res = run_dedup([write_one(tmp_path / "zh.parquet", docs)], str(tmp_path / "w"), DedupConfig(), serial)
    rows = results(res)
    assert (rows["seed-000-edited"]["dup_keep"], rows["seed-000-edited"]["dup_kind"]) == (False, "near")
    assert rows["seed-000-edited"]["dup_kept_doc_id"] == "seed-000"
    assert rows["seed-001"]["dup_cluster"] is None
    # Word 5-grams of the same texts would see whole clauses as words: the edit breaks most of them.
    w0, we = reference_shingles(s0), reference_shingles(edited)
    words_j = len(w0 & we) / len(w0 | we)
    print(f"word 5-gram Jaccard of the same pair: {words_j:.3f}")
    assert words_j < 0.8 < j0e


# -- human labels --------------------------------------------------------------------------------

def test_agreement_with_human_near_duplicate_labels(tmp_path):
    shared("corpus/dedup/webis_pairs.jsonl")
    pairs = webis_rows()
    texts = webis_texts()
    index = {t: i for i, t in enumerate(texts)}
    docs = [{"doc_id": f"w{i:03d}", "text": t, "language": "en", "quality_score": 0.5} for i, t in enumerate(texts)]
    res = run_dedup([write_one(tmp_path / "webis.parquet", docs)], str(tmp_path / "w"), DedupConfig(), serial)
    rows = results(res)
    same = [rows[f"w{index[p['text_a']]:03d}"]["dup_kept_doc_id"] == rows[f"w{index[p['text_b']]:03d}"]["dup_kept_doc_id"]
            for p in pairs]
    by_label = {lab: [s for s, p in zip(same, pairs) if p["label"] == lab] for lab in range(4)}
    print({lab: f"{sum(v)}/{len(v)}" for lab, v in by_label.items()})
    assert not any(by_label[0])                                   # no pair judged different is merged
    assert sum(by_label[3]) >= 0.6 * len(by_label[3])            # most near-identical pairs are
