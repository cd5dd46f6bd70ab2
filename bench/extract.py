"""Read + extract + language ID: gristmill against datatrove, side by side, one process each.

    .venv/bin/python bench/extract.py [--pages 300] [--quality-pages 990]

Speed: both read the same WARC (real pages from ../shared/corpus/pages/trafilatura wrapped as
CommonCrawl-style records) in one process (= one core) and go to language ID:
  gristmill: pipeline.readers.warc.WarcReader -> Extract -> LengthFilter -> LangId (batched)
  datatrove: WarcReader -> Trafilatura (its defaults: favour_precision, deduplicate, 1 s sandbox
             timeout) -> LanguageFilter (its default ft176 backend, pointed at the same local
             lid.176.ftz instead of downloading lid.176.bin)
Quality: trafilatura's own evaluation counting on evaldata.json (all 990 pages by default):
`with` snippets found (recall), `without` snippets avoided, precision, F1, for our settings
and datatrove's settings on the same decoded HTML. gristmill runs trafilatura's pruning XPaths
compiled to Python (pipeline/xpaths.py); its row is repeated with trafilatura's own XPaths
(libxml2), and the bench stops if the two give different text on any page. Every competitor
row runs trafilatura as shipped.
Modes (`[extract] mode`): cascade, trafilatura and resiliparse on the 990 pages plus the real
CommonCrawl responses (../shared/corpus/warc/resiliparse, tests/data/warc/cc), each followed by
length -> langid -> quality, for keep = * and keep = en: F1, extraction and chain CPU seconds,
and the kept set's difference from the trafilatura mode's, by reason, on the pages the
cascade's settings were tuned on (two thirds, by a hash of the name) and on the held-out third.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)
sys.path.insert(1, str(REPO / "tests" / "data"))
SHARED = REPO.parent / "shared" / "corpus" / "pages" / "trafilatura"


def build_warc(path: Path, n: int) -> int:
    from make_fixtures import gz, response, warcinfo

    recs = json.loads((SHARED / "evaldata_records.json").read_text())
    recs = sorted(recs, key=lambda r: r["file"])[:n]
    out = [warcinfo("bench")]
    for r in recs:
        url = r["url"] if "://" in r["url"] else "https://" + r["url"]
        out += response(url, gzip.open(SHARED / "html" / (r["file"] + ".gz")).read())
    path.write_bytes(b"".join(gz(x) for x in out))
    return len(recs)


def run_ours(path: Path) -> tuple[int, int, float]:
    from filters.langid import LangId
    from filters.length import LengthFilter
    from pipeline.extract import Extract
    from pipeline.readers.warc import WarcReader

    stages = [Extract(), LengthFilter(), LangId()]
    for s in stages:
        s.ensure_setup()
    t0 = time.perf_counter()
    docs = [d for d in WarcReader(str(path), "bench") if d.kept]
    n_in = len(docs)
    for i in range(0, len(docs), 256):
        alive = docs[i:i + 256]
        for s in stages:
            alive = [d for d in alive if d.kept]
            s.process_batch(alive)
    return n_in, sum(d.kept for d in docs), time.perf_counter() - t0


def run_datatrove(path: Path) -> tuple[int, int, float]:
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.pipeline.readers import WarcReader
    from fasttext.FastText import _FastText

    from filters.langid import MODEL_PATH
    from pipeline import xpaths

    xpaths.uninstall()   # datatrove runs trafilatura as shipped (its sandbox forks this process)
    reader = WarcReader(str(path.parent), glob_pattern=path.name)
    extractor = Trafilatura(favour_precision=True, timeout=1.0)
    lang = LanguageFilter()
    lang.model._model = _FastText(str(MODEL_PATH))  # the same model file; no download
    t0 = time.perf_counter()
    counted = []

    def count(docs):
        for d in docs:
            counted.append(1)
            yield d

    kept = sum(1 for _ in lang.run(extractor.run(count(reader.run()))))
    secs = time.perf_counter() - t0
    xpaths.install()
    return len(counted), kept, secs


def quality(n: int) -> list[dict]:
    import trafilatura

    from pipeline.extract import decode_html

    ev = json.loads((SHARED / "evaldata.json").read_text())
    items = sorted(ev.items(), key=lambda kv: kv[1]["file"])[:n]
    settings = {
        "gristmill (precision; fallback with trafilatura defaults if < 1500 chars)": "ours",
        "gristmill, trafilatura's own XPaths (libxml2)": "ours-libxml2",
        "datatrove (favour_precision, deduplicate, fallback)": dict(favor_precision=True, include_comments=False,
                                                                   deduplicate=True),
        "trafilatura defaults": dict(),
        "precision, never fallback": dict(favor_precision=True, no_fallback=True, include_comments=False),
        "resiliparse main content ([extract] mode = resiliparse)": "resiliparse",
    }
    from pipeline import xpaths
    from pipeline.cascade import fast_text
    from pipeline.extract import Extract, ExtractConfig

    ours = Extract(ExtractConfig(mode="trafilatura"))
    ours.ensure_setup()
    rows = []
    texts: dict[str, list[str]] = {}
    for name, kw in settings.items():
        # gristmill's row with pipeline/xpaths.py; every other row with trafilatura as shipped
        xpaths.install() if kw == "ours" else xpaths.uninstall()
        texts[name] = []
        tp = fn = tn = fp = 0
        t0 = time.perf_counter()
        for url, e in items:
            html, _ = decode_html(gzip.open(SHARED / "html" / (e["file"] + ".gz")).read(), None)
            if kw == "resiliparse":
                text = fast_text(html)
            else:
                text = (ours._run(html, url) if kw in ("ours", "ours-libxml2")
                        else trafilatura.extract(html, url=url, **kw)) or ""
            texts[name].append(text)
            for s in e.get("with", []):
                tp, fn = (tp + 1, fn) if s in text else (tp, fn + 1)
            for s in e.get("without", []):
                tn, fp = (tn + 1, fp) if s not in text else (tn, fp + 1)
        secs = time.perf_counter() - t0
        prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        rows.append({"settings": name, "pages": len(items), "with_found": rec, "without_avoided": tn / max(tn + fp, 1),
                     "precision": prec, "f1": 2 * prec * rec / max(prec + rec, 1e-9), "docs_s": len(items) / secs})
    xpaths.install()
    a, b = (texts[k] for k, v in settings.items() if v in ("ours", "ours-libxml2"))
    if a != b:
        raise SystemExit(f"pipeline/xpaths.py changed the extracted text of {sum(x != y for x, y in zip(a, b))} pages")
    return rows


def mode_pages() -> list[tuple[str, str, bytes, str | None]]:
    """(name, url, payload, content type) of the 990 pages and the real CommonCrawl responses."""
    from pipeline.readers.warc import WarcReader

    ev = json.loads((SHARED / "evaldata.json").read_text())
    out = [(e["file"], url, gzip.open(SHARED / "html" / (e["file"] + ".gz")).read(), None)
           for url, e in sorted(ev.items(), key=lambda kv: kv[1]["file"])]
    for w in (REPO.parent / "shared" / "corpus" / "warc" / "resiliparse" / "CC-MAIN-2020-34_warcfile.warc.gz",
              REPO / "tests" / "data" / "warc" / "cc" / "CC-MAIN-2020-34-excerpt.warc.gz"):
        out += [(f"cc:{w.name}:{d.warc_offset}", d.url, d.raw, d.content_type)
                for d in WarcReader(str(w), "cc") if d.kept and d.raw]
    return out


def tuned(name: str) -> bool:
    """The two thirds the cascade's settings were chosen on (pipeline/cascade.py)."""
    import zlib

    return zlib.crc32(name.encode()) % 3 != 0


