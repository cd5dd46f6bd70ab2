"""`--input` resolution and per-collection plans: formats, paths lists, --limit, and the plan each
collection runs (its stages and settings), checked before any task starts."""

from __future__ import annotations

import gzip

import pytest
from conftest import FIXTURES, REPO, run_pipeline

from pipeline.config import ConfigError, load_config
from pipeline.inputs import InputError, read_paths_file, resolve_inputs


def test_directory_glob_and_file_resolve_to_the_same_sorted_files():
    by_dir = resolve_inputs([str(FIXTURES / "cc")])
    by_glob = resolve_inputs([str(FIXTURES / "cc" / "*")])
    assert [f.path for f in by_dir] == [f.path for f in by_glob]
    assert [f.shard_id for f in by_dir] == ["CC-MAIN-2020-34-excerpt", "whirlwind"]
    assert {f.collection for f in by_dir} == {"cc"} and {f.format for f in by_dir} == {"warc"}


def test_name_and_format_prefixes():
    [f] = resolve_inputs([f"crawl=warc:{FIXTURES / 'cc' / 'whirlwind.warc.wet.gz'}"])
    assert (f.collection, f.format, f.shard_id) == ("crawl", "warc", "whirlwind")
    with pytest.raises(InputError, match="unknown format 'jsnol'"):
        resolve_inputs([f"jsnol:{FIXTURES / 'cc'}"])


def test_one_file_is_read_once_and_may_not_be_named_into_two_collections():
    wet = FIXTURES / "cc" / "whirlwind.warc.wet.gz"
    twice = resolve_inputs([f"crawl={wet}", f"crawl={FIXTURES / 'cc'}"])  # overlapping: read once
    assert [(f.shard_id, f.collection) for f in twice] == [("whirlwind", "crawl"), ("CC-MAIN-2020-34-excerpt", "crawl")]
    for specs in ([f"crawl={wet}", f"books={wet}"], [f"crawl={wet}", f"{FIXTURES / 'cc'}"],
                  [f"crawl=warc:{wet}", f"crawl=text:{wet}"]):
        with pytest.raises(InputError, match="name each file once"):
            resolve_inputs(specs)


def test_a_file_named_like_a_global_step_gets_a_shard_id_of_its_own(tmp_path):
    wet = (FIXTURES / "cc" / "whirlwind.warc.wet.gz").read_bytes()
    for stem in ("dedup", "quality_cut", "whirlwind"):
        (tmp_path / f"{stem}.warc.wet.gz").write_bytes(wet)
    ids = {f.path.rsplit("/", 1)[-1]: f.shard_id for f in resolve_inputs([str(tmp_path)])}
    # manifests/stages-dedup.parquet is the dedup step's own: an input called dedup may not take it
    assert ids == {"dedup.warc.wet.gz": "dedup-2", "quality_cut.warc.wet.gz": "quality_cut-2",
                   "whirlwind.warc.wet.gz": "whirlwind"}


def test_a_file_no_reader_claims_asks_for_a_format(tmp_path):
    odd = tmp_path / "corpus.dat"
    odd.write_text("hello\n")
    with pytest.raises(InputError, match="FORMAT:PATH"):
        resolve_inputs([str(odd)])
    [f] = resolve_inputs([f"warc:{odd}"])
    assert f.format == "warc"


def test_paths_list_joins_relative_lines_to_the_prefix_and_keeps_its_order(tmp_path):
    # CommonCrawl's warc.paths.gz: gzipped, one path a line, relative to the bucket root.
    lines = ["cc/whirlwind.warc.wet.gz", "web/pages-001.warc.gz", "", "cc/CC-MAIN-2020-34-excerpt.warc.gz"]
    listing = tmp_path / "warc.paths.gz"
    listing.write_bytes(gzip.compress("\n".join(lines).encode()))
    assert read_paths_file(str(listing), "https://data.commoncrawl.org/")[0] == \
        "https://data.commoncrawl.org/cc/whirlwind.warc.wet.gz"
    files = resolve_inputs([str(listing)], paths_prefix=str(FIXTURES))
    assert [f.shard_id for f in files] == ["whirlwind", "pages-001", "CC-MAIN-2020-34-excerpt"]
    assert [f.collection for f in files] == ["cc", "web", "cc"]
    assert [f.shard_id for f in resolve_inputs([str(listing)], paths_prefix=str(FIXTURES), limit=2)] == \
        ["whirlwind", "pages-001"]


