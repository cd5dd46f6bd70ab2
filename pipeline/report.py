"""Run report: one self-contained HTML page drawn from a pipeline output's manifests.

    python pipeline/report.py DIR [--out FILE.html]      # default DIR/report.html

Reads DIR/manifests/*.parquet only (never the curated text) and shows aggregates: the funnel
from records read to curated documents and tokens, drop reasons per stage, languages, score
histograms, duplicate clusters, PII counts, the mixture and the trainer's per-source loss.
The page has inline CSS and SVG, no JavaScript and no external resource, so it opens offline
and can be mailed around. No document text or URL is ever written into it (PII safety): every
figure is a count or a score. A section whose table or column is missing says "not in this
run" instead of failing, so the report works on partial and older outputs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if __name__ == "__main__":  # as a script, pipeline/ would shadow top-level imports (see run.py)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger("gristmill.report")
BLUE, GREY, ORANGE = "#3b6ea8", "#c3ccd6", "#d9822b"
PALETTE = (BLUE, ORANGE, "#4e9a5b", "#8e5ea2", "#c0504d", "#2a9d8f", "#7f7f7f", "#b5a642")
HIST_PREFIXES = ("quality_", "toxicity_")
TOP_N = 25  # bars per chart; the rest is folded into one "other" bar
CSS = """body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#777;font-style:italic}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0;border:1px solid #eee;padding:4px}
figcaption{font-size:12px;color:#444}svg text{font:11px system-ui,sans-serif;fill:#333}.warn{color:#a33}
nav a{margin-right:1em}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}"""


def esc(value: object) -> str:
    """Every string that reaches the page goes through here (reasons, stage and source names)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(v: object) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
        return "—"
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):,.0f}" if abs(v) >= 1e5 else f"{float(v):.4g}"
    return esc(v)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def table(headers: list[str] | None, rows: list[list[object]]) -> str:
    def cell(c: object) -> str:
        num = isinstance(c, (int, float, np.number)) and not isinstance(c, bool)
        return f'<td class="n">{fmt(c)}</td>' if num else f"<td>{fmt(c)}</td>"

    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>" if headers else ""
    return f"<table>{head}" + "".join("<tr>" + "".join(map(cell, r)) + "</tr>" for r in rows) + "</table>"


def legend(series: list[tuple[str, str]]) -> str:
    keys = "".join(f'<span style="background:{c}"></span>{esc(n)}' for n, c in series)
    return f'<div class="legend">{keys}</div>'


# ---------------------------------------------------------------- SVG charts (no JavaScript)

def svg(width: float, height: float, parts: list[str]) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def axes(left: float, top: float, pw: float, ph: float, x: tuple[str, str], y: tuple[str, str]) -> list[str]:
    """Plot frame labels: the y range at the left edge, the x range under the ends of the plot."""
    return [f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#999"/>',
            f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{esc(y[1])}</text>',
            f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{esc(y[0])}</text>',
            f'<text x="{left}" y="{top + ph + 13}">{esc(x[0])}</text>',
            f'<text x="{left + pw}" y="{top + ph + 13}" text-anchor="end">{esc(x[1])}</text>']


def hbars(labels: list[str], series: list[tuple[str, list[float], str]], total: float | None = None,
          percent: bool = False, width: int = 760) -> str:
    """Horizontal bars, one group per label, one bar per series; value (and % of total) at the end."""
    if not labels:
        return note("nothing to draw")
    label_w, row_h, bar_w = 240, 20, width - 380
    vmax = max((v for _, vals, _ in series for v in vals), default=0) or 1
    group_h = row_h * len(series) + 6
    out = []
    for i, label in enumerate(labels):
        y0 = i * group_h + 2
        short = label if len(label) <= 36 else label[:35] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y0 + row_h * len(series) / 2 + 4:.1f}" '
                   f'text-anchor="end">{esc(short)}</text>')
        for j, (name, vals, color) in enumerate(series):
            v, y = vals[i], y0 + j * row_h
            w = bar_w * v / vmax
            txt = f"{v:.1%}" if percent else fmt(v) + (f" ({v / total:.1%})" if total else "")
            out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 5}" fill="{color}">'
                       f"<title>{esc(label)} {esc(name)}: {esc(txt)}</title></rect>"
                       f'<text x="{label_w + w + 5:.1f}" y="{y + row_h - 6}">{esc(txt)}</text>')
    return svg(width, group_h * len(labels) + 4, out)


