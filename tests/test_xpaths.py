"""pipeline/xpaths.py: compiled XPaths give libxml2's elements, in its order, and extraction is
byte-identical with them installed."""

from __future__ import annotations

import gzip
import json
import random
import re

import pytest
from conftest import REPO, shared
from lxml import etree

from pipeline import xpaths
from pipeline.xpaths import TRAFILATURA_LISTS, Unsupported, compile_xpath


def trafilatura_sources() -> list[str]:
    import trafilatura.xpaths as tx

    return [x.path for name in TRAFILATURA_LISTS for x in getattr(tx, name)]


def literals(src: str) -> list[str]:
    return [a or b for a, b in re.findall(r"\"([^\"]*)\"|'([^']*)'", src)]


TAGS = ["div", "p", "span", "section", "article", "main", "item", "list", "header", "a", "cite", "quote",
        "head", "figure", "graphic", "b", "table"]
ATTRS = ["class", "id", "role", "style", "aria-hidden", "data-component", "data-lp-replacement-content",
         "itemprop", "x"]


def random_value(rng: random.Random, lits: list[str]) -> str:
    """Mostly pieces of the expressions' own literals, changed the ways the tests can tell apart:
    case of one letter (translate), a prefix (starts-with vs contains), neighbours, nothing."""
    parts = []
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        lit = rng.choice(lits) if lits and rng.random() < 0.8 else rng.choice(["", " ", "x", "main", "ad", "-"])
        r = rng.random()
        if r < 0.2 and lit:
            i = rng.randrange(len(lit))
            lit = lit[:i] + lit[i].swapcase() + lit[i + 1:]
        elif r < 0.3 and len(lit) > 1:
            lit = lit[rng.randrange(1, len(lit)):]
        parts.append(lit)
    return rng.choice(["", " ", "-", "_"]).join(parts)


def random_tree(rng: random.Random, lits: list[str], size: int = 60) -> etree._Element:
    root = etree.Element("html")
    nodes = [root, etree.SubElement(root, "body")]
    for _ in range(size):
        parent = rng.choice(nodes)
        if rng.random() < 0.05:
            parent.append(etree.Comment("c"))
            continue
        el = etree.SubElement(parent, rng.choice(TAGS))
        for a in rng.sample(ATTRS, rng.choice((0, 0, 1, 1, 2, 3))):
            el.set(a, "true" if a == "aria-hidden" and rng.random() < 0.5 else random_value(rng, lits))
        nodes.append(el)
    return root


def assert_same(src: str, trees: list, contexts_per_tree: int = 3, rng: random.Random | None = None) -> int:
    """Compiled vs libxml2 from each tree's root and some inner elements; returns the matches seen."""
    rng = rng or random.Random(0)
    ref, ours = etree.XPath(src), compile_xpath(src)
    seen = 0
    for tree in trees:
        elements = [e for e in tree.iter() if isinstance(e.tag, str)]
        for ctx in [tree] + rng.sample(elements, min(contexts_per_tree, len(elements))):
            want = ref(ctx)
            assert ours(ctx) == want, (src[:80], etree.tostring(ctx)[:300])
            seen += len(want)
    return seen


def test_every_trafilatura_extraction_xpath_compiles():
    # The pinned trafilatura's expressions are all inside the grammar; after an upgrade that adds
    # syntax, install() still works (that expression stays with libxml2) and this test says which.
    for src in trafilatura_sources():
        compile_xpath(src)


@pytest.mark.parametrize("i", range(len(trafilatura_sources())))
def test_trafilatura_xpath_equals_libxml2_on_random_trees(i):
    src = trafilatura_sources()[i]
    rng = random.Random(i)
    lits = [x for x in literals(src) if x]
    trees = [random_tree(rng, lits) for _ in range(150)]
    assert assert_same(src, trees, rng=rng) > 0   # the random values do reach the expression's matches


