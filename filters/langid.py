"""Language ID with fastText lid.176, offline.

The model (`filters/data/lid.176.ftz`, CC-BY-SA 3.0) ships in the repo: datatrove's
LanguageFilter downloads `lid.176.bin` on first use and fails offline. fastText predicts on
one line: a newline would end the text it sees, so newlines become spaces first.
Every document gets `language` and `language_score`; the config decides what is kept.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Filter

MODEL_PATH = Path(__file__).resolve().parent / "data" / "lid.176.ftz"
# fastText reads this many characters at most per call: enough for a stable prediction, and
# a 1 MB page costs no more than a 10 kB one.
MAX_CHARS = 10_000


@functools.lru_cache(maxsize=2)
def load_model(path: str = str(MODEL_PATH)):
    from filters import fasttext_model

    if not Path(path).is_file():
        raise FileNotFoundError(f"language-ID model not found at {path}: it ships with gristmill in filters/data/")
    return fasttext_model.load(path)


@functools.lru_cache(maxsize=4)
def model_languages(path: str) -> frozenset[str]:
    """The language codes a fastText LID model can predict, read from its dictionary."""
    from filters.quality_model import ModelFileError, read_labels

    try:
        return frozenset(lab.removeprefix("__label__") for lab in read_labels(path))
    except ModelFileError as exc:
        raise ValueError(f"model_path: {exc}") from None


def check_codes(what: str, codes: list[str], model_path: str, whose: str) -> None:
    """ValueError naming the codes the model at `model_path` never predicts, if any."""
    known = model_languages(model_path)
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ValueError(f"{what}: {unknown} not among {whose} {len(known)} languages "
                         "(lid.176 uses ISO 639-1 codes where there is one: en, de, zh, ...)")


def predict(texts: list[str], model=None) -> list[tuple[str, float]]:
    """Top language (ISO 639-1 where lid.176 has one) and its probability, for each text."""
    from filters.fasttext_model import FastTextModel

    model = model or load_model()
    if isinstance(model, FastTextModel):  # the same answers as below, the joined strings never built
        labels, probs = model.predict_split([t[:MAX_CHARS] for t in texts], "whitespace", k=1)
    else:
        labels, probs = model.predict([" ".join(t[:MAX_CHARS].split()) for t in texts], k=1)
    return [(lab[0].removeprefix("__label__") if lab else "unknown", float(p[0]) if len(p) else 0.0)
            for lab, p in zip(labels, probs)]


@dataclasses.dataclass(frozen=True)
class LangIdConfig:
    # Languages to keep; ["*"] keeps every language that clears its threshold.
    keep: tuple[str, ...] = ("*",)
    # FineWeb keeps English at 0.65.
    threshold: float = 0.65
    # Per-language thresholds, e.g. {zh = 0.5}: lid.176 is less sure of short Chinese pages.
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    model_path: str = ""

    def validate(self) -> None:
        for lang, t in {"*": self.threshold, **self.thresholds}.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold for {lang!r} must be within [0, 1], got {t}")
        if self.model_path and not Path(self.model_path).is_file():
            raise ValueError(f"model_path {self.model_path!r} does not exist")
        # A code the model never predicts (ISO 639-3 "eng" for lid.176's "en", say) would drop
        # every document of a run as language_not_kept, or set a threshold nothing uses.
        for what, codes in (("keep", [c for c in self.keep if c != "*"]), ("thresholds", list(self.thresholds))):
            check_codes(what, codes, self.model_path or str(MODEL_PATH), "the model's")


@register_stage("langid", order=40)
class LangId(Filter):
    name = "langid_v1"
    config_cls = LangIdConfig
    columns = {}  # language and language_score are first-class Document fields

    def setup(self) -> None:
        self._model = load_model(self.config.model_path or str(MODEL_PATH))
        predict(["setup"], self._model)  # the compiled code and its tokenizer table, now, not in a batch

    def score_batch(self, docs: list[Document]) -> list[dict]:
        for doc, (lang, score) in zip(docs, predict([d.text for d in docs], self._model)):
            doc.language, doc.language_score = lang, score
        return [{} for _ in docs]

    def keep(self, doc: Document, scores: dict) -> tuple[bool, str | None]:
        c = self.config
        if "*" not in c.keep and doc.language not in c.keep:
            return False, "language_not_kept"
        if doc.language_score < c.thresholds.get(doc.language, c.threshold):
            return False, "language_score_below_threshold"
        return True, None

