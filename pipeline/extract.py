"""HTML payload -> main text: trafilatura, after a resiliparse first pass (`pipeline/cascade.py`).

Decoding follows the browser's order: the HTTP header's charset, then the page's own
`<meta charset>`, then detection. Real CommonCrawl pages come in GBK, Big5, Shift-JIS and
windows-1251; decoding them as UTF-8 with replacement turns Chinese into mojibake that
language ID then calls French or Hebrew. Labels are mapped to the superset codecs browsers
use (gb2312 -> gb18030, iso-8859-1 -> cp1252, shift_jis -> cp932, ...).

Extraction: trafilatura with favor_precision and no fallback, and only when that yields less
than `fallback_below_chars` (1500) characters, again with trafilatura's own defaults (recall
settings, with its fallback extractors readability and jusText). Chosen on two thirds of the 990
evaluation pages among thresholds 0-1e9 and fallbacks with and without favor_precision
(`bench/extract.py --fallback-only`): held-out F1 0.907 against 0.907 for datatrove's settings
(fallback on every page; all 990: 0.915 vs 0.912) at 0.6x its CPU; the earlier precision
fallback below 1000 characters scored 0.900 held-out at the same cost.
`[extract] mode` chooses: "cascade" (default: a resiliparse first pass drops pages outside
`[langid] keep` before trafilatura runs; the same kept set and texts), "trafilatura" (the pass
above on every page) or "resiliparse" (its main-content text only: 9x faster, F1 0.85 vs 0.91).
A per-document time limit (SIGALRM, in-process: no pickling of pages to a sandbox process) and
a size cap bound the cost of a pathological page, in both passes.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
import signal
import threading
from typing import Any, Callable, ClassVar

import pyarrow as pa

from pipeline.cascade import FirstPass, fast_text
from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Stage

_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030", "cp936": "gb18030",
    "big5": "big5hkscs", "x-x-big5": "big5hkscs",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
    "iso-8859-9": "cp1254", "tis-620": "cp874", "iso-8859-11": "cp874", "utf8": "utf-8", "unicode": "utf-8",
}
_LATIN1_FAMILY = {"cp1252", "iso8859-1", "latin-1", "ascii"}
_META_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CT_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(payload: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode an HTML payload; returns (text, "codec/how") where how is bom|http|meta|utf8|detected|replace."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if payload.startswith(bom):
            return payload.decode(name, "replace"), f"{name}/bom"
    m = _CT_CHARSET_RE.search(content_type or "")
    meta = _META_RE.search(payload[:4096])
    for label, how in ((m.group(1) if m else None, "http"), (meta.group(1).decode("ascii", "ignore") if meta else None, "meta")):
        codec = _codec(label)
        if codec is None:
            continue
        if codec in _LATIN1_FAMILY:
            # Servers default to iso-8859-1 for pages that are really UTF-8; cp1252 would decode
            # those without error, as mojibake. Strict UTF-8 that succeeds on non-ASCII is decisive.
            try:
                return payload.decode("utf-8"), "utf-8/" + how
            except UnicodeDecodeError:
                pass
        try:
            return payload.decode(codec), f"{codec}/{how}"
        except UnicodeDecodeError:
            continue  # a wrong declaration: try the next source
    try:
        return payload.decode("utf-8"), "utf-8/utf8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(payload[:65536]).best()
    codec = _codec(best.encoding) if best is not None else None
    if codec:
        try:
            return payload.decode(codec), f"{codec}/detected"
        except UnicodeDecodeError:
            return payload.decode(codec, "replace"), f"{codec}/detected-replace"
    return payload.decode("utf-8", "replace"), "utf-8/replace"


class ExtractTimeout(Exception):
    pass


def _on_alarm(signum, frame):  # noqa: ARG001
    raise ExtractTimeout()


MODES = ("cascade", "trafilatura", "resiliparse")


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    # "trafilatura": the pass described above. "resiliparse": its main-content extraction
    # alone (9x faster, F1 lower: bench/extract.py). "cascade": a resiliparse first pass drops
    # the pages the full pass would drop anyway, trafilatura runs on the rest (pipeline/cascade.py);
    # with nothing to decide early (keep = ["*"]) it is the trafilatura pass.
    mode: str = "cascade"
    # The cascade drops a page whose first-pass text (at least cascade_min_chars long) lid.176
    # puts in a language outside [langid] keep with at least this probability.
    cascade_min_language_score: float = 0.7
    cascade_min_chars: int = 100
    favor_precision: bool = True
    # Extract again with trafilatura's fallback extractors when the fast pass gives fewer
    # characters than this; 0 never does, a huge value always does (as datatrove's settings).
    fallback_below_chars: int = 1500
    # The fallback pass's favor_precision: off (trafilatura's default) finds more of a short
    # page's text; on 990 pages it beat the precision fallback by 0.005 F1 at the same cost.
    fallback_favor_precision: bool = False
    include_tables: bool = True
    include_comments: bool = False
    deduplicate: bool = False
    # Seconds per document; 0 disables. Only enforced on a process's main thread (SIGALRM).
    timeout_s: float = 5.0
    # Pages larger than this (decoded HTML characters) are dropped, not parsed.
    max_html_chars: int = 2_000_000

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if not 0.0 <= self.cascade_min_language_score <= 1.0:
            raise ValueError(f"cascade_min_language_score must be within [0, 1], got {self.cascade_min_language_score}")
        if self.cascade_min_chars < 0:
            raise ValueError(f"cascade_min_chars must be >= 0, got {self.cascade_min_chars}")
        if self.timeout_s < 0:
            raise ValueError(f"timeout_s must be >= 0, got {self.timeout_s}")
        if self.max_html_chars <= 0:
            raise ValueError(f"max_html_chars must be > 0, got {self.max_html_chars}")


@register_stage("extract", order=20, formats=("warc",))
class Extract(Stage):
    """HTML (or WET text) -> `doc.text`; drops pages with nothing extractable, with a reason."""

    name = "extract_v1"
    config_cls = ExtractConfig
    columns: ClassVar[dict[str, pa.DataType]] = {}

    def __init__(self, config: ExtractConfig | None = None, langid: Any | None = None) -> None:
        """`langid`: the [langid] section when that stage runs after this one (the cascade's
        early language decision needs its keep list); None: no early language decision."""
        super().__init__(config)
        c = self.config
        self._first_pass = FirstPass.for_languages(langid, c.cascade_min_language_score, c.cascade_min_chars) \
            if c.mode == "cascade" else None

    @classmethod
    def from_config(cls, config: Any) -> "Extract":
        """Built from the whole pipeline config: the cascade reads the enabled stages' settings."""
        return cls(config["extract"], langid=config["langid"] if "langid" in config.pipeline.stages else None)

    def setup(self) -> None:
        import trafilatura

        from pipeline import xpaths

        # trafilatura's pruning/body XPaths evaluated in Python: the same elements, a third less
        # extraction time (pipeline/xpaths.py; bench/extract.py checks the text is byte-identical)
        xpaths.install()
        self._extract = trafilatura.extract

    def _run(self, html: str, url: str | None) -> str | None:
        c = self.config
        if c.mode == "resiliparse":
            return fast_text(html)
        kw = dict(url=url, favor_precision=c.favor_precision, include_tables=c.include_tables,
                  include_comments=c.include_comments, deduplicate=c.deduplicate)
        text = self._extract(html, no_fallback=True, **kw)
        if c.fallback_below_chars and (not text or len(text) < c.fallback_below_chars):
            kw["favor_precision"] = c.fallback_favor_precision
            text = self._extract(html, no_fallback=False, **kw) or text
        return text

    def process(self, doc: Document) -> None:
        self.process_batch([doc])

    def process_batch(self, docs: list[Document]) -> None:
        pending = [(doc, html) for doc in docs if (html := self._decode(doc)) is not None]
        if self._first_pass is not None and pending:
            firsts = [(doc, html, self._timed(doc, fast_text, html)) for doc, html in pending]
            firsts = [x for x in firsts if x[2] is not None]
            reasons = self._first_pass.decide([d for d, _, _ in firsts], [t for _, _, t in firsts])
            pending = []
            for (doc, html, _), reason in zip(firsts, reasons, strict=True):
                if reason:
                    doc.drop(self.name, reason)
                else:
                    pending.append((doc, html))
        for doc, html in pending:
            text = self._timed(doc, lambda h, url=doc.url: self._run(h, url), html)
            if text is None:
                continue
            if not text.strip():
                doc.drop(self.name, "extract_empty")
                continue
            doc.text = text
            doc.n_chars = len(text)

    def _decode(self, doc: Document) -> str | None:
        """The page's HTML, or None when the document is done (dropped, or WET text taken as is)."""
        raw, doc.raw = doc.raw, None
        if raw is None:
            doc.drop(self.name, "no_payload")
            return None
        if doc.record_type == "conversion":  # WET text: nothing to extract
            doc.text, doc.charset = raw.decode("utf-8", "replace"), "utf-8/wet"
            doc.n_chars = len(doc.text)
            return None
        html, doc.charset = decode_html(raw, doc.content_type)
        if len(html) > self.config.max_html_chars:
            doc.drop(self.name, "html_too_large")
            return None
        return html

    def _timed(self, doc: Document, fn: Callable[[str], str | None], html: str) -> str | None:
        """fn(html) under the per-document time limit; "" for no text, None when `doc` was dropped."""
        timed = self.config.timeout_s > 0 and threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGALRM, _on_alarm) if timed else None
        try:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, self.config.timeout_s)
            return fn(html) or ""
        except ExtractTimeout:
            doc.drop(self.name, "extract_timeout")
        except Exception as exc:  # trafilatura/lxml on hostile HTML: record, never crash the shard
            doc.drop(self.name, f"extract_error: {type(exc).__name__}")
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        return None
