"""Input readers, one module per format; each turns one input file into `Document`s, one per record.

The contract every reader keeps: EVERY record it sees becomes a Document, kept or dropped at stage
`read` with a reason (`malformed_json`, `missing_text_field`, `truncated_file`, ...), so that the
`documents` manifest accounts for every record that entered. Readers read through
`pipeline.storage` (local paths and URLs alike) and stream: memory stays bounded by one record,
one row group or one page, whatever the file's size.

A reader is registered where it lives with `@register_reader(FORMAT, suffixes=..., kind=...)`
(pipeline/registry.py); its settings are the `[FORMAT]` config section (its `config_cls`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pipeline.document import Document
from pipeline.stage import NoConfig


class Reader:
    """Turns one input file into Documents. Subclasses set `format` and implement `read`."""

    format: ClassVar[str] = "?"
    config_cls: ClassVar[type] = NoConfig

    def __init__(self, config: Any | None = None) -> None:
        self.config = config if config is not None else self.config_cls()

    def read(self, url: str, shard_id: str) -> Iterator[Document]:
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def unreadable(self, url: str, shard_id: str, reason: str, offset: int = 0) -> Document:
        """The one row for a file that cannot be opened or decoded at all."""
        return Document(doc_id=f"{shard_id}/{offset}", warc_path=url, warc_offset=offset, record_type="unreadable",
                        input_format=self.format, drop_stage="read", drop_reason=reason)
