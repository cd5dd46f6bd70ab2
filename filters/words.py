"""One fast, language-aware split of a document, and the Gopher/FineWeb measurements on it.

datatrove's Gopher, C4 and FineWeb filters each call spaCy on the same text (about 93% of
their time). Here a document is split once, with one regular expression, into lines and
per-line tokens; every rule in `filters.quality` reads that split, and the measurements
below reuse datatrove's own n-gram and duplicate helpers on it.

Tokens follow spaCy's shape closely enough for Gopher's thresholds: a run of letters/digits
(with combining marks, so Devanagari or Thai vowel signs stay inside their word, and with
inner . , / - ' so "3.5", "1,000", "e-mail", "l'homme" stay one word; English clitics such as
"'s" and "n't"-style "'t" are split off as spaCy does) or a run of punctuation. Scripts
written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar) give one token
per character: there is no word segmenter here, so rules that count words use per-language
thresholds for those languages (see `filters.quality.LANGUAGE_DEFAULTS`). Hangul is written
with spaces and is split into words like Latin script.

    >>> split_document("Hello, world!\\n大语言模型").line_words
    [['Hello', ',', 'world', '!'], ['大', '语', '言', '模', '型']]
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

from filters.ngrams import find_duplicates, repetition_chars

# Scripts written without spaces between words: one token per character.
UNSPACED_RANGES = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9D),  # halfwidth katakana
    (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
)


def _class(ranges: list[tuple[int, int]]) -> str:
    """A regex character-class body for code-point ranges."""
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )


def _mark_ranges() -> list[tuple[int, int]]:
    # Python's \w does not match combining marks (Mn/Mc/Me): without them "हिन्दी" would
    # fall apart at every vowel sign. Built once at import (~20 ms).
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x20000):
        if unicodedata.category(chr(cp))[0] == "M":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return ranges


_UNSPACED = _class(list(UNSPACED_RANGES))
_MARK_RANGES = _mark_ranges()
_MARKS = _class(_MARK_RANGES)
_WORD_CHAR = rf"(?:[^\W{_UNSPACED}]|[{_MARKS}])"
# English clitics, split off as spaCy does ("it's" -> "it" "'s"): Gopher's ratios count them.
_CLITIC = r"['’](?:[sSmMdDtT]|re|RE|ve|VE|ll|LL)(?!\w)"
TOKEN_RE = re.compile(
    rf"[{_UNSPACED}][{_MARKS}]*"  # one character of an unspaced script, with its marks
    # a word; inner . , / - ' ’ keep "3.5", "1,000", "12/31", "e-mail", "l'homme" whole
    rf"|{_WORD_CHAR}+(?:(?:[.,/\-]|(?!{_CLITIC})['’]){_WORD_CHAR}+)*"
    rf"|{_CLITIC}"
    rf"|[^\w\s{_MARKS}]+"  # a run of punctuation or symbols
)
# The same tokens where no combining mark and no unspaced character occurs (most lines of
# most pages): there the word class is plain \w, one character class instead of an
# alternation per character, ~3x faster. `_SLOW_CHARS` decides which pattern a text needs.
TOKEN_RE_PLAIN = re.compile(rf"\w+(?:(?:[.,/\-]|(?!{_CLITIC})['’])\w+)*|{_CLITIC}|[^\w\s]+")
_SLOW_CHARS = re.compile(rf"[{_UNSPACED}{_MARKS}]")
_PLAIN_FINDALL = TOKEN_RE_PLAIN.findall


def plain_tokens(text: str) -> list[str]:
    r"""`TOKEN_RE_PLAIN.findall(text)`, 1.5x faster: no token holds whitespace and the pattern
    looks ahead only for \w or a clitic (neither matches whitespace or the end of a string), so
    the tokens of the text are those of its whitespace-separated pieces in order (str.split and
    \s both use Unicode whitespace); a piece of letters and digits only (str.isalnum: the
    characters of \w but "_") is one token, and only the other pieces go through the regex."""
    out: list[str] = []
    add, extend = out.append, out.extend
    for piece in text.split():
        if piece.isalnum():
            add(piece)
        else:
            extend(_PLAIN_FINDALL(piece))
    return out


@lru_cache(maxsize=1 << 16)
def _needs_full_pattern(ch: str) -> bool:
    return _SLOW_CHARS.match(ch) is not None


def _plain(text: str) -> bool:
    """No combining mark and no unspaced character in `text`. A regex search with the full
    class is slow (thousands of ranges); the set of distinct characters is small."""
    if _MAYBE_SLOW.search(text) is None:  # one table lookup per character: most pages stop here
        return True
    return not any(map(_needs_full_pattern, set(text)))


# The same classes, BMP part only, or any non-BMP character: sre tests a BMP class with one
# bitmap lookup, but the non-BMP members of a class one range at a time (why `_SLOW_CHARS`
# is slow on whole texts). A non-BMP character (an emoji, say) goes to the exact check above.
_MAYBE_SLOW = re.compile(
    "[" + _class([(a, min(b, 0xFFFF)) for a, b in [*UNSPACED_RANGES, *_MARK_RANGES] if a <= 0xFFFF]) + "]"
    "|[\U00010000-\U0010ffff]"
)


_PARAGRAPHS = re.compile(r"\n{2,}")
# Full-width stops end a sentence wherever they are; the others (. ! ? । ؟ ። ...) before a space.
_FULL_WIDTH_END = "。！？｡．"
_STOPS = sorted(set(TERMINAL_PUNCTUATION) - set(_FULL_WIDTH_END))


def _sentence_end(stops: list[str], space: str) -> re.Pattern[str]:
    """`[stops]+closers*(?=space)|[full-width]+closers*(?=.)`. With BMP stops only, written to
    start with one class of both sets: sre then skips to the next candidate character in a tight
    loop instead of trying both branches at every position (5x faster on a page); the sets are
    disjoint, so a lookbehind on the first character picks the branch the alternation would
    take. A class with non-BMP members is slow to test per character, so there the plain
    alternation (which tests it only where the cheap branch fails) stays faster."""
    s = re.escape("".join(stops))
    if any(c > "\uffff" for c in stops):
        return re.compile(rf"[{s}]+[\"'”’»)\]]*(?={space})|[{_FULL_WIDTH_END}]+[”’」』）]*(?=.)")
    return re.compile(rf"[{s}{_FULL_WIDTH_END}](?:(?<=[{s}])[{s}]*[\"'”’»)\]]*(?={space})"
                      rf"|(?<=[{_FULL_WIDTH_END}])[{_FULL_WIDTH_END}]*[”’」』）]*(?=.))")


_SENTENCE_END = _sentence_end(_STOPS, r"\s")
# The same ends in lines joined by "\n" (lines from str.splitlines hold no "\n"): "\n" counts as
# the end of a line, not as the space after a sentence ("." excludes it already), and no class
# matches "\n", so no match spans two lines: one search per document instead of one per line.
# sre tests a character against a class's non-BMP members one by one (datatrove's list has 75,
# Brahmi to Adlam), 3x the cost of the whole search; text without such characters cannot
# match them, so it is searched with the BMP members only.
_SENTENCE_END_IN_LINES = _sentence_end(_STOPS, r"[^\S\n]")
_SENTENCE_END_IN_BMP_LINES = _sentence_end([c for c in _STOPS if c <= "\uffff"], r"[^\S\n]")
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
FINEWEB_END = tuple(TERMINAL_PUNCTUATION)


@lru_cache(maxsize=1 << 16)
def token_kind(token: str) -> tuple[bool, bool]:
    """(is_symbol, has_alpha) for a token, as datatrove's Gopher filter defines them.

    A symbol token is made only of punctuation (datatrove's PUNCTUATION_SET). Cached: a
    document repeats its vocabulary, so most lookups are hits.
    """
    is_symbol = all(ch in PUNCTUATION_SET for ch in token)
    has_alpha = any(ch.isalpha() for ch in token)
    return is_symbol, has_alpha


class _Codes(dict):
    """token -> 4 * len(token) + 2 * is_symbol + has_alpha (see gopher_scores), filled on first
    lookup: one table gives a document's vocabulary its classes and lengths in one pass.

    Most new tokens are plain words: a token of letters only has a letter and is no symbol
    (the one alphanumeric character of PUNCTUATION_SET, "１", is a digit, not a letter; a test
    keeps it so), decided by one str.isalpha() instead of two scans of its characters."""

    def __missing__(self, token: str) -> int:
        if token.isalpha():
            code = 1
        else:
            is_symbol, has_alpha = token_kind(token)
            code = 2 * is_symbol + has_alpha
        self[token] = code = code + 4 * len(token)
        return code


_CODES = _Codes()


@dataclass(slots=True)
class DocSplit:
    """The split every rule shares: lines, and the tokens of the whole text (a token never
    spans two lines: no token holds whitespace, and every line break is whitespace)."""

    text: str
    lines: list[str]
    words: list[str]
    plain: bool  # no combining mark and no unspaced character: TOKEN_RE_PLAIN gives the tokens
    _line_words: list[list[str]] | None = None

    @property
    def line_words(self) -> list[list[str]]:
        """The tokens of each line (computed on first use: most documents never need them)."""
        if self._line_words is None:
            self._line_words = [self.tokens(line) if line else [] for line in self.lines]
        return self._line_words

    def tokens(self, line: str) -> list[str]:
        """The tokens of one line of this text."""
        if self.plain or _plain(line):  # the plain pattern where it gives the same tokens: faster
            return plain_tokens(line)
        return TOKEN_RE.findall(line)


def split_document(text: str) -> DocSplit:
    """Split `text` into lines (str.splitlines) and tokens. One search over the whole text, not
    one per line: the same tokens (no token spans a line break), 15% faster."""
    lines = text.splitlines()
    if _plain(text):
        return DocSplit(text=text, lines=lines, words=plain_tokens(text), plain=True)
    # Mixed text: each line with the pattern it needs (most lines of a mixed page are plain).
    split = DocSplit(text=text, lines=lines, words=[], plain=False)
    split.words = [w for ws in split.line_words for w in ws]
    return split


def split_words(text: str) -> list[str]:
    """Tokens of `text` (for callers outside the quality filter, e.g. dedup shingles)."""
    return plain_tokens(text) if _plain(text) else TOKEN_RE.findall(text)


def repetition_scores(split: DocSplit, words: list[str], joiner: str) -> dict[str, float]:
    """Gopher repetition fractions, all of them (not just the first to fail); `filters.ngrams`
    computes the reference helpers' exact values on hashed n-grams."""
    text = split.text
    n_chars = len(text) or 1
    paragraphs = _PARAGRAPHS.split(text.strip())
    para_dups, para_chars = find_duplicates(paragraphs)
    lines = [x for x in split.lines if x]  # datatrove splits on "\n+"
    line_dups, line_chars = find_duplicates(lines)
    s = {
        "quality_dup_para_frac": para_dups / len(paragraphs),
        "quality_dup_para_char_frac": para_chars / n_chars,
        "quality_dup_line_frac": line_dups / max(len(lines), 1),
        "quality_dup_line_char_frac": line_chars / n_chars,
    }
    # Gopher joins the top n-grams with spaces; for one-character tokens that would count n-1
    # spaces that are not in the text, so unspaced languages join with "". Its duplicate
    # n-grams are always joined with "".
    tops, dups = repetition_chars(words, joiner)
    for n, chars in zip((2, 3, 4), tops):
        s[f"quality_top_{n}gram_frac"] = chars / n_chars
    for n, chars in zip(range(5, 11), dups):
        s[f"quality_dup_{n}gram_frac"] = chars / n_chars
    return s


def gopher_scores(split: DocSplit, words: list[str], stop: frozenset[str] | None, unspaced: bool) -> dict[str, Any]:
    """Gopher quality measurements (datatrove's GopherQualityFilter, on the shared split)."""
    text = split.text
    n_words = len(words) or 1
    # Each distinct token is classified once (Counter counts in C) and looked up in a process-
    # wide table of codes (bit 0: has a letter, bit 1: only punctuation, then its length), so
    # the per-document work is C-level maps and numpy sums over the vocabulary. Integer sums:
    # exact values.
    counts = Counter(words)
    if len(_CODES) > 1 << 18:
        _CODES.clear()
    n = len(counts)
    packed = np.fromiter(map(_CODES.__getitem__, counts), dtype=np.int64, count=n)
    cnt = np.fromiter(counts.values(), dtype=np.int64, count=n)
    codes, lens = packed & 3, packed >> 2
    counted = (codes & 2) == 0
    n_alpha = int(cnt[(codes & 1) == 1].sum())
    n_counted = int(cnt[counted].sum())
    n_letters = int((cnt * lens)[counted].sum())
    lines = split.lines or [""]
    if stop is None:
        n_stop = None
    elif unspaced:
        # no word boundaries to match on: a stop word counts when it occurs in the text
        n_stop = sum(1 for w in stop if w in text)
    else:
        n_stop = len(stop.intersection(counts))
    return {
        "quality_word_count": n_counted,
        "quality_mean_word_length": n_letters / n_counted if n_counted else 0.0,
        "quality_hash_ratio": text.count("#") / n_words,
        "quality_ellipsis_ratio": (text.count("...") + text.count("…")) / n_words,
        "quality_bullet_lines_ratio": sum(x.lstrip().startswith(("•", "-")) for x in lines) / len(lines),
        "quality_end_ellipsis_lines_ratio": sum(x.rstrip().endswith(("...", "…")) for x in lines) / len(lines),
        "quality_alpha_words_ratio": n_alpha / n_words,
        "quality_stop_words": n_stop,
    }


def count_sentences(line: str) -> int:
    """Sentences in a line: sentence-ending punctuation inside it, plus the last sentence."""
    return len(_SENTENCE_END.findall(line)) + 1


def count_sentences_in_lines(joined: str, n_lines: int) -> int:
    """`sum(map(count_sentences, lines))` for `joined = "\\n".join(lines)` (no line holding "\\n")."""
    if not n_lines:
        return 0
    pattern = _SENTENCE_END_IN_LINES if _NON_BMP.search(joined) else _SENTENCE_END_IN_BMP_LINES
    return len(pattern.findall(joined)) + n_lines


def fineweb_scores(lines: list[str], n_words: int, short_line_length: float) -> dict[str, Any]:
    """FineWeb's line rules, measured on the C4 content lines."""
    n = len(lines)
    if n == 0:
        return {"quality_content_lines": 0, "quality_line_punct_ratio": None, "quality_short_line_ratio": None,
                "quality_char_dup_ratio": None, "quality_list_ratio": None}
    return {
        "quality_content_lines": n,
        "quality_line_punct_ratio": sum(x.endswith(FINEWEB_END) for x in lines) / n,
        "quality_short_line_ratio": sum(len(x) <= short_line_length for x in lines) / n,
        "quality_char_dup_ratio": find_duplicates(lines)[1] / (sum(map(len, lines)) or 1),
        # datatrove: text.count("\n") / words; content lines are joined by single newlines
        "quality_list_ratio": (n - 1) / max(n_words, 1),
    }


if __name__ == "__main__":  # quick look: python -m filters.words < file.txt
    for ws in split_document(sys.stdin.read()).line_words:
        print(" | ".join(ws))
