"""Toxicity: LDNOOBW bad-word counts and a fastText toxic-comment classifier, offline.

Every document gets three columns, whatever is decided: `toxicity_badword_count`,
`toxicity_badword_ratio` (hits per word, or per non-space character for zh/ja/ko/th) and
`toxicity_score` (the classifier's probability of "toxic"). The thresholds in
`ToxicityConfig` decide what is dropped; the stored scores let a later run re-decide.

Word lists: LDNOOBW (28 languages, CC-BY-4.0) in `filters/data/ldnoobw/`, matched with one
Aho-Corasick automaton per language (pyahocorasick). Spaced languages match whole words
only (C4's rule: "Scunthorpe" does not count "cunt"); zh/ja/ko/th have no spaces between
words, so their entries match as substrings, and the entries that are substrings of normal
words (性 in 性能, 口交 in 接口交互) are dropped or fenced by context in `exclusions.tsv`.
datatrove's C4BadWordsFilter downloads the lists at run time and is not used.

Classifier: `filters/data/toxicity/toxicity.ftz`, trained by `bench/train_toxicity.py` on
~1.3k English Wikipedia talk comments; see that folder's README for what it can and cannot do.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import re
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Filter

DATA_DIR = Path(__file__).resolve().parent / "data"
LDNOOBW_DIR = DATA_DIR / "ldnoobw"
MODEL_PATH = DATA_DIR / "toxicity" / "toxicity.ftz"
TOXIC_LABEL = "__label__toxic"
# Languages written without spaces between words (ko has spaces, but particles attach to
# the word, so a whole-word match would miss 씨발놈아).
SUBSTRING_LANGS = frozenset({"zh", "ja", "ko", "th"})
# lid.176 language codes -> LDNOOBW file names; the Quebec list extends fr.
LANG_ALIASES = {"tl": "fil", "nb": "no", "nn": "no", "fr-CA-u-sd-caqc": "fr"}
# The classifier reads this many characters at most: a 1 MB page costs no more than 100 kB.
MAX_SCORE_CHARS = 100_000
_PUNCT = re.compile(r"([^\w\s'])")


def preprocess(text: str) -> str:
    """The classifier's input: lowercased, one line, punctuation split off words.

    Shared by the trainer (bench/train_toxicity.py) and the filter, so both see the same tokens.
    Each punctuation character gets a space on either side, i.e. `_PUNCT.sub(r" \1 ", ...)`:
    joining the pieces of a split on the captured character with spaces is that string, built
    in C instead of one template expansion per match (30% faster).
    """
    return _split_punct(text.lower())


def _split_punct(lowered: str) -> str:
    return " ".join(" ".join(_PUNCT.split(lowered)).split())


def shipped_languages() -> list[str]:
    """The LDNOOBW list names shipped (file stems), the Quebec supplement excluded."""
    return sorted(p.stem for p in LDNOOBW_DIR.glob("*.txt") if p.stem not in LANG_ALIASES)


def _is_word_char(c: str) -> bool:
    # Combining marks (Devanagari vowel signs, Arabic harakat) continue a word.
    import unicodedata

    return c.isalnum() or c == "_" or unicodedata.category(c)[0] == "M"


def _normalize(text: str, lang: str, lowered: str | None = None) -> str:
    text = " ".join((text.lower() if lowered is None else lowered).split())
    if lang == "th":
        # LDNOOBW writes sara am decomposed (U+0E4D U+0E32); Thai text uses U+0E33.
        text = text.replace("\u0e33", "\u0e4d\u0e32")
    return text


@dataclasses.dataclass(frozen=True)
class Exclusion:
    action: str  # "drop" or "context"
    not_before: str = ""
    not_after: str = ""


@functools.lru_cache(maxsize=1)
def load_exclusions() -> dict[tuple[str, str], Exclusion]:
    """(lang, entry) -> how the entry is limited, from `ldnoobw/exclusions.tsv`."""
    out = {}
    with open(LDNOOBW_DIR / "exclusions.tsv", encoding="utf-8") as f:
        rows = csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t")
        for r in rows:
            out[(r["lang"], r["entry"].lower())] = Exclusion(r["action"], r["not_before"], r["not_after"])
    return out


class BadWords:
    """Counts one language's list entries in a text (leftmost-longest, non-overlapping)."""

    def __init__(self, lang: str, use_exclusions: bool = True) -> None:
        import ahocorasick

        self.lang = lang
        self.substring = lang in SUBSTRING_LANGS
        excl = load_exclusions() if use_exclusions else {}
        files = [LDNOOBW_DIR / f"{lang}.txt"] + [
            LDNOOBW_DIR / f"{alias}.txt" for alias, target in LANG_ALIASES.items()
            if target == lang and (LDNOOBW_DIR / f"{alias}.txt").is_file()
        ]
        self.entries: dict[str, Exclusion | None] = {}
        for path in files:
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = _normalize(line, lang)
                rule = excl.get((lang, entry))
                if entry and not (rule and rule.action == "drop"):
                    self.entries[entry] = rule
        self._automaton = ahocorasick.Automaton()
        for entry in self.entries:
            self._automaton.add_word(entry, entry)
        if self.entries:
            self._automaton.make_automaton()

    def matches(self, text: str) -> list[str]:
        """The entries found in `text`, in order."""
        return self._matches(_normalize(text, self.lang))

    def _matches(self, text: str) -> list[str]:
        if not self.entries:
            return []
        found = []
        for end, entry in self._automaton.iter(text):
            start = end - len(entry) + 1
            before = text[start - 1] if start > 0 else " "
            after = text[end + 1] if end + 1 < len(text) else " "
            if not self.substring and (_is_word_char(before) or _is_word_char(after)):
                continue
            rule = self.entries[entry]
            if rule is not None and (before in rule.not_before or after in rule.not_after):
                continue
            found.append((start, end + 1, entry))
        # Leftmost-longest, no overlaps: "asshole" counts once, not also as "ass".
        found.sort(key=lambda m: (m[0], -m[1]))
        out, last_end = [], -1
        for start, end, entry in found:
            if start >= last_end:
                out.append(entry)
                last_end = end
        return out

    def count_and_ratio(self, text: str, lowered: str | None = None) -> tuple[int, float]:
        """Hits, and hits per word (per non-space character for substring languages).
        `lowered`: text.lower(), where the caller has it already."""
        norm = _normalize(text, self.lang, lowered)
        hits = len(self._matches(norm))
        units = len(norm) - norm.count(" ") if self.substring else norm.count(" ") + 1
        return hits, (hits / units if norm and units else 0.0)


