"""Scoring speed: gristmill's quality_model stage vs datatrove's FastTextClassifierFilter, same model, same pages.

    .venv/bin/python bench/quality_model_speed.py [--repeat 3]

Pages: the 990 trafilatura evaluation pages of ../shared, extracted by the pipeline (read, extract,
length; every language), cached in the temp folder by bench/train_quality_model.py's WARC builder.
Model: the shipped filters/data/quality_model/quality_model.ftz for both.

Three timings, CPU seconds of this one process (documents/s per core), best of --repeat:
  gristmill      QualityModelFilter.process_batch, batches of 256 (the stage's default work:
                 first 10,000 characters, lower-cased, one predict call per batch), pareto rule;
  gristmill-full the same with max_chars = 10**9 and lowercase = false: the text datatrove scores;
  datatrove      FastTextClassifierFilter(keep_labels=("hq", 0.5), newline_replacement=" ").filter,
                 one document at a time (its pipeline's way), in DOCUMENT mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # bench/filters.py would shadow the `filters` package

import argparse
import dataclasses
import os
import subprocess
import tempfile
import time


def bench_module(name: str):
    """Another bench script as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pages(work: Path) -> list[str]:
    """Extracted text of every trafilatura page that has at least 200 characters."""
    import glob

    import pyarrow.parquet as pq

    web_warc = bench_module("train_quality_model").web_warc
    run = work / "speed_run"
    if not (run / "curated").is_dir():
        warc = web_warc(work)
        cfg = work / "speed.toml"
        cfg.write_text('[pipeline]\nstages = ["extract", "length"]\ndedup = false\ntokenize = false\n')
        subprocess.run([sys.executable, str(REPO / "pipeline/run.py"), "--input", f"web={warc.parent}", "--output",
                        str(run), "--config", str(cfg), "--workers", "0", "-q"], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    return [t for f in sorted(glob.glob(str(run / "curated" / "*.parquet")))
            for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]


def time_gristmill(texts: list[str], **overrides) -> tuple[float, list[float]]:
    from filters.quality_model import QualityModelConfig, QualityModelFilter
    from pipeline.document import Document

    stage = QualityModelFilter(dataclasses.replace(QualityModelConfig(rule="pareto"), **overrides))
    stage.ensure_setup()
    docs = [Document(doc_id=f"d{i}", warc_path="x", warc_offset=i, record_type="response", text=t)
            for i, t in enumerate(texts)]
    t0 = time.process_time()
    for i in range(0, len(docs), 256):
        stage.process_batch(docs[i:i + 256])
    return time.process_time() - t0, [d.meta["quality_model_score"] for d in docs]


def time_datatrove(texts: list[str], model: str) -> tuple[float, list[float]]:
    # datatrove copies even a local model into ~/.cache/huggingface/assets keyed by its PATH: a model
    # retrained at the same path is silently not re-read. A path named by the content avoids that.
    import hashlib
    import shutil

    from datatrove.data import Document
    from datatrove.pipeline.filters import FastTextClassifierFilter

    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()[:16]
    keyed = Path(tempfile.gettempdir()) / f"quality_model-{digest}.ftz"
    if not keyed.exists():
        shutil.copyfile(model, keyed)
    f = FastTextClassifierFilter(model_url=str(keyed), keep_labels=("hq", 0.5), newline_replacement=" ")
    _ = f.model  # load outside the timing, as our setup() is
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    t0 = time.process_time()
    for d in docs:
        f.filter(d)
    return time.process_time() - t0, [d.metadata.get("__label__hq", 0.0) for d in docs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gristmill-quality-model"))
    a = p.parse_args(argv)
    from filters.quality_model import DEFAULT_MODEL

    texts = pages(Path(a.work))
    chars = sum(map(len, texts))
    print(f"{len(texts)} pages, {chars / len(texts):,.0f} characters on average, model {DEFAULT_MODEL.name}")
    best: dict[str, float] = {}
    scores = {}
    for _ in range(a.repeat):
        for name, fn in (("gristmill", lambda: time_gristmill(texts)),
                         ("gristmill-full", lambda: time_gristmill(texts, max_chars=10**9, lowercase=False)),
                         ("datatrove", lambda: time_datatrove(texts, str(DEFAULT_MODEL)))):
            sec, scores[name] = fn()
            best[name] = min(best.get(name, float("inf")), sec)
    for name, sec in best.items():
        print(f"  {name:<15} {len(texts) / sec:>10,.0f} docs/s per core  ({sec:.3f} CPU s)")
    print(f"  ratio gristmill / datatrove: {best['datatrove'] / best['gristmill']:.2f}x; "
          f"same text (gristmill-full / datatrove): {best['datatrove'] / best['gristmill-full']:.2f}x")
    diff = max(abs(x - y) for x, y in zip(scores["gristmill-full"], scores["datatrove"], strict=True))
    print(f"  largest score difference, same text: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
