"""What dedup is told (`DedupConfig`, the `[dedup]` TOML section) and what it reports (`DedupResult`).

LSH parameters come from the S-curve P(s) = 1 - (1 - s**r)**b (see pipeline/minhash.py): for
threshold 0.8 and min_recall 0.95, b=13 bands of r=7 rows (91 permutations) give P(0.8) = 0.953,
P(0.7) = 0.673, P(0.5) = 0.097; FineWeb's 14x8 gives P(0.8) = 0.924. Verification (on by
default) removes the candidates below the threshold, so precision does not depend on the curve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.dedup.common import SigParams
from pipeline.minhash import choose_bands, s_curve


@dataclass(frozen=True)
class DedupConfig:
    exact: bool = True
    near: bool = True
    # Jaccard similarity of word 5-gram (or character 5-gram) sets at which two documents are
    # near-duplicates.
    threshold: float = 0.8
    # bands = rows = 0: pick them from the S-curve so that a pair at `threshold` becomes a
    # candidate with probability >= min_recall, using at most max_perm permutations.
    min_recall: float = 0.95
    max_perm: int = 128
    bands: int = 0
    rows: int = 0
    word_ngram: int = 5
    char_ngram: int = 5
    # Character shingles for these languages, and for any text written without spaces.
    char_languages: tuple[str, ...] = ("zh", "ja", "ko", "th")
    # Check candidate pairs by true Jaccard; off = accept every LSH candidate (datatrove's way).
    verify: bool = True
    # A bucket of up to this many documents proposes all its pairs; a bigger one only pairs
    # each member with the smallest (a star), so candidates stay linear in its size.
    bucket_all_pairs: int = 50
    # Kept for configs written before verification was partitioned; pairs are now verified by
    # node partition (one task each), so it no longer sets the task size.
    verify_chunk: int = 50_000
    # Node partitions (and hash ranges per band); 0: ceil(documents / partition_docs). Every
    # task's memory follows documents per partition, not the corpus.
    partitions: int = 0
    partition_docs: int = 2_000_000
    # Connected components stop with an error after this many large/small-star rounds
    # (O(log^2 n) proven, about log2 of the longest chain measured).
    max_rounds: int = 64
    # Consecutive shards share a signature task until it has this many documents: fewer, larger
    # objects for every bucket task to open (measured at 1M: 875 MB peak at 500k documents, 594 MB at 250k).
    signature_docs: int = 250_000
    batch_size: int = 2048
    seed: int = 1
    keep_work: bool = False   # keep shuffle/edge objects under work_dir (debugging)
    # Sources in keep order for the copies of one document across sources (pipeline/shard.py
    # writes each kept document's `priority` from it); empty: the mix's sources by weight,
    # smallest first, so a curated source (Wikipedia at 3%) keeps its article over a web copy.
    source_priority: tuple[str, ...] = ()

    def validate(self) -> None:
        if not (self.exact or self.near):
            raise ValueError("exact and near are both false: set [pipeline] dedup = false to skip dedup")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 < self.min_recall < 1.0:
            raise ValueError(f"min_recall must be in (0, 1), got {self.min_recall}")
        for name in ("max_perm", "word_ngram", "char_ngram", "partition_docs", "batch_size", "verify_chunk",
                     "max_rounds", "signature_docs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.bucket_all_pairs < 2:
            raise ValueError(f"bucket_all_pairs must be >= 2, got {self.bucket_all_pairs}")
        if self.partitions < 0:
            raise ValueError(f"partitions must be >= 0 (0 = automatic), got {self.partitions}")
        if self.seed < 0:  # numpy's generators take no negative seed: it failed after the file step
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if (self.bands == 0) != (self.rows == 0) or self.bands < 0 or self.rows < 0:
            raise ValueError(f"set both bands and rows (> 0), or both to 0 to choose them from the "
                             f"S-curve; got bands={self.bands}, rows={self.rows}")
        b, r = self.lsh_params()
        p = s_curve(self.threshold, b, r)
        if self.near and p < self.min_recall:
            raise ValueError(f"bands={b}, rows={r} make a pair at Jaccard {self.threshold} a candidate "
                             f"with probability {p:.3f} < min_recall {self.min_recall}; add bands, or set "
                             f"bands = rows = 0 to choose from the S-curve, or lower min_recall")

    def lsh_params(self) -> tuple[int, int]:
        """(bands, rows): as configured, or the S-curve choice for threshold/min_recall/max_perm."""
        if self.bands and self.rows:
            return self.bands, self.rows
        return choose_bands(self.threshold, self.min_recall, self.max_perm)

    def sig_params(self) -> SigParams:
        b, r = self.lsh_params()
        return SigParams(self.exact, self.near, b, r, self.seed, self.word_ngram, self.char_ngram,
                         tuple(self.char_languages), self.batch_size)


@dataclass
class DedupResult:
    result_paths: dict[str, str]          # shard_id -> work_dir/result/<shard_id>.parquet
    docs: int = 0
    exact_removed: int = 0
    candidate_pairs: int = 0              # distinct near pairs proposed by LSH (between distinct texts)
    verified_pairs: int = 0               # of those, Jaccard >= threshold (all of them if verify is off)
    near_removed: int = 0
    clusters: int = 0                     # clusters of 2 or more documents
    histogram: list[tuple[int, int]] = field(default_factory=list)   # (cluster size, count), size >= 2
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> seconds, peak_rss, tasks
    bands: int = 0
    rows: int = 0
    partitions: int = 0
    rounds: int = 0                       # large/small-star rounds, the last one changing nothing

    @property
    def kept(self) -> int:
        return self.docs - self.exact_removed - self.near_removed

    def stage_row(self) -> dict[str, Any]:
        """docs_in/docs_out/dropped/drop_reasons/details for the `stages` manifest."""
        details = {k: getattr(self, k) for k in ("exact_removed", "candidate_pairs", "verified_pairs",
                                                  "near_removed", "clusters", "bands", "rows", "partitions",
                                                  "rounds")}
        details["histogram"] = [list(x) for x in self.histogram]
        details["phases"] = self.phases
        return {"docs_in": self.docs, "docs_out": self.kept, "dropped": self.docs - self.kept,
                "drop_reasons": json.dumps({"exact_duplicate": self.exact_removed,
                                            "near_duplicate": self.near_removed}, sort_keys=True),
                "details": json.dumps(details, sort_keys=True)}
