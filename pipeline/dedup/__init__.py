"""Global dedup: exact copies, then MinHash-LSH near-duplicates, over all shards at once, with
bounded memory in every process (the driver included).

    result = run_dedup([(shard_id, kept_url), ...], work_dir_url, DedupConfig(), map_fn)

One module per phase: signatures, buckets, verify, components, assign (each module's docstring
says what its tasks read and write); driver.py runs them; common.py holds keys, record layouts
and the partitioned-object format every shuffle uses; config.py the settings and the result.
"""

from pipeline.dedup.common import RESULT_SCHEMA
from pipeline.dedup.config import DedupConfig, DedupResult
from pipeline.dedup.driver import run_dedup

__all__ = ["RESULT_SCHEMA", "DedupConfig", "DedupResult", "run_dedup"]