def count_bars(counter: Counter, total: float | None = None, color: str = BLUE) -> str:
    items = counter.most_common()
    if len(items) > TOP_N:
        rest = items[TOP_N - 1:]
        items = items[:TOP_N - 1] + [(f"other ({len(rest)} more)", sum(v for _, v in rest))]
    return hbars([str(k) for k, _ in items], [("", [v for _, v in items], color)], total)


def histogram(edges: np.ndarray, stacks: list[tuple[str, np.ndarray, str]], width: int = 340,
              height: int = 150, integer: bool = False) -> str:
    """Stacked histogram over `edges`; the axes give the range and the tallest bar."""
    left, top, pw, ph = 44, 8, width - 52, height - 26
    ymax, n = max(int(np.sum([c for _, c, _ in stacks], axis=0).max()), 1), len(edges) - 1
    lo, hi = (edges[0] + 0.5, edges[-1] - 0.5) if integer else (edges[0], edges[-1])  # bins centred on ints
    out = axes(left, top, pw, ph, (f"{lo:.4g}", f"{hi:.4g}"), ("0", f"{ymax:,}"))
    for i in range(n):
        y = top + ph
        for name, counts, color in (st for st in stacks if st[1][i]):
            hgt = ph * counts[i] / ymax
            y -= hgt
            out.append(f'<rect x="{left + i * pw / n + 0.5:.1f}" y="{y:.1f}" '
                       f'width="{max(pw / n - 1, 0.5):.1f}" height="{hgt:.1f}" fill="{color}">'
                       f"<title>[{edges[i]:.4g}, {edges[i + 1]:.4g}) {esc(name)}: {int(counts[i]):,}"
                       "</title></rect>")
    return svg(width, height, out)


def lines(series: list[tuple[str, list[tuple[float, float]], str]], ylabel: str, width: int = 760,
          height: int = 240) -> str:
    """One polyline per series over a shared x (training step) and y range."""
    series = [(n, [p for p in ps if p[1] is not None and np.isfinite(p[1])], c) for n, ps, c in series]
    pts = [p for _, ps, _ in series for p in ps]
    if not pts:
        return note("no finite values to draw")
    left, top, pw, ph = 56, 10, width - 68, height - 40
    (x0, y0), (x1, y1) = np.min(pts, axis=0), np.max(pts, axis=0)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1e-9)
    out = axes(left, top, pw, ph, (f"{x0:,.0f}", f"step {x1:,.0f}"), (f"{y0:.4g}", f"{y1:.4g}"))
    out.append(f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    for name, ps, color in series:
        xy = " ".join(f"{left + pw * (x - x0) / (x1 - x0):.1f},{top + ph * (y1 - y) / (y1 - y0):.1f}"
                      for x, y in ps)
        out.append(f'<polyline points="{xy}" fill="none" stroke="{color}" stroke-width="1.8">'
                   f"<title>{esc(name)}</title></polyline>")
    return svg(width, height, out)


# ---------------------------------------------------------------- reading the manifests

def parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a readable parquet file ({exc}); delete it or re-run the step "
                         "that wrote it") from None


def read(m: Path, prefix: str, columns: list[str] | None = None) -> pa.Table | None:
    """m/<prefix>*.parquet as one table (schemas promoted), with those of `columns` each file
    has; None when there is no such file."""
    files = [parquet(p) for p in sorted(m.glob(f"{prefix}*.parquet")) if not p.name.startswith(".")]
    parts = [f.read(columns=columns and [c for c in columns if c in f.schema_arrow.names]) for f in files]
    return pa.concat_tables(parts, promote_options="permissive") if parts else None


def stage_base(stage: str) -> str:
    """`quality_v1` and `quality` name one stage (documents say `read`, stages say `read_v1`)."""
    head, _, tail = stage.rpartition("_v")
    return head if head and tail.isdigit() else stage


