"""Does the classifier help a language model? Heuristics only vs heuristics + classifier, equal token budgets.

    .venv/bin/python bench/quality_ablation.py [--seeds 3] [--steps 300] [--fraction 0.5]

Pool: the English web pages that pass gristmill's heuristics (bench/train_quality_model.py's
pipeline run over the 990 trafilatura pages and the wget fixture crawl).
Arms:
  (a) heuristics only: every page of the pool;
  (b) heuristics + classifier: the best `--fraction` of the pool by quality_model_score
      (the top_fraction rule, DCLM's way).
The scores are CROSS-FITTED: the pool is split in two by a hash of the text, and each half is
scored by a classifier trained (filters.train_quality, shipped settings) on the same positives and
the OTHER half as negatives, so no page is scored by a model that saw it. (The shipped model saw
every page of the pool as a negative; its scores there would be in-sample.)
Reference set: the documents bench/train_quality_model.py holds back from the classifier (8
Wikipedia articles, 101 book passages, 17 news articles), never trained on by either model.

Model: tokenize/train.py's GPT, AdamW and learning-rate schedule with its `tiny` preset (2 layers,
64 dims, block 64, batch 16) on CPU. Tokenizer: byte-level BPE with 1,024 entries trained on the
pool (one tokenizer for both arms). Each run trains `--steps` steps (16 x 64 tokens a step) on
random windows of its arm's token stream, so both arms see the same number of tokens; arm (b)
repeats its smaller stream more often. Loss is reported per reference source in nats per token
and overall in bits per byte (tokenizer-independent), mean and spread over --seeds seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # bench/filters.py and bench/tokenize.py would shadow packages

import argparse
import hashlib
import importlib.util
import math
import statistics
import tempfile
import time
import types

import numpy as np


def module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def cross_fitted_scores(pool: list[str], positives, work: Path) -> np.ndarray:
    from filters.quality_model import load_model, normalize, positive_probability
    from filters.train_quality import Source, TrainSettings, train

    s = TrainSettings()
    half = np.array([int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) % 2 for t in pool])
    scores = np.zeros(len(pool))
    for fold in (0, 1):
        neg = Source("pool half", [t for t, h in zip(pool, half, strict=True) if h != fold])
        out = work / f"fold{fold}.ftz"
        train(positives, [neg], out, s)
        model = load_model(str(out))
        lines = [normalize(t, s.max_chars, s.lowercase, s.newline) for t, h in zip(pool, half, strict=True) if h == fold]
        scores[half == fold] = positive_probability(model, lines, s.positive_label)
    return scores


def tokenizer(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return tok


def stream(tok, texts: list[str]) -> np.ndarray:
    eot = tok.token_to_id("<|endoftext|>")
    out = []
    for enc in tok.encode_batch(texts):
        out += enc.ids + [eot]
    return np.array(out, dtype=np.int64)


def train_once(tr, tokens: np.ndarray, vocab: int, steps: int, seed: int):
    import torch

    p = dict(tr.PRESETS["tiny"])
    torch.manual_seed(seed)
    cfg = tr.GPTConfig(vocab_size=(vocab + 63) // 64 * 64, block_size=p["block_size"], n_layer=p["n_layer"],
                       n_head=p["n_head"], n_embd=p["n_embd"])
    model = tr.GPT(cfg)
    opt = tr.make_optimizer(model, p["lr"], 0.1, "cpu")
    a = types.SimpleNamespace(lr=p["lr"], warmup=p["warmup"], steps=steps)
    rng = np.random.default_rng(seed)
    B, T = p["batch_size"], p["block_size"]
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = tr.lr_at(step, a)
        starts = rng.integers(0, len(tokens) - T - 1, size=B)
        buf = torch.from_numpy(np.stack([tokens[s:s + T + 1] for s in starts]))
        _, loss = model(buf[:, :-1], buf[:, 1:])
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, B * T * steps


def evaluate(model, tokens: np.ndarray, block: int) -> tuple[float, int]:
    """Summed loss (nats) and token count over non-overlapping windows of the stream."""
    import torch

    n = (len(tokens) - 1) // block
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, n, 64):
            rows = [tokens[w * block: w * block + block + 1] for w in range(i, min(n, i + 64))]
            buf = torch.from_numpy(np.stack(rows))
            _, loss = model(buf[:, :-1], buf[:, 1:])
            total, count = total + float(loss.sum()), count + loss.numel()
    return total, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gristmill-quality-model"))
    a = ap.parse_args(argv)
    import glob

    import pyarrow.parquet as pq
    import torch

    torch.set_num_threads(1)
    tqm = module(REPO / "bench" / "train_quality_model.py", "bench_train_quality_model")
    tr = module(REPO / "tokenize" / "train.py", "gristmill_train")
    from filters.train_quality import Source

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    run = tqm.web_run(work)
    pool = [t for f in sorted(glob.glob(str(run / "curated" / "*.parquet")))
            for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]
    pos_texts, reference = tqm.positives()
    positives = [Source(f"../shared:{k}", v, len(v)) for k, v in pos_texts.items()]
    scores = cross_fitted_scores(pool, positives, work)
    k = math.floor(a.fraction * len(pool) + 0.5)
    top = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:k]
    arms = {"a: heuristics": pool, "b: + classifier": [pool[i] for i in sorted(top)]}
    tok = tokenizer(pool, a.vocab)
    streams = {name: stream(tok, texts) for name, texts in arms.items()}
    refs = {src: [r["text"] for r in reference if r["source"] == src] for src in ("wiki", "books", "news")}
    ref_tokens = {src: stream(tok, texts) for src, texts in refs.items()}
    ref_bytes = sum(len(t.encode()) for texts in refs.values() for t in texts)
    print(f"pool {len(pool)} pages; cross-fitted score median {np.median(scores):.3f}; arm b keeps {k} "
          f"(scores >= {scores[top[-1]]:.3f})")
    for name, s in streams.items():
        print(f"  {name}: {len(arms[name])} documents, {len(s):,} tokens")
    print("  reference: " + ", ".join(f"{src} {len(refs[src])} docs / {len(t):,} tokens" for src, t in ref_tokens.items()))
    results: dict[str, list[dict]] = {name: [] for name in arms}
    for seed in range(a.seeds):
        for name, s in streams.items():
            t0 = time.perf_counter()
            model, budget = train_once(tr, s, a.vocab, a.steps, 1000 + seed)
            row = {}
            nats, toks = 0.0, 0
            for src, rt in ref_tokens.items():
                tot, cnt = evaluate(model, rt, 64)
                row[src] = tot / cnt
                nats, toks = nats + tot, toks + cnt
            row["all"] = nats / toks
            # mean loss per token x tokens per byte of the reference text, in bits
            row["bpb"] = nats / toks * sum(map(len, ref_tokens.values())) / ref_bytes / math.log(2)
            results[name].append(row)
            print(f"  seed {seed} {name:<16} {budget:,} tokens, {time.perf_counter() - t0:5.1f} s: "
                  + "  ".join(f"{k2} {v:.4f}" for k2, v in row.items()), flush=True)
    print(f"\nreference loss after {a.steps} steps ({a.steps * 16 * 64:,} tokens), mean +- sd over {a.seeds} seeds:")
    print(f"  {'arm':<18}" + "".join(f"{k2:>18}" for k2 in ("wiki", "books", "news", "all", "bpb")))
    for name, rows in results.items():
        cells = []
        for k2 in ("wiki", "books", "news", "all", "bpb"):
            v = [r[k2] for r in rows]
            cells.append(f"{statistics.mean(v):.4f} +- {statistics.stdev(v) if len(v) > 1 else 0:.4f}")
        print(f"  {name:<18}" + "".join(f"{c:>18}" for c in cells))
    diffs = [rb["all"] - ra["all"] for ra, rb in zip(*results.values(), strict=True)]
    print(f"  b - a, all reference tokens, per seed: {[round(d, 4) for d in diffs]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
