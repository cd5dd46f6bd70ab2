"""Phase 1, signatures: one task per input shard.

For every document: the exact hash of its normalised text (NFKC, casefold, whitespace collapsed)
and, for the first copy of each text in the shard, its MinHash band hashes. Output is ONE
partitioned object per shard (see common.py):

    parts [0, G)        hash records (band hash, key, exact hash) of group g = band * P + hash % P;
                        the exact hashes form one more "band" (index `bands`), so exact dedup goes
                        through the same shuffle. G = (bands + 1) * P.
    parts [G, G + P)    in-shard exact edges (first copy, later copy), split by the later copy's
                        node partition: the first copy alone stands for its text in the buckets, so
                        a page repeated 100,000 times adds at most one record per shard to a bucket.
    part  G + P         the exact hash of every row, in row order (the assign phase reads it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import storage
from pipeline.dedup.common import (
    RECORD,
    ROW_BITS,
    SigParams,
    check_columns,
    edge_parts,
    edges,
    reset_counters,
    task_stats,
    write_parts,
)
from pipeline.minhash import MinHasher, band_hashes, exact_hash, normalize_text


@dataclass(frozen=True)
class SignatureTask:
    shard_index: int
    path: str
    out: str
    params: SigParams
    partitions: int


def count_rows(url: str) -> int:
    """Rows of a kept parquet (its footer only)."""
    return storage.parquet_file(url).metadata.num_rows


def signature_task(t: SignatureTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    p, n_parts = t.params, t.partitions
    pf = storage.parquet_file(t.path)
    names = set(pf.schema_arrow.names)
    check_columns(t.path, names, ("doc_id", "text"))
    cols = [c for c in ("text", "language") if c in names]
    hasher = MinHasher(p.bands * p.rows, p.seed) if p.near else None
    shingler = p.shingler()
    hashes: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    exacts: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    row_exact: list[np.ndarray] = []
    first_of: dict[int, int] = {}          # exact hash -> key of its first copy in this shard
    dup_u: list[int] = []
    dup_v: list[int] = []
    row = signed = 0
    for batch in pf.iter_batches(batch_size=p.batch_size, columns=cols):
        texts = batch.column("text").to_pylist()
        langs = batch.column("language").to_pylist() if "language" in cols else None
        doc_keys = (np.uint64(t.shard_index) << np.uint64(ROW_BITS)) + np.arange(row, row + len(texts), dtype=np.uint64)
        row += len(texts)
        norm = [normalize_text(x) for x in texts]
        if p.exact:
            ex = np.fromiter((exact_hash(n) for n in norm), np.uint64, len(norm))
            first = []
            for i, (h, k) in enumerate(zip(ex.tolist(), doc_keys.tolist())):
                if h in first_of:
                    dup_u.append(first_of[h])
                    dup_v.append(k)
                else:
                    first_of[h] = k
                    first.append(i)
            sel = np.array(first, np.int64)
            hashes.append(ex[sel])
            keys.append(doc_keys[sel])
            exacts.append(ex[sel])
            groups.append(p.bands * n_parts + (ex[sel] % np.uint64(n_parts)).astype(np.int64))
        else:
            # No exact pass: every document is its own "text", so no bucket collapses two of them.
            ex = doc_keys.copy()
            sel = np.arange(len(norm))
        row_exact.append(ex)
        if hasher is None or len(sel) == 0:
            continue
        sh_keys, offsets = shingler.batch([norm[i] for i in sel], [langs[i] for i in sel] if langs else None,
                                          normalized=True)
        sig, docs = hasher.signatures(sh_keys, offsets)
        signed += len(docs)
        bh = band_hashes(sig, p.bands, p.rows, p.seed)
        dk, de = doc_keys[sel[docs]], ex[sel[docs]]
        for b in range(p.bands):
            hashes.append(bh[:, b])
            keys.append(dk)
            exacts.append(de)
            groups.append(b * n_parts + (bh[:, b] % np.uint64(n_parts)).astype(np.int64))
    n_groups = (p.bands + 1) * n_parts
    group = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    order = np.argsort(group, kind="stable")
    records = np.empty(len(order), RECORD)
    for name, parts in (("h", hashes), ("k", keys), ("e", exacts)):
        if parts:
            records[name] = np.concatenate(parts)[order]
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    local = edge_parts(edges(np.array(dup_u, np.uint64), np.array(dup_v, np.uint64)), n_parts)
    exact_rows = np.concatenate(row_exact) if row_exact else np.zeros(0, np.uint64)
    size = write_parts(t.out, [records[bounds[g]: bounds[g + 1]] for g in range(n_groups)] + local + [exact_rows])
    return task_stats(t0, docs=row, signed=signed, records=len(records), local_exact_edges=len(dup_u), bytes=size)
