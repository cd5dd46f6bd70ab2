"""One input file through the per-document stages: the unit of work a Ray task runs.

The file is read by the reader of its format (pipeline/readers/) and goes through its
collection's plan (`Config.for_collection`: that collection's stages and settings). Writes go
through pipeline/storage.py (the work dir may be s3://), atomically, and only when the whole
file is done:
  work/records/<shard>.parquet  one row per record read (manifest columns, no text)
  work/kept/<shard>.parquet     the documents every stage kept, with their text, source and
                                source priority (for the global steps)
  work/stats/<shard>.parquet    one `stages` row per stage; written last, it marks the shard done
A rerun skips shards whose stats file exists (the work dir is keyed by the config hash).

A stage that raises on a batch is retried one document at a time, and a document that still
raises is dropped with `stage_error: <ExceptionType>`: a hostile page costs its own row, never
the shard. Only the exception type and doc_id are logged, never text (it may hold PII).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable
from itertools import islice

import pyarrow as pa

from pipeline import storage
from pipeline.config import Config
from pipeline.document import Document
from pipeline.manifest import DOCUMENT_BASE, STAGES_SCHEMA, table_from_rows
from pipeline.registry import build_stages, reader_for
from pipeline.stage import Stage

log = logging.getLogger(__name__)

KEPT_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("text", pa.string()), ("url", pa.string()), ("language", pa.string()),
    ("collection", pa.string()), ("fetch_date", pa.string()), ("quality_score", pa.float32()),
    ("source", pa.string()),
    # Dedup's keep rule prefers the smaller priority (the curated source), then quality, then doc_id.
    ("priority", pa.int32()),
    ("quality_model_score", pa.float32()),
])


@dataclasses.dataclass(frozen=True)
class ShardTask:
    shard_id: str
    path: str
    collection: str
    work_dir: str
    config: Config
    format: str = "warc"
    # Manifest columns of every stage of every collection in the run: one schema for all shards.
    columns: tuple[tuple[str, pa.DataType], ...] | None = None

    def stats_path(self) -> str:
        return storage.join(self.work_dir, "stats", f"{self.shard_id}.parquet")

    def records_path(self) -> str:
        return storage.join(self.work_dir, "records", f"{self.shard_id}.parquet")

    def kept_path(self) -> str:
        return storage.join(self.work_dir, "kept", f"{self.shard_id}.parquet")


_STAGE_CACHE: dict[str, list[Stage]] = {}


def stages_for(config: Config) -> list[Stage]:
    """Stages built and set up once per worker process (models load once, not per shard)."""
    if config.hash not in _STAGE_CACHE:
        stages = build_stages(config)
        for stage in stages:
            stage.ensure_setup()
        _STAGE_CACHE[config.hash] = stages
    return _STAGE_CACHE[config.hash]


def stage_columns(configs: Config | Iterable[Config]) -> dict[str, pa.DataType]:
    """Manifest columns of the stages of one config, or of several (every collection's plan)."""
    from pipeline.registry import stage_class

    cols: dict[str, pa.DataType] = {}
    for config in [configs] if isinstance(configs, Config) else configs:
        for name in config.pipeline.stages:
            cols.update(stage_class(name).columns)
    return cols


def source_priority(config: Config) -> dict[str, int]:
    """Source name -> priority for dedup's keep rule (0 wins). `[dedup] source_priority` if set,
    else the mix's sources by weight, smallest first: the curated sources (Wikipedia at 3%) win
    over the web (60%). Without either, every source is equal (null)."""
    explicit = tuple(getattr(config["dedup"], "source_priority", ()) or ())
    if explicit:
        return {s: i for i, s in enumerate(explicit)}
    mix = config["tokenize"].mix
    if not mix:
        return {}
    from pipeline.mixture import load_mix

    weights = load_mix(mix).weights
    return {s: i for i, s in enumerate(sorted(weights, key=lambda s: (weights[s], s)))}


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


def run_shard(task: ShardTask) -> dict:
    """Process one input file; returns a summary (the stats rows and input facts)."""
    from pipeline.tokens import assign_source

    if storage.exists(task.stats_path()):
        return {"shard": task.shard_id, "skipped": True, **_input_facts(task)}
    plan = task.config.for_collection(task.collection, task.format)
    config = plan.config
    stages = stages_for(config)
    columns = dict(task.columns) if task.columns is not None else stage_columns(config)
    records_schema = pa.schema(list({**DOCUMENT_BASE, **columns}.items()))
    tallies = {"read_v1": _Tally(), **{s.name: _Tally() for s in stages}}
    batch_size = config.pipeline.batch_size
    tok = config["tokenize"]
    priorities = source_priority(task.config)
    storage.reset_retries()
    reader = reader_for(task.format).cls(config[task.format])
    records = storage.ParquetStreamWriter(task.records_path(), records_schema)
    kept = storage.ParquetStreamWriter(task.kept_path(), KEPT_SCHEMA)
    docs = iter(reader.read(task.path, task.shard_id))
    read_failed = None
    try:
        while True:
            t0 = time.perf_counter()
            batch = list(islice(docs, batch_size))
            tallies["read_v1"].seconds += time.perf_counter() - t0
            if not batch:
                break
            read = tallies["read_v1"]
            read.docs_in += len(batch)
            alive = [d for d in batch if d.kept]
            read.docs_out += len(alive)
            read.reasons.update(_reason_key(d.drop_reason) for d in batch if not d.kept)
            read_failed = read_failed or next((d.drop_reason for d in batch if (d.drop_reason or "").startswith(
                "read_failed")), None)
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
                    row = {"doc_id": doc.doc_id, "text": doc.text, "url": doc.url, "language": doc.language,
                           "collection": task.collection, "fetch_date": doc.fetch_date,
                           "quality_score": doc.meta.get("quality_score"),
                           "quality_model_score": doc.meta.get("quality_model_score")}
                    row["source"] = assign_source(row, tok)
                    row["priority"] = priorities.get(row["source"])
                    kept.add(row)
    except BaseException:
        records.abort()
        kept.abort()
        raise
    records.close()
    kept.close()
    stats = [t.row(name, task.shard_id, config.hash) for name, t in tallies.items()]
    stats[0]["retries"] = storage.retries()
    # Last: its presence marks the shard done.
    storage.write_parquet(task.stats_path(), table_from_rows(stats, STAGES_SCHEMA))
    return {"shard": task.shard_id, "skipped": False, "records": tallies["read_v1"].docs_in,
            "kept": kept.count, "read_failed": read_failed, "retries": storage.retries(),
            "stages": list(plan.stages), **_input_facts(task)}


def _input_facts(task: ShardTask) -> dict:
    # A remote input is not hashed: that would fetch a 1 GB CommonCrawl file a second time.
    try:
        size = storage.size_of(task.path)
        digest = storage.sha256_of(task.path) if storage.is_local(task.path) else None
        return {"input_bytes": size, "input_sha256": digest}
    except Exception:
        return {"input_bytes": None, "input_sha256": None}


def read_stats(task: ShardTask) -> list[dict]:
    return storage.read_parquet(task.stats_path()).to_pylist()
