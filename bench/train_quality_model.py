"""Train the shipped quality classifier (filters/data/quality_model/quality_model.ftz), GPT-3 style.

    .venv/bin/python bench/train_quality_model.py            # writes filters/data/quality_model/
    .venv/bin/python bench/train_quality_model.py --out DIR  # writes elsewhere (the ablation uses this)

Positives, reference-like English text from ../shared (read-only, never needed at run time):
  wiki   71 Wikipedia articles, wikitext turned into plain text by mwparserfromhell;
  books  3 Project Gutenberg novels, licence header/footer cut, passages of ~3,000 characters;
  news   the human-judged news articles of the Webis pairs, one article per connected pair group
         (the pairs are near-duplicates: both sides of a split would leak).
Negatives, raw web pages that pass the heuristics: the 990 trafilatura evaluation pages wrapped as
a WARC and the fixture wget crawl, run through `pipeline/run.py` (read, url, extract, length,
langid keeping English only, quality, toxicity, pii; no dedup, no tokens).

A fixed share of each positive source is held back from the classifier: the REFERENCE set, on
which bench/quality_ablation.py measures language-model loss (wiki: 1 article in 5 by a hash of its
title; books: the last 20 % of each book's passages; news: 1 group in 5). `reference.jsonl` lists
them by name only (no text ships). Same ../shared -> same model bytes (train_quality's guarantee).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path, where bench/filters.py would shadow the
# `filters` package (and bench/tokenize.py the standard library): the repo root goes there.
sys.path[0] = str(REPO)

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import tempfile

SHARED = REPO.parent / "shared"
OUT = REPO / "filters" / "data" / "quality_model"
REFERENCE_SHARE = 0.2
PASSAGE_CHARS = 3000


def _held(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < REFERENCE_SHARE


def wiki_texts() -> dict[str, str]:
    """title -> plain text of each wikitext article."""
    import mwparserfromhell

    out = {}
    for p in sorted((SHARED / "corpus" / "wiki" / "wikitext").glob("*.txt")):
        code = mwparserfromhell.parse(p.read_text(encoding="utf-8"))
        for node in code.filter_tags(recursive=True):  # references and tables are not prose
            if str(node.tag).lower() in ("ref", "table", "gallery"):
                try:
                    code.remove(node)
                except ValueError:
                    pass
        text = code.strip_code(normalize=True, collapse=True)
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.splitlines()))
        out[p.stem] = text.strip()
    return out


def book_passages() -> dict[str, list[str]]:
    """book -> passages of ~PASSAGE_CHARS characters, cut at paragraph ends, licence text removed."""
    out = {}
    for p in sorted((SHARED / "corpus" / "books").glob("*.txt")):
        text = p.read_text(encoding="utf-8").replace("\r\n", "\n")
        start = re.search(r"\*\*\* ?START OF.*?\*\*\*", text)
        end = re.search(r"\*\*\* ?END OF.*?\*\*\*", text)
        body = text[start.end() if start else 0: end.start() if end else len(text)]
        passages, cur = [], []
        for para in re.split(r"\n\s*\n", body):
            para = " ".join(para.split())
            if para:
                cur.append(para)
            if sum(map(len, cur)) >= PASSAGE_CHARS:
                passages.append("\n\n".join(cur))
                cur = []
        if cur:
            passages.append("\n\n".join(cur))
        out[p.stem] = passages
    return out


def news_groups() -> dict[str, str]:
    """group id -> one article per connected group of Webis pairs."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    texts = {}
    with open(SHARED / "corpus" / "dedup" / "webis_pairs.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            texts.setdefault(r["doc_a_id"], r["text_a"])
            texts.setdefault(r["doc_b_id"], r["text_b"])
            parent[find(r["doc_a_id"])] = find(r["doc_b_id"])
    groups: dict[str, str] = {}
    for doc in sorted(texts):
        groups.setdefault(find(doc), doc)
    return {g: texts[doc] for g, doc in sorted(groups.items())}


def positives() -> tuple[dict[str, list[str]], list[dict]]:
    """Training texts per source, and the held-back reference documents (name, source, text)."""
    train: dict[str, list[str]] = {"wiki": [], "books": [], "news": []}
    reference = []
    for title, text in wiki_texts().items():
        (reference.append({"source": "wiki", "name": title, "text": text}) if _held("wiki:" + title)
         else train["wiki"].append(text))
    for book, passages in book_passages().items():
        cut = int(len(passages) * (1 - REFERENCE_SHARE))
        train["books"] += passages[:cut]
        reference += [{"source": "books", "name": f"{book}#{i}", "text": t} for i, t in enumerate(passages[cut:], cut)]
    for group, text in news_groups().items():
        (reference.append({"source": "news", "name": group, "text": text}) if _held("news:" + group)
         else train["news"].append(text))
    return train, reference


def response_record(url: str, body: bytes, date: str = "2024-07-10T22:34:45Z") -> bytes:
    import uuid

    http = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\nWARC-Date: {date}\r\n"
            f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return gzip.compress(head.encode() + http + b"\r\n\r\n", mtime=0)


def web_warc(work: Path) -> Path:
    """The 990 trafilatura evaluation pages as one WARC of response records (built once)."""
    warc = work / "inputs" / "web" / "trafilatura-pages.warc.gz"
    if warc.is_file():
        return warc
    recs = json.loads((SHARED / "corpus/pages/trafilatura/evaldata_records.json").read_text())
    html = SHARED / "corpus/pages/trafilatura/html"
    warc.parent.mkdir(parents=True, exist_ok=True)
    tmp = warc.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for r in sorted(recs, key=lambda r: r["file"]):
            url = r["url"] if "://" in r["url"] else "https://" + r["url"]
            f.write(response_record(url, gzip.open(html / (r["file"] + ".gz")).read()))
    tmp.replace(warc)
    return warc


def web_run(work: Path) -> Path:
    """The negatives' pipeline run: the trafilatura pages as a WARC plus the wget fixture crawl."""
    run = work / "web_run"
    if (run / "curated").is_dir():
        return run
    warc = web_warc(work)
    config = work / "web.toml"
    config.write_text('[pipeline]\ndedup = false\ntokenize = false\n[langid]\nkeep = ["en"]\n', encoding="utf-8")
    cmd = [sys.executable, str(REPO / "pipeline" / "run.py"), "--input", f"web={warc.parent}",
           "--input", f"web={REPO / 'tests/data/warc/wget'}", "--output", str(run), "--config", str(config),
           "--workers", "0", "-q"]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(OUT), help="folder for quality_model.ftz and its card")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gristmill-quality-model"),
                   help="scratch folder (the negatives' pipeline run is cached there)")
    a = p.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs ../shared beside the repository ({SHARED})", file=sys.stderr)
        return 2
    from filters.train_quality import Source, TrainSettings, load_source, train

    work, out = Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    pos_texts, reference = positives()
    pos = [Source(f"../shared:{name}", texts, len(texts)) for name, texts in pos_texts.items()]
    neg = [load_source(str(web_run(work)))]
    neg[0].spec = "../shared/corpus/pages/trafilatura + tests/data/warc/wget, through the pipeline (English only)"
    out.mkdir(parents=True, exist_ok=True)
    # 10 % of ~290 balanced texts is ~30 held out: one split's AUC is noise. Five splits (the
    # split seed also seeds fastText) say how much; the shipped model is split seed 1.
    aucs = []
    for seed in range(2, 6):
        with tempfile.TemporaryDirectory() as tmp:
            c = train(pos, neg, Path(tmp) / "m.ftz", TrainSettings(seed=seed))
            aucs.append(c["metrics_holdout"]["quantized"])
    card = train(pos, neg, out / "quality_model.ftz", TrainSettings(), argv=["bench/train_quality_model.py"])
    aucs.insert(0, card["metrics_holdout"]["quantized"])
    cv = {k: [m[k] for m in aucs] for k in ("roc_auc", "precision", "recall", "n")}
    card["cross_validation"] = cv
    (out / "quality_model.json").write_text(json.dumps(card, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"held-out ROC-AUC over 5 split seeds: {cv['roc_auc']} (mean {sum(cv['roc_auc']) / 5:.3f}); "
          f"precision at 0.5 {cv['precision']}; recall {cv['recall']}; held-out sizes {cv['n']}")
    with open(out / "reference.jsonl", "w", encoding="utf-8") as f:
        for r in reference:
            f.write(json.dumps({"source": r["source"], "name": r["name"], "chars": len(r["text"])}) + "\n")
    print(f"reference set (held back from training, for bench/quality_ablation.py): {len(reference)} documents")
    return 0 if card else 1


if __name__ == "__main__":
    sys.exit(main())
