"""MediaWiki XML dumps (`*-pages-articles*.xml`, `.xml.bz2`, `.xml.gz`): one document per page.

mwxml streams the pages (one page in memory at a time, whatever the dump's size); the page's
last revision is turned into plain text by `_wikitext` (templates, tables, references, file
and category links removed; headings kept as lines). Every page becomes one Document:
`source_row` the page's 1-based position in the dump, `source_id` its page id, `title` its
title, `url` `<wiki>/wiki/<Title>` from the dump's `<base>` (https://en.wikipedia.org/... for
English Wikipedia), doc_id `<shard>/<page number>`. `warc_offset` is empty: mwxml gives no byte
positions, and in a bz2 stream they would mean nothing to a reader.

Drops at stage `read`: `namespace_<n>` (only the article namespace 0 is kept: talk, user,
template... pages are not articles), `redirect`, `disambiguation` (`{{disambiguation}}` and its
kin, or a "(disambiguation)" title), `empty_text` (nothing left once the markup is gone),
`unparsable_wikitext` (the markup parser failed on that page, e.g. thousands of nested templates).
A dump cut short ends with one `truncated_file` row after the pages read before the cut
(`malformed_xml` if the XML itself is broken); a file that is not a MediaWiki dump at all is one
`unreadable_file` row.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterator
from xml.etree.ElementTree import ParseError

from pipeline.document import Document
from pipeline.readers import Reader, _wikitext
from pipeline.readers._stream import open_decompressed, open_error, stream_error
from pipeline.registry import register_reader

# File, Media and Category links are not prose; their English names and the usual aliases, plus
# whatever names the dump's <siteinfo> gives namespaces 6, -2 and 14 (localised wikis).
_SKIP_NAMESPACE_IDS = (6, -2, 14)
# Localised names of the largest wikis too: a page copied across wikis keeps its own
# ("[[Datei:...|thumb|...]]" in a German article imported into an English dump).
_SKIP_NAMESPACE_NAMES = {"file", "image", "media", "category", "datei", "bild", "kategorie", "fichier",
                         "catégorie", "archivo", "imagen", "categoría", "immagine", "categoria",
                         "plik", "kategoria", "ficheiro", "imagem", "bestand", "categorie", "файл",
                         "категория", "ファイル", "カテゴリ", "文件", "分类", "檔案", "分類"}


@dataclasses.dataclass(frozen=True)
class MediaWikiConfig:
    # Namespaces read as articles (0: the main namespace).
    namespaces: tuple[int, ...] = (0,)
    drop_redirects: bool = True
    drop_disambiguation: bool = True

    def validate(self) -> None:
        if not self.namespaces or not all(isinstance(n, int) and not isinstance(n, bool) for n in self.namespaces):
            raise ValueError(f"namespaces must be a non-empty list of namespace numbers, got {self.namespaces!r}")


def _article_url(base: str | None, title: str) -> str | None:
    """https://en.wikipedia.org/wiki/Main_Page + 'Bodmin Moor' -> https://en.wikipedia.org/wiki/Bodmin_Moor"""
    if not base or "/" not in base.split("://", 1)[-1]:
        return None
    return base.rsplit("/", 1)[0] + "/" + urllib.parse.quote(title.replace(" ", "_"), safe="/:(),'!*@$;=&+-._~")


@register_reader("mediawiki", suffixes=(".xml", ".xml.bz2", ".xml.gz", ".xml.zst"), kind="wiki")
class MediaWikiReader(Reader):
    """MediaWiki export XML, plain or compressed, article pages as plain text."""

    format = "mediawiki"
    config_cls = MediaWikiConfig

    def read(self, url: str, shard_id: str) -> Iterator[Document]:
        import mwxml
        from mwxml.errors import MalformedXML

        try:
            stream, _codec = open_decompressed(url)
        except Exception as exc:
            yield self.unreadable(url, shard_id, open_error(exc))
            return
        page_no = 0
        with stream:
            try:
                try:
                    dump = mwxml.Dump.from_file(stream)
                except (ParseError, MalformedXML, AssertionError) as exc:
                    # No <mediawiki>/<siteinfo> head at all: not a dump (or cut inside its head).
                    yield self.unreadable(url, shard_id, f"unreadable_file: not a MediaWiki XML dump ({exc})"[:300])
                    return
                info = dump.site_info
                skip = set(_SKIP_NAMESPACE_NAMES)
                for ns in info.namespaces or ():
                    if ns.id in _SKIP_NAMESPACE_IDS and ns.name:
                        skip.add(ns.name.lower())
                for page in dump:
                    doc = self._page(page, page_no + 1, url, shard_id, info.base, skip)
                    page_no += 1  # only once the page is whole: a page cut short is the truncation row
                    yield doc
            except (ParseError, MalformedXML) as exc:
                # expat says "no element found" when the document just stops: a cut file.
                cut = isinstance(exc, ParseError) and ("no element found" in str(exc) or "unclosed token" in str(exc))
                reason = f"{'truncated_file' if cut else 'malformed_xml'}: after page {page_no}: {exc}"[:300]
                yield self._unparsed(url, shard_id, page_no + 1, reason)
            except Exception as exc:
                reason = stream_error(exc)
                if reason is None:
                    raise
                yield self._unparsed(url, shard_id, page_no + 1, reason)

    def _unparsed(self, url: str, shard_id: str, page_no: int, reason: str) -> Document:
        return Document(doc_id=f"{shard_id}/{page_no}", warc_path=url, warc_offset=None,  # type: ignore[arg-type]
                        record_type="unparsed", input_format=self.format, source_row=page_no,
                        drop_stage="read", drop_reason=reason)

    def _page(self, page, page_no: int, url: str, shard_id: str, base: str | None, skip: set[str]) -> Document:
        cfg = self.config
        title = page.title or ""
        doc = Document(doc_id=f"{shard_id}/{page_no}", warc_path=url, warc_offset=None,  # type: ignore[arg-type]
                       record_type="page", input_format=self.format, source_row=page_no,
                       source_id=str(page.id) if page.id is not None else None, title=title or None,
                       url=_article_url(base, title) if title else None)
        wikitext = None
        for revision in page:  # pages-articles dumps hold one revision; a history dump, the last wins
            wikitext = revision.text
            doc.fetch_date = str(revision.timestamp) if revision.timestamp is not None else None
        doc.n_bytes = len(wikitext.encode("utf-8")) if wikitext else 0
        if page.namespace not in cfg.namespaces:
            doc.drop("read", f"namespace_{page.namespace}")
            return doc
        if cfg.drop_redirects and (page.redirect or (wikitext and re.match(r"\s*#redirect\b", wikitext, re.I))):
            doc.drop("read", "redirect")
            return doc
        if not wikitext or not wikitext.strip():
            doc.drop("read", "empty_text")
            return doc
        try:
            code = _wikitext.parse(wikitext)
            if cfg.drop_disambiguation and _wikitext.is_disambiguation(code, title):
                doc.drop("read", "disambiguation")
                return doc
            text = _wikitext.to_text(code, skip)
        except Exception as exc:  # noqa: BLE001  (one page's markup must not end the whole dump)
            # e.g. RecursionError in mwparserfromhell on thousands of nested templates. The type
            # only, as for stage_error: a parser's message may quote the page's text.
            doc.drop("read", f"unparsable_wikitext: {type(exc).__name__}")
            return doc
        if not text:
            doc.drop("read", "empty_text")
            return doc
        doc.text, doc.n_chars, doc.content_type = text, len(text), "text/x-wiki"
        return doc
