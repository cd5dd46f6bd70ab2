"""Build the demo's non-WARC sources `tests/data/sources/` from real material in ../shared.

    python tests/data/make_sources.py          # needs ../shared beside the repository

The five sources of GPT-3's mixture (tokenize/mixes/gpt3.toml), the first being the WARCs of
tests/data/warc:

    --input cc=tests/data/warc --input webtext=tests/data/sources/webtext
    --input books1=tests/data/sources/books1 --input books2=tests/data/sources/books2
    --input wiki=tests/data/sources/wiki

plus `cc-copy/wiki-copy.warc.gz`, a web page copying one Wikipedia article of the dump (the
cross-source duplicate). Deterministic: the same ../shared and the same trafilatura give the
same bytes (gzip mtime 0, fixed dates, sorted inputs). Where every text comes from is written to
sources/README.md (kept in step with this script by hand: see `README` below).
"""

from __future__ import annotations

import bz2
import gzip
import json
import sys
from html import escape
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

HERE = Path(__file__).resolve().parent
OUT = HERE / "sources"
SHARED = HERE.parents[2] / "shared"
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from make_fixtures import gz, response, warcinfo, write_warc  # noqa: E402

TIMESTAMP = "2024-07-10T22:34:45Z"
# Pages of the trafilatura set already in tests/data/warc (make_fixtures takes every 27th file,
# 36 of them): left out here, so CommonCrawl and WebText2 share no page by construction.
CC_STEP, CC_COUNT = 27, 36
# The longest English pages under WEBTEXT_MAX_CHARS that are not in the CC fixture (a few
# pages of 20-50k characters, timetables and wikis, would otherwise be half the source).
WEBTEXT_PAGES = 60
WEBTEXT_MIN_WORDS = 250
WEBTEXT_MAX_CHARS = 9000
# Books: (source folder, Gutenberg file, excerpts as (first, last) line numbers of the book body).
BOOKS = (
    ("books1", "pg14263-katrine", ((300, 2700), (4000, 6400))),
    ("books2", "pg16215-jack-sheppard", ((600, 3000), (9000, 11400))),
)
LICENCE_LINES = 40          # of the licence that follows the end marker (the rest is the same text)
# Wikipedia: every article but the two largest (United Kingdom, 328 kB, and Anarchism, 190 kB,
# would double the dump), plus pages made here in the standard forms a real dump has.
WIKI_SKIP = ("United-Kingdom.txt", "anarchism.txt")
COPIED_ARTICLE = "Bodmin"
MADE_PAGES = (
    # (title, namespace, wikitext, redirect target): the hatnotes of United Kingdom
    # ({{Redirect|UK|...}}) and Anarchism ({{Redirect2|Anarchist|...}}) say these redirects exist.
    ("UK", 0, "#REDIRECT [[United Kingdom]]", "United Kingdom"),
    ("Anarchist", 0, "#REDIRECT [[Anarchism]] {{R from related word}}", "Anarchism"),
    ("Remote", 0, "'''Remote''' may refer to:\n\n"
     "* [[Remote Application Programming Interface]], a Microsoft Windows interface\n"
     "* [[Remote Data Objects]], a Microsoft data access interface\n"
     "* [[Remote Data Services]], a Microsoft technology for data access over HTTP\n"
     "* [[Routing and Remote Access Service]], a Microsoft Windows server API\n\n"
     "{{disambiguation}}", None),
    ("Category:Towns in Cornwall", 14, "[[Category:Towns in England|Cornwall]]\n"
     "{{Commons category|Towns in Cornwall}}", None),
)


def title_of(name: str) -> str:
    """SOURCES.md: the title is the file name with '-' or '_' for spaces."""
    return name.removesuffix(".txt").replace("_", " ").replace("-", " ")


# ---------------------------------------------------------------------------------------------
# WebText2-like JSONL: trafilatura's text of real pages, with their URLs


def webtext() -> list[dict]:
    import trafilatura

    from filters.langid import predict

    recs = json.loads((SHARED / "corpus/pages/trafilatura/evaldata_records.json").read_text())
    recs = sorted(recs, key=lambda r: r["file"])
    in_cc = {r["file"] for r in recs[::CC_STEP][:CC_COUNT]}
    html_dir = SHARED / "corpus/pages/trafilatura/html"
    found = []
    for r in recs:
        if r["file"] in in_cc:
            continue
        html = gzip.open(html_dir / (r["file"] + ".gz")).read().decode("utf-8", "replace")
        url = r["url"] if "://" in r["url"] else "https://" + r["url"]
        got = trafilatura.bare_extraction(html, url=url, favor_precision=True, include_comments=False)
        text = (got or {}).get("text") if isinstance(got, dict) else getattr(got, "text", None)
        if not text or len(text.split()) < WEBTEXT_MIN_WORDS or len(text) > WEBTEXT_MAX_CHARS:
            continue
        lang, score = predict([text])[0]
        if lang != "en" or score < 0.9:
            continue
        title = (got.get("title") if isinstance(got, dict) else getattr(got, "title", None)) or None
        found.append({"file": r["file"], "url": url, "title": title, "text": text})
    found.sort(key=lambda d: (-len(d["text"]), d["url"]))
    docs = sorted(found[:WEBTEXT_PAGES], key=lambda d: d["url"])
    return [{"id": f"webtext-{i:03d}", "url": d["url"], "title": d["title"], "text": d["text"],
             "source_file": d["file"]} for i, d in enumerate(docs)]


# ---------------------------------------------------------------------------------------------
# Books: Gutenberg excerpts with the real header and (the start of) the real footer


