"""gristmill's JSONL and Parquet readers against datatrove's JsonlReader and ParquetReader, on the
same files, side by side, each run in a process of its own (one core).

    .venv/bin/python bench/readers.py [--docs 50000] [--rounds 3]   # writes bench/results/readers.md

The same file gets the table of bench/kind_rules.py (what the web rules drop on books and
Wikipedia, and the per-kind overrides), unless `--no-rules`.

The files hold `--docs` documents made from real text: the paragraphs of the committed demo
sources (tests/data/sources: extracted web pages, Gutenberg excerpts, Wikipedia articles) cycled
into documents of 1-8 paragraphs, with id, url and title fields, as `.jsonl`, `.jsonl.gz` and
`.parquet` (row groups of 10,000 rows). Each reader reads a file to the end and touches every
document's text; the figure is documents per second of CPU time of that process (per core), the
median of `--rounds` alternating runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # not bench/, whose tokenize.py and filters.py would shadow the stdlib and the package


def corpus_paragraphs() -> list[str]:
    from pipeline import storage
    from pipeline.readers.jsonl import JsonlReader
    from pipeline.readers.mediawiki import MediaWikiReader
    from pipeline.readers.text import TextConfig, TextReader

    src = REPO / "tests/data/sources"
    texts = [d.text for d in JsonlReader().read(str(src / "webtext/webtext2-sample.jsonl.gz"), "w")]
    texts += [d.text for d in MediaWikiReader().read(str(next((src / "wiki").glob("*.xml.bz2"))), "k") if d.kept]
    for f in storage.list_files(str(src / "books1")) + storage.list_files(str(src / "books2")):
        texts += [d.text for d in TextReader(TextConfig(split="blank_lines")).read(f, "b") if d.kept]
    return [p for t in texts for p in t.split("\n\n") if len(p) > 40]


def make_files(folder: Path, n: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paras = corpus_paragraphs()
    rng = random.Random(0)
    rows = []
    for i in range(n):
        k = rng.randint(1, 8)
        start = rng.randrange(len(paras))
        text = "\n\n".join(paras[(start + j) % len(paras)] for j in range(k))
        rows.append({"id": f"doc-{i:07d}", "url": f"https://example.org/{i}", "title": f"Document {i}", "text": text})
    paths = {}
    for name in ("jsonl", "gz", "parquet"):
        (folder / name).mkdir()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    paths["jsonl"] = folder / "jsonl/bench.jsonl"
    paths["jsonl"].write_bytes(lines)
    paths["gz"] = folder / "gz/bench.jsonl.gz"
    paths["gz"].write_bytes(gzip.compress(lines, compresslevel=6, mtime=0))
    paths["parquet"] = folder / "parquet/bench.parquet"
    pq.write_table(pa.Table.from_pylist(rows), paths["parquet"], row_group_size=10_000)
    return paths


def one(impl: str, path: str) -> None:
    """Read `path` to the end with one implementation; print docs, chars, CPU and wall seconds."""
    # Imports and construction outside the timing: the figure is the reading itself.
    if impl.startswith("gristmill"):
        from pipeline.readers.jsonl import JsonlReader
        from pipeline.readers.parquet import ParquetReader

        reader = ParquetReader() if impl.endswith("parquet") else JsonlReader()
        docs_iter = lambda: reader.read(path, "bench")  # noqa: E731
    else:
        from datatrove.pipeline.readers import JsonlReader as DtJsonl
        from datatrove.pipeline.readers import ParquetReader as DtParquet

        folder = os.path.dirname(path)
        dt = DtParquet(folder) if impl.endswith("parquet") else DtJsonl(folder)
        docs_iter = dt.run
    t0, c0 = time.perf_counter(), time.process_time()
    docs = chars = 0
    for d in docs_iter():
        if getattr(d, "drop_reason", None) is None:
            docs += 1
            chars += len(d.text)
    print(json.dumps({"docs": docs, "chars": chars, "cpu": time.process_time() - c0, "wall": time.perf_counter() - t0}))


def _pretty(obj: dict) -> str:
    import pprint

    return pprint.pformat(obj, width=110, sort_dicts=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("IMPL", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--no-rules", action="store_true", help="skip the kind-rules table (needs ../shared)")
    ap.add_argument("--out", default=str(REPO / "bench/results/readers.md"))
    args = ap.parse_args()
    if args.one:
        one(*args.one)
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), args.docs)
        sizes = {k: p.stat().st_size for k, p in paths.items()}
        cases = [("jsonl", "jsonl"), ("jsonl.gz", "gz"), ("parquet", "parquet")]
        results: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for label, key in cases:
                for who in ("gristmill", "datatrove"):
                    impl = f"{who}-{'parquet' if key == 'parquet' else 'jsonl'}"
                    out = subprocess.run([sys.executable, __file__, "--one", impl, str(paths[key])], check=True,
                                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                               "ARROW_NUM_THREADS": "1"})
                    results.setdefault((label, who), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [f"# Readers: gristmill vs datatrove, {args.docs:,} documents, median of {args.rounds} rounds", "",
             f"Command: `.venv/bin/python bench/readers.py --docs {args.docs} --rounds {args.rounds}`; one process "
             "per run, documents per CPU-second of that process (per core).", "",
             "| file | bytes | gristmill docs/s | datatrove docs/s | ratio (gristmill / datatrove) | docs read (g / d) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, key in cases:
        g, d = results[(label, "gristmill")], results[(label, "datatrove")]
        g_rate = statistics.median(r["docs"] / r["cpu"] for r in g)
        d_rate = statistics.median(r["docs"] / r["cpu"] for r in d)
        lines.append(f"| {label} | {sizes[key]:,} | {g_rate:,.0f} | {d_rate:,.0f} | {g_rate / d_rate:.2f}x | "
                     f"{g[0]['docs']:,} / {d[0]['docs']:,} |")
    text = "\n".join(lines) + "\n"
    if not args.no_rules:
        sys.path.append(str(REPO / "bench"))
        import kind_rules

        text += ("\n# What the web rules drop on books and Wikipedia, and per-kind overrides\n\n"
                 + (kind_rules.__doc__ or "").split("\n\n", 2)[-1].strip() + "\n\n" + kind_rules.report()
                 + "\nThe overrides (`OVERRIDES` in bench/kind_rules.py, each with the number behind it):\n\n```python\n"
                 + _pretty(kind_rules.OVERRIDES) + "\n```\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
