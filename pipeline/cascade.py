"""Cheap first: a fast extraction decides what cannot survive, before trafilatura runs.

resiliparse's main-content extraction (`extract_plain_text(main_content=True)`) costs 1.5 ms
a page here against 13 ms for the trafilatura pass (`bench/extract.py`). The first pass
extracts with it, identifies the language of that text with the language-ID stage's own
model, and drops a page only where the full pass would drop it too; every other page goes
on to trafilatura and the full filter chain, unchanged. Which decisions moved here, and with
what slack, was chosen on the 990 evaluation pages plus the real CommonCrawl excerpts
(tuned on two thirds, checked on the other third; numbers in bench/results/e2e.md):

* **A language outside `[langid] keep`**, when the first-pass text is at least
  `cascade_min_chars` long and lid.176 gives the other language at least
  `cascade_min_language_score`. At 0.7 and 100 characters, for keep lists en, de, en+de,
  fr+es+it+pt and zh: 0 kept pages lost on 1,022 (the closest call: an English Q&A page about
  German whose first-pass text lid.176 calls German at 0.59; 0.5 would have lost it).
* **Not moved, with the reason**: the length check (resiliparse's main-content heuristic
  returns nothing on 1.2% of pages whose article trafilatura finds: 9 kept pages would be
  lost); a language score below threshold with keep = "*" (1 catch in 1,022 for the cost of a
  first pass on every page); the quality rules (with per-rule slack they catch ~60 pages for ~6
  lost, and scoring the first-pass text costs more than the trafilatura runs it saves).

So with `keep = ["*"]` nothing can be decided early and the first pass is skipped: the
cascade costs nothing where it cannot help.
"""

from __future__ import annotations

from typing import Any

from pipeline.document import Document

REASON_LANGUAGE = "cascade_language_not_kept"


def fast_text(html: str) -> str:
    """resiliparse's main-content plain text (the `resiliparse` extraction mode as well)."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True, alt_texts=False) or ""


class FirstPass:
    """The cascade's early decisions, built from the enabled stages' own settings."""

    def __init__(self, keep: tuple[str, ...], min_score: float, min_chars: int, model_path: str = "") -> None:
        self.keep = frozenset(keep)
        self.min_score, self.min_chars, self.model_path = min_score, min_chars, model_path
        self._model: Any = None

    @classmethod
    def for_languages(cls, langid: Any | None, min_score: float, min_chars: int) -> "FirstPass | None":
        """None when the first pass could decide nothing: language ID off or keeping every language."""
        if langid is None or "*" in langid.keep:
            return None
        return cls(tuple(langid.keep), min_score, min_chars, langid.model_path)

    def decide(self, docs: list[Document], texts: list[str]) -> list[str | None]:
        """A drop reason (or None: go on to the full pass) for each document, from its fast text."""
        from filters.langid import MODEL_PATH, load_model, predict

        if self._model is None:
            self._model = load_model(self.model_path or str(MODEL_PATH))
        out: list[str | None] = [None] * len(docs)
        judged = [i for i, t in enumerate(texts) if len(t) >= self.min_chars]
        if not judged:
            return out
        for i, (lang, score) in zip(judged, predict([texts[i] for i in judged], self._model), strict=True):
            if lang not in self.keep and score >= self.min_score:
                # the manifest shows what the page was judged as (the full pass would overwrite it)
                docs[i].language, docs[i].language_score = lang, score
                out[i] = REASON_LANGUAGE
        return out
