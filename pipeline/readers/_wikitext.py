"""Wikitext -> plain text for the MediaWiki reader, on mwparserfromhell's parse tree.

What is kept: running text, link labels, headings (as lines of their own), list items (as lines,
without their markers), bold/italic contents. What goes: templates (infoboxes, navboxes,
citations; a few inline ones keep their visible words: `{{convert|5|km}}` -> "5 km",
`{{lang|fr|mot}}` -> "mot"), tables, `<ref>`s, `<math>`, galleries and other extension tags,
comments, file/image/media links, category and interlanguage links, magic words, and whole
sections whose heading is one of `DROP_SECTIONS` (reference and link lists, not prose).
"""

from __future__ import annotations

import re

import mwparserfromhell
from mwparserfromhell.nodes import (
    Argument,
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Tag,
    Template,
    Text,
    Wikilink,
)
from mwparserfromhell.wikicode import Wikicode

DROP_SECTIONS = frozenset({"references", "external links", "see also", "further reading", "notes",
                           "bibliography", "sources", "citations", "footnotes", "notes and references",
                           "references and notes", "external sources", "works cited"})
# Tags whose content is not prose.
DROP_TAGS = frozenset({"ref", "references", "table", "math", "gallery", "timeline", "imagemap", "score", "chem",
                       "ce", "graph", "mapframe", "maplink", "templatedata", "syntaxhighlight", "source", "pre",
                       "noinclude", "hiero", "inputbox", "categorytree", "indicator", "templatestyles", "nowiki"})
LINE_TAGS = frozenset({"li", "dt", "dd", "br", "p", "div", "blockquote", "tr"})
# Interlanguage link prefixes: a lowercase language code ("de:", "zh-yue:", "simple:").
_INTERWIKI = re.compile(r"^:?[a-z]{2,3}(-[a-z]+)*:|^:?simple:")
# A link to a media file in any wiki's language ("[[Lêer:Map.png|thumb|...]]"): its extension tells.
_MEDIA_FILE = re.compile(r"\.(jpe?g|png|gif|svg|tiff?|webp|xcf|ogg|oga|ogv|webm|mp3|wav|flac|mid|pdf|djvu|stl)\s*$", re.I)
_MAGIC = re.compile(r"__[A-Z]+__")
_EMPTY_PARENS = re.compile(r" ?(?:\((?:[\s,;:]|&nbsp;)*\)|\[(?:[\s,;:]|&nbsp;)*\])")
_WORD = re.compile(r"\w")
_HEADING = "\x00"  # marks heading lines while rendering, so an empty section's heading can go
DISAMBIGUATION_TEMPLATES = frozenset({"disambiguation", "disambig", "dab", "disamb", "dis", "hndis", "geodis",
                                      "numberdis", "letter-numbercombdisambig", "shipindex", "mil-unit-dis",
                                      "school disambiguation", "hospital disambiguation", "mountainindex",
                                      "roaddis", "surname", "given name", "set index article", "sia"})


def _template_text(t: Template) -> str:
    """The visible words of a few common inline templates; every other template is dropped."""
    name = str(t.name).strip().lower()
    params = [p for p in t.params if not p.showkey]
    if name in ("convert", "cvt") and len(params) >= 2:
        return f"{_plain(params[0].value)} {_plain(params[1].value)}"
    if name in ("lang", "transl") and len(params) >= 2:
        return _plain(params[-1].value)
    if name in ("nowrap", "nobr", "small", "big", "sic", "ill", "interlanguage link", "lang-en") and params:
        return _plain(params[0].value)
    return ""


def _plain(code: Wikicode) -> str:
    return _render(code, set()).strip()