@dataclass
class DocStats:
    """Aggregates of the documents tables: every field a count, never a document's content."""

    rows: int = 0
    kept: int = 0
    columns: set[str] = field(default_factory=set)
    drops: Counter = field(default_factory=Counter)  # (drop_stage, reason) -> docs
    languages: Counter = field(default_factory=Counter)  # kept docs only
    pii: dict[str, list[int]] = field(default_factory=dict)  # type -> [matches, docs with any]
    clusters: dict[str, int] = field(default_factory=dict)  # dup_cluster -> its size
    ranges: dict[str, list[float]] = field(default_factory=dict)  # score column -> [min, max]
    hists: dict[str, tuple] = field(default_factory=dict)  # score column -> (edges, kept, dropped)
    integer: set[str] = field(default_factory=set)
    # collection -> (kept, dropped) histograms of quality_model_score over MODEL_EDGES
    model_hists: dict[str, tuple] = field(default_factory=dict)

    def per_value(self, col: str) -> bool:
        """One histogram bar per value: integer columns with at most 41 distinct values."""
        return col in self.integer and self.ranges[col][1] - self.ranges[col][0] <= 40


MODEL_EDGES = np.linspace(0.0, 1.0, 21)  # a probability: fixed bins, comparable across collections


def _model_hists(s: DocStats, t: pa.Table, kept: pa.Array) -> None:
    """Per-collection histograms of the quality model's score (issue: is the cut the same everywhere?)."""
    if "quality_model_score" not in t.column_names or "collection" not in t.column_names:
        return
    v = t["quality_model_score"].to_numpy(zero_copy_only=False).astype(np.float64)
    k = kept.to_numpy(zero_copy_only=False)
    colls = np.asarray(t["collection"].to_pylist(), dtype=object)
    for c in sorted({x for x in colls[np.isfinite(v)]}):
        sel = (colls == c) & np.isfinite(v)
        hk, hd = s.model_hists.get(c, (0, 0))
        s.model_hists[c] = (hk + np.histogram(v[sel & k], MODEL_EDGES)[0], hd + np.histogram(v[sel & ~k], MODEL_EDGES)[0])


def _kept(t: pa.Table) -> pa.Array:
    if "kept" not in t.column_names:
        return pa.array(np.zeros(t.num_rows, bool))
    return pc.fill_null(t["kept"], False)


def scan_documents(m: Path) -> DocStats:
    """Two passes over documents*.parquet, one file and only the needed columns at a time, so
    memory stays at one shard: pass 1 counts and finds score ranges, pass 2 fills histograms."""
    s, files = DocStats(), [parquet(p) for p in sorted(m.glob("documents*.parquet"))]
    base = ["kept", "drop_stage", "drop_reason", "language", "dup_cluster", "dup_cluster_size", "collection"]
    for f in files:
        schema = f.schema_arrow
        s.columns.update(schema.names)
        numeric = {f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)}
        s.integer |= {f.name for f in schema if pa.types.is_integer(f.type)}
        scores = sorted(c for c in numeric if c.startswith(HIST_PREFIXES))
        pii = sorted(c for c in numeric if c.startswith("pii_"))
        t = f.read(columns=[c for c in base if c in schema.names] + scores + pii)
        kept, cols = _kept(t), set(t.column_names)
        s.rows, s.kept = s.rows + t.num_rows, s.kept + (pc.sum(kept).as_py() or 0)
        if "drop_stage" in cols:
            d = t.filter(pc.is_valid(t["drop_stage"]))
            why = d["drop_reason"] if "drop_reason" in cols else pa.nulls(d.num_rows, pa.string())
            # A reason may carry a detail after ": " (byte counts, exception text): tally the name.
            why = pc.list_element(pc.split_pattern(pc.fill_null(why, "dropped"), ": ", max_splits=1), 0)
            g = pa.table({"stage": d["drop_stage"], "why": why}).group_by(["stage", "why"]).aggregate(
                [("stage", "count")])
            s.drops.update({(r["stage"], r["why"]): r["stage_count"] for r in g.to_pylist()})
        _model_hists(s, t, kept)
        if "language" in cols:
            s.languages.update({r["values"] or "(none)": r["counts"]
                                for r in pc.value_counts(pc.filter(t["language"], kept)).to_pylist()})
        for col in pii:
            acc = s.pii.setdefault(col.removeprefix("pii_"), [0, 0])
            acc[0] += pc.sum(t[col]).as_py() or 0
            acc[1] += pc.sum(pc.greater(pc.fill_null(t[col], 0), 0)).as_py() or 0
        if {"dup_cluster", "dup_cluster_size"} <= cols:
            g = t.filter(pc.is_valid(t["dup_cluster"])).group_by("dup_cluster").aggregate(
                [("dup_cluster_size", "max")])
            s.clusters.update({r["dup_cluster"]: r["dup_cluster_size_max"] or 0 for r in g.to_pylist()})
        for col in scores:
            lo, hi = pc.min_max(t[col]).as_py().values()
            if lo is not None and np.isfinite(lo) and np.isfinite(hi):
                old = s.ranges.get(col, [lo, hi])
                s.ranges[col] = [min(old[0], lo), max(old[1], hi)]
    for f in files:
        names = f.schema_arrow.names
        cols = [c for c in s.ranges if c in names]
        if not cols:
            continue
        t = f.read(columns=cols + [c for c in ("kept",) if c in names])
        kept = _kept(t).to_numpy(zero_copy_only=False)
        for c in cols:
            v = t[c].to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
            e, hk, hd = s.hists.get(c) or (bin_edges(*s.ranges[c], s.per_value(c)), 0, 0)
            ok = np.isfinite(v)
            s.hists[c] = (e, hk + np.histogram(v[ok & kept], e)[0], hd + np.histogram(v[ok & ~kept], e)[0])
    return s


