"""Real pages for the PII benchmark: extracted text with the URL and language the stage sees.

The PII stage runs after extraction and language ID, so the pages go through the same
`Extract` and `LangId` stages first: `doc.url` and `doc.language` are what the phone
detector infers regions from. Two sources:
- the 990 trafilatura evaluation pages (`../shared/corpus/pages/trafilatura`, URL from
  `evaldata_records.json`);
- the real CommonCrawl excerpt `tests/data/warc/cc/*.warc.gz` (CC-MAIN-2020-34, mostly Chinese).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from pipeline.document import Document

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TRAF = SHARED / "corpus/pages/trafilatura"


def _run_stages(docs: list[Document]) -> list[Document]:
    from filters.langid import LangId
    from pipeline.extract import Extract, ExtractConfig

    stages = [Extract(ExtractConfig(timeout_s=0)), LangId()]  # no time limit: same texts on a loaded machine
    for s in stages:
        s.ensure_setup()
    for i in range(0, len(docs), 128):
        batch = docs[i:i + 128]
        for s in stages:
            batch = [d for d in batch if d.kept]
            s.process_batch(batch)
    return [d for d in docs if d.kept and d.text]


def trafilatura_docs(limit: int = 990) -> list[Document]:
    recs = sorted(json.loads((TRAF / "evaldata_records.json").read_text(encoding="utf-8")),
                  key=lambda r: r["file"])[:limit]
    docs = []
    for r in recs:
        path = TRAF / "html" / (r["file"] + ".gz")
        url = r["url"] if "://" in r["url"] else "https://" + r["url"]
        docs.append(Document(doc_id="traf/" + r["file"], warc_path="", warc_offset=0, record_type="response",
                             url=url, raw=gzip.open(path).read(), content_type="text/html"))
    return _run_stages(docs)


def cc_docs() -> list[Document]:
    from pipeline.readers.warc import WarcReader

    docs = []
    for path in sorted((ROOT / "tests/data/warc/cc").glob("*.warc.gz")):
        for d in WarcReader(str(path), "cc"):
            if d.kept and d.record_type == "response":
                d.doc_id = f"cc/{path.name}/{d.warc_offset}"
                docs.append(d)
    return _run_stages(docs)


def real_docs(limit: int = 990, cache: Path | None = None) -> list[Document]:
    """Both sources; with `cache` (a JSON file, per `limit`), texts are stored once and read back next time."""
    if cache and cache.exists():
        return [Document(doc_id=r["id"], warc_path="", warc_offset=0, record_type="response", url=r["url"],
                         text=r["text"], language=r["lang"]) for r in json.loads(cache.read_text())]
    docs = trafilatura_docs(limit) + cc_docs()
    if cache:
        cache.write_text(json.dumps([{"id": d.doc_id, "url": d.url, "text": d.text, "lang": d.language}
                                     for d in docs], ensure_ascii=False))
    return docs