def run_mode(pages: list, mode: str, keep: tuple[str, ...]) -> dict:
    """Extract (mode) -> length -> langid -> quality on every page, batched as a shard runs them."""
    from filters.langid import LangId, LangIdConfig
    from filters.length import LengthFilter
    from filters.quality import QualityFilter
    from pipeline.document import Document
    from pipeline.extract import Extract, ExtractConfig

    lid = LangIdConfig(keep=keep)
    stages = [Extract(ExtractConfig(mode=mode), langid=lid), LengthFilter(), LangId(lid), QualityFilter()]
    for st in stages:
        st.ensure_setup()
    docs = [Document(doc_id=name, warc_path="", warc_offset=0, record_type="response", url=url, raw=raw,
                     content_type=ct or "text/html") for name, url, raw, ct in pages]
    cpu = dict.fromkeys(("extract", "chain"), 0.0)
    extracted = {}  # url -> text as extracted (quality rewrites it to its content lines)
    for i in range(0, len(docs), 256):
        alive = docs[i:i + 256]
        for k, st in enumerate(stages):
            alive = [d for d in alive if d.kept]
            t0 = time.process_time()
            st.process_batch(alive)
            cpu["extract" if k == 0 else "chain"] += time.process_time() - t0
            if k == 0:
                extracted.update((d.url, d.text) for d in alive)
    return {"docs": docs, "extracted": extracted, **cpu}