def bin_edges(lo: float, hi: float, per_value: bool, bins: int = 30) -> np.ndarray:
    if per_value:
        return np.arange(lo, hi + 2) - 0.5  # one bar per integer value
    return np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])


# ---------------------------------------------------------------- sections

def section_run(m: Path, s: DocStats) -> str:
    t = read(m, "run-")
    if t is None or t.num_rows == 0:
        return note("run manifest (run-*.parquet) not in this run")
    rows = t.to_pylist()
    r = max(rows, key=lambda r: (str(r.get("started")), str(r.get("run_id"))))  # the latest run
    mine = [x for x in rows if x.get("run_id") == r.get("run_id")]
    failed = ", ".join(sorted(str(x["shard"]) for x in mine if x.get("shard_status") == "failed"))
    took = (r["ended"] - r["started"]).total_seconds() if r.get("ended") and r.get("started") else None
    plans = sorted({(x.get("input_collection"), x.get("input_format"), x.get("collection_stages"))
                    for x in mine if x.get("collection_stages")}, key=lambda p: tuple(str(v) for v in p))
    return table(None, [
        ["run id", r.get("run_id")], ["status", r.get("status")], ["started", r.get("started")],
        ["duration (s)", took], ["workers", r.get("workers")], ["config hash", r.get("config_hash")],
        ["input shards", len(mine)], ["failed shards", failed or "none"],
        ["stage order", ", ".join(json.loads(r.get("stage_order") or "[]"))],
        *[[f"stages of {c} ({f})", ", ".join(json.loads(st))] for c, f, st in plans],
        ["runs recorded in this directory", len({x.get("run_id") for x in rows})]])


def stage_totals(m: Path) -> dict[str, list[int]]:
    """stage -> [docs_in, docs_out] summed over shards: read first, dedup last, others in run order."""
    t = read(m, "stages", ["stage", "docs_in", "docs_out"])
    if t is None or not {"stage", "docs_in", "docs_out"} <= set(t.column_names):
        return {}
    totals: dict[str, list[int]] = {}  # insertion order = first appearance = the run's order
    for r in t.to_pylist():  # shards x stages rows: small (pyarrow's group_by reorders groups)
        if r["docs_out"] is not None:  # a step that does not count documents has no funnel bar
            acc = totals.setdefault(r["stage"], [0, 0])
            acc[0], acc[1] = acc[0] + (r["docs_in"] or 0), acc[1] + r["docs_out"]
    # Collections may run different stages (a books shard has no extract): order by the registry,
    # not by which shard's rows came first.
    from pipeline.registry import stages

    order = {e.cls.name: e.order for e in stages().values()}
    rank = {"read": -1, "quality_cut": 1000, "dedup": 1001}
    return dict(sorted(totals.items(), key=lambda kv: rank.get(stage_base(kv[0]), order.get(kv[0], 999))))


