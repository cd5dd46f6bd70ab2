"""Parquet (`.parquet`): one document per row, text already extracted. A folder of parts (the
layout HF datasets publish, `data/train-00000-of-00042.parquet`) is expanded into its files by
`--input`; each file is one shard.

Read one row group at a time, in batches of `batch_rows`, and only the configured columns, so
memory stays bounded by a batch whatever the file's size. Every row becomes one Document:
`source_row` is the row's 0-based index in the file (what `pyarrow` and pandas call it),
doc_id `<shard>/<row>`, `source_id`/`url`/`title` from their columns when present. Drops at
stage `read`: `missing_text_field` (no such column, or null), `text_not_a_string`, `not_utf8`
(a binary column that is not UTF-8), `empty_text`, `corrupt_row_group` (every row of a row
group that cannot be decoded; the next group is still read), and one `unreadable_file` row for
a file with no readable footer (truncated, or not Parquet at all).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.document import Document
from pipeline.readers import Reader
from pipeline.readers._stream import open_error
from pipeline.registry import register_reader


@dataclasses.dataclass(frozen=True)
class ParquetConfig:
    text_column: str = "text"
    id_column: str = "id"
    url_column: str = "url"
    title_column: str = "title"
    # Rows decoded at a time (within one row group): bounds memory for very large groups.
    batch_rows: int = 1024

    def validate(self) -> None:
        if not isinstance(self.text_column, str) or not self.text_column:
            raise ValueError(f"text_column must be a non-empty string, got {self.text_column!r}")
        for name in ("id_column", "url_column", "title_column"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.batch_rows <= 0:
            raise ValueError(f"batch_rows must be > 0, got {self.batch_rows}")


def _as_strings(column: pa.ChunkedArray | pa.Array | None, n: int) -> list[Any]:
    if column is None:
        return [None] * n
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            return column.to_pylist()
        except UnicodeDecodeError:  # see _batch: metadata keeps its row, with U+FFFD for bad bytes
            return [None if v is None else v.decode("utf-8", "replace") for v in _raw(column).to_pylist()]
    return [None if v is None else str(v) for v in column.to_pylist()]


def _raw(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A string column's bytes as they are (a cast to binary checks nothing)."""
    return column.cast(pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary())


@register_reader("parquet", suffixes=(".parquet", ".pq"), kind="web")
class ParquetReader(Reader):
    """Parquet files row group by row group, through `storage.parquet_file` (ranged reads remotely)."""

    format = "parquet"
    config_cls = ParquetConfig

    def read(self, url: str, shard_id: str) -> Iterator[Document]:
        cfg = self.config
        try:
            pf = storage.parquet_file(url)
            meta = pf.metadata
        except Exception as exc:
            yield self.unreadable(url, shard_id, f"{open_error(exc)} (truncated, or not a Parquet file)")
            return
        names = set(pf.schema_arrow.names)
        wanted = [c for c in (cfg.text_column, cfg.id_column, cfg.url_column, cfg.title_column) if c and c in names]
        text_type = pf.schema_arrow.field(cfg.text_column).type if cfg.text_column in names else None
        row = 0
        for group in range(meta.num_row_groups):
            group_rows = meta.row_group(group).num_rows
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=cfg.batch_rows, row_groups=[group], columns=wanted,
                                             use_threads=False):
                    yield from self._batch(batch, url, shard_id, row, text_type)
                    row += batch.num_rows
                    done += batch.num_rows
            except Exception as exc:
                if storage.is_transient(exc) or isinstance(exc, (OSError, pa.ArrowException)):
                    reason = f"corrupt_row_group: group {group}: {storage.redact_text(str(exc))[:200]}"
                    for _ in range(group_rows - done):
                        yield self._row(url, shard_id, row, reason=reason)
                        row += 1
                    continue
                raise
        if meta.num_rows == 0:
            yield self.unreadable(url, shard_id, "empty_file")

    def _row(self, url: str, shard_id: str, row: int, reason: str | None = None) -> Document:
        return Document(doc_id=f"{shard_id}/{row}", warc_path=url, warc_offset=None,  # type: ignore[arg-type]
                        record_type="document", input_format=self.format, source_row=row,
                        drop_stage="read" if reason else None, drop_reason=reason)

    def _batch(self, batch: pa.RecordBatch, url: str, shard_id: str, first_row: int,
               text_type: pa.DataType | None) -> Iterator[Document]:
        cfg = self.config
        n = batch.num_rows
        cols = set(batch.schema.names)

        def col(name: str) -> Any:
            return batch.column(name) if name and name in cols else None

        ids = _as_strings(col(cfg.id_column), n)
        urls = _as_strings(col(cfg.url_column), n)
        titles = _as_strings(col(cfg.title_column), n)
        texts = col(cfg.text_column)
        binary = text_type is not None and (pa.types.is_binary(text_type) or pa.types.is_large_binary(text_type))
        stringy = text_type is not None and (pa.types.is_string(text_type) or pa.types.is_large_string(text_type))
        try:
            text_values: list[Any] = texts.to_pylist() if texts is not None else [None] * n
        except UnicodeDecodeError:
            # A string column holding bytes that are not UTF-8: Parquet readers do not check what
            # other writers wrote. Each row is decoded on its own, and a bad one is `not_utf8`
            # (it used to fail the whole file).
            text_values, binary, stringy = _raw(texts).to_pylist(), True, False
        # UTF-8 byte lengths computed by Arrow in one pass, not by encoding each text again
        sizes = (pc.binary_length(texts).to_pylist() if texts is not None and text_type is not None
                 and (pa.types.is_string(text_type) or pa.types.is_binary(text_type)
                      or pa.types.is_large_string(text_type) or pa.types.is_large_binary(text_type))
                 else [0] * n)
        for i in range(n):
            row = first_row + i
            doc = Document(doc_id=f"{shard_id}/{row}", warc_path=url, warc_offset=None,  # type: ignore[arg-type]
                           record_type="document", input_format="parquet", source_row=row,
                           source_id=ids[i], url=urls[i] or None, title=titles[i] or None,
                           n_bytes=sizes[i] or 0)
            text = text_values[i]
            if text is None:
                doc.drop("read", f"missing_text_field: no {cfg.text_column!r}" if texts is None else
                         f"missing_text_field: {cfg.text_column!r} is null")
            elif binary:
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    doc.drop("read", f"not_utf8: byte {exc.start}")
                    yield doc
                    continue
            elif not stringy:
                doc.drop("read", f"text_not_a_string: {text_type}")
            if doc.kept:
                if not text.strip():
                    doc.drop("read", "empty_text")
                else:
                    doc.text = text
                    doc.n_chars = len(text)
            yield doc
