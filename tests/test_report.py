"""The run report: real numbers from a real pipeline output, graceful gaps, escaping, no URLs,
and a headless Chromium render with no console error and a non-blank screenshot."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, PYTHON, REPO, read_manifest, run_pipeline

from pipeline.manifest import STAGES_SCHEMA, table_from_rows, write_parquet
from pipeline.report import main, write_report


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> tuple[Path, str]:
    """One real pipeline run on two collections (CJK + CommonCrawl) and its report."""
    out = tmp_path_factory.mktemp("report") / "out"
    r = run_pipeline("--input", str(FIXTURES / "zh"), "--input", str(FIXTURES / "cc"),
                     "--output", str(out), "--workers", "0", "-q", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    page = write_report(out)
    assert page == out / "report.html"
    return out, page.read_text(encoding="utf-8")


def section(page: str, anchor: str) -> str:
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.DOTALL)
    assert m, f"no section {anchor!r} in the report"
    return m.group(1)


def test_funnel_counts_match_the_manifests(run_out):
    out, page = run_out
    docs = read_manifest(out, "documents")
    n, kept = docs.num_rows, pc.sum(docs["kept"]).as_py()
    funnel = section(page, "funnel")
    # the first bar is every record read, 100 %; the last is what was curated
    assert re.search(rf">records read</text>.*?>{n:,} \(100\.0%\)</text>", funnel, re.DOTALL)
    assert re.search(rf">curated \(kept in documents\)</text>.*?>{kept:,} \(", funnel, re.DOTALL)
    stages = read_manifest(out, "stages").to_pylist()
    after_read = sum(r["docs_out"] for r in stages if r["stage"] == "read_v1")
    assert 0 < kept < after_read < n
    assert re.search(rf"HTML responses\)</text>.*?>{after_read:,} \(", funnel, re.DOTALL)
    for stage in {r["stage"] for r in stages if r["docs_out"] is not None} - {"read_v1"}:
        out_n = sum(r["docs_out"] for r in stages if r["stage"] == stage and r["docs_out"] is not None)
        assert re.search(rf">after {stage}</text>.*?>{out_n:,} \(", funnel, re.DOTALL), stage
    # bars in the run's order (a shard's stages file lists them so), dedup last, each <= the one before
    order = [r["stage"] for r in pq.read_table(out / "manifests" / "stages-seeds.parquet").to_pylist()]
    drawn = re.findall(r">after (\w+)</text>.*?>([\d,]+) \(", funnel, re.DOTALL)
    assert [st for st, _ in drawn] == order[1:] + ["dedup_v1"]
    counts = [after_read] + [int(c.replace(",", "")) for _, c in drawn]
    assert counts == sorted(counts, reverse=True), drawn
    shards = read_manifest(out, "shards")
    tokens = sum(r["tokens"] for r in shards.to_pylist() if r["kind"] == "token_shard")
    assert f"<b>tokens:</b> {tokens:,} in" in funnel
    assert f"{n:,} records, {kept:,} curated" in page


def test_drop_reasons_languages_pii_mixture(run_out):
    out, page = run_out
    docs = read_manifest(out, "documents")
    dropped = docs.filter(pc.is_valid(docs["drop_stage"])).to_pylist()
    reasons = Counter((r["drop_stage"], (r["drop_reason"] or "dropped").split(": ")[0]) for r in dropped)
    drops = section(page, "drops")
    assert ("read", "record_type_request") in reasons  # the CC excerpt has request records
    for (stage, reason), count in reasons.items():
        assert f'<td>{stage}</td><td>{reason}</td><td class="n">{count:,}</td>' in drops, (stage, reason)
    langs = Counter(r["language"] for r in docs.filter(docs["kept"]).to_pylist())
    assert langs["zh"] > 0  # the zh collection survives curation
    for lang, count in langs.items():
        assert re.search(rf">{lang}</text>.*?>{count:,} \(", section(page, "languages"), re.DOTALL), lang
    quality = section(page, "quality")
    scored = pc.count(docs["quality_score"]).as_py()
    assert f"quality_score ({scored:,} docs)" in quality
    pii = section(page, "pii")
    for col in (c for c in docs.column_names if c.startswith("pii_")):
        total = pc.sum(docs[col]).as_py() or 0
        assert f'<td>{col.removeprefix("pii_")}</td><td class="n">{total:,}</td>' in pii, col
    mixture = section(page, "mixture")
    for row in read_manifest(out, "mixture").to_pylist():
        assert f"<td>{row['source']}</td>" in mixture
    assert "not in this run" in section(page, "validation")  # no trainer ran


def test_no_document_url_or_text_in_the_report(run_out):
    out, page = run_out
    urls = {u for u in read_manifest(out, "documents")["url"].to_pylist() if u and len(u) > 12}
    assert urls
    leaked = [u for u in urls if u in page or u.replace("&", "&amp;") in page]
    assert not leaked, leaked[:3]
    curated = pa.concat_tables([pq.read_table(p) for p in sorted((out / "curated").glob("*.parquet"))])
    first_lines = {t.strip().splitlines()[0][:40] for t in curated["text"].to_pylist() if t and t.strip()}
    first_lines = {ln for ln in first_lines if len(ln) >= 20}  # long enough not to occur by chance
    assert first_lines and not [ln for ln in first_lines if ln in page]
    assert "<script" not in page.lower() and not re.search(r'(src|href)="(https?:)?//', page)


def test_missing_tables_and_columns_degrade_to_notes(tmp_path, run_out):
    out, _ = run_out
    m = tmp_path / "part" / "manifests"
    m.mkdir(parents=True)
    # documents only, and one shard's table cut down to two columns
    for p in sorted((out / "manifests").glob("documents-*.parquet")):
        t = pq.read_table(p)
        pq.write_table(t.select(["doc_id", "kept"]) if "seeds" in p.name else t, m / p.name)
    page = write_report(tmp_path / "part", tmp_path / "r.html").read_text(encoding="utf-8")
    for anchor, text in [("run", "run-*.parquet) not in this run"),
                         ("funnel", "stages*.parquet) not in this run"),
                         ("funnel", "shards*.parquet) not in this run"),
                         ("mixture", "not in this run"), ("validation", "not in this run")]:
        assert text in section(page, anchor), anchor
    n = read_manifest(out, "documents").num_rows
    assert re.search(rf">records read</text>.*?>{n:,} \(100\.0%\)", section(page, "funnel"), re.DOTALL)
    assert "could not build" not in page

    (tmp_path / "bare" / "manifests").mkdir(parents=True)
    bare = tmp_path / "bare" / "manifests"
    pq.write_table(pa.table({"doc_id": ["a", "b"]}), bare / "documents-x.parquet")
    pq.write_table(pa.table({"quality_score": [0.25, 0.75]}), bare / "documents-y.parquet")  # no `kept`
    page = write_report(tmp_path / "bare").read_text(encoding="utf-8")
    assert "language column not in this run" in page and "could not build" not in page
    assert "quality_score (2 docs)" in section(page, "quality") and "4 records, 0 curated" in page


def test_reasons_are_grouped_and_escaped(tmp_path):
    m = tmp_path / "manifests"
    m.mkdir()
    evil = '<img src=x onerror="alert(1)">'
    pq.write_table(pa.table({
        "kept": [False, False, False, True],
        "drop_stage": ["read", "read", "quality_v1", None],
        "drop_reason": ["truncated_record: 10 of 99 bytes", "truncated_record: 5 of 7 bytes", f"{evil}: x",
                        None],
        "language": [None, None, "en", "<b>en</b>"],
    }), m / "documents-a.parquet")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    drops = section(page, "drops")
    assert '<td>read</td><td>truncated_record</td><td class="n">2</td>' in drops
    assert "10 of 99" not in page  # the detail after ": " is not shown
    assert evil not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in drops
    assert "<b>en</b>" not in page and "&lt;b&gt;en&lt;/b&gt;" in section(page, "languages")


def test_dedup_details_and_trainer_loss_sections(tmp_path):
    """Dedup's `details` JSON and the trainer's validation table, in the documented schemas."""
    m = tmp_path / "manifests"
    m.mkdir()
    pq.write_table(pa.table({
        "kept": [True, False, False, True, False],
        "drop_stage": [None, "dedup_v1", "dedup_v1", None, "read"],
        "drop_reason": [None, "near_duplicate", "exact_duplicate", None, "record_type_request"],
        "dup_cluster": ["c1", "c1", "c1", None, None],
        "dup_cluster_size": pa.array([3, 3, 3, None, None], pa.int32()),
    }), m / "documents-a.parquet")
    # as pipeline/dedup.py writes it: (size, clusters) pairs, per-phase figures, scalars
    details = {"histogram": [[10, 1], [2, 7]], "phases": {"verify": {"seconds": 0.25, "tasks": 3}},
               "clusters": 8, "note": "<b>x</b>"}
    write_parquet(m / "stages-dedup.parquet", table_from_rows(
        [{"stage": "dedup_v1", "shard": "*", "docs_in": 4, "docs_out": 2, "details": json.dumps(details)}],
        STAGES_SCHEMA))
    rows = [{"step": step, "source": src, "tokens_seen": step * 1000, "realised_share": 0.5,
             "declared_share": 0.5, "train_loss": 6.0 - step / 100 - k, "val_loss": 6.5 - step / 100 - k}
            for step in (0, 100, 200) for k, src in enumerate(["web", "zh"])]
    pq.write_table(pa.Table.from_pylist(rows), m / "validation.parquet")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    dedup = section(page, "dedup")
    assert '<td class="n">1</td><td class="n">3</td><td class="n">3</td><td class="n">2</td>' in dedup
    assert dedup.index(">2</text>") < dedup.index(">10</text>")  # sizes in numeric order
    assert "&lt;b&gt;x&lt;/b&gt;" in dedup and "<b>x</b>" not in page
    assert '<td>clusters</td><td class="n">8</td>' in dedup
    assert '<td>verify</td><td class="n">0.25</td><td class="n">3</td>' in dedup
    assert re.search(r">after dedup_v1</text>.*?>2 \(", section(page, "funnel"), re.DOTALL)
    val = section(page, "validation")
    assert val.count("<polyline") == 4  # val_loss and train_loss, one line per source
    assert '<td>zh</td><td class="n">200</td><td class="n">200,000</td>' in val
    for src, train, valid in (("web", "4", "4.5"), ("zh", "3", "3.5")):  # losses at step 200
        assert re.search(rf'<td>{src}</td><td class="n">200</td>.*?<td class="n">{train}</td>'
                         rf'<td class="n">{valid}</td></tr>', val), src


def test_cli_exit_codes(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no *.parquet manifests" in err[0]
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "documents-bad.parquet").write_text("not parquet")
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "documents-bad.parquet" in err[0], err
    (tmp_path / "manifests" / "documents-bad.parquet").unlink()
    pq.write_table(pa.table({"kept": [True, False]}), tmp_path / "manifests" / "documents-a.parquet")
    cmd = [PYTHON, str(REPO / "pipeline" / "report.py"), str(tmp_path), "--out", str(tmp_path / "x.html")]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)  # as a script
    assert r.returncode == 0, r.stderr
    assert "2 records, 1 curated" in (tmp_path / "x.html").read_text(encoding="utf-8")


# ------------------------------------------------------------- headless Chromium via DevTools

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1200,900", "--remote-debugging-port=0"]
# In the page, after the screenshot: decode it with the browser's own PNG decoder and count
# pixels that are not near-white, and those in the funnel's bar colour (#3b6ea8).
INK = """(async () => { const img = new Image(); img.src = 'data:image/png;base64,%s'; await img.decode();
  const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let ink = 0, blue = 0; for (let i = 0; i < d.length; i += 4) {
    if (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235) ink++;
    if (Math.abs(d[i] - 59) < 4 && Math.abs(d[i + 1] - 110) < 4 && Math.abs(d[i + 2] - 168) < 4) blue++; }
  return {w: c.width, h: c.height, ink: ink / (d.length / 4), blue: blue}; })()"""
PAGE_FACTS = """({sections: [...document.querySelectorAll('section')].map(s => s.id),
  svgs: document.querySelectorAll('svg').length,
  drawn: [...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().height > 0).length,
  height: document.documentElement.scrollHeight, text: document.body.innerText})"""


async def render(chromium: str, url: str, profile: Path) -> dict:
    """Load `url` in headless Chromium; return console/log errors, requests, page facts, screenshot."""
    import aiohttp

    proc = await asyncio.create_subprocess_exec(
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:  # Chromium announces "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            if not line:
                raise RuntimeError("chromium exited before opening its DevTools port")
            if m := re.search(rb"DevTools listening on ws://([\d.]+:\d+)/", line):
                break
        stderr_lines: list[str] = []
        drain = asyncio.ensure_future(_drain(proc.stderr, stderr_lines))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{m.group(1).decode()}/json/list") as resp:
                targets = await resp.json()
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                cdp = _Cdp(ws)
                for domain in ("Runtime", "Log", "Page", "Network"):
                    await cdp.call(f"{domain}.enable")
                await cdp.call("Page.navigate", url=url)
                await cdp.wait_event("Page.loadEventFired")
                facts = await cdp.call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)
                facts = facts["result"]["value"]
                clip = {"x": 0, "y": 0, "width": 1200, "height": min(facts["height"], 16000), "scale": 1}
                shot = (await cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                       clip=clip))["data"]
                events = list(cdp.events)  # the page's own events, before our pixel count runs in it
                ink = (await cdp.call("Runtime.evaluate", expression=INK % shot, awaitPromise=True,
                                      returnByValue=True))["result"]["value"]
        drain.cancel()
    finally:
        proc.kill()
        await proc.wait()
    errors = [e for e in events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    console = [ln for ln in stderr_lines if "CONSOLE" in ln or "Uncaught" in ln]
    return {"errors": errors, "console": console, "requests": requests, "facts": facts, "ink": ink,
            "png": base64.b64decode(shot)}


async def _drain(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():  # an undrained pipe would block Chromium
        sink.append(line.decode(errors="replace"))


class _Cdp:
    """Just enough of the DevTools protocol: numbered calls, events kept in arrival order."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id, self.events = ws, 0, []

    async def _message(self) -> dict:
        msg = await asyncio.wait_for(self.ws.receive_json(), 30)
        if "method" in msg:
            self.events.append(msg)
        return msg

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self._message()
            if msg.get("id") == self.next_id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg["result"]

    async def wait_event(self, method: str) -> None:
        while not any(e["method"] == method for e in self.events):
            await self._message()


