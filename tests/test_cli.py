"""Exit codes and one-line errors: 2 for bad usage, config or input; the plan on --dry-run."""

from __future__ import annotations

import pytest
from conftest import FIXTURES, REPO, run_pipeline

from pipeline.config import ConfigError, load_config


def test_bad_config_key_names_file_section_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[langid]\nthreshhold = 0.5\n")
    r = run_pipeline("--config", str(cfg), "--input", str(FIXTURES / "cc"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.toml" in lines[0] and "[langid]" in lines[0] and "threshhold" in lines[0]
    assert "threshold" in lines[0]  # the valid keys are listed


@pytest.mark.parametrize("toml, needle", [
    ("[langid]\nthreshold = 'high'\n", "expected a number"),
    ("[langid]\nthreshold = 1.5\n", "within [0, 1]"),
    ("[pipeline]\nstages = ['extract', 'magic']\n", "unknown stage 'magic'"),
    ("[nonsense]\nx = 1\n", "unknown section"),
    ("[langid\n", "not valid TOML"),
    ("[pipeline]\nbatch_size = 0\n", "batch_size must be >= 1"),  # read nothing, exited 0
    ("[pipeline]\nmax_retries = -1\n", "max_retries must be >= 0"),  # Ray: retry forever
    ("[dedup]\nseed = -1\n", "seed must be >= 0"),  # failed after the per-file step
    ("[tokenize]\nseed = -1\n", "seed: expected >= 0"),
    ("[extract]\ntimeout_s = inf\n", "expected a finite number"),  # every page failed its timer
    ("[tokenize]\nmax_epochs = inf\n", "expected a finite number"),  # the blend's caps overflowed
    ("[langid]\nthreshold = nan\n", "expected a finite number"),
    # codes lid.176 never predicts: every document of a run would be language_not_kept
    ("[langid]\nkeep = ['eng']\n", "keep: ['eng'] not among the model's 176 languages"),
    ("[langid]\nthresholds = { zho = 0.5 }\n", "thresholds: ['zho'] not among"),
    ("[collections.books]\nkind = 'bookz'\n", "kind: expected one of ['books', 'web', 'wiki'], got 'bookz'"),
    # tables keyed on a code no document gets never apply
    ("[quality.languages.eng]\nmin_doc_words = 3\n", "[quality] languages: ['eng'] not among the language-ID"),
    ("[toxicity]\nscore_languages = ['en', 'deu']\n", "[toxicity] score_languages: ['deu'] not among"),
    ("[collections.web.quality.stop_words]\nxx = ['the']\n", "[collections.web]: [quality] stop_words: ['xx']"),
])
def test_config_errors(tmp_path, toml, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=None) as exc:
        load_config(cfg)
    assert needle in str(exc.value)


def test_missing_input_and_config_exit_2(tmp_path):
    r = run_pipeline("--input", str(tmp_path / "nope" / "*.warc.gz"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "matches no file" in r.stderr
    r = run_pipeline("--input", str(tmp_path / "nope.warc.gz"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run_pipeline("--config", str(tmp_path / "none.toml"))
    assert r.returncode == 2 and "config file not found" in r.stderr
    assert not (tmp_path / "o").exists()


def test_an_output_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path):
    taken = tmp_path / "a_file"
    taken.write_text("not a folder")
    for out in (taken, taken / "sub" / "deeper"):
        r = run_pipeline("--input", f"cc={FIXTURES / 'cc'}", "--output", str(out), "--workers", "0")
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and lines == [f"gristmill: error: --output {out}: {taken} is a file, not a folder"]
    r = run_pipeline("--input", f"cc={FIXTURES / 'cc'}", "--output", str(tmp_path / "o"), "--work-dir", str(taken),
                     "--dry-run")
    assert r.returncode == 2 and "--work-dir" in r.stderr and "is a file, not a folder" in r.stderr
    assert taken.read_text() == "not a folder" and not (tmp_path / "o").exists()


def test_files_an_earlier_run_left_in_the_output_are_named_and_kept(tmp_path):
    """Two books, then one of them into the same --output: the other's curated, manifest and token
    files are an earlier run's. They are named in one warning and left in place (a quick --limit
    run must not delete a full run's results); a run that reads them again is quiet."""
    books = REPO / "tests" / "data" / "sources" / "books1"
    part1 = books / "pg14263-katrine-part1.txt"
    out = tmp_path / "o"
    both = run_pipeline("--input", f"books={books}", "--output", str(out), "--workers", "0")
    assert both.returncode == 0, both.stderr[-2000:]
    assert "did not write" not in both.stderr
    one = run_pipeline("--input", f"books={part1}", "--output", str(out), "--workers", "0")
    assert one.returncode == 0, one.stderr[-2000:]
    [warning] = [ln for ln in one.stderr.splitlines() if "did not write" in ln]
    old = ["curated/pg14263-katrine-part2.parquet", "manifests/documents-pg14263-katrine-part2.parquet",
           "manifests/stages-pg14263-katrine-part2.parquet", "tokens/books/pg14263-katrine-part2.bin",
           "tokens/books/pg14263-katrine-part2.json"]
    assert "holds 7 file(s)" in warning and all(name in warning for name in old)
    assert all((out / name).is_file() for name in old)  # named, not deleted
    again = run_pipeline("--input", f"books={books}", "--output", str(out), "--workers", "0")
    assert again.returncode == 0 and "did not write" not in again.stderr


def test_dry_run_prints_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "o"
    r = run_pipeline("--input", f"cc={FIXTURES / 'cc'}", "--output", str(out), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "CC-MAIN-2020-34-excerpt" in r.stdout and " cc " in r.stdout
    assert "read -> url -> extract" in r.stdout
    assert not out.exists()


def test_default_config_hash_is_stable():
    assert load_config().hash == load_config().hash
    assert (REPO / "pipeline" / "run.py").is_file()


def test_readme_config_example_loads(tmp_path):
    text = (REPO / "README.md").read_text()
    block = text.split("## Configuration")[1].split("```toml\n")[1].split("```")[0]
    cfg = tmp_path / "readme.toml"
    cfg.write_text(block)
    config = load_config(cfg)
    assert config["langid"].keep == ("en", "de", "zh") and config["tokenize"].mix == "gpt3"
