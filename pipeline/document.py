"""The one record type that flows through every per-shard stage.

A `Document` is born for every WARC record the reader sees (requests and broken records
included), so that every record ends up as one row of the `documents` manifest. Stages
add flat manifest columns to `meta` (e.g. `quality_word_count`, `pii_email`), replace
`text`, or drop the document with a stage name and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Document:
    doc_id: str
    warc_path: str
    warc_offset: int
    record_type: str
    # Which reader made it (warc, jsonl, parquet, text, mediawiki); `warc_path` is the input file
    # whatever the format, `warc_offset` the record's byte offset where there is one.
    input_format: str = "warc"
    # Line number (JSONL, text), row number (Parquet) or page number (MediaWiki) in the file.
    source_row: int | None = None
    # The record's own id in its source (JSONL/Parquet `id`, MediaWiki page id), and its title.
    source_id: str | None = None
    title: str | None = None
    warc_record_id: str | None = None
    url: str | None = None
    fetch_date: str | None = None
    content_type: str | None = None
    charset: str | None = None
    n_bytes: int = 0
    # The HTTP payload, kept only until extraction has turned it into `text`.
    raw: bytes | None = None
    text: str = ""
    # Length of the extracted text (before any later stage rewrote it).
    n_chars: int = 0
    language: str | None = None
    language_score: float | None = None
    # Flat manifest columns added by stages; keys are column names declared by the stage.
    meta: dict[str, Any] = field(default_factory=dict)
    drop_stage: str | None = None
    drop_reason: str | None = None

    @property
    def kept(self) -> bool:
        return self.drop_stage is None

    def drop(self, stage: str, reason: str) -> None:
        """Mark the document dropped; its payload is released, its manifest row stays."""
        self.drop_stage = stage
        self.drop_reason = reason
        self.raw = None
        self.text = ""