def book_excerpt(lines: list[str], first: int, last: int) -> str:
    def marker(word: str) -> int:
        return next(i for i, ln in enumerate(lines)
                    if ln.startswith("***") and f"{word} OF TH" in ln.upper() and "PROJECT GUTENBERG" in ln.upper())

    start, end = marker("START"), marker("END")
    licence = next(i for i, ln in enumerate(lines) if "START: FULL LICENSE" in ln)
    header = lines[: start + 1]
    body = lines[start + 1 + first: start + 1 + last]
    footer = lines[end - 2: licence + 1 + LICENCE_LINES]
    return "\r\n".join(header + ["", ""] + body + ["", ""] + footer) + "\r\n"


# ---------------------------------------------------------------------------------------------
# Wikipedia: a MediaWiki export dump


SITEINFO = """  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>enwiki</dbname>
    <base>https://en.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.43.0-wmf.12</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="2" case="first-letter">User</namespace>
      <namespace key="4" case="first-letter">Wikipedia</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""


def page_xml(title: str, ns: int, page_id: int, text: str, redirect: str | None = None) -> str:
    redirect_el = f'    <redirect title="{xml_escape(redirect, {chr(34): "&quot;"})}" />\n' if redirect else ""
    return (f"  <page>\n    <title>{xml_escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
            f"{redirect_el}    <revision>\n      <id>{page_id * 10}</id>\n      <timestamp>{TIMESTAMP}</timestamp>\n"
            f"      <contributor>\n        <username>gristmill-fixtures</username>\n        <id>1</id>\n"
            f"      </contributor>\n      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f'      <text bytes="{len(text.encode())}" xml:space="preserve">{xml_escape(text)}</text>\n'
            f"    </revision>\n  </page>\n")


def wiki_dump(skip: tuple[str, ...] = WIKI_SKIP) -> str:
    """The export XML: the shared articles (page ids 1000+, in file-name order), then MADE_PAGES."""
    parts = ['<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="0.11" xml:lang="en">\n', SITEINFO]
    files = sorted(p for p in (SHARED / "corpus/wiki/wikitext").glob("*.txt") if p.name not in skip)
    for i, path in enumerate(files):
        parts.append(page_xml(title_of(path.name), 0, 1000 + i, path.read_text(encoding="utf-8")))
    for j, (title, ns, text, target) in enumerate(MADE_PAGES):
        parts.append(page_xml(title, ns, 5000 + j, text, target))
    parts.append("</mediawiki>\n")
    return "".join(parts)


def copy_page(title: str, text: str) -> bytes:
    """An HTML page whose main content is the article's text (a scraper site's copy)."""
    blocks = [b.strip() for b in text.split("\n") if b.strip()]
    body = "".join(f"<h2>{escape(b)}</h2>" if len(b) < 60 and not b.endswith(".") else f"<p>{escape(b)}</p>"
                   for b in blocks)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - Free Encyclopedia'
            f' Mirror</title></head><body><header><nav><a href="/">Home</a> <a href="/random">Random article</a>'
            f' <a href="/about">About</a></nav></header><main><article><h1>{escape(title)}</h1>{body}</article>'
            f"</main><footer><p>Text from Wikipedia, available under CC BY-SA 4.0.</p></footer></body></html>"
            ).encode()


def main() -> None:
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: this script builds the fixtures from ../shared")
    OUT.mkdir(exist_ok=True)
    docs = webtext()
    (OUT / "webtext").mkdir(exist_ok=True)
    lines = "".join(json.dumps({k: d[k] for k in ("id", "url", "title", "text")}, ensure_ascii=False) + "\n"
                    for d in docs)
    (OUT / "webtext/webtext2-sample.jsonl.gz").write_bytes(gz(lines.encode()))
    (OUT / "webtext/PAGES.txt").write_text("".join(f"{d['id']}\t{d['source_file']}\t{d['url']}\n" for d in docs))
    for folder, name, excerpts in BOOKS:
        (OUT / folder).mkdir(exist_ok=True)
        lines_ = (SHARED / f"corpus/books/{name}.txt").read_bytes().decode("utf-8").replace("\r\n", "\n").split("\n")
        for k, (first, last) in enumerate(excerpts):
            data = book_excerpt(lines_, first, last).encode()
            path = OUT / folder / f"{name}-part{k + 1}.txt"
            if folder == "books2":  # one source compressed, so the demo reads .txt.gz too
                path.with_suffix(".txt.gz").write_bytes(gz(data))
            else:
                path.write_bytes(data)
    (OUT / "wiki").mkdir(exist_ok=True)
    xml = wiki_dump().encode()
    (OUT / "wiki/enwiki-sample-pages-articles.xml.bz2").write_bytes(bz2.compress(xml, 9))
    # The copied article, as the reader renders it, wrapped in a scraper site's page.
    from pipeline.readers.mediawiki import MediaWikiReader

    tmp = OUT / "wiki/.tmp.xml"
    tmp.write_bytes(xml)
    try:
        article = next(d for d in MediaWikiReader().read(str(tmp), "w") if d.title == COPIED_ARTICLE)
    finally:
        tmp.unlink()
    url = "https://encyclopedia-mirror.example.org/wiki/" + COPIED_ARTICLE.replace(" ", "_")
    write_warc(OUT / "cc-copy/wiki-copy.warc.gz",
               [warcinfo("wiki-copy.warc.gz"), *response(url, copy_page(COPIED_ARTICLE, article.text))])
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"webtext: {len(docs)} pages; wiki: {xml.count(b'<page>')} pages; {total / 1e6:.2f} MB under {OUT}")


if __name__ == "__main__":
    main()
