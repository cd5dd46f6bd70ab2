"""trafilatura's pruning and body XPaths, evaluated in Python with the same result.

About 45% of trafilatura's time on real pages is libxml2 evaluating a handful of XPath expressions
(`OVERALL_DISCARD_XPATH`, `BODY_XPATH`, ...): each is one step over every element with an `or` of up
to 90 `contains(@class, "...")` tests, and libxml2 builds an attribute node-set and its string
value for every test of every element. `compile_xpath` reads an expression's own source text and,
when it is inside the small grammar those expressions use, returns a callable giving the same list
of elements in the same (document) order: attributes are read once per element, the `contains`
and `starts-with` tests on one attribute become one regex search.
Anything outside the grammar raises `Unsupported` and `install()` leaves that expression to libxml2.

Grammar (XPath 1.0 semantics; `lit` is a quoted string, `name` an element or attribute name):

    expr   := path ('|' path)*
    path   := './/' test pred* ['[1]']  |  '(' './/' test pred* ')' '[1]'
    test   := '*' | name
    pred   := '[' or ']'
    or     := and ('or' and)*            and := unary ('and' unary)*
    unary  := 'not(' or ')' | '(' or ')' | 'self::' name | '@' name ['=' lit]
            | ('contains' | 'starts-with') '(' str ',' lit ')'
    str    := '@' name | 'translate(' '@' name ',' lit ',' lit ')'

`.//x[p][1]` is the first child satisfying `p` of each parent (XPath's step-relative position);
`(.//x[p])[1]` the first in document order. A missing attribute's string value is "" (so
`contains(@a, "")` holds for every element), `@a` alone tests presence and `@a="v"` needs it.
`tests/test_xpaths.py` compares every compiled expression with libxml2 on random trees and on the
real pages; `bench/extract.py` checks extraction output is byte-identical with and without.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from typing import Any, Callable

from lxml import etree

# trafilatura.xpaths lists the extractor evaluates on every page (`extract`, precision settings,
# comments removed, and the readability/justext fallback's pruning). Metadata XPaths are left alone.
TRAFILATURA_LISTS = ("BODY_XPATH", "OVERALL_DISCARD_XPATH", "PAYWALL_DISCARD_XPATH", "TEASER_DISCARD_XPATH",
                     "PRECISION_DISCARD_XPATH", "DISCARD_IMAGE_ELEMENTS", "REMOVE_COMMENTS_XPATH",
                     "COMMENTS_XPATH", "COMMENTS_DISCARD_XPATH")


class Unsupported(ValueError):
    """The expression uses XPath outside the grammar above: evaluate it with libxml2."""


_TOKEN = re.compile(r"""\s*(?:
    (?P<lit>"[^"]*"|'[^']*')
  | (?P<op>\.//|::|\[|\]|\(|\)|=|,|\||@|\*)
  | (?P<name>[A-Za-z_][\w.-]*)
  | (?P<num>\d+)
)""", re.X)


def _tokens(src: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: kind lit (quotes removed), op, name or num."""
    out, pos, src = [], 0, src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise Unsupported(f"cannot read {src[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind)
        out.append((kind, text[1:-1] if kind == "lit" else text))
    return out


# -- boolean predicates: AST as tuples ---------------------------------------------------------
# ("or", [..]) ("and", [..]) ("not", x) ("self", tag) ("has", attr) ("eq", attr, lit)
# ("contains" | "starts", (attr, table), lit)    table: a str.translate table or None

class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokens(src)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def take(self, text: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (text is not None and tok[1] != text) or (kind is not None and tok[0] != kind) \
                or (text is not None and tok[0] == "lit"):
            raise Unsupported(f"expected {text or kind} at token {self.i} of {self.src!r}, got {tok}")
        self.i += 1
        return tok[1]

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] != "lit" and tok[1] == text

    # expr := path ('|' path)*
    def expr(self) -> list[tuple[str, list, bool, bool]]:
        paths = [self.path()]
        while self.at("|"):
            self.take("|")
            paths.append(self.path())
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()} in {self.src!r}")
        return paths

    def path(self) -> tuple[str, list, bool, bool]:
        """-> (test, predicates, first_per_parent, first_overall)"""
        if self.at("("):
            self.take("(")
            test, preds, per_parent = self.step()
            self.take(")")
            self.position()
            return test, preds, per_parent, True
        test, preds, per_parent = self.step()
        return test, preds, per_parent, False

    def position(self) -> None:
        self.take("[")
        if self.take(kind="num") != "1":
            raise Unsupported("only [1] positions")
        self.take("]")

    def step(self) -> tuple[str, list, bool]:
        self.take(".//")
        test = "*" if self.at("*") and self.take("*") else self.take(kind="name")
        preds, per_parent = [], False
        while self.at("["):
            if self.peek(1) and self.peek(1)[0] == "num":
                self.position()
                per_parent = True
                if self.at("["):
                    raise Unsupported("a predicate after a position")
                break
            self.take("[")
            preds.append(self.or_())
            self.take("]")
        return test, preds, per_parent

    def or_(self) -> tuple:
        return self._joined("or", self.and_)

    def and_(self) -> tuple:
        return self._joined("and", self.unary)

    def _joined(self, op: str, operand: Callable[[], tuple]) -> tuple:
        """operand (op operand)*: one node, or (op, [nodes])."""
        parts = [operand()]
        while self.at(op):
            self.take(op)
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (op, parts)

    def unary(self) -> tuple:
        if self.at("("):
            self.take("(")
            x = self.or_()
            self.take(")")
            return x
        if self.at("@"):
            attr = self.attr()
            if self.at("="):
                self.take("=")
                return ("eq", attr, self.take(kind="lit"))
            return ("has", attr)
        name = self.take(kind="name")
        if name == "self":
            self.take("::")
            return ("self", self.take(kind="name"))
        if name == "not":
            self.take("(")
            x = self.or_()
            self.take(")")
            return ("not", x)
        if name in ("contains", "starts-with"):
            self.take("(")
            s = self.string()
            self.take(",")
            lit = self.take(kind="lit")
            self.take(")")
            return ("contains" if name == "contains" else "starts", s, lit)
        raise Unsupported(f"function or name {name!r} in {self.src!r}")

    def attr(self) -> str:
        self.take("@")
        return self.take(kind="name")

    def string(self) -> tuple[str, Any]:
        if self.at("@"):
            return self.attr(), None
        if self.take(kind="name") != "translate":
            raise Unsupported(f"string function in {self.src!r}")
        self.take("(")
        attr = self.attr()
        self.take(",")
        src = self.take(kind="lit")
        self.take(",")
        dst = self.take(kind="lit")
        self.take(")")
        return attr, _translate_table(src, dst)


def _translate_table(src: str, dst: str) -> tuple[tuple[int, int | None], ...]:
    """XPath translate(): the i-th character of `src` becomes the i-th of `dst`, or is removed
    when `dst` is shorter; a repeated character keeps its first mapping."""
    table: dict[int, int | None] = {}
    for i, ch in enumerate(src):
        table.setdefault(ord(ch), ord(dst[i]) if i < len(dst) else None)
    return tuple(sorted(table.items()))


# -- predicate -> Python function --------------------------------------------------------------

def _compile_pred(node: tuple) -> Callable[[Any], bool]:
    kind = node[0]
    if kind == "or":
        return _compile_or(node[1])
    if kind == "and":
        parts = [_compile_pred(p) for p in node[1]]
        return lambda el: all(p(el) for p in parts)
    if kind == "not":
        inner = _compile_pred(node[1])
        return lambda el: not inner(el)
    return _compile_or([node])


def _compile_or(parts: list[tuple]) -> Callable[[Any], bool]:
    """An `or` of atoms: the `contains`/`starts-with` atoms on one attribute are folded into one
    regex, its `=` atoms into one set; anything else is compiled on its own and or-ed in."""
    tags: set[str] = set()
    has: set[str] = set()
    eq: dict[str, set[str]] = defaultdict(set)
    contains: dict[tuple, list[str]] = defaultdict(list)
    starts: dict[tuple, list[str]] = defaultdict(list)
    others: list[Callable[[Any], bool]] = []
    for p in parts:
        kind = p[0]
        if kind == "self":
            tags.add(p[1])
        elif kind == "has":
            has.add(p[1])
        elif kind == "eq":
            eq[p[1]].add(p[2])
        elif kind == "contains":
            contains[p[1]].append(p[2])
        elif kind == "starts":
            starts[p[1]].append(p[2])
        else:
            others.append(_compile_pred(p))
    # per attribute: one regex search for all its contains/starts-with atoms; a translate() is
    # folded into the pattern (each literal character matches the characters mapped to it), except
    # a translate that deletes characters, which is applied to the value first
    alts: dict[str, list[str]] = defaultdict(list)
    translated: dict[tuple, list[str]] = defaultdict(list)
    for kind, groups in (("contains", contains), ("starts", starts)):
        for (attr, table), lits in groups.items():
            if "" in lits:   # contains(x, "") / starts-with(x, "") hold for every element
                return lambda el: True
            for lit in dict.fromkeys(lits):
                anchor = r"\A" if kind == "starts" else ""
                if table is not None and any(dst is None for _, dst in table):
                    translated[(attr, table)].append(anchor + re.escape(lit))
                    continue
                pattern = _preimage_pattern(lit, dict(table or ()))
                if pattern is not None:
                    alts[attr].append(anchor + pattern)
    # attribute name -> the tests on its value; an element's attributes are read in one call
    by_attr: dict[str, list[Callable[[str], bool]]] = defaultdict(list)
    for a in has:
        by_attr[a].append(lambda v: True)
    for a, vals in eq.items():
        by_attr[a].append(frozenset(vals).__contains__)
    for a, patterns in alts.items():
        search = re.compile("|".join(patterns)).search
        by_attr[a].append(lambda v, s=search: s(v) is not None)
    for (a, table), patterns in translated.items():
        search = re.compile("|".join(patterns)).search
        by_attr[a].append(lambda v, s=search, t=dict(table): s(v.translate(t)) is not None)
    lookup = {a: tuple(fs) for a, fs in by_attr.items()}.get
    tags_f = frozenset(tags)
    others_t = tuple(others)

    def pred(el: Any) -> bool:
        if tags_f and el.tag in tags_f:
            return True
        for name, v in el.items():
            fs = lookup(name)
            if fs is not None:
                for f in fs:
                    if f(v):
                        return True
        for o in others_t:
            if o(el):
                return True
        return False

    return pred


def _preimage_pattern(lit: str, table: dict[int, int | None]) -> str | None:
    """A regex matching the strings that `translate` with `table` turns into `lit`, or None when
    none can (a character of `lit` that the table maps away and nothing maps to)."""
    out = []
    for ch in lit:
        pre = [chr(src) for src, dst in table.items() if dst == ord(ch)]
        if ord(ch) not in table:
            pre.append(ch)
        if not pre:
            return None
        out.append(re.escape(pre[0]) if len(pre) == 1 else "[" + "".join(re.escape(c) for c in sorted(pre)) + "]")
    return "".join(out)


def _only_tags(node: tuple) -> frozenset[str] | None:
    """The tag names of a predicate that is only `self::a or self::b ...`, else None."""
    if node[0] == "self":
        return frozenset([node[1]])
    if node[0] == "or" and all(p[0] == "self" for p in node[1]):
        return frozenset(p[1] for p in node[1])
    return None


class CompiledXPath:
    """Callable like `lxml.etree.XPath` on an element: the same elements in document order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._paths = [self._compile_path(*p) for p in _Parser(path).expr()]

    def __repr__(self) -> str:
        return f"CompiledXPath({self.path!r})"

    @staticmethod
    def _compile_path(test: str, preds: list, per_parent: bool, first: bool) -> Callable[[Any], list]:
        tags: tuple = (etree.Element,) if test == "*" else (test,)
        if test == "*" and preds and (only := _only_tags(preds[0])) is not None:
            tags, preds = tuple(sorted(only)), preds[1:]
        checks = [_compile_pred(p) for p in preds]
        check = checks[0] if len(checks) == 1 else (lambda el: all(c(el) for c in checks)) if checks else None

        def run(ctx: Any) -> list:
            it = ctx.iterdescendants(*tags)
            if check is not None:
                it = filter(check, it)
            if per_parent:   # XPath's position: the first match among each parent's children
                seen, out = set(), []
                for el in it:
                    parent = el.getparent()
                    if parent not in seen:
                        seen.add(parent)
                        out.append(el)
                return out[:1] if first else out
            return _first(it) if first else list(it)

        return run

    def __call__(self, ctx: Any) -> list:
        if len(self._paths) == 1:
            return self._paths[0](ctx)
        found: dict[Any, None] = {}
        for p in self._paths:
            for el in p(ctx):
                found[el] = None
        if len(found) < 2:
            return list(found)
        order = {el: i for i, el in enumerate(ctx.iterdescendants())}
        return sorted(found, key=order.__getitem__)


def _first(it) -> list:
    for el in it:
        return [el]
    return []


@functools.lru_cache(maxsize=256)
def compile_xpath(src: str) -> CompiledXPath:
    """Raises `Unsupported` for an expression outside the grammar in this module's docstring.
    Cached: `Extract.setup()` installs once per shard task, compiling is ~3 ms for all of them."""
    return CompiledXPath(src)


_ORIGINALS: dict[str, list] = {}


def install() -> dict[str, int]:
    """Swap trafilatura's extraction XPaths for compiled ones, in place (every module that
    imported a list sees the change); an expression outside the grammar stays with libxml2.
    Returns {list name: expressions compiled}. Idempotent; `uninstall()` undoes it."""
    import trafilatura.xpaths as tx

    done: dict[str, int] = {}
    for name in TRAFILATURA_LISTS:
        exprs = getattr(tx, name, None)
        if not isinstance(exprs, list):
            continue
        originals = _ORIGINALS.setdefault(name, list(exprs))
        new, n = [], 0
        for x in originals:
            try:
                new.append(compile_xpath(x.path))
                n += 1
            except Unsupported:
                new.append(x)
        exprs[:] = new
        done[name] = n
    return done


def uninstall() -> None:
    """Put trafilatura's own XPath objects back (benchmarks measure both)."""
    import trafilatura.xpaths as tx

    for name, originals in _ORIGINALS.items():
        getattr(tx, name)[:] = originals
