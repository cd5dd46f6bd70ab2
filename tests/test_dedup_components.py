"""Dedup at scale, in small: distributed connected components against a reference union-find on
graphs with a giant star, long chains and random edges; the giant's edges spread over partitions;
the source-priority keep rule; identical results at 1, 2 and 4 workers and on S3 (moto's server)."""

from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared
from dedup_fixtures import KEPT_SCHEMA, components, planted_corpus, webis_texts, write_shards

from pipeline import storage
from pipeline.dedup import DedupConfig, run_dedup
from pipeline.dedup.common import EDGE, edge_parts, edges, gather, local_components, write_parts
from pipeline.dedup.components import run_components


def serial(fn, items):
    return [fn(x) for x in items]


def graph(seed: int = 0) -> tuple[int, list[tuple[int, int]], int]:
    """(nodes, edges, giant size): a 3,000-node star, chains of 400 in shuffled order, random edges."""
    rng = random.Random(seed)
    n = 6000
    ids = list(range(n))
    rng.shuffle(ids)   # node numbers in no useful order: chains run up and down
    pairs = [(ids[0], ids[i]) for i in range(1, 3000)]                                  # giant star
    pairs += [(ids[i], ids[i + 1]) for i in range(3000, 5200) if (i - 3000) % 400 != 399]  # chains
    pairs += [(rng.randrange(5200, n), rng.randrange(5200, n)) for _ in range(500)]      # random
    pairs += [(ids[rng.randrange(3000, 5200)], ids[rng.randrange(5200, n)]) for _ in range(3)]
    return n, [(a, b) for a, b in pairs if a != b], 3000


def test_local_components_match_reference_union_find():
    n, pairs, _ = graph(1)
    u, v = (np.array(x, np.uint64) for x in zip(*pairs))
    nodes, root = local_components(u, v)
    ref = components(n, pairs)
    assert {int(a): int(b) for a, b in zip(nodes, root)} == {i: ref[i] for i in nodes.tolist()}


@pytest.mark.parametrize("partitions", [1, 4])
def test_large_small_star_components_equal_union_find_and_spread_the_giant(tmp_path, partitions):
    n, pairs, giant = graph(2)
    e = edges(*(np.array(x, np.uint64) for x in zip(*pairs)))
    src = str(tmp_path / "input.bin")
    write_parts(src, edge_parts(e, partitions))
    seen: list[dict] = []
    final, rounds = run_components((((src,), 0),), str(tmp_path / "cc"), partitions, serial, 64,
                                   on_round=lambda r, outs, changed: seen.extend(outs))
    out = np.concatenate([gather([(f, 0) for f in final], p, EDGE) for p in range(partitions)])
    got = {int(b): int(a) for a, b in zip(out["u"], out["v"])}
    ref = components(n, pairs)
    in_graph = {x for p in pairs for x in p}
    assert got == {x: ref[x] for x in in_graph if ref[x] != x}   # every node points at its component's minimum
    assert 3 <= rounds <= 20
    if partitions > 1:
        # No task held the giant star: its edges are keyed by the member, not the centre, so every
        # partition holds about its share of all edges (the giant alone is half of them).
        assert giant > 0.5 * len(e)
        assert max(o.get("edges", 0) for o in seen) < 1.3 * len(e) / partitions


def _docs(texts: list[tuple[str, str, float | None, int | None]]) -> list[dict]:
    return [{"doc_id": d, "text": t, "language": "en", "quality_score": q, "priority": p} for d, t, q, p in texts]


def test_keep_rule_prefers_source_priority_then_quality_then_doc_id(tmp_path):
    shared("corpus/dedup/webis_pairs.jsonl")
    a, b, c = webis_texts()[0], webis_texts()[4], webis_texts()[8]
    docs = _docs([("web-a", a, 0.9, 2), ("wiki-a", a + " ", 0.2, 0), ("books-a", a.upper(), 0.95, 1),
                  ("web-b", b, 0.3, None), ("web-b2", b, 0.8, None), ("wiki-b", b, 0.1, 0),
                  ("x-c", c, 0.5, None), ("y-c", c, 0.9, None)])
    schema = KEPT_SCHEMA.append(pa.field("priority", pa.int64()))
    paths = []
    for i, part in enumerate((docs[:4], docs[4:])):
        p = tmp_path / f"s{i}.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=schema), p)
        paths.append((f"s{i}", str(p)))
    res = run_dedup(paths, str(tmp_path / "w"), DedupConfig(), serial)
    rows = {r["doc_id"]: r for p in res.result_paths.values() for r in pq.read_table(p).to_pylist()}
    kept = {k for k, r in rows.items() if r["dup_keep"]}
    # Smallest priority wins over quality; null priority loses to any; without priority, quality.
    assert kept == {"wiki-a", "wiki-b", "y-c"}
    assert (rows["books-a"]["dup_kept_doc_id"], rows["web-b2"]["dup_kept_doc_id"]) == ("wiki-a", "wiki-b")
    assert (rows["y-c"]["dup_kind"], rows["x-c"]["dup_kind"]) == ("exact", "exact")


