"""Heuristic quality rules (Gopher quality, Gopher repetition, C4, FineWeb), language-aware.

The same rules as datatrove's FineWeb chain (GopherRepetitionFilter -> GopherQualityFilter ->
C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter), with FineWeb's
English thresholds, but:

* the document is split once (`filters.words.split_document`, a regex) and every rule reads
  that split; datatrove runs spaCy in each filter, which is ~93% of its time;
* thresholds are per language (`LANGUAGE_DEFAULTS`, overridable in `QualityConfig.languages`):
  Chinese, Japanese and Thai have no spaces, so a "word" is one character there and word
  counts, word lengths, n-gram sizes and stop words use thresholds measured for that;
* every measurement is stored as a flat `quality_*` column and `keep()` only compares stored
  scores with thresholds, so thresholds can be re-decided later from the manifest.

C4's line rules (datatrove's C4QualityFilter) decide which lines are content: lines with a
1000+ character word, with fewer than `c4_min_words_per_line` words, mentioning javascript
or a cookie/terms policy, and (per language, `c4_terminal_punct`) lines that do not end in
terminal punctuation. The Gopher rules measure the text as it arrived; the C4 document rules
(lorem ipsum, curly bracket, sentence count) and the FineWeb rules measure the content lines.
With `remove_lines = true` (the default, as in C4) a kept document's text becomes those
lines; with `false` the text is left untouched and only the scores are stored. The
decisions are the same either way, so a run can score first and rewrite later.

Run on a text file: `python -m filters.quality zh < page.txt`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import sys
from itertools import repeat
from pathlib import Path
from typing import Any

import pyarrow as pa
from datatrove.utils.text import TERMINAL_PUNCTUATION

from filters.words import (
    DocSplit,
    count_sentences_in_lines,
    fineweb_scores,
    gopher_scores,
    repetition_scores,
    split_document,
    token_kind,
)
from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Filter

# datatrove's C4 constants (datatrove/pipeline/filters/c4_filters.py), copied: importing that module
# pulls in datatrove.io, fsspec and huggingface_hub, 0.27 s in every worker and the driver.
# tests/test_quality.py checks that they still equal datatrove's.
CITATION_REGEX = re.compile(r"\[\d*]|\[edit]|\[citation needed]", re.UNICODE)
POLICY_SUBSTRINGS = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies"]

STOP_WORDS_PATH = Path(__file__).resolve().parent / "data" / "stopwords" / "gopher_stop_words.json"

# FineWeb's English thresholds (datatrove defaults; C4 without the terminal-punctuation line
# rule, as FineWeb ran it). A negative value turns a rule off.
DEFAULTS: dict[str, float] = {
    # Gopher repetition
    "dup_para_frac": 0.3, "dup_para_char_frac": 0.2, "dup_line_frac": 0.3, "dup_line_char_frac": 0.2,
    "top_2_gram_frac": 0.2, "top_3_gram_frac": 0.18, "top_4_gram_frac": 0.16,
    "dup_5_gram_frac": 0.15, "dup_6_gram_frac": 0.14, "dup_7_gram_frac": 0.13,
    "dup_8_gram_frac": 0.12, "dup_9_gram_frac": 0.11, "dup_10_gram_frac": 0.10,
    # Gopher quality
    "min_doc_words": 50, "max_doc_words": 100_000, "min_avg_word_length": 3, "max_avg_word_length": 10,
    "max_symbol_word_ratio": 0.1, "max_bullet_lines_ratio": 0.9, "max_ellipsis_lines_ratio": 0.3,
    "min_alpha_words_ratio": 0.8, "min_stop_words": 2,
    # C4 (c4_terminal_punct: 1 removes lines that do not end in terminal punctuation)
    "c4_terminal_punct": 0, "c4_min_words_per_line": 3, "c4_max_word_length": 1000, "c4_min_sentences": 5,
    # FineWeb
    "line_punct_thr": 0.12, "short_line_thr": 0.67, "short_line_length": 30, "char_dup_ratio": 0.01,
    "new_line_ratio": 0.3,
}

# Languages written without spaces: one token per character, so counts are in characters and
# n-grams are character n-grams. Starting points: FineWeb-2's per-language configs
# (huggingface/fineweb-2, configs/cmn_Hani.yml, jpn_Jpan.yml, tha_Thai.yml, kor_Hang.yml, made
# with real word segmenters), rescaled for characters and checked on the Leipzig sentences,
# the seed pages and the CC pages in ../shared (numbers in bench/results/filters.md).
_CJK = {
    # ~1.6 characters per Chinese word: 100 characters ~ Gopher's 50 words; FineWeb-2's alpha ratio
    "min_alpha_words_ratio": 0.735,
    "min_doc_words": 100, "max_doc_words": 200_000, "min_avg_word_length": 1, "max_avg_word_length": 4,
    "top_2_gram_frac": 0.256, "top_3_gram_frac": 0.201, "top_4_gram_frac": 0.171,
    # a repeated 5-character n-gram is ~3 words: FineWeb-2's zh values + 0.05
    "dup_5_gram_frac": 0.25, "dup_6_gram_frac": 0.23, "dup_7_gram_frac": 0.21,
    "dup_8_gram_frac": 0.19, "dup_9_gram_frac": 0.17, "dup_10_gram_frac": 0.15,
    # no spaces, so C4's "3 words per line" cannot find menus; prose lines end in 。！？
    "c4_terminal_punct": 1, "c4_min_words_per_line": 5,
    "short_line_length": 10, "char_dup_ratio": 0.1, "new_line_ratio": 0.12,
}
# Thai (and Lao, Khmer, Myanmar): no sentence punctuation either (spaces end sentences), and
# one-character 5-grams repeat even across unrelated sentences (median 0.12 on Leipzig).
_THAI = {
    **_CJK, "min_doc_words": 150, "c4_terminal_punct": 0, "c4_min_words_per_line": 10, "c4_min_sentences": -1,
    "dup_5_gram_frac": 0.40, "dup_6_gram_frac": 0.37, "dup_7_gram_frac": 0.34,
    "dup_8_gram_frac": 0.31, "dup_9_gram_frac": 0.28, "dup_10_gram_frac": 0.25,
    "line_punct_thr": -1, "short_line_length": 20, "new_line_ratio": 0.05,
}
# Hangul is spaced, but a word carries its particles: ~3.1 syllables per word on Leipzig.
_KOREAN = {"min_doc_words": 40, "min_avg_word_length": 1.5, "max_avg_word_length": 8, "char_dup_ratio": 0.1,
           "line_punct_thr": 0.06, "short_line_length": 20}
# Spaced languages whose words carry fewer letters than English ones (numbers, abbreviations,
# clitics): FineWeb's English 0.8 alpha-word ratio drops ~11% of real German pages. FineWeb-2's
# measured values (configs/<lang>.yml, max_non_alpha_words_ratio) instead.
_ALPHA = {"de": 0.774, "ru": 0.713, "uk": 0.694, "pl": 0.726, "lt": 0.688}
LANGUAGE_DEFAULTS: dict[str, dict[str, float]] = {
    **{lang: {"min_alpha_words_ratio": ratio} for lang, ratio in _ALPHA.items()},
    "zh": _CJK, "yue": _CJK, "wuu": _CJK, "ja": _CJK,
    "th": _THAI, "lo": _THAI, "km": _THAI, "my": _THAI,
    "ko": _KOREAN,
}
UNSPACED_LANGUAGES = frozenset(["zh", "yue", "wuu", "ja", "th", "lo", "km", "my"])
# Keys that are counts or switches rather than ratios.
_NON_RATIOS = {"min_doc_words", "max_doc_words", "min_avg_word_length", "max_avg_word_length",
               "min_stop_words", "c4_terminal_punct", "c4_min_words_per_line", "c4_max_word_length",
               "c4_min_sentences", "short_line_length"}

# C4 counts a line ending in a quote as ended; CJK closing quotes too ("。”").
C4_END = tuple(TERMINAL_PUNCTUATION) + ('"', "'", "”", "’", "」", "』", "»")
_CITATION_LINE = re.compile(r"\n(?:[ \t]*\[(?:\d+(?:[-–,]\d+)*|edit|citation needed)\][ \t]*\n)+")


@dataclasses.dataclass(frozen=True)
class Rule:
    reason: str  # drop reason (datatrove's name in `DATATROVE_REASONS`)
    column: str  # the stored score it reads
    key: str  # threshold name in DEFAULTS; "" for a yes/no flag
    # "max": drop when score > threshold; "min": drop when score < threshold; "flag": drop when
    # true (if the config switch is on); "nonzero": drop when 0
    kind: str


def _rules() -> tuple[Rule, ...]:
    rep = [Rule(f"gopher_repetition_{k}", f"quality_{k}", k, "max")
           for k in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")]
    rep += [Rule(f"gopher_repetition_top_{n}_gram", f"quality_top_{n}gram_frac", f"top_{n}_gram_frac", "max")
            for n in (2, 3, 4)]
    rep += [Rule(f"gopher_repetition_duplicated_{n}_n_grams", f"quality_dup_{n}gram_frac",
                 f"dup_{n}_gram_frac", "max") for n in range(5, 11)]
    length = [
        Rule("gopher_too_few_words", "quality_word_count", "min_doc_words", "min"),
        Rule("gopher_too_many_words", "quality_word_count", "max_doc_words", "max"),
    ]
    gopher = [
        Rule("gopher_below_avg_word_length", "quality_mean_word_length", "min_avg_word_length", "min"),
        Rule("gopher_above_avg_word_length", "quality_mean_word_length", "max_avg_word_length", "max"),
        Rule("gopher_too_many_hashes", "quality_hash_ratio", "max_symbol_word_ratio", "max"),
        Rule("gopher_too_many_ellipsis", "quality_ellipsis_ratio", "max_symbol_word_ratio", "max"),
        Rule("gopher_too_many_bullets", "quality_bullet_lines_ratio", "max_bullet_lines_ratio", "max"),
        Rule("gopher_too_many_end_ellipsis", "quality_end_ellipsis_lines_ratio", "max_ellipsis_lines_ratio",
             "max"),
        Rule("gopher_below_alpha_threshold", "quality_alpha_words_ratio", "min_alpha_words_ratio", "min"),
        Rule("gopher_too_few_stop_words", "quality_stop_words", "min_stop_words", "min"),
    ]
    c4 = [
        Rule("c4_lorem_ipsum", "quality_c4_lorem_ipsum", "", "flag"),
        Rule("c4_curly_bracket", "quality_c4_curly_bracket", "", "flag"),
        Rule("c4_too_few_sentences", "quality_c4_sentences", "c4_min_sentences", "min"),
    ]
    fineweb = [
        Rule("fineweb_empty", "quality_content_lines", "", "nonzero"),
        Rule("fineweb_line_punct_ratio", "quality_line_punct_ratio", "line_punct_thr", "min"),
        Rule("fineweb_short_line_ratio", "quality_short_line_ratio", "short_line_thr", "max"),
        Rule("fineweb_char_dup_ratio", "quality_char_dup_ratio", "char_dup_ratio", "max"),
        Rule("fineweb_list_ratio", "quality_list_ratio", "new_line_ratio", "max"),
    ]
    return (*length, *rep, *gopher, *c4, *fineweb)


# In datatrove's chain order, so the first failing rule gives the reason datatrove would, except
# that a document too short or too long to judge says so first (datatrove's top-n-gram rule
# counts an n-gram seen once, so a 12-word snippet fails "top_3_gram" before "gopher_short_doc").
RULES: tuple[Rule, ...] = _rules()

# Our reason -> datatrove's (the bench compares the two): datatrove's names without the family
# prefix, except where its name is misleading ("gopher_enough_stop_words" means too few).
_DT_RENAMED = {
    "gopher_too_few_words": "gopher_short_doc", "gopher_too_many_words": "gopher_long_doc",
    "gopher_below_avg_word_length": "gopher_below_avg_threshold",
    "gopher_above_avg_word_length": "gopher_above_avg_threshold",
    "gopher_too_few_stop_words": "gopher_enough_stop_words", "c4_too_few_sentences": "too_few_sentences",
    "fineweb_empty": "empty", "quality_empty": "empty",
}
DATATROVE_REASONS: dict[str, str] = {
    r: _DT_RENAMED.get(r, r.removeprefix("gopher_repetition_").removeprefix("c4_").removeprefix("fineweb_"))
    for r in [rule.reason for rule in RULES] + ["quality_empty"]
}

_F32, _I32 = pa.float32(), pa.int32()
COLUMNS: dict[str, pa.DataType] = {
    "quality_lang": pa.string(),  # the language whose thresholds and stop words were applied
    "quality_skipped": pa.string(),  # rules not applied, comma-separated (e.g. no stop-word list)
    "quality_word_count": _I32, "quality_mean_word_length": _F32, "quality_hash_ratio": _F32,
    "quality_ellipsis_ratio": _F32, "quality_bullet_lines_ratio": _F32,
    "quality_end_ellipsis_lines_ratio": _F32, "quality_alpha_words_ratio": _F32, "quality_stop_words": _I32,
    **{r.column: _F32 for r in RULES if r.reason.startswith("gopher_repetition_")},
    "quality_c4_lorem_ipsum": pa.bool_(), "quality_c4_curly_bracket": pa.bool_(), "quality_c4_sentences": _I32,
    "quality_c4_removed_char_frac": _F32, "quality_content_lines": _I32,
    "quality_line_punct_ratio": _F32, "quality_short_line_ratio": _F32, "quality_char_dup_ratio": _F32,
    "quality_list_ratio": _F32,
    "quality_score": _F32,
}


@functools.cache
def shipped_stop_words() -> dict[str, frozenset[str]]:
    """Per-language stop-word sets (filters/data/stopwords, built from spaCy's lists)."""
    data = json.loads(STOP_WORDS_PATH.read_text(encoding="utf-8"))
    return {lang: frozenset(words) for lang, words in data.items()}


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    # Rewrite a kept document's text to its C4 content lines (C4 and datatrove do); false:
    # store the scores only and leave the text as it is.
    remove_lines: bool = True
    # C4 switches (datatrove's defaults): drop [1]-style citations, drop pages with "lorem
    # ipsum" or "{" in a content line, drop lines mentioning javascript or cookie/terms policies.
    c4_remove_citations: bool = True
    c4_lorem_ipsum: bool = True
    c4_curly_bracket: bool = True
    c4_javascript: bool = True
    c4_policy: bool = True
    # Threshold overrides per ISO 639-1 code, over DEFAULTS and LANGUAGE_DEFAULTS, e.g.
    # [quality.languages.de] max_avg_word_length = 15; "*" applies to every language (under a
    # language's own overrides). A negative value turns a rule off.
    languages: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # Stop-word lists per language, replacing the shipped ones; an empty list skips the rule.
    stop_words: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # Profile for documents without a language (langid not run).
    default_language: str = "en"

    def validate(self) -> None:
        valid = sorted(DEFAULTS)
        for lang, overrides in self.languages.items():
            if lang != "*" and not re.fullmatch(r"[a-z]{2,3}", lang):
                raise ValueError(f"languages: {lang!r} is not an ISO 639 code such as 'en' or 'zh', nor '*'")
            for key, value in overrides.items():
                if key not in DEFAULTS:
                    raise ValueError(f"languages.{lang}: unknown threshold {key!r}; valid thresholds: {valid}")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    # ValueError, not TypeError: the config loader reports ValueErrors with the file
                    raise ValueError(f"languages.{lang}.{key}: expected a number, got {value!r}")  # noqa: TRY004
                if key not in _NON_RATIOS and value > 1:
                    raise ValueError(f"languages.{lang}.{key}: a ratio must be <= 1 (negative turns it off), "
                                     f"got {value}")
                if key == "c4_terminal_punct" and value not in (0, 1):
                    raise ValueError(f"languages.{lang}.c4_terminal_punct: expected 0 or 1, got {value}")
            th = {**DEFAULTS, **LANGUAGE_DEFAULTS.get(lang, {}), **overrides}
            for lo, hi in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
                if th[lo] >= 0 and th[hi] >= 0 and th[lo] > th[hi]:
                    raise ValueError(f"languages.{lang}: {lo} ({th[lo]}) is above {hi} ({th[hi]})")
        for lang, words in self.stop_words.items():
            if not re.fullmatch(r"[a-z]{2,3}", lang):
                raise ValueError(f"stop_words: {lang!r} is not an ISO 639 code such as 'en' or 'zh'")
            if not all(isinstance(w, str) and w.strip() for w in words):
                raise ValueError(f"stop_words.{lang}: expected a list of non-empty words, got {words!r}")
        if not re.fullmatch(r"[a-z]{2,3}", self.default_language):
            raise ValueError(f"default_language: expected an ISO 639 code such as 'en', got {self.default_language!r}")


@register_stage("quality", order=50)
class QualityFilter(Filter):
    """Gopher + C4 + FineWeb heuristics on one shared, language-aware split of each document."""

    name = "quality_v1"
    config_cls = QualityConfig
    columns = COLUMNS

    def __init__(self, config: QualityConfig | None = None) -> None:
        super().__init__(config)
        self.config.validate()
        self._profiles: dict[str, tuple[str, dict[str, float], frozenset[str] | None]] = {}
        self._plans: dict[str, _Plan] = {}

    def profile(self, language: str | None) -> tuple[str, dict[str, float], frozenset[str] | None]:
        """(language, thresholds, stop words or None) for a document language; languages
        without their own defaults get FineWeb's English thresholds."""
        lang = language or self.config.default_language
        if lang not in self._profiles:
            # "*": overrides for every language (a source kind's defaults), under the language's own.
            th = {**DEFAULTS, **LANGUAGE_DEFAULTS.get(lang, {}), **self.config.languages.get("*", {}),
                  **self.config.languages.get(lang, {})}
            if lang in self.config.stop_words:
                stop = frozenset(self.config.stop_words[lang]) or None
            else:
                stop = shipped_stop_words().get(lang)
            self._profiles[lang] = (lang, th, stop)
        return self._profiles[lang]

    def setup(self) -> None:
        from filters.ngrams import repetition_chars

        repetition_chars(["setup"], " ")  # loads numba and the compiled n-gram code now, not in a batch

    def process_batch(self, docs: list[Document]) -> None:
        for doc in docs:
            scores, content = self.analyze(doc)
            doc.meta.update(scores)
            ok, reason = self.keep(doc, scores)
            if not ok:
                doc.drop(self.name, reason or "dropped")
            elif self.config.remove_lines:
                doc.text = content

    def score(self, doc: Document) -> dict[str, Any]:
        return self.analyze(doc)[0]

    def analyze(self, doc: Document) -> tuple[dict[str, Any], str]:
        """All scores for `doc`, and its content lines joined by newlines (C4's output text)."""
        cfg = self.config
        name, th, stop = self.profile(doc.language)
        text = doc.text
        if cfg.c4_remove_citations and "[" in text:
            # a marker alone on its line is an extractor artifact (<sup>[13]</sup> became its
            # own line): removing it with its newlines rejoins the sentence it split
            text = CITATION_REGEX.sub("", _CITATION_LINE.sub("", text))
        split = split_document(text)  # the one split every rule below reads
        words = split.words
        s: dict[str, Any] = {"quality_lang": name}
        skipped = []
        if stop is None and th["min_stop_words"] >= 0:
            skipped.append("gopher_too_few_stop_words")
        s.update(repetition_scores(split, words, joiner="" if name in UNSPACED_LANGUAGES else " "))
        s.update(gopher_scores(split, words, stop, unspaced=name in UNSPACED_LANGUAGES))
        c4, content_lines, content, content_words = self._c4(split, th, unspaced=name in UNSPACED_LANGUAGES)
        s.update(c4)
        s.update(fineweb_scores(content_lines, content_words, th["short_line_length"]))
        s["quality_skipped"] = ",".join(skipped) or None
        s["quality_score"] = _score(s, self.plan(name))
        return s, content

    def _c4(self, split: DocSplit, th: dict[str, float], unspaced: bool) -> tuple[dict[str, Any], list[str], str, int]:
        """C4's line rules (datatrove's order): doc flags, content lines (as a list and joined by
        newlines), their token count."""
        cfg = self.config
        lower = split.text.lower()
        # one search over the whole text spares a per-line lower() for almost every page
        check_lorem = cfg.c4_lorem_ipsum and "lorem ipsum" in lower
        check_js = cfg.c4_javascript and "javascript" in lower
        check_curly = cfg.c4_curly_bracket and "{" in lower
        check_policy = cfg.c4_policy and any(p in lower for p in POLICY_SUBSTRINGS)
        terminal = th["c4_terminal_punct"] > 0
        min_words, max_len = th["c4_min_words_per_line"], th["c4_max_word_length"]
        words_cap = max(0, math.ceil(min_words))
        kept: list[str] = []
        dropped: list[str] = []  # non-empty lines that are not content
        lorem = curly = False
        # per-line tokens only where a rule counts them (unspaced scripts)
        for line, tokens in zip(split.lines, split.line_words if unspaced else repeat(None)):
            line = line.strip()
            if not line:
                continue
            if max_len >= 0 and len(line) > max_len and any(len(w) > max_len for w in line.split()):
                dropped.append(line)
                continue
            if terminal and (not line.endswith(C4_END) or line.endswith("...")):
                dropped.append(line)
                continue
            if min_words >= 0:
                # C4 counts whitespace-separated words; without spaces, count word tokens
                # (at most ceil(min_words) + 1 pieces: enough to compare, no list of every word)
                n = sum(not token_kind(t)[0] for t in tokens) if unspaced else len(line.split(None, words_cap))
                if n < min_words:
                    dropped.append(line)
                    continue
            if check_lorem or check_js or check_curly or check_policy:
                line_l = line.lower()
                if check_lorem and "lorem ipsum" in line_l:
                    lorem = True  # C4 drops the page; keep measuring so every score is stored
                if check_js and "javascript" in line_l:
                    dropped.append(line)
                    continue
                if check_curly and "{" in line:
                    curly = True
                if check_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                    dropped.append(line)
                    continue
            kept.append(line)
        # the content lines' tokens: every token but the dropped lines' (an empty line has none);
        # the dropped lines are the fewer and shorter ones, so only they are split again
        n_tokens = len(split.words) - sum(len(split.tokens(x)) for x in dropped)
        total = sum(len(x) for x in split.lines) or 1
        content = "\n".join(kept)
        sentences = count_sentences_in_lines(content, len(kept))  # one search, not one per line
        scores = {
            "quality_c4_lorem_ipsum": lorem, "quality_c4_curly_bracket": curly, "quality_c4_sentences": sentences,
            "quality_c4_removed_char_frac": 1.0 - sum(len(x) for x in kept) / total,
        }
        return scores, kept, content, n_tokens

    def keep(self, doc: Document, scores: dict[str, Any]) -> tuple[bool, str | None]:
        if not scores.get("quality_word_count") and not scores.get("quality_content_lines"):
            return False, "quality_empty"
        reason = _first_failure(scores, self.plan(doc.language))
        return (False, reason) if reason else (True, None)

    def plan(self, language: str | None) -> _Plan:
        """The rules as they apply to a language (thresholds looked up once per language)."""
        lang = language or self.config.default_language
        if lang not in self._plans:
            self._plans[lang] = _plan(self.profile(lang)[1], self.config)
        return self._plans[lang]


# A rule as it applies to one language: (reason, stored column, kind, threshold); a flag's
# "threshold" is its config switch, and rules turned off (negative threshold) are left out.
_Plan = tuple[tuple[str, str, str, Any], ...]


def _plan(th: dict[str, float], cfg: QualityConfig) -> _Plan:
    out = []
    for rule in RULES:
        if rule.kind == "flag":
            out.append((rule.reason, rule.column, "flag", bool(getattr(cfg, rule.reason))))
        elif rule.kind == "nonzero":
            out.append((rule.reason, rule.column, "nonzero", None))
        elif th[rule.key] >= 0:
            out.append((rule.reason, rule.column, rule.kind, th[rule.key]))
    return tuple(out)


def _first_failure(s: dict[str, Any], plan: _Plan) -> str | None:
    """The reason of the first rule (in RULES order) the stored scores fail, or None."""
    for reason, column, kind, t in plan:
        v = s.get(column)
        if v is None:
            continue
        if (v > t if kind == "max" else v < t if kind == "min" else bool(v) and t if kind == "flag" else v == 0):
            return reason
    return None


def _score(s: dict[str, Any], plan: _Plan) -> float:
    """Mean over the applied rules of 0.5 + 0.5 * margin / threshold, clipped to [0, 1]: 0.5 at
    a threshold, 1 for a ratio of 0 where a ratio must stay low. Deterministic, higher is
    better; dedup uses it to choose which copy of a duplicate cluster to keep."""
    parts = []
    for _, column, kind, t in plan:
        v = s.get(column)
        if v is None:
            continue
        if kind == "flag":
            parts.append(0.0 if bool(v) and t else 1.0)
        elif kind == "nonzero":
            parts.append(0.0 if v == 0 else 1.0)
        else:
            margin = (t - v) if kind == "max" else (v - t)
            parts.append(min(1.0, max(0.0, 0.5 + 0.5 * margin / t)) if t > 0 else float(margin >= 0))
    return round(sum(parts) / len(parts), 6) if parts else 0.0


if __name__ == "__main__":
    _doc = Document(doc_id="stdin", warc_path="", warc_offset=0, record_type="response", text=sys.stdin.read(),
                    language=sys.argv[1] if len(sys.argv) > 1 else None)
    _f = QualityFilter()
    _scores, _content = _f.analyze(_doc)
    print(json.dumps({**_scores, "keep": _f.keep(_doc, _scores)}, ensure_ascii=False, indent=1))
