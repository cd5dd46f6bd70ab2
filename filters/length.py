"""Length: extracted text too short to be worth a language-ID call, or too long to be a page."""

from __future__ import annotations

import dataclasses

from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Filter


@dataclasses.dataclass(frozen=True)
class LengthConfig:
    # Characters of extracted text; shorter documents are not worth a language-ID call.
    min_chars: int = 200
    max_chars: int = 1_000_000

    def validate(self) -> None:
        if not 0 <= self.min_chars < self.max_chars:
            raise ValueError(f"need 0 <= min_chars < max_chars, got {self.min_chars}, {self.max_chars}")


@register_stage("length", order=30)
class LengthFilter(Filter):
    name = "length_v1"
    config_cls = LengthConfig

    def score(self, doc: Document) -> dict:
        return {}

    def keep(self, doc: Document, scores: dict) -> tuple[bool, str | None]:
        n = len(doc.text)
        if n < self.config.min_chars:
            return False, "too_short"
        if n > self.config.max_chars:
            return False, "too_long"
        return True, None