def _pool(workers: int):
    def run(fn, items):
        if workers == 1:
            return serial(fn, items)
        with ProcessPoolExecutor(workers) as ex:
            return list(ex.map(fn, items))
    return run


@pytest.fixture(scope="module")
def planted_shards(tmp_path_factory):
    shared("corpus/dedup/webis_pairs.jsonl")
    tmp = tmp_path_factory.mktemp("det")
    return tmp, write_shards(planted_corpus(n_base=80, n_variants=100, seed=3), tmp / "in", 5)


def _result_bytes(res) -> dict[str, bytes]:
    return {sid: storage.read_bytes(p) for sid, p in sorted(res.result_paths.items())}


def test_one_two_and_four_workers_and_any_signature_grouping_give_identical_bytes(planted_shards):
    tmp, shards = planted_shards
    # One signature task for all shards, one per shard, and groups of about 100 documents.
    got = [_result_bytes(run_dedup(shards, str(tmp / f"w{w}"), DedupConfig(partitions=3, signature_docs=d), _pool(w)))
           for w, d in ((1, 500_000), (2, 1), (4, 100))]
    assert got[0] == got[1] == got[2]
    assert sum(r.count(b"near") for r in got[0].values()) > 0


@pytest.fixture
def s3_env(monkeypatch):
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import fsspec

    storage._FS_CACHE.clear()
    fsspec.get_filesystem_class("s3").clear_instance_cache()
    storage.filesystem("s3://dedup-test").mkdir("dedup-test")
    yield "s3://dedup-test"
    server.stop()
    storage._FS_CACHE.clear()
    fsspec.get_filesystem_class("s3").clear_instance_cache()


def test_local_and_s3_give_identical_results(planted_shards, s3_env):
    tmp, shards = planted_shards
    local = _result_bytes(run_dedup(shards, str(tmp / "local"), DedupConfig(partitions=2), serial))
    remote_shards = []
    for sid, path in shards:
        url = f"{s3_env}/in/{Path(path).name}"
        storage.write_bytes(url, Path(path).read_bytes())
        remote_shards.append((sid, url))
    res = run_dedup(remote_shards, f"{s3_env}/work", DedupConfig(partitions=2), serial)
    assert all(p.startswith("s3://") for p in res.result_paths.values())
    assert _result_bytes(res) == local
    # Scratch objects are gone; only the result files stay.
    assert {os.path.basename(p) for p in storage.list_files(f"{s3_env}/work")} == {f"{s}.parquet" for s, _ in shards}


def test_task_specs_stay_the_same_size_as_shards_and_signature_objects_multiply(planted_shards, tmp_path):
    """No task names every shard or every signature object one by one: with 8x the shards (and
    one signature object per shard) the largest pickled task spec of each phase stays put, and
    the removals are the same documents."""
    import pickle

    del planted_shards  # requested for its skip when ../shared is absent
    docs = planted_corpus(n_base=80, n_variants=100, seed=3)
    biggest: dict[int, dict[str, int]] = {}
    removed: dict[int, set[str]] = {}
    for n in (5, 40):
        sizes: dict[str, int] = {}

        def recording(fn, items, sizes=sizes):
            for x in items:
                name = type(x).__name__
                sizes[name] = max(sizes.get(name, 0), len(pickle.dumps(x)))
            return serial(fn, items)

        shards = write_shards(docs, tmp_path / f"in{n}", n)
        res = run_dedup(shards, str(tmp_path / f"w{n}"), DedupConfig(partitions=3, signature_docs=1), recording)
        biggest[n] = sizes
        removed[n] = {r["doc_id"] for p in res.result_paths.values()
                      for r in pq.read_table(p).to_pylist() if not r["dup_keep"]}
    assert removed[5] == removed[40] and removed[5]
    assert biggest[5].keys() == biggest[40].keys()
    for name, size in biggest[40].items():
        assert size <= biggest[5][name] + 64, (name, biggest[5][name], size)