@functools.lru_cache(maxsize=2)
def load_model(path: str = str(MODEL_PATH)):
    from filters import fasttext_model

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"toxicity model not found at {path}: it ships with gristmill in filters/data/toxicity/; "
            "rebuild it with `python bench/train_toxicity.py`"
        )
    return fasttext_model.load(path)


def toxic_probability(texts: list[str], model=None, lowered: list[str] | None = None) -> list[float]:
    """The classifier's probability that each text is toxic (`lowered`: each text.lower(), where
    the caller has them: the same input, one lower() fewer)."""
    from filters.fasttext_model import FastTextModel

    model = model or load_model()
    if lowered is None:
        lowered = [t[:MAX_SCORE_CHARS].lower() for t in texts]
    else:
        # t[:n].lower() is t.lower()[:n] only when no character before n changes length ("İ"
        # lowers to two): the texts within the limit are whole, the others take the long way.
        lowered = [low if len(t) <= MAX_SCORE_CHARS else t[:MAX_SCORE_CHARS].lower()
                   for t, low in zip(texts, lowered, strict=True)]
    if isinstance(model, FastTextModel):  # preprocess()'s words, the string never built
        labels, probs = model.predict_split(lowered, "punctuation", k=-1)
    else:
        labels, probs = model.predict([_split_punct(low) for low in lowered], k=-1)
    return [float(dict(zip(lab, p)).get(TOXIC_LABEL, 0.0)) for lab, p in zip(labels, probs)]