def section_funnel(m: Path, s: DocStats) -> str:
    totals = stage_totals(m)
    first = next(iter(totals.values()), [s.rows])[0]
    labels = ["records read"] + [f"after {st}" for st in totals] + ["curated (kept in documents)"]
    if totals and stage_base(next(iter(totals))) == "read":
        labels[1] = "kept after read (HTML responses)"
    # Documents alive after each stage: what read kept, less every stage's drops so far. (A stage's
    # own docs_out would undercount: only the collections that run it reach it.)
    alive, values = None, [first]
    for i, (din, dout) in enumerate(totals.values()):
        alive = dout if i == 0 else alive - (din - dout)
        values.append(alive)
    values.append(s.kept)
    body = hbars(labels, [("docs", values, BLUE)], first or None)
    if not totals:
        body += note("per-stage counts (stages*.parquet) not in this run")
    elif first != s.rows:
        body += f'<p class="warn">stages count {first:,} records read, documents has {s.rows:,} rows.</p>'
    sh, mix = read(m, "shards", ["kind", "tokens"]), read(m, "mixture", ["tokens_selected"])
    if sh is None or "tokens" not in sh.column_names:
        return body + note("tokens (shards*.parquet) not in this run")
    if "kind" in sh.column_names:  # the Megatron .bin/.idx rows repeat the same tokens
        sh = sh.filter(pc.equal(pc.fill_null(sh["kind"], "token_shard"), "token_shard"))
    body += f"<p><b>tokens:</b> {pc.sum(sh['tokens']).as_py() or 0:,} in {sh.num_rows:,} token shard(s)"
    if mix is not None and "tokens_selected" in mix.column_names:
        body += f"; {pc.sum(mix['tokens_selected']).as_py() or 0:,} selected into the blend"
    return body + "</p>"


def section_drops(m: Path, s: DocStats) -> str:
    if "drop_stage" not in s.columns:
        return note("drop_stage / drop_reason columns not in this run")
    if not s.drops:
        return note("no document was dropped")
    order = {stage_base(st): i for i, st in enumerate(stage_totals(m))}
    body, rows = [], []
    for st in sorted({st for st, _ in s.drops}, key=lambda st: (order.get(stage_base(st), 99), st)):
        c = Counter({why: n for (x, why), n in s.drops.items() if x == st})
        total = sum(c.values())
        body.append(f"<h3>{esc(st)}: {total:,} dropped</h3>" + count_bars(c, total, ORANGE))
        rows += [[st, why, n, f"{n / total:.1%}"] for why, n in c.most_common()]
    return table(["stage", "reason", "docs", "share of stage's drops"], rows) + "".join(body)


def section_languages(m: Path, s: DocStats) -> str:
    if "language" not in s.columns:
        return note("language column not in this run")
    return count_bars(s.languages, s.kept or None) if s.languages else note("no kept document")


def section_scores(m: Path, s: DocStats, prefix: str, first: str) -> str:
    """Histograms of the numeric `prefix*` columns, `first` first and larger; kept vs dropped."""
    cols = sorted((c for c in s.hists if c.startswith(prefix)), key=lambda c: (c != first, c))
    if first not in s.columns:
        head = note(f"{first} not in this run")
    else:
        head = "" if first in s.hists else note(f"{first}: no document was scored")
    figs = []
    for c in cols:
        e, hk, hd = s.hists[c]
        size = (520, 200) if c == first else (340, 140)
        chart = histogram(e, [("kept", hk, BLUE), ("dropped", hd, GREY)], *size, integer=s.per_value(c)) \
            if len(e) > 2 else note(f"every value is {s.ranges[c][0]:.4g}")  # one value: nothing to plot
        figs.append(f"<figure><figcaption>{esc(c)} ({int(hk.sum() + hd.sum()):,} docs)</figcaption>"
                    f"{chart}</figure>")
    if not figs:
        return head
    return head + legend([("kept", BLUE), ("dropped", GREY)]) + f'<div class="grid">{"".join(figs)}</div>'


