"""Manifest tables: schemas and atomic parquet writes.

Flat columns only, so `duckdb.sql("select ... from 'manifests/documents*.parquet'")`,
`pl.scan_parquet` and `pyarrow.dataset` read every part with one schema. The column
meanings are documented in manifests/README.md; a test keeps that file and these schemas
in step.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Columns of `documents` that every record has, before any stage adds its own.
DOCUMENT_BASE: dict[str, pa.DataType] = {
    "doc_id": pa.string(),
    "collection": pa.string(),
    "warc_path": pa.string(),
    "warc_record_id": pa.string(),
    "warc_offset": pa.int64(),
    "record_type": pa.string(),
    "input_format": pa.string(),
    "source_row": pa.int64(),
    "source_id": pa.string(),
    "title": pa.string(),
    "url": pa.string(),
    "fetch_date": pa.string(),
    "content_type": pa.string(),
    "charset": pa.string(),
    "n_bytes": pa.int64(),
    "n_chars": pa.int64(),
    "language": pa.string(),
    "language_score": pa.float32(),
    "kept": pa.bool_(),
    "drop_stage": pa.string(),
    "drop_reason": pa.string(),
}
# Added by the global steps after the per-shard stages.
DOCUMENT_GLOBAL: dict[str, pa.DataType] = {
    "dup_cluster": pa.string(),
    "dup_cluster_size": pa.int32(),
    "dup_kind": pa.string(),
    "dup_kept_doc_id": pa.string(),
    "source": pa.string(),
    "n_tokens": pa.int64(),
    "config_hash": pa.string(),
}

STAGES_SCHEMA = pa.schema([
    ("stage", pa.string()),
    ("shard", pa.string()),
    ("docs_in", pa.int64()),
    ("docs_out", pa.int64()),
    ("dropped", pa.int64()),
    ("drop_reasons", pa.string()),   # JSON object: reason -> count
    ("seconds", pa.float64()),
    ("worker", pa.string()),
    ("details", pa.string()),        # JSON: stage-specific figures (e.g. dedup's cluster-size histogram)
    ("retries", pa.int64()),         # transient I/O errors retried (read stage; null elsewhere)
    ("config_hash", pa.string()),
])

RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("status", pa.string()),
    ("started", pa.timestamp("us", tz="UTC")),
    ("ended", pa.timestamp("us", tz="UTC")),
    ("argv", pa.string()),
    ("workers", pa.int32()),
    ("stage_order", pa.string()),    # JSON list, cheap checks first
    ("config_json", pa.string()),
    ("config_hash", pa.string()),
    ("versions", pa.string()),       # JSON object: package -> version
    ("input_path", pa.string()),
    ("input_collection", pa.string()),
    ("input_bytes", pa.int64()),
    ("input_sha256", pa.string()),
    ("shard", pa.string()),
    ("shard_status", pa.string()),
    ("input_format", pa.string()),
    ("collection_stages", pa.string()),  # JSON list: the stages this input's collection ran
    ("error", pa.string()),
])


def documents_schema(stage_columns: dict[str, pa.DataType]) -> pa.Schema:
    fields = {**DOCUMENT_BASE, **stage_columns, **DOCUMENT_GLOBAL}
    return pa.schema(list(fields.items()))


def write_parquet(path: str | Path, table: pa.Table) -> None:
    """Write atomically: a reader (or a rerun) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False))
    os.replace(tmp, path)


def table_from_rows(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
