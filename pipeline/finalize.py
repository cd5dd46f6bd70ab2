"""Per-shard steps after the global ones: curate (apply dedup and the quality cut) and account
(write the `documents` manifest, one row for every record read).

Both run as one Ray task per shard and write atomically through pipeline/storage.py (the output
may be s3://), so a killed worker is simply rerun. Row order is the shard's record order,
whatever the join did, so outputs are byte-identical across worker counts.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.config import Config
from pipeline.manifest import documents_schema

CURATED_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("text", pa.string()), ("url", pa.string()), ("language", pa.string()),
    ("collection", pa.string()), ("source", pa.string()), ("fetch_date", pa.string()),
    ("quality_score", pa.float32()),
])


@dataclasses.dataclass(frozen=True)
class ShardPaths:
    shard_id: str
    work_dir: str
    root: str
    config: Config
    stage_columns: tuple[tuple[str, pa.DataType], ...] = ()

    def work(self, kind: str, ext: str = "parquet") -> str:
        return storage.join(self.work_dir, kind, f"{self.shard_id}.{ext}")

    @property
    def kept(self) -> str:
        """The kept documents the global steps see: after the quality cut when it ran."""
        cut = storage.join(self.work_dir, "quality_cut", "kept", f"{self.shard_id}.parquet")
        return cut if storage.exists(cut) else self.work("kept")

    @property
    def cut_dropped(self) -> str:
        return storage.join(self.work_dir, "quality_cut", "dropped", f"{self.shard_id}.parquet")

    @property
    def dedup_result(self) -> str:
        # pipeline.dedup.run_dedup(work_dir=<work>/dedup) writes result/<shard>.parquet there.
        return storage.join(self.work_dir, "dedup", "result", f"{self.shard_id}.parquet")

    @property
    def curated(self) -> str:
        return storage.join(self.root, "curated", f"{self.shard_id}.parquet")

    @property
    def documents(self) -> str:
        return storage.join(self.root, "manifests", f"documents-{self.shard_id}.parquet")

    @property
    def stages(self) -> str:
        return storage.join(self.root, "manifests", f"stages-{self.shard_id}.parquet")


def _with_order(table: pa.Table) -> pa.Table:
    return table.append_column("__order", pa.array(range(table.num_rows), pa.int64()))


def curate_shard(sp: ShardPaths) -> dict:
    """kept docs minus the quality cut and dedup drops, with `source` -> curated/<shard>.parquet."""
    kept = _with_order(storage.read_parquet(sp.kept))
    if storage.exists(sp.dedup_result):
        dups = storage.read_parquet(sp.dedup_result, columns=["doc_id", "dup_keep"])
        kept = kept.join(dups, "doc_id", join_type="left outer").sort_by("__order")
        kept = kept.filter(pc.fill_null(kept["dup_keep"], True))
    table = kept.select(CURATED_SCHEMA.names).cast(CURATED_SCHEMA)
    storage.write_parquet(sp.curated, table)
    return {"shard": sp.shard_id, "curated": table.num_rows}


def account_shard(sp: ShardPaths) -> dict:
    """records + quality cut + dedup + curated + tokens -> manifests/documents-<shard>.parquet and stages."""
    records = _with_order(storage.read_parquet(sp.work("records")))
    if storage.exists(sp.cut_dropped):
        cut = storage.read_parquet(sp.cut_dropped, columns=["doc_id", "drop_reason"])
        records = records.join(cut.rename_columns(["doc_id", "cut_reason"]), "doc_id", join_type="left outer")
    if storage.exists(sp.dedup_result):
        records = records.join(storage.read_parquet(sp.dedup_result), "doc_id", join_type="left outer")
    if storage.exists(sp.curated):
        records = records.join(storage.read_parquet(sp.curated, columns=["doc_id", "source"]), "doc_id",
                               join_type="left outer")
    ntok = sp.work("ntokens")
    if storage.exists(ntok):
        records = records.join(storage.read_parquet(ntok, columns=["doc_id", "n_tokens"]), "doc_id",
                               join_type="left outer")
    rows = records.sort_by("__order").to_pylist()
    config_hash = sp.config.hash   # 0.2 ms a call (the whole config serialised): once, not per record
    for row in rows:
        if row["kept"] and row.get("cut_reason"):
            row["kept"] = False
            row["drop_stage"] = "quality_model_v1"
            row["drop_reason"] = row["cut_reason"]
        elif row["kept"] and row.get("dup_keep") is False:
            row["kept"] = False
            row["drop_stage"] = "dedup_v1"
            row["drop_reason"] = f"{row.get('dup_kind') or 'near'}_duplicate"
        row["config_hash"] = config_hash
    schema = documents_schema(dict(sp.stage_columns))
    table = pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)
    storage.write_parquet(sp.documents, table)
    storage.write_parquet(sp.stages, storage.read_parquet(sp.work("stats")))
    return {"shard": sp.shard_id, "records": len(rows), "kept": sum(1 for r in rows if r["kept"])}
