"""What the default web rules (length -> langid -> quality, default configs) drop on real book and
Wikipedia text, and the per-kind overrides chosen from it, checked on held-out material.

    .venv/bin/python bench/kind_rules.py          # needs ../shared; prints markdown tables

Books: the three Gutenberg novels of ../shared/corpus/books through the text reader. Whole books
(the reader's default `split = "file"`) are 3 documents only, so the rules are also measured on
the books cut into 2,000-word chunks at paragraph ends (what a books source holding long books in
parts, or a chunking reader, gives). Tuned on Katrine and Jack Sheppard; News from Nowhere held out.
Wikipedia: the 71 articles of ../shared/corpus/wiki/wikitext through the MediaWiki reader; tuned
(69 once the redirect and the empty page are dropped) on the two thirds whose title hash is not 0 mod 3, the other third held out.
"""

from __future__ import annotations

import collections
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # not bench/, whose tokenize.py and filters.py would shadow the stdlib and the package
sys.path.append(str(REPO / "tests/data"))

from filters.langid import LangId, LangIdConfig  # noqa: E402
from filters.length import LengthConfig, LengthFilter  # noqa: E402
from filters.quality import QualityConfig, QualityFilter  # noqa: E402
from pipeline.document import Document  # noqa: E402
from pipeline.readers.mediawiki import MediaWikiReader  # noqa: E402
from pipeline.readers.text import TextReader  # noqa: E402

SHARED = REPO.parent / "shared"
BOOKS = ("pg14263-katrine", "pg16215-jack-sheppard", "pg3261-news-from-nowhere")
HELD_OUT_BOOK = "pg3261-news-from-nowhere"

# The proposal (kind -> section -> {key: value}); the numbers behind each entry are printed.
OVERRIDES: dict[str, dict[str, dict]] = {
    "books": {
        # A novel is 50k-200k words and 0.3-1.5 M characters: the web caps (100k words, 1 M chars) cut
        # whole books; 30 M characters is above the longest single volumes.
        "length": {"max_chars": 30_000_000},
        "quality": {
            # C4's line removal deletes short lines (dialogue, verse, headings): up to 6.8% of a
            # chunk's characters on the tuning books.
            "remove_lines": False,
            # Gutenberg marks footnotes and page numbers with braces ("{3}"): not code.
            "c4_curly_bracket": False,
            "languages": {"en": {
                "max_doc_words": -1,
                # Hard-wrapped prose (70 columns): most lines end mid-sentence; 0.054-0.257 of
                # lines end in punctuation on the tuning books, 33 of 38 held-out chunks fail 0.12.
                "line_punct_thr": -1,
                # Punctuation counts as a non-alphabetic word: comma-rich prose sits at 0.763-0.86
                # (tuning); 0.7 leaves margin under the lowest chunk.
                "min_alpha_words_ratio": 0.7,
            }},
        },
    },
    "wiki": {
        "quality": {
            # Lists and short lines are content here: C4's line removal took up to 28% of an article.
            "remove_lines": False,
            "languages": {"en": {
                # Stubs are articles: 2 sentences and 30 words (the web: 5 and 50).
                "c4_min_sentences": 2, "min_doc_words": 30,
                # Dates, scores and statistics: the lowest tuning article sits at 0.678.
                "min_alpha_words_ratio": 0.65,
            }},
        },
    },
}


def chunks(doc: Document, words: int = 2000) -> list[Document]:
    out, buf, n = [], [], 0
    for para in doc.text.split("\n\n"):
        buf.append(para)
        n += len(para.split())
        if n >= words:
            out.append("\n\n".join(buf))
            buf, n = [], 0
    if buf:
        out.append("\n\n".join(buf))
    return [Document(doc_id=f"{doc.doc_id}#{i}", warc_path=doc.warc_path, warc_offset=0, record_type="document",
                     input_format="text", text=t, n_chars=len(t)) for i, t in enumerate(out)]