def section_quality_model(m: Path, s: DocStats) -> str:
    if not s.model_hists:
        return note("quality_model_score not in this run (the quality_model stage did not run)")
    figs = []
    for coll, (hk, hd) in sorted(s.model_hists.items()):
        chart = histogram(MODEL_EDGES, [("kept", hk, BLUE), ("dropped", hd, GREY)], 340, 140)
        figs.append(f"<figure><figcaption>{esc(coll)} ({int(hk.sum() + hd.sum()):,} docs scored)</figcaption>"
                    f"{chart}</figure>")
    return legend([("kept", BLUE), ("dropped", GREY)]) + f'<div class="grid">{"".join(figs)}</div>'


def section_dedup(m: Path, s: DocStats) -> str:
    ran = any(stage_base(st) == "dedup" for st in stage_totals(m)) or bool(s.clusters)
    body = note("dedup did not run (no dedup stage row, no dup_cluster value)")
    if "dup_cluster_size" not in s.columns:
        body = note("dup_cluster_size column not in this run")
    elif ran:
        sizes = Counter(s.clusters.values())
        removed = sum(n for (st, _), n in s.drops.items() if stage_base(st) == "dedup")
        body = table(["duplicate clusters", "docs in clusters", "largest cluster", "docs removed by dedup"],
                     [[len(s.clusters), sum(s.clusters.values()), max(sizes, default=0), removed]])
        if sizes:
            keys = sorted(sizes)
            body += "<h3>clusters by size</h3>" + hbars([f"size {k}" for k in keys],
                                                         [("clusters", [sizes[k] for k in keys], BLUE)])
    t = read(m, "stages-dedup", ["details"])
    details = [json.loads(d) for d in t.column("details").to_pylist() if d] if t and t.num_columns else []
    if not details:
        return body + note("dedup details (stages-dedup.parquet) not in this run")
    for d in details:
        flat = [[k, v] for k, v in sorted(d.items()) if not isinstance(v, (dict, list))]
        body += "<h3>dedup step</h3>" + (table(["figure", "value"], flat) if flat else "")
        for k, v in sorted(d.items()):
            if isinstance(v, list) and v and all(isinstance(x, list) and len(x) == 2 for x in v):
                v = {str(a): b for a, b in v}  # [[cluster size, clusters], ...]: pipeline/dedup.py
            if isinstance(v, dict) and v and all(isinstance(x, (int, float)) for x in v.values()):
                keys = sorted(v, key=lambda x: (len(str(x)), str(x)))  # "2" before "10"
                body += f"<h3>{esc(k)}</h3>" + hbars([str(x) for x in keys],
                                                     [(k, [v[x] for x in keys], BLUE)])
            elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):  # e.g. phases
                cols = sorted({c for x in v.values() for c in x})
                rows = [[n, *(v[n].get(c) for c in cols)] for n in v]
                body += f"<h3>{esc(k)}</h3>" + table([k, *cols], rows)
    return body


def section_pii(m: Path, s: DocStats) -> str:
    if not s.pii:
        return note("PII columns (pii_*) not in this run")
    kinds = sorted(s.pii, key=lambda k: -s.pii[k][0])
    return (table(["type", "matches replaced", "docs with any"], [[k, *s.pii[k]] for k in kinds])
            + hbars(kinds, [("matches", [s.pii[k][0] for k in kinds], BLUE)]))


def section_mixture(m: Path, s: DocStats) -> str:
    t = read(m, "mixture")
    if t is None or t.num_rows == 0 or "source" not in t.column_names:
        return note("mixture (mixture*.parquet) not in this run")
    rows = t.to_pylist()
    cols = [c for c in ("source", "declared_weight", "normalised_weight", "realised_share", "docs",
                        "tokens_available", "samples", "tokens_selected", "epochs") if c in t.column_names]
    body = table(cols, [[r.get(c) for c in cols] for r in rows])
    if all(r.get("declared_weight") is None for r in rows):
        body += note("no mixture file: the default mix weights each source by the tokens it has")
    if {"normalised_weight", "realised_share"} <= set(cols):
        declared = [r["normalised_weight"] or 0 for r in rows]
        realised = [r["realised_share"] or 0 for r in rows]
        body += legend([("declared (normalised)", GREY), ("realised", BLUE)]) + hbars(
            [str(r["source"]) for r in rows], [("declared", declared, GREY), ("realised", realised, BLUE)],
            percent=True)
    return body


