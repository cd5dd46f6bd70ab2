"""fastText's `predict` against gristmill's compiled copy of it (filters/fasttext_model.py).

    .venv/bin/python bench/fasttext_exact.py     # ~1 minute

Issue 13 asks for the filter chain under 20% of extraction time without changing a stored score;
after the quality-stage cuts the largest cost left was the two fastText predicts (lid.176 and the
toxicity classifier). This script measures, on the bench documents of `bench/filters.py`, for the
three shipped models (lid.176, toxicity, quality model), each fed as its stage feeds it:

- identity: labels and float32 probabilities of `filters.fasttext_model.FastTextModel` against
  fastText's own `predict` on every document;
- CPU ms per document in batches of 256 (as the stages call it), best of 3: from a new model
  object (cold: its unknown-word cache empty) and warm (the second half of the documents after the
  first half filled the cache: what a worker sees after its first few hundred documents).

History: an exact numpy version (issue 13's fourth session, in git history of this file) was no
faster than fastText (0.61 vs 0.60 ms lid, 0.96 vs 1.04 toxicity): numpy's gather and ordered sum
cost ~25 ns a row and the per-word dictionary lookup stayed in Python. Compiled (numba), the same
steps run with the tokenizing and hashing in the loop, an unknown-word cache and prefetched rows.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Before any other import: bench/ first on sys.path would shadow the `filters` package, and
# bench/tokenize.py the standard library's tokenize (numpy imports it; numba's typing uses it).
sys.path[0] = str(REPO)

import numpy as np  # noqa: E402


def _same(a: tuple, b: tuple) -> bool:
    (la, pa), (lb, pb) = a, b
    return list(la) == list(lb) and np.array_equal(np.asarray(pa, dtype=np.float32).view(np.int32),
                                                   np.asarray(pb, dtype=np.float32).view(np.int32))


def _batched(model, lines: list[str], k: int) -> list[tuple]:
    out = []
    for i in range(0, len(lines), 256):
        labels, probs = model.predict(lines[i: i + 256], k=k)
        out.extend(zip(labels, probs, strict=True))
    return out


def main() -> None:
    import fasttext

    from bench.filters import load_documents
    from filters import langid, quality_model, toxicity
    from filters.fasttext_model import FastTextModel

    fasttext.FastText.eprint = lambda *a, **k: None
    texts = [d["text"] for d in load_documents(None)]
    half = len(texts) // 2
    cases = [
        ("lid.176 (k=1)", str(langid.MODEL_PATH), [" ".join(t[: langid.MAX_CHARS].split()) for t in texts], 1),
        ("toxicity (k=-1)", str(toxicity.MODEL_PATH),
         [toxicity.preprocess(t[: toxicity.MAX_SCORE_CHARS]) for t in texts], -1),
        ("quality model (k=-1)", str(quality_model.resolve_model("default")),
         [quality_model.normalize(t) for t in texts], -1),
    ]
    FastTextModel(str(langid.MODEL_PATH)).predict("compile", k=1)  # numba: compiled or loaded from its cache
    print(f"{len(texts)} documents (bench/filters.py's); CPU ms per document, best of 3\n")
    print("| model | identical to fastText | fastText | compiled, cold | compiled, warm (2nd half) | ratio (cold) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, path, lines, k in cases:
        ref = fasttext.load_model(path)
        want = _batched(ref, lines, k)
        got = _batched(FastTextModel(path), lines, k)
        same = sum(_same(a, b) for a, b in zip(want, got, strict=True))
        t_ref = t_cold = t_warm = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            _batched(ref, lines, k)
            t_ref = min(t_ref, time.process_time() - t0)
            m = FastTextModel(path)
            t0 = time.process_time()
            _batched(m, lines, k)
            t_cold = min(t_cold, time.process_time() - t0)
            m = FastTextModel(path)
            _batched(m, lines[:half], k)
            t0 = time.process_time()
            _batched(m, lines[half:], k)
            t_warm = min(t_warm, time.process_time() - t0)
        n = len(lines)
        print(f"| {name} | {same} of {n} | {1000 * t_ref / n:.3f} | {1000 * t_cold / n:.3f} | "
              f"{1000 * t_warm / (n - half):.3f} | {t_ref / t_cold:.1f}x |")


if __name__ == "__main__":
    main()
