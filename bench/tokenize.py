"""Tokenize-and-write: gristmill's tokenize_shard against raw HF `tokenizers`, side by side;
and (--blend N) the driver's cost of the blended index, whole arrays against streamed chunks.

    .venv/bin/python bench/tokenize.py [--pages 150] [--mb 4] [--repeats 5] [--threads 1]
    .venv/bin/python bench/tokenize.py --blend 10000000

--blend N: N samples over GPT-3's five sources (weights 0.60/0.22/0.08/0.08/0.03, windows 1.5x
the samples each source takes, so all subsample). "whole" builds both index arrays at once with
numpy permutations of every source's windows and np.save's them (the method before the index
was streamed); "streamed" is pipeline.shards.write_blend over pipeline.blend.blend_chunks.
Peak traced memory (tracemalloc: numpy reports its buffers) and seconds, side by side.

Input: trafilatura's extracted text of real pages from ../shared/corpus/pages/trafilatura
(mostly German) plus the five Chinese pages in ../shared/seeds, repeated to about --mb MB,
written as one curated parquet shard (the lead's finalize output format).

  raw         tokenizers.Tokenizer.encode_batch on the same texts, same batches (512 docs),
              GPT-2 BPE; nothing else: no parquet read, no id extraction, no write
  raw_fast    the same with encode_batch_fast (no offsets), the stricter floor
  gristmill   pipeline.tokens.tokenize_shard: read the parquet, assign sources, encode
              (encode_batch_fast), flatten ids into numpy, insert end-of-text, write the
              shard atomically with sha256 and the JSON sidecar, and the task's own
              Megatron .bin/.idx part

Each is timed --repeats times, interleaved, best run kept (other work shares this machine's
cores). Ratio = raw time / gristmill time (>= 0.9 means <= 10 % overhead). --threads sets
tokenizers' thread pool (RAYON_RS_NUM_CPUS); 1 is how a Ray task with num_cpus=1 runs.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This file is named tokenize.py: its folder must not stay first on sys.path, or it would
# shadow the standard library's tokenize (imported by inspect, linecache, tracebacks).
sys.path[0] = str(REPO)
SHARED = REPO.parent / "shared"


def load_texts(pages: int, megabytes: float) -> list[str]:
    import trafilatura

    html_dir = SHARED / "corpus" / "pages" / "trafilatura" / "html"
    if not html_dir.is_dir():
        sys.exit(f"needs ../shared (real pages): {html_dir} not found")
    texts = [p.read_text(encoding="utf-8") for p in sorted((SHARED / "seeds").glob("*.txt"))]
    for p in sorted(html_dir.glob("*.html.gz"))[:pages]:
        text = trafilatura.extract(gzip.decompress(p.read_bytes()).decode("utf-8", "replace"))
        if text:
            texts.append(text)
    size = sum(len(t.encode()) for t in texts)
    return texts * max(1, round(megabytes * 1e6 / size))


def bench_blend(n: int) -> None:
    import tracemalloc
    import zlib

    import numpy as np

    from pipeline.blend import blend_chunks, blend_order, index_dtypes
    from pipeline.shards import write_blend

    weights = [0.60, 0.22, 0.08, 0.08, 0.03]
    names = ["CommonCrawl", "WebText2", "Books1", "Books2", "Wikipedia"]
    counts = [int(w * n) for w in weights]
    counts[0] += n - sum(counts)
    windows = [c * 3 // 2 for c in counts]

    def whole(out: Path) -> None:
        src = blend_order(counts)
        sample = np.empty(n, dtype=np.uint32)
        for i, (c, w, name) in enumerate(zip(counts, windows, names, strict=True)):
            rng = np.random.default_rng([1234, zlib.crc32(name.encode())])
            sample[src == i] = rng.permutation(w).astype(np.uint32)[:c]
        np.save(out / "source_index.npy", src)
        np.save(out / "sample_index.npy", sample)

    def streamed(out: Path) -> None:
        write_blend(out, blend_chunks(counts, windows, names, 1234), n, *index_dtypes(5, max(windows)))

    print(f"blend: {n:,} samples, 5 sources (GPT-3 weights), index files "
          f"{n * 5 / 1e6:.0f} MB")
    print(f"{'method':<10} {'seconds':>8} {'peak traced MB':>15}")
    shas = {}
    for name, fn in (("whole", whole), ("streamed", streamed)):
        with tempfile.TemporaryDirectory() as tmp:  # timed without tracemalloc: it slows the loop ~15x
            t0 = time.perf_counter()
            fn(Path(tmp))
            dt = time.perf_counter() - t0
            shas[name] = (Path(tmp) / "source_index.npy").read_bytes() if name == "whole" else \
                (Path(tmp) / "blend" / "source_index.npy").read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            tracemalloc.start()
            fn(Path(tmp))
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        print(f"{name:<10} {dt:8.2f} {peak:15.1f}")
    print(f"source_index.npy identical: {shas['whole'] == shas['streamed']} (same greedy, same bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blend", type=int, default=0, help="measure the blended index of N samples instead")
    ap.add_argument("--pages", type=int, default=150)
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="tokenizers threads; 0: its default (all cores)")
    args = ap.parse_args()
    if args.blend:
        bench_blend(args.blend)
        return
    if args.threads > 0:
        import os

        os.environ["RAYON_RS_NUM_CPUS"] = str(args.threads)  # read when tokenizers starts its pool

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.shards import TokenShard
    from pipeline.tokens import TokenizeConfig, prepare_tokenizer, tokenize_shard

    texts = load_texts(args.pages, args.mb)
    n_bytes = sum(len(t.encode()) for t in texts)
    config = TokenizeConfig()
    spec = prepare_tokenizer(config, "unused")
    tok = spec.load()
    batches = [texts[i : i + config.batch_docs] for i in range(0, len(texts), config.batch_docs)]

    with tempfile.TemporaryDirectory() as tmp:
        curated = Path(tmp) / "curated" / "bench.parquet"
        curated.parent.mkdir()
        pq.write_table(pa.table({
            "doc_id": [f"d{i}" for i in range(len(texts))], "text": texts, "collection": ["web"] * len(texts),
        }), curated)
        out = Path(tmp) / "tokens"

        def raw() -> int:
            return sum(len(e.ids) for b in batches for e in tok.encode_batch(b))

        def raw_fast() -> int:
            return sum(len(e.ids) for b in batches for e in tok.encode_batch_fast(b))

        def ours() -> int:
            result = tokenize_shard(str(curated), str(out), config, spec)
            return sum(d["n_tokens"] for d in result.documents)

        runs = {"raw": raw, "raw_fast": raw_fast, "gristmill": ours}
        best = {k: float("inf") for k in runs}
        counts = {}
        ours()  # warm the tokenizer cache and the page cache once
        for _ in range(args.repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                counts[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
        shard = TokenShard(out / "web" / "bench.bin")
        shard.verify()
        text_tokens = shard.n_tokens - shard.n_docs  # one end-of-text per document
        assert counts["raw"] == counts["raw_fast"] == counts["gristmill"] == text_tokens, counts

    print(f"input: {len(texts)} documents, {n_bytes / 1e6:.1f} MB, {counts['raw']:,} GPT-2 tokens; "
          f"best of {args.repeats}; tokenizers threads: {args.threads or 'default'}")
    print(f"{'path':<12} {'seconds':>8} {'MB/s':>7} {'Mtok/s':>7}")
    for name in runs:
        mb_s, mtok_s = n_bytes / 1e6 / best[name], counts["raw"] / 1e6 / best[name]
        print(f"{name:<12} {best[name]:8.3f} {mb_s:7.2f} {mtok_s:7.2f}")
    print(f"ratio raw / gristmill      = {best['raw'] / best['gristmill']:.2f}x (target >= 0.9x)")
    print(f"ratio raw_fast / gristmill = {best['raw_fast'] / best['gristmill']:.2f}x")


if __name__ == "__main__":
    main()
