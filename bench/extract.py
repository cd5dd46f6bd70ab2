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
and datatrove's settings on the same decoded HTML.
"""

from __future__ import annotations

import argparse
import gzip
import json
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
    return len(counted), kept, time.perf_counter() - t0


def quality(n: int) -> list[dict]:
    import trafilatura

    from pipeline.extract import decode_html

    ev = json.loads((SHARED / "evaldata.json").read_text())
    items = sorted(ev.items(), key=lambda kv: kv[1]["file"])[:n]
    settings = {
        "gristmill (precision; fallback if < 1000 chars)": "ours",
        "datatrove (favour_precision, deduplicate, fallback)": dict(favor_precision=True, include_comments=False,
                                                                   deduplicate=True),
        "trafilatura defaults": dict(),
        "precision, never fallback": dict(favor_precision=True, no_fallback=True, include_comments=False),
    }
    from pipeline.extract import Extract

    ours = Extract()
    ours.ensure_setup()
    rows = []
    for name, kw in settings.items():
        tp = fn = tn = fp = 0
        t0 = time.perf_counter()
        for url, e in items:
            html, _ = decode_html(gzip.open(SHARED / "html" / (e["file"] + ".gz")).read(), None)
            text = (ours._run(html, url) if kw == "ours" else trafilatura.extract(html, url=url, **kw)) or ""
            for s in e.get("with", []):
                tp, fn = (tp + 1, fn) if s in text else (tp, fn + 1)
            for s in e.get("without", []):
                tn, fp = (tn + 1, fp) if s not in text else (tn, fp + 1)
        secs = time.perf_counter() - t0
        prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        rows.append({"settings": name, "pages": len(items), "with_found": rec, "without_avoided": tn / max(tn + fp, 1),
                     "precision": prec, "f1": 2 * prec * rec / max(prec + rec, 1e-9), "docs_s": len(items) / secs})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=300, help="pages in the speed WARC")
    ap.add_argument("--quality-pages", type=int, default=990)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
