"""README's "Running on CommonCrawl", one machine: a crawl's warc.paths.gz over HTTP(S), --limit N.

data.commoncrawl.org is out of reach here, so the same layout (`crawl-data/CRAWL/warc.paths.gz`,
lines relative to the site's root) is served by tests/http_server.py, which also answers 503
and resets connections on a share of requests, as the real site does under load. The
commands are README's, with `--paths-prefix` pointing at the local server.
"""

from __future__ import annotations

import gzip
import shutil

import pytest
from conftest import FIXTURES, read_manifest, run_pipeline
from http_server import FlakyHTTPServer

LISTED = ["crawl-data/CC-X/segments/1/warc/cc/whirlwind.warc.wet.gz",
          "crawl-data/CC-X/segments/1/warc/cc/CC-MAIN-2020-34-excerpt.warc.gz",
          "crawl-data/CC-X/segments/2/warc/web/pages-001.warc.gz"]
SOURCES = ["cc/whirlwind.warc.wet.gz", "cc/CC-MAIN-2020-34-excerpt.warc.gz", "web/pages-001.warc.gz"]


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    for rel, src in zip(LISTED, SOURCES, strict=True):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / src, root / rel)
    (root / "crawl-data" / "CC-X" / "warc.paths.gz").write_bytes(gzip.compress("\n".join(LISTED).encode() + b"\n"))
    return root


def test_first_n_files_of_a_crawl_over_http(site, tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pipeline]\ntokenize = false\n")  # the first files of a crawl: text and manifests
    with FlakyHTTPServer(site, share=0.2) as srv:
        args = ["--limit", "2", "--input", "cc=" + srv.url("crawl-data/CC-X/warc.paths.gz"),
                "--paths-prefix", srv.base + "/", "--output", str(out), "--config", str(cfg), "--workers", "0"]
        env = {"GRISTMILL_IO_BACKOFF": "0.05"}
        dry = run_pipeline("--dry-run", *args, env=env)
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert "inputs: 2 file(s)" in dry.stdout and "whirlwind" in dry.stdout and "pages-001" not in dry.stdout
        # The plan reads the list, never a WARC.
        assert {rel for rel, *_ in srv.log} == {"crawl-data/CC-X/warc.paths.gz"}

        r = run_pipeline(*args, env=env)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        served = {rel for rel, *_ in srv.log}
        assert served == {"crawl-data/CC-X/warc.paths.gz", *LISTED[:2]}  # the first N, in the list's order
        assert srv.faults > 0  # and the site misbehaved on the way
        docs = read_manifest(out, "documents").to_pylist()
        assert {d["collection"] for d in docs} == {"cc"}
        assert {d["doc_id"].split("/")[0] for d in docs} == {"whirlwind", "CC-MAIN-2020-34-excerpt"}
        assert not [d for d in docs if (d["drop_reason"] or "").startswith(("read_failed", "unreadable"))]
        assert any(d["kept"] for d in docs)
        run = read_manifest(out, "run").to_pylist()
        assert [row["input_path"] for row in run] == [srv.url(p) for p in LISTED[:2]]

        # "The same command again skips the files already done."
        n = len(srv.log)
        again = run_pipeline(*args, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        # (a HEAD sizes each file for the run manifest; no ranged GET reads one again)
        assert not [x for x in srv.log[n:] if x[0] in LISTED and x[1] == "GET" and x[2]]
    runs = read_manifest(out, "run").to_pylist()
    assert sorted(row["shard_status"] for row in runs) == ["ok", "ok", "resumed", "resumed"]