def f1(by_url: dict[str, str], ev: dict) -> float:
    tp = fn = fp = 0
    for url, e in ev.items():
        text = by_url.get(url, "")
        tp += sum(s in text for s in e.get("with", []))
        fn += sum(s not in text for s in e.get("with", []))
        fp += sum(s in text for s in e.get("without", []))
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return 2 * prec * rec / max(prec + rec, 1e-9)


def modes() -> None:
    from collections import Counter

    pages = mode_pages()
    ev = json.loads((SHARED / "evaldata.json").read_text())
    n_cc = sum(p[0].startswith("cc:") for p in pages)
    print(f"\nextraction modes: {len(pages) - n_cc} evaluation pages + {n_cc} CommonCrawl responses, one process; "
          f"load {os.getloadavg()[0]:.1f}")
    print("| keep | mode | F1 (990) | extract CPU s | extract docs/s/core | length+langid+quality CPU s | "
          "kept | kept-set difference vs trafilatura (tuned / held-out) | by reason |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    import trafilatura

    from pipeline import xpaths
    from pipeline.extract import decode_html

    xpaths.uninstall()   # datatrove's settings with trafilatura as shipped
    t0 = time.process_time()
    dt_text = {url: trafilatura.extract(decode_html(raw, ct)[0], url=url, favor_precision=True, include_comments=False,
                                        deduplicate=True) or "" for name, url, raw, ct in pages if not name.startswith("cc:")}
    dt_cpu = time.process_time() - t0
    xpaths.install()
    print(f"| * | datatrove's settings (favour_precision, deduplicate, fallback always) | {f1(dt_text, ev):.3f} | "
          f"{dt_cpu:.1f} (990 pages) | {len(dt_text) / dt_cpu:.0f} | | | | |")
    for keep in (("*",), ("en",)):
        runs = {m: run_mode(pages, m, keep) for m in ("trafilatura", "cascade", "resiliparse")}
        base = {d.doc_id: d for d in runs["trafilatura"]["docs"]}
        for mode, r in runs.items():
            docs = r["docs"]
            diff = [d for d in docs if d.kept != base[d.doc_id].kept]
            same_text = all(d.text == base[d.doc_id].text for d in docs if d.kept and base[d.doc_id].kept)
            reasons = Counter(f"{'lost' if base[d.doc_id].kept else 'gained'}: {d.drop_reason or base[d.doc_id].drop_reason}"
                              for d in diff)
            n_t = sum(tuned(d.doc_id) for d in docs)
            d_t = sum(tuned(d.doc_id) for d in diff)
            early = sum(d.drop_reason == "cascade_language_not_kept" for d in docs)
            note = f"; {early} dropped before trafilatura" if early else ""
            note += "" if same_text or mode == "resiliparse" else "; TEXT DIFFERS"
            print(f"| {','.join(keep)} | {mode} | {f1(r['extracted'], ev) if keep == ('*',) else float('nan'):.3f} | "
                  f"{r['extract']:.1f} | {len(docs) / r['extract']:.0f} | {r['chain']:.1f} | "
                  f"{sum(d.kept for d in docs)} | {len(diff)} = {len(diff) / len(docs):.2%} "
                  f"({d_t / n_t:.2%} / {(len(diff) - d_t) / (len(docs) - n_t):.2%}) | "
                  f"{dict(reasons.most_common(6)) or '-'}{note} |")


FALLBACK_PASSES = {
    # name: trafilatura.extract settings (include_tables and include_comments as ExtractConfig)
    "A": dict(favor_precision=True, no_fallback=True, deduplicate=False),  # the first pass
    "B": dict(favor_precision=True, no_fallback=False, deduplicate=False),  # the fallback until issue 13
    "C": dict(favor_precision=False, no_fallback=False, deduplicate=False),  # trafilatura's defaults
    "Bd": dict(favor_precision=True, no_fallback=False, deduplicate=True),  # = datatrove's settings
}
THRESHOLDS = (0, 250, 500, 750, 1000, 1500, 2000, 3000, 5000, 10**9)


def fallback_tuning() -> None:
    """`[extract] fallback_below_chars` and the fallback chain, chosen on the tuned two thirds of
    the 990 pages (`tuned()`), reported on the held-out third: each pass's text and CPU seconds
    per page are computed once (cached in the temp folder), then every rule "first pass; if it
    gives fewer than T characters, the fallback pass" is scored from them."""
    import trafilatura

    from pipeline.extract import decode_html

    ev = json.loads((SHARED / "evaldata.json").read_text())
    cache = Path(tempfile.gettempdir()) / "gristmill_bench_extract_fallback.json"
    runs = json.loads(cache.read_text()) if cache.is_file() else {}
    if set(runs) != set(FALLBACK_PASSES):
        from trafilatura.deduplication import LRU_TEST

        items = sorted(ev.items(), key=lambda kv: kv[1]["file"])
        html = {url: decode_html(gzip.open(SHARED / "html" / (e["file"] + ".gz")).read(), None)[0] for url, e in items}
        runs = {k: {} for k in FALLBACK_PASSES}
        for k, kw in FALLBACK_PASSES.items():
            # one pass over all pages per setting, as a process runs it: `deduplicate` remembers
            # text seen on earlier pages (a process-wide cache), so settings must not share it
            LRU_TEST.clear()
            for url, _ in items:
                t0 = time.process_time()
                text = trafilatura.extract(html[url], url=url, include_tables=True, include_comments=False, **kw) or ""
                runs[k][url] = (text, time.process_time() - t0)
        cache.write_text(json.dumps(runs))
    parts = {"tuned": {u: e for u, e in ev.items() if tuned(e["file"])}}
    parts["held-out"] = {u: e for u, e in ev.items() if u not in parts["tuned"]}
    parts["all 990"] = ev
    rows = []
    # (deduplicate is left out of two-pass rules: its cache would carry the first pass's text
    # into the fallback's, which separate passes cannot reproduce)
    for first, second in (("A", "B"), ("A", "C")):
        for t in THRESHOLDS:
            text = {u: a if len(a) >= t else (runs[second][u][0] or a) for u, (a, _) in runs[first].items()}
            cpu = sum(c for _, c in runs[first].values()) + sum(
                runs[second][u][1] for u, (a, _) in runs[first].items() if len(a) < t)
            rows.append((f"{first}, then {second} below {t}", {k: f1(text, p) for k, p in parts.items()}, cpu))
    for k in FALLBACK_PASSES:
        rows.append((f"{k} alone", {n: f1({u: x for u, (x, _) in runs[k].items()}, p) for n, p in parts.items()},
                     sum(c for _, c in runs[k].values())))
    best = max(rows, key=lambda r: (round(r[1]["tuned"], 4), -r[2]))
    print(f"\nfallback rule (A: precision, no fallback; B: precision + fallback; C: trafilatura's defaults; "
          f"Bd: datatrove's settings = B + deduplicate), F1 tuned ({len(parts['tuned'])} pages) / held-out "
          f"({len(parts['held-out'])}) / all, CPU s for 990 pages; load {os.getloadavg()[0]:.1f}")
    print("| rule | F1 tuned | F1 held-out | F1 all | CPU s | docs/s per core |\n| --- | --- | --- | --- | --- | --- |")
    for name, f, cpu in rows:
        mark = " **(best on tuned)**" if (name, f, cpu) == best else ""
        print(f"| {name}{mark} | {f['tuned']:.4f} | {f['held-out']:.4f} | {f['all 990']:.4f} | {cpu:.1f} | "
              f"{len(ev) / cpu:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=300, help="pages in the speed WARC")
    ap.add_argument("--quality-pages", type=int, default=990)
    ap.add_argument("--modes-only", action="store_true", help="only the [extract] mode table")
    ap.add_argument("--fallback-only", action="store_true", help="only the fallback-rule table (tuned/held-out)")
    args = ap.parse_args()
    if args.modes_only:
        return modes()
    if args.fallback_only:
        return fallback_tuning()
    if not SHARED.is_dir():
        raise SystemExit(f"needs {SHARED}")
    with tempfile.TemporaryDirectory() as tmp:
        warc = Path(tmp) / "bench.warc.gz"
        n = build_warc(warc, args.pages)
        print(f"speed: {n} real pages as one WARC, one process each (docs/s per core)")
        ours = run_ours(warc)
        theirs = run_datatrove(warc)
    print(f"{'pipeline':<12}{'responses':>10}{'kept':>7}{'seconds':>9}{'docs/s/core':>13}")
    for name, (n_in, kept, secs) in (("gristmill", ours), ("datatrove", theirs)):
        print(f"{name:<12}{n_in:>10}{kept:>7}{secs:>9.1f}{n_in / secs:>13.1f}")
    ratio = (ours[0] / ours[2]) / (theirs[0] / theirs[2])
    print(f"ratio gristmill / datatrove: {ratio:.2f}x")
    print(f"\nextraction quality on {args.quality_pages} pages of trafilatura's evaluation set")
    print(f"{'settings':<52}{'with found':>11}{'without avoided':>16}{'precision':>10}{'F1':>7}{'docs/s':>8}")
    for r in quality(args.quality_pages):
        print(f"{r['settings']:<52}{r['with_found']:>11.3f}{r['without_avoided']:>16.3f}{r['precision']:>10.3f}"
              f"{r['f1']:>7.3f}{r['docs_s']:>8.1f}")
    modes()


if __name__ == "__main__":
    main()