def book_docs() -> dict[str, list[Document]]:
    out = {}
    for name in BOOKS:
        (doc,) = list(TextReader().read(str(SHARED / f"corpus/books/{name}.txt"), name))
        out[name] = [doc]
    return out


def wiki_docs() -> list[Document]:
    from make_sources import wiki_dump

    path = Path("/tmp/gristmill-kind-rules-wiki.xml")
    path.write_text(wiki_dump(skip=()), encoding="utf-8")
    return [d for d in MediaWikiReader().read(str(path), "wiki") if d.kept and int(d.source_id) < 5000]


def run(docs: list[Document], overrides: dict[str, dict] | None = None) -> tuple[collections.Counter, dict]:
    """First drop (stage: reason) per document through length -> langid -> quality, and the quality
    scores of each document (to see how far from a threshold it sits)."""
    o = overrides or {}
    length = LengthFilter(LengthConfig(**o.get("length", {})))
    langid = LangId(LangIdConfig(**o.get("langid", {})))
    langid.setup()
    quality = QualityFilter(QualityConfig(**o.get("quality", {})))
    fresh = [Document(doc_id=d.doc_id, warc_path="", warc_offset=0, record_type="document", text=d.text,
                      n_chars=len(d.text)) for d in docs]
    alive = fresh
    for stage in (length, langid, quality):
        stage.process_batch(alive)
        alive = [d for d in alive if d.kept]
    outcome = collections.Counter("kept" if d.kept else f"{d.drop_stage.split('_v')[0]}: {d.drop_reason}"
                                  for d in fresh)
    return outcome, {d.doc_id: d.meta for d in fresh}


def fmt(c: collections.Counter) -> str:
    total = sum(c.values())
    return ", ".join(f"{k} {v}" for k, v in c.most_common()) + f" (of {total})"


def score_range(meta: dict, key: str) -> str:
    vals = [m[key] for m in meta.values() if m.get(key) is not None]
    return f"{min(vals):.3g}-{max(vals):.3g}" if vals else "n/a"


def report() -> str:
    """The markdown table: outcome per material under the web defaults and under OVERRIDES."""
    books = book_docs()
    whole = [d for ds in books.values() for d in ds]
    tune_chunks = [c for name in BOOKS if name != HELD_OUT_BOOK for c in chunks(books[name][0])]
    held_chunks = chunks(books[HELD_OUT_BOOK][0])
    wiki = wiki_docs()
    tune_wiki = [d for d in wiki if zlib.crc32(d.title.encode()) % 3]
    held_wiki = [d for d in wiki if not zlib.crc32(d.title.encode()) % 3]
    rows = [("books, whole (3 novels)", whole, "books"), ("books, 2,000-word chunks: tuning (2 novels)",
            tune_chunks, "books"), ("books, chunks: HELD OUT (News from Nowhere)", held_chunks, "books"),
            (f"wiki: tuning (2/3 of {len(wiki)} articles)", tune_wiki, "wiki"), ("wiki: HELD OUT (1/3)", held_wiki,
                                                                                 "wiki")]
    out = ["| material | docs | web defaults: outcome | proposed kind overrides: outcome |", "| --- | --- | --- | --- |"]
    for label, docs, kind in rows:
        before, meta = run(docs)
        after, _ = run(docs, OVERRIDES[kind])
        out.append(f"| {label} | {len(docs)} | {fmt(before)} | {fmt(after)} |")
        if "tuning" in label:
            keys = ("quality_alpha_words_ratio", "quality_line_punct_ratio", "quality_short_line_ratio",
                    "quality_dup_line_frac", "quality_list_ratio", "quality_c4_removed_char_frac",
                    "quality_c4_sentences", "quality_word_count")
            out.append("|  | score ranges (tuning, web defaults) | " + "; ".join(
                f"{k.removeprefix('quality_')} {score_range(meta, k)}" for k in keys) + " | |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(report())