def test_report_renders_in_headless_chromium(run_out, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium not installed (apt-get install chromium)")
    pytest.importorskip("aiohttp", reason="aiohttp (a ray[default] dependency) drives Chromium's DevTools")
    out, _ = run_out
    page_url = (out / "report.html").resolve().as_uri()
    r = asyncio.run(render(chromium, page_url, tmp_path / "profile"))
    (tmp_path / "report.png").write_bytes(r["png"])
    assert not r["errors"], json.dumps(r["errors"][:3])[:2000]
    assert not r["console"], r["console"][:3]
    assert r["requests"] == [page_url]  # self-contained: nothing but the page itself is fetched
    facts = r["facts"]
    assert facts["sections"] == ["run", "funnel", "drops", "languages", "quality", "quality_model", "toxicity", "dedup", "pii",
                                 "mixture", "validation"]
    assert facts["svgs"] >= 5 and facts["drawn"] == facts["svgs"]
    n = read_manifest(out, "documents").num_rows
    assert f"{n:,} (100.0%)" in facts["text"]  # the funnel's numbers are visible text
    assert r["png"][:8] == b"\x89PNG\r\n\x1a\n" and r["ink"]["w"] == 1200
    assert r["ink"]["ink"] > 0.03, r["ink"]  # text, tables and charts, not a blank page
    assert r["ink"]["blue"] > 2000, r["ink"]  # the bars were painted