def test_paths_list_of_missing_files_and_bad_limit_are_input_errors(tmp_path):
    listing = tmp_path / "x.paths"
    listing.write_text("")
    with pytest.raises(InputError, match="paths list is empty"):
        resolve_inputs([str(listing)])
    with pytest.raises(InputError, match="--limit must be >= 1"):
        resolve_inputs([str(FIXTURES / "cc")], limit=0)


def test_limit_and_paths_prefix_on_the_command_line(tmp_path):
    listing = tmp_path / "warc.paths"
    listing.write_text("cc/whirlwind.warc.wet.gz\nweb/pages-000.warc.gz\n")
    r = run_pipeline("--input", str(listing), "--paths-prefix", str(FIXTURES), "--limit", "1",
                     "--output", str(tmp_path / "o"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "inputs: 1 file(s)" in r.stdout and "whirlwind" in r.stdout and "pages-000" not in r.stdout


def test_collection_plan_skips_warc_only_stages_and_takes_its_own_settings(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[length]\nmin_chars = 40\n"
                   "[collections.books]\nkind = 'books'\nstages = ['length', 'langid', 'quality']\n"
                   "[collections.books.length]\nmin_chars = 500\n")
    config = load_config(cfg)
    books = config.for_collection("books", "warc")
    assert books.stages == ("length", "langid", "quality") and books.kind == "books"
    assert books.config["length"].min_chars == 500
    web = config.for_collection("web", "warc")
    assert web.stages == config.pipeline.stages and web.config["length"].min_chars == 40
    assert books.config.hash != web.config.hash  # stages are cached per plan, not per run


def test_collection_stage_that_cannot_run_on_its_format_is_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[collections.cc]\nstages = ['extract', 'magic']\n")
    with pytest.raises(ConfigError, match=r"\[collections.cc\] stages names unknown stage 'magic'"):
        load_config(cfg)
    cfg.write_text("[collections.cc]\nstages = ['length']\n[collections.cc.qualty]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown key or section 'qualty'"):
        load_config(cfg)


def test_settings_for_a_collection_no_input_is_in_are_named_in_a_warning(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[collections.cc.length]\nmin_chars = 500\n[collections.bokos.length]\nmin_chars = 2000\n")
    r = run_pipeline("--config", str(cfg), "--input", f"cc={FIXTURES / 'cc'}", "--dry-run")
    assert r.returncode == 0, r.stderr
    [warning] = [ln for ln in r.stderr.splitlines() if "match no --input" in ln]
    assert "[collections.bokos]" in warning and "collections: cc" in warning and "[collections.cc]" not in warning
    ok = run_pipeline("--config", str(cfg), "--input", f"cc={FIXTURES / 'cc'}", "--input",
                      f"bokos=text:{REPO / 'tests' / 'data' / 'sources' / 'books1'}", "--dry-run")
    assert ok.returncode == 0 and "match no --input" not in ok.stderr


def test_dry_run_shows_each_collections_stages(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[collections.cc]\nstages = ['extract', 'length', 'langid']\n")
    r = run_pipeline("--config", str(cfg), "--input", f"cc={FIXTURES / 'cc'}", "--input", f"zh={FIXTURES / 'zh'}",
                     "--output", str(tmp_path / "o"), "--dry-run")
    assert r.returncode == 0, r.stderr
    plan = {ln.split()[0]: ln for ln in r.stdout.splitlines() if "read ->" in ln}
    assert plan["cc"].endswith("read -> extract -> length -> langid")
    assert plan["zh"].endswith("read -> url -> extract -> length -> langid -> quality -> toxicity -> pii")
