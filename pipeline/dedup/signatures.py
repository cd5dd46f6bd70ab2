"""Phase 1, signatures: one task per group of consecutive shards (`signature_docs` documents).

For every document: the exact hash of its normalised text (NFKC, casefold, whitespace collapsed)
and, for the first copy of each text in the task, its MinHash band hashes. Output is ONE
partitioned object per task (see common.py), so a bucket task opens one object per signature
task, not one per input shard (90,000 shards of 26,000 kept documents: 9,000 objects, not 90,000):

    parts [0, G)        hash records (band hash, key, exact hash) of group g = band * P + hash % P;
                        the exact hashes form one more "band" (index `bands`), so exact dedup goes
                        through the same shuffle. G = (bands + 1) * P.
    parts [G, G + P)    in-task exact edges (first copy, later copy), split by the later copy's
                        node partition: the first copy alone stands for its text in the buckets, so
                        a page repeated 100,000 times adds at most one record per task to a bucket.
    part  G + P         the exact hash of every document, in key order (the assign phase reads it).

The first copy in a task is the smallest key of its text there (shards in index order, rows in
order), and the smallest key of a text in the corpus is the first in its task: it always has
band records, which is what lets a near bucket collapse copies to it.
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
    shards: tuple[tuple[int, str], ...]   # (shard index, kept parquet), consecutive indices
    out: str
    params: SigParams
    partitions: int


def count_rows(url: str) -> int:
    """Rows of a kept parquet (its footer only)."""
    return storage.parquet_file(url).metadata.num_rows


def signature_task(t: SignatureTask) -> dict[str, Any]:
    reset_counters()
    t0 = time.perf_counter()
    p = t.params
    hasher = MinHasher(p.bands * p.rows, p.seed) if p.near else None
    shingler = p.shingler()
    keys_l: list[np.ndarray] = []
    exact_l: list[np.ndarray] = []
    first_l: list[np.ndarray] = []
    signed_l: list[np.ndarray] = []
    bands_l: list[np.ndarray] = []
    first_of: set[int] = set()          # exact hashes seen in this task (its shards, in key order)
    docs = 0
    for index, row, batch in _batches(t.shards, p.batch_size):
        texts = batch.column("text").to_pylist()
        langs = batch.column("language").to_pylist() if "language" in batch.schema.names else None
        doc_keys = (np.uint64(index) << np.uint64(ROW_BITS)) + np.arange(row, row + len(texts), dtype=np.uint64)
        docs += len(texts)
        norm = [normalize_text(x) for x in texts]
        if p.exact:
            ex = np.fromiter((exact_hash(n) for n in norm), np.uint64, len(norm))
            first = np.zeros(len(norm), bool)
            for i, h in enumerate(ex.tolist()):
                if h not in first_of:
                    first_of.add(h)
                    first[i] = True
        else:
            # No exact pass: every document is its own "text", so no bucket collapses two of them.
            ex, first = doc_keys.copy(), np.ones(len(norm), bool)
        keys_l.append(doc_keys)
        exact_l.append(ex)
        first_l.append(first)
        sel = np.flatnonzero(first)
        if hasher is None or len(sel) == 0:
            continue
        sh_keys, offsets = shingler.batch([norm[i] for i in sel], [langs[i] for i in sel] if langs else None,
                                          normalized=True)
        sig, docs = hasher.signatures(sh_keys, offsets)
        signed_l.append(doc_keys[sel[docs]])
        bands_l.append(band_hashes(sig, p.bands, p.rows, p.seed))
    cat = np.concatenate
    keys = cat(keys_l) if keys_l else np.zeros(0, np.uint64)
    exact = cat(exact_l) if exact_l else np.zeros(0, np.uint64)
    first = cat(first_l) if first_l else np.zeros(0, bool)
    signed = cat(signed_l) if signed_l else np.zeros(0, np.uint64)
    bh = cat(bands_l) if bands_l else np.zeros((0, p.bands), np.uint64)
    stats = pack(t.out, keys, exact, first, signed, bh, t.partitions, p.bands, p.exact)
    return task_stats(t0, docs=docs, signed=len(signed), **stats)


def _batches(shards: tuple[tuple[int, str], ...], size: int):
    """(shard index, first row, record batch) over the shards in order."""
    for index, path in shards:
        pf = storage.parquet_file(path)
        names = set(pf.schema_arrow.names)
        check_columns(path, names, ("doc_id", "text"))
        row = 0
        for batch in pf.iter_batches(batch_size=size, columns=[c for c in ("text", "language") if c in names]):
            yield index, row, batch
            row += batch.num_rows


def pack(out: str, keys: np.ndarray, exact: np.ndarray, first: np.ndarray, signed: np.ndarray,
         bands: np.ndarray, n_parts: int, n_bands: int, with_exact: bool) -> dict[str, int]:
    """Write one shard's signature object (layout in the module docstring).

    keys, exact, first: every document of the shard in row order, its exact hash, and whether it is
    the first copy of its text in the shard; signed, bands: the keys of the signed documents (first
    copies with at least one shingle) and their band hashes [docs, n_bands]. bench/dedup_scale.py
    writes synthetic band tables through this same function.
    """
    hashes, rec_keys, exacts, groups = [], [], [], []
    if with_exact:
        hashes.append(exact[first])
        rec_keys.append(keys[first])
        exacts.append(exact[first])
        groups.append(n_bands * n_parts + (exact[first] % np.uint64(n_parts)).astype(np.int64))
    signed_exact = exact[np.searchsorted(keys, signed)] if len(signed) else np.zeros(0, np.uint64)
    for b in range(n_bands if len(signed) else 0):
        hashes.append(bands[:, b])
        rec_keys.append(signed)
        exacts.append(signed_exact)
        groups.append(b * n_parts + (bands[:, b] % np.uint64(n_parts)).astype(np.int64))
    n_groups = (n_bands + 1) * n_parts
    group = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    order = np.argsort(group, kind="stable")
    records = np.empty(len(order), RECORD)
    for name, parts in (("h", hashes), ("k", rec_keys), ("e", exacts)):
        if parts:
            records[name] = np.concatenate(parts)[order]
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    # Later copies in this shard: an edge to the first copy of their text.
    dup = ~first
    if dup.any():
        uniq, idx = np.unique(exact, return_index=True)   # the first row of each exact hash
        first_key = keys[idx][np.searchsorted(uniq, exact[dup])]
        local = edges(first_key, keys[dup])
    else:
        local = edges(np.zeros(0, np.uint64), np.zeros(0, np.uint64))
    size = write_parts(out, [records[bounds[g]: bounds[g + 1]] for g in range(n_groups)]
                       + edge_parts(local, n_parts) + [exact])
    return {"records": len(records), "local_exact_edges": len(local), "bytes": size}