def _render(code: Wikicode, skip_ns: set[str]) -> str:
    out: list[str] = []
    for node in code.nodes:
        if isinstance(node, Text):
            out.append(str(node.value))
        elif isinstance(node, Wikilink):
            title = str(node.title).strip()
            # "[[:Category:X]]" shows a link to the category page: navigation, not prose, as well
            bare = title.lstrip(":")
            prefix = bare.split(":", 1)[0].strip().lower() if ":" in bare else ""
            if prefix in skip_ns or _INTERWIKI.match(title) or (prefix and _MEDIA_FILE.search(bare)):
                continue
            out.append(_render(node.text, skip_ns) if node.text is not None else title.lstrip(":").split("#")[0])
        elif isinstance(node, Tag):
            tag = str(node.tag).strip().lower()
            if tag in DROP_TAGS:
                continue
            if tag in LINE_TAGS:
                out.append("\n")
            if node.contents is not None and not node.self_closing:
                out.append(_render(node.contents, skip_ns))
        elif isinstance(node, Template):
            out.append(_template_text(node))
        elif isinstance(node, ExternalLink):
            if node.title is not None:
                out.append(_render(node.title, skip_ns))
        elif isinstance(node, HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, Heading):
            out.append("\n" + _HEADING + _render(node.title, skip_ns).strip() + "\n")
        elif isinstance(node, (Comment, Argument)):
            continue
    return "".join(out)


def _drop_sections(code: Wikicode) -> Wikicode:
    """The page without the sections whose heading is in DROP_SECTIONS (their subsections too)."""
    nodes = code.nodes
    kept = []
    skip_level = 0
    for node in nodes:
        if isinstance(node, Heading):
            title = _plain(node.title).lower().strip(" :")
            if skip_level and node.level > skip_level:
                continue
            skip_level = node.level if title in DROP_SECTIONS else 0
            if skip_level:
                continue
        elif skip_level:
            continue
        kept.append(node)
    return Wikicode(kept)


def parse(wikitext: str) -> Wikicode:
    return mwparserfromhell.parse(wikitext)


def is_disambiguation(code: Wikicode, title: str) -> bool:
    if title.lower().endswith("(disambiguation)") or "__DISAMBIG__" in str(code):
        return True
    for t in code.filter_templates(recursive=False):
        name = str(t.name).strip().lower().replace("_", " ")
        if name in DISAMBIGUATION_TEMPLATES or name.endswith(" disambiguation"):
            return True
    return False


_REF = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>|</?ref[^>]*>", re.S | re.I)
_QUOTES = re.compile(r"'{2,}")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE_LINE = re.compile(r"^\s*(\{\||\|\}|\|-|\|\+|!|\|).*$", re.M)


def _scrub(text: str) -> str:
    """Markup the parser left as text: it gives up on a construct that is not closed (a template
    cut by a stray brace, a table inside a template) and text whose markup arrived entity-escaped
    (`&lt;ref&gt;`) renders as markup. Measured on the 71 shared articles: 4 needed this."""
    if "<ref" in text or "</ref" in text:
        text = _REF.sub("", text)
    if "''" in text:  # bold/italic quotes the parser could not pair: "''The Star'''s" -> "The Star's"
        text = _QUOTES.sub(lambda m: "'" if len(m.group()) % 2 else "", text)
    while "{{" in text and (new := _TEMPLATE.sub("", text)) != text:
        text = new
    return _TABLE_LINE.sub("", text) if "|" in text else text


def to_text(code: Wikicode, skip_namespaces: set[str]) -> str:
    """Plain text of a parsed page; `skip_namespaces`: lowercase link prefixes to drop (file, category...)."""
    text = _scrub(_MAGIC.sub("", _render(_drop_sections(code), skip_namespaces)))
    # What removed templates leave behind: "Bodmin ({{IPA|...}}) is" -> "Bodmin () is".
    text = _EMPTY_PARENS.sub("", text)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    lines = [line if _WORD.search(line) else "" for line in lines]  # a "." or "|" left alone on a line
    # A heading with nothing under it (its content was a gallery, table or list of links) goes.
    kept: list[str] = []
    for line in reversed(lines):
        if line.startswith(_HEADING):
            following = next((x for x in reversed(kept) if x), None)
            if following is None or following.startswith(_HEADING):
                continue
        kept.append(line)
    lines = [x.lstrip(_HEADING) for x in reversed(kept)]
    # Blank lines between paragraphs are kept (one), runs of them collapsed.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