def section_validation(m: Path, s: DocStats) -> str:
    t = read(m, "validation")
    if t is None or t.num_rows == 0 or not {"step", "source"} <= set(t.column_names):
        return note("trainer validation (validation*.parquet with step, source) not in this run")
    rows = sorted(t.to_pylist(), key=lambda r: r["step"] or 0)
    sources, body = sorted({str(r["source"]) for r in rows}), ""
    for col in [c for c in ("val_loss", "train_loss") if c in t.column_names]:
        series = [(src, [(r["step"], r[col]) for r in rows if str(r["source"]) == src],
                   PALETTE[i % len(PALETTE)]) for i, src in enumerate(sources)]
        body += (f"<h3>{esc(col)} per source</h3>" + legend([(n, c) for n, _, c in series])
                 + lines(series, col))
    cols = [c for c in ("source", "step", "tokens_seen", "declared_share", "realised_share", "train_loss",
                        "val_loss") if c in t.column_names]
    latest = {str(r["source"]): r for r in rows}
    return body + "<h3>latest step per source</h3>" + table(cols, [[latest[x][c] for c in cols]
                                                                    for x in sources])


SECTIONS = [
    ("run", "Run", section_run),
    ("funnel", "Funnel", section_funnel),
    ("drops", "Drop reasons per stage", section_drops),
    ("languages", "Languages of kept documents", section_languages),
    ("quality", "Quality scores", partial(section_scores, prefix="quality_", first="quality_score")),
    ("quality_model", "Quality model: score per collection", section_quality_model),
    ("toxicity", "Toxicity scores", partial(section_scores, prefix="toxicity_", first="toxicity_score")),
    ("dedup", "Duplicate clusters", section_dedup),
    ("pii", "PII by type", section_pii),
    ("mixture", "Mixture: declared vs realised", section_mixture),
    ("validation", "Trainer: per-source loss", section_validation),
]


def write_report(directory: str | Path, out: str | Path | None = None) -> Path:
    """Render DIR/manifests into one HTML file (default DIR/report.html) and return its path.
    Raises FileNotFoundError when DIR has no manifests."""
    root = Path(directory)
    m = root / "manifests"
    if not any(m.glob("*.parquet")):
        raise FileNotFoundError(f"{m} holds no *.parquet manifests; run `python pipeline/run.py --output "
                                f"{root}` first, or point at a pipeline output directory")
    stats = scan_documents(m)
    parts = []
    for anchor, title, build in SECTIONS:
        try:
            body = build(m, stats)
        except Exception as exc:  # noqa: BLE001  one odd table must not cost the whole report
            log.warning("report section %s failed: %r", anchor, exc)
            body = f'<p class="warn">could not build this section: {esc(type(exc).__name__)}: {esc(exc)}</p>'
        parts.append(f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>')
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in SECTIONS)
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>gristmill report: {esc(root.name)}</title><style>{CSS}</style></head><body>"
            f"<h1>gristmill run report</h1><p>{esc(root.resolve())}: {stats.rows:,} records, "
            f"{stats.kept:,} curated. Generated {made} from the manifests only; no document text or URL "
            f"appears here.</p><nav>{nav}</nav>{''.join(parts)}</body></html>")
    target = Path(out) if out else root / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")  # atomic: a reader never sees half a page
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pipeline/report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", metavar="DIR", help="a pipeline output directory (holds manifests/)")
    p.add_argument("--out", metavar="FILE.html", help="where to write (default DIR/report.html)")
    args = p.parse_args(argv)
    try:
        path = write_report(args.dir, args.out)
    except (OSError, ValueError) as exc:  # no manifests, or a file that is not parquet
        print(f"report: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    print(f"report: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