@pytest.mark.parametrize("src", [
    './/*[contains(@class, "")]',                    # true even without the attribute
    './/*[starts-with(@id, "")]',
    './/*[@class=""]',                               # needs the attribute
    './/*[@class]',
    './/*[not(@class) and self::p]',
    './/*[(self::p or self::div) and not(contains(@class, "a") or @id="b")]',
    './/*[contains(translate(@class, "AB", "a"), "ab")]',   # B is deleted: "aXb" can't, "aBb"->"ab"
    './/*[contains(translate(@class, "ab", "ba"), "ab")]',  # a swap
    './/*[contains(translate(@class, "B", "b"), "aB")]',    # nothing maps to B: never true
    './/*[starts-with(translate(@id, "M", "m"), "main") or contains(@class, "main")]',
    './/p[1]',                                       # the first p child of each parent
    './/*[self::p or self::span][contains(@class, "a")][1]',
    '(.//p)[1]',
    '(.//*[contains(@class, "a")])[1]|(.//main)[1]',
    './/p|.//div',
    './/cite|.//quote',
    './/*[@data-lp-replacement-content or @aria-hidden="true"]',
])
def test_grammar_equals_libxml2(src):
    rng = random.Random(src)
    lits = ["a", "ab", "aBb", "aXb", "main", "Main", "b", "x"]
    trees = [random_tree(rng, lits, size=40) for _ in range(200)]
    assert_same(src, trees, rng=rng)


@pytest.mark.parametrize("src", [
    "//div",                          # from the document root, not the context
    ".//a//b",                        # two steps
    ".//*[text()]",
    ".//*[position()=2]",
    ".//*[2]",
    './/*[@a!="x"]',
    './/*[normalize-space(@a)="x"]',
    './/*[contains(text(), "x")]',
    './/*[@a="x"][1][@b]',
])
def test_outside_the_grammar_is_refused(src):
    etree.XPath(src)   # valid XPath ...
    with pytest.raises(Unsupported):
        compile_xpath(src)   # ... that the compiler leaves to libxml2


def test_install_keeps_unsupported_expressions_and_uninstalls(monkeypatch):
    import trafilatura.xpaths as tx

    xpaths.uninstall()
    odd = etree.XPath(".//*[text()]")
    monkeypatch.setattr(tx, "BODY_XPATH", [odd, *tx.BODY_XPATH])
    monkeypatch.setattr(xpaths, "_ORIGINALS", {})
    lists = {name: getattr(tx, name) for name in TRAFILATURA_LISTS}
    done = xpaths.install()
    assert done["BODY_XPATH"] == len(lists["BODY_XPATH"]) - 1
    assert tx.BODY_XPATH[0] is odd and all(isinstance(x, xpaths.CompiledXPath) for x in tx.BODY_XPATH[1:])
    assert xpaths.install() == done                     # idempotent
    assert all(getattr(tx, n) is lists[n] for n in TRAFILATURA_LISTS)  # in place: importers see it
    xpaths.uninstall()
    assert all(isinstance(x, etree.XPath) for n in TRAFILATURA_LISTS for x in getattr(tx, n))
    monkeypatch.undo()
    xpaths.uninstall()


def real_pages(n: int) -> list[tuple[str, str]]:
    """(url, decoded HTML): every 6th of the 990 evaluation pages, and the real CommonCrawl responses."""
    from pipeline.extract import decode_html
    from pipeline.readers.warc import WarcReader

    base = shared("corpus/pages/trafilatura")
    ev = sorted(json.loads((base / "evaldata.json").read_text()).items(), key=lambda kv: kv[1]["file"])
    out = [(url, decode_html(gzip.open(base / "html" / (e["file"] + ".gz")).read(), None)[0]) for url, e in ev[::6][:n]]
    for d in WarcReader(str(REPO / "tests" / "data" / "warc" / "cc" / "CC-MAIN-2020-34-excerpt.warc.gz"), "cc"):
        if d.kept and d.raw:
            out.append((d.url, decode_html(d.raw, d.content_type)[0]))
    return out


def test_real_pages_same_elements_and_same_text():
    from trafilatura.utils import load_html

    from pipeline.extract import Extract, ExtractConfig

    pages = real_pages(165)
    trees = [t for _, h in pages if (t := load_html(h)) is not None]
    rng = random.Random(1)
    assert sum(assert_same(src, trees, contexts_per_tree=1, rng=rng) for src in trafilatura_sources()) > 10_000
    ex = Extract(ExtractConfig(mode="trafilatura"))
    ex.ensure_setup()   # installs
    try:
        ours = [ex._run(h, url) for url, h in pages]
        xpaths.uninstall()
        theirs = [ex._run(h, url) for url, h in pages]
    finally:
        xpaths.install()
    assert sum(bool(t) for t in theirs) > 150
    assert ours == theirs
