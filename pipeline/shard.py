"""One input file through the per-document stages: the unit of work a Ray task runs.

Writes, atomically and only when the whole file is done:
  work/records/<shard>.parquet  one row per WARC record (manifest columns, no text)
  work/kept/<shard>.parquet     the documents every stage kept, with their text (for dedup)
  work/stats/<shard>.parquet    one `stages` row per stage; its presence marks the shard done
A rerun skips shards whose stats file exists (the work dir is keyed by the config hash).

A stage that raises on a batch is retried one document at a time, and a document that still
raises is dropped with `stage_error: <ExceptionType>`: a hostile page costs its own row, never
the shard. Only the exception type and doc_id are logged, never text (it may hold PII).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
from collections import Counter
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Config
from pipeline.document import Document
from pipeline.manifest import DOCUMENT_BASE, STAGES_SCHEMA, table_from_rows, write_parquet
from pipeline.registry import build_stages
from pipeline.stage import Stage
from pipeline.readers.warc import WarcReader

log = logging.getLogger(__name__)

KEPT_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("text", pa.string()), ("url", pa.string()), ("language", pa.string()),
    ("collection", pa.string()), ("fetch_date", pa.string()), ("quality_score", pa.float32()),
])


@dataclasses.dataclass(frozen=True)
class ShardTask:
    shard_id: str
    path: str
    collection: str
    work_dir: str
    config: Config

    def stats_path(self) -> Path:
        return Path(self.work_dir) / "stats" / f"{self.shard_id}.parquet"

    def records_path(self) -> Path:
        return Path(self.work_dir) / "records" / f"{self.shard_id}.parquet"

    def kept_path(self) -> Path:
        return Path(self.work_dir) / "kept" / f"{self.shard_id}.parquet"


_STAGE_CACHE: dict[str, list[Stage]] = {}


def stages_for(config: Config) -> list[Stage]:
    """Stages built and set up once per worker process (models load once, not per shard)."""
    if config.hash not in _STAGE_CACHE:
        stages = build_stages(config)
        for stage in stages:
            stage.ensure_setup()
        _STAGE_CACHE[config.hash] = stages
    return _STAGE_CACHE[config.hash]


def stage_columns(config: Config) -> dict[str, pa.DataType]:
    from pipeline.registry import stage_class

    cols: dict[str, pa.DataType] = {}
    for name in config.pipeline.stages:
        cols.update(stage_class(name).columns)
    return cols


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Tally:
    def __init__(self) -> None:
        self.docs_in = 0
        self.docs_out = 0
        self.reasons: Counter[str] = Counter()
        self.seconds = 0.0

    def row(self, stage: str, shard: str, config_hash: str) -> dict:
        return {"stage": stage, "shard": shard, "docs_in": self.docs_in, "docs_out": self.docs_out,
                "dropped": self.docs_in - self.docs_out, "drop_reasons": json.dumps(dict(sorted(self.reasons.items()))),
                "seconds": round(self.seconds, 6), "worker": f"{socket.gethostname()}:{os.getpid()}",
                "details": None, "config_hash": config_hash}


def _reason_key(reason: str | None) -> str:
    # Reasons may carry a detail after ": " (byte counts, exception text); tallies use the name.
    return (reason or "dropped").split(":")[0]


def _run_stage(stage: Stage, docs: list[Document]) -> None:
    try:
        stage.process_batch(docs)
        return
    except Exception:
        log.warning("stage %s failed on a batch of %d; retrying one document at a time", stage.name, len(docs))
    for doc in docs:
        if not doc.kept:
            continue
        try:
            stage.process_batch([doc])
        except Exception as exc:
            log.warning("stage %s dropped %s: %s", stage.name, doc.doc_id, type(exc).__name__)
            doc.drop(stage.name, f"stage_error: {type(exc).__name__}")


def _record_row(doc: Document, collection: str, columns: dict[str, pa.DataType]) -> dict:
    row = {name: getattr(doc, name, None) for name in DOCUMENT_BASE if name not in ("kept", "collection")}
    row["kept"] = doc.kept
    row["collection"] = collection
    for name in columns:
        row[name] = doc.meta.get(name)
    return row


class _StreamWriter:
    """Parquet written in row groups to a temp file, renamed into place by `close()`: memory
    stays at one row group whatever the shard's size, and a killed task leaves no file."""

    def __init__(self, path: Path, schema: pa.Schema, rows_per_group: int = 4096) -> None:
        self.path, self.schema, self.rows_per_group = path, schema, rows_per_group
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(table_from_rows(self.rows, self.schema))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


def run_shard(task: ShardTask) -> dict:
    """Process one input file; returns a summary (the stats rows and input facts)."""
    if task.stats_path().exists():
        return {"shard": task.shard_id, "skipped": True, **_input_facts(task)}
    config = task.config
    stages = stages_for(config)
    columns = stage_columns(config)
    records_schema = pa.schema(list({**DOCUMENT_BASE, **columns}.items()))
    tallies = {"read_v1": _Tally(), **{s.name: _Tally() for s in stages}}
    batch_size = config.pipeline.batch_size
    records = _StreamWriter(task.records_path(), records_schema)
    kept = _StreamWriter(task.kept_path(), KEPT_SCHEMA)
    reader = iter(WarcReader(task.path, task.shard_id, config["extract"].max_html_chars * 4))
    t_read = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        batch = list(islice(reader, batch_size))
        tallies["read_v1"].seconds += time.perf_counter() - t0
        if not batch:
            break
        read = tallies["read_v1"]
        read.docs_in += len(batch)
        alive = [d for d in batch if d.kept]
        read.docs_out += len(alive)
        read.reasons.update(_reason_key(d.drop_reason) for d in batch if not d.kept)
        for stage in stages:
            if not alive:
                break
            tally = tallies[stage.name]
            tally.docs_in += len(alive)
            t0 = time.perf_counter()
            _run_stage(stage, alive)
            tally.seconds += time.perf_counter() - t0
            dropped = [d for d in alive if not d.kept]
            tally.reasons.update(_reason_key(d.drop_reason) for d in dropped)
            alive = [d for d in alive if d.kept]
            tally.docs_out += len(alive)
        for doc in batch:
            records.add(_record_row(doc, task.collection, columns))
            if doc.kept:
                kept.add({"doc_id": doc.doc_id, "text": doc.text, "url": doc.url, "language": doc.language,
                                  "collection": task.collection, "fetch_date": doc.fetch_date,
                                  "quality_score": doc.meta.get("quality_score")})
    log.debug("shard %s: %d records in %.1fs", task.shard_id, tallies["read_v1"].docs_in, time.perf_counter() - t_read)
    records.close()
    kept.close()
    stats = [t.row(name, task.shard_id, config.hash) for name, t in tallies.items()]
    write_parquet(task.stats_path(), table_from_rows(stats, STAGES_SCHEMA))
    return {"shard": task.shard_id, "skipped": False, "records": tallies["read_v1"].docs_in,
            "kept": kept.count, **_input_facts(task)}


def _input_facts(task: ShardTask) -> dict:
    try:
        return {"input_bytes": os.path.getsize(task.path), "input_sha256": sha256_file(task.path)}
    except OSError:
        return {"input_bytes": None, "input_sha256": None}


def read_stats(task: ShardTask) -> list[dict]:
    return pq.read_table(task.stats_path()).to_pylist()