@dataclasses.dataclass(frozen=True)
class ToxicityConfig:
    # Drop when the bad-word ratio exceeds this AND there are at least `min_badwords` hits
    # (bench/results/toxicity.md): of 397 real pages the densest normal one, a news story on
    # a sex ring, has 0.0178, so 0.02 keeps it; C4's "any hit" would drop 9 of the 397.
    max_badword_ratio: float = 0.02
    min_badwords: int = 3
    # Drop when the classifier's toxic probability exceeds this (for `score_languages` only);
    # 1.0 disables it. Normal English pages score at most 0.13 in our sample.
    max_score: float = 0.8
    # The classifier alone flags identity terms: 99 % of non-toxic "X is a nice homosexual"
    # templates score > 0.9 (bias check). So by default it only drops documents that also
    # have at least one bad-word hit: held-out precision 1.0 at recall 0.37, bias FPR 0.
    score_requires_badword: bool = True
    # The classifier was trained on English comments: its score is stored for every
    # document but only decides for these languages (None = unknown counts as English).
    score_languages: tuple[str, ...] = ("en",)
    # LDNOOBW lists to use (file names, e.g. "en", "zh"); empty = all shipped.
    languages: tuple[str, ...] = ()
    # List used when a document has no language (language ID did not run).
    default_language: str = "en"
    # Apply exclusions.tsv (entries that are substrings of normal words or everyday words).
    use_exclusions: bool = True
    model_path: str = ""

    def validate(self) -> None:
        for name in ("max_badword_ratio", "max_score"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within [0, 1] (1 disables it), got {v}")
        if self.min_badwords < 1:
            raise ValueError(f"min_badwords must be >= 1, got {self.min_badwords}")
        have = shipped_languages()
        unknown = [x for x in (*self.languages, self.default_language) if LANG_ALIASES.get(x, x) not in have]
        if unknown:
            raise ValueError(f"no LDNOOBW list for {unknown}; shipped lists: {have}")
        if self.model_path and not Path(self.model_path).is_file():
            raise ValueError(f"model_path {self.model_path!r} does not exist; leave it empty for the shipped model")


@register_stage("toxicity", order=60)
class ToxicityFilter(Filter):
    """Stores bad-word counts and the classifier score; drops above the configured thresholds."""

    name = "toxicity_v1"
    config_cls = ToxicityConfig
    columns: ClassVar[dict[str, pa.DataType]] = {
        "toxicity_badword_count": pa.int32(),
        "toxicity_badword_ratio": pa.float32(),
        "toxicity_score": pa.float32(),
    }

    def setup(self) -> None:
        c = self.config
        langs = [LANG_ALIASES.get(x, x) for x in c.languages] or shipped_languages()
        self._lists = {lang: BadWords(lang, c.use_exclusions) for lang in sorted(set(langs))}
        self._model = load_model(c.model_path or str(MODEL_PATH))
        toxic_probability(["setup"], self._model)  # the compiled code and its tokenizer table, now

    def _list_for(self, doc: Document) -> BadWords | None:
        lang = doc.language or self.config.default_language
        return self._lists.get(LANG_ALIASES.get(lang, lang))

    def score_batch(self, docs: list[Document]) -> list[dict[str, Any]]:
        texts = [d.text for d in docs]
        lowered = [t.lower() for t in texts]  # shared by the classifier's input and the word lists
        probs = toxic_probability(texts, self._model, lowered)
        out = []
        for doc, p, low in zip(docs, probs, lowered):
            words = self._list_for(doc)
            count, ratio = words.count_and_ratio(doc.text, low) if words else (0, 0.0)
            out.append({"toxicity_badword_count": count, "toxicity_badword_ratio": ratio, "toxicity_score": p})
        return out

    def keep(self, doc: Document, scores: dict[str, Any]) -> tuple[bool, str | None]:
        c = self.config
        if scores["toxicity_badword_count"] >= c.min_badwords and scores["toxicity_badword_ratio"] > c.max_badword_ratio:
            return False, "toxicity_badwords"
        lang = doc.language or c.default_language
        gate = scores["toxicity_badword_count"] >= 1 or not c.score_requires_badword
        if lang in c.score_languages and scores["toxicity_score"] > c.max_score and gate:
            return False, "toxicity_classifier"
        return True, None
