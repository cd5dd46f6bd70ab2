"""Train a small GPT on gristmill's blended token shards, and check that it sees the declared mix.

One file, top to bottom: config, model, data, validation, loop. It reads DIR/tokens (written by
`python pipeline/run.py --output DIR`) through pipeline/shards.py, memory-mapped, in the blend
order, and stops with exit code 3 when a source's realised share of trained tokens drifts from
the mix's declared weight.

    python tokenize/train.py --data DIR --config tiny --steps 300 --device cpu     # smoke run
    python tokenize/train.py --data DIR --config gpt2-small --steps 5000           # CUDA, bf16
    python tokenize/train.py --data DIR --config gpt2-small --bench --steps 60     # tokens/s, MFU

Outputs: a log line per --log-every steps; every --eval-every steps and at the end a per-source
table (tokens seen, realised vs declared share, train and validation loss), also written to
DIR/manifests/validation-<run>.parquet. Exit codes: 0 ok, 2 bad arguments or data, 3 mixture
check failed. How validation rows are held out, installing a CUDA torch: tokenize/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.nn import functional as F

# Run as a script, Python puts tokenize/ first on sys.path; the repo root goes there instead so
# that `pipeline` imports (the same move as pipeline/run.py).
REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipeline import storage  # noqa: E402
from pipeline.megatron import DATA_ARGS_FILE, DataArgsBlend  # noqa: E402
from pipeline.shards import BlendedSamples, ShardFormatError  # noqa: E402

# ----------------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50304  # GPT-2's 50257 padded to a multiple of 64: faster matmuls
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


# Presets: model shape plus the training defaults that suit it; every field can be overridden.
PRESETS: dict[str, dict] = {
    # The smoke config: 0.13 M parameters with a 512-token vocabulary; ~50 ms a 16 x 64 step on one
    # (shared) CPU core here, ~2.4 s with GPT-2's 50k vocabulary, whose output layer dominates.
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "batch_size": 16, "lr": 1e-3,
             "warmup": 20},
    # GPT-2 small (124 M). 16 x 1024 tokens a step, no accumulation: nanoGPT fits 12 x 1024 in a 40 GB
    # A100; use --grad-accum for GPT-2's ~0.5 M-token batches.
    "gpt2-small": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "batch_size": 16,
                   "lr": 6e-4, "warmup": 200},
}

# Peak dense bf16 FLOP/s by device name (NVIDIA data sheets, without sparsity). Matched in order,
# so the specific H100 variants come before the plain "H100" (the SXM part).
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
             ("A100", 312e12), ("L40S", 362e12), ("A10G", 125e12), ("L4", 121e12))

VALIDATION_SCHEMA = pa.schema([
    ("step", pa.int64()), ("source", pa.string()), ("tokens_seen", pa.int64()),
    ("realised_share", pa.float64()), ("declared_share", pa.float64()),
    ("train_loss", pa.float64()), ("val_loss", pa.float64()),
])
EXIT_BAD_INPUT, EXIT_MIX = 2, 3

# ------------------------------------------------------------------------------------ model


class CausalSelfAttention(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        assert c.n_embd % c.n_head == 0, f"n_embd {c.n_embd} must be a multiple of n_head {c.n_head}"
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.n_head, self.dropout = c.n_head, c.dropout
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.qkv(x).split(C, dim=2))
        # SDPA picks flash attention on CUDA (bf16, head dim <= 256) and a fused kernel on CPU.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class Block(nn.Module):
    """Pre-LN: x + attn(ln(x)), x + mlp(ln(x)); the residual stream is never normalised."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.n_embd, bias=c.bias), nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias), nn.Dropout(c.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.config = c
        self.wte, self.wpe = nn.Embedding(c.vocab_size, c.n_embd), nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (GPT-2): one matrix, 38 M of gpt2-small's 124 M
        for name, p in self.named_parameters():  # GPT-2's init; residual projections scaled by 1/sqrt(2 L)
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                scaled = name.endswith(("attn.proj.weight", "mlp.2.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer) if scaled else 0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters, position embeddings left out by default (they do no matmul FLOPs)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, V] and, with targets, the loss of every token [B, T] (float32), so the
        caller can attribute each row's loss to its row's source."""
        T = idx.size(1)
        assert T <= self.config.block_size, f"sequence of {T} > block_size {self.config.block_size}"
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        # Under bf16 autocast cross_entropy runs in float32 (autocast's fp32 op list): no manual upcast.
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        return logits, loss.view(targets.shape)


def make_optimizer(model: GPT, lr: float, weight_decay: float, device: str) -> torch.optim.AdamW:
    """AdamW, decaying matrices only (not biases, LayerNorms); fused kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda")


def autocast(device: str):
    """bf16 autocast on CUDA (no loss scaler needed); plain float32 on CPU, the same code."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()


def flops_per_token(model: GPT, T: int) -> float:
    """Training FLOPs per token: 6 N (forward + backward matmuls) plus attention 12 L H Q T
    (PaLM appendix B, as nanoGPT's estimate_mfu)."""
    c = model.config
    return 6 * model.num_params() + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * T


def peak_flops(device: str, override_tflops: float | None) -> tuple[float | None, str]:
    """(peak bf16 FLOP/s, device name) for MFU; None when unknown (CPU, an unlisted GPU)."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16 if key in name), None), name

# ------------------------------------------------------------------------------------- data


class DataError(ValueError):
    """Unusable --data: the message says what is wrong and what to do."""


def tokens_dir(data: str) -> tuple[str, str]:
    """(output DIR, DIR/tokens) from --data given as the pipeline output or its tokens/ folder
    (local paths or URLs)."""
    p = storage.normalize(data)
    if storage.exists(storage.join(p, "tokens", "metadata.json")):
        return p, storage.join(p, "tokens")
    if storage.exists(storage.join(p, "metadata.json")):
        return storage.parent(p), p
    raise DataError(f"--data {data}: no tokens/metadata.json there; point it at the --output folder of "
                    "`python pipeline/run.py` (with [pipeline] tokenize = true)")


def open_data(a: argparse.Namespace) -> tuple[str, BlendedSamples | DataArgsBlend]:
    """(output DIR for the manifest, the blend): the blended index under --data, or the Megatron
    data args list given by --data-args, or --data itself when it is such a list (a file)."""
    args_file = a.data_args
    if args_file is None and a.data and storage.exists(a.data) and not storage.isdir(a.data):
        args_file = a.data
    if args_file is None:
        root, tokens = tokens_dir(a.data)
        return root, BlendedSamples(tokens)
    if not storage.exists(args_file):
        raise DataError(f"--data-args {args_file}: no such file")
    # Prefixes are relative to the folder Megatron runs from: the pipeline's output folder.
    base = storage.normalize(a.data) if a.data and storage.isdir(a.data) else \
        storage.parent(storage.parent(storage.parent(storage.normalize(args_file))))
    meta = storage.join(base, "tokens", "metadata.json")
    vocab = storage.read_json(meta)["tokenizer"]["vocab_size"] if storage.exists(meta) else None
    try:
        return base, DataArgsBlend(args_file, base, a.block_size, a.data_seed, vocab)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def declared_shares(meta: dict) -> dict[str, float]:
    """The mix as declared, normalised: the mix TOML's weights, or for the default mix (weight ~ the
    windows each source has) the same rule recomputed from the token counts, not from the blend."""
    declared = meta["mix"].get("declared_weights")
    if declared is None:
        seq = meta["blend"]["seq_len"]
        declared = {s: max(0, (v["tokens"] - 1) // seq) for s, v in meta["sources"].items()}
    total = sum(declared.values())
    return {s: w / total for s, w in declared.items()}


class BlendRows:
    """Training rows of block_size + 1 tokens in blend order, and per-source held-out rows.

    A blended sample (seq_len + 1 tokens) gives seq_len // block_size consecutive rows, all from
    its source. The last `n_val` windows of each source's stream (at most val_frac of them, at
    most val_windows, none for a one-window source) are held out; a blended sample naming one
    trains on window w mod (windows - n_val) of the same source instead, so every source keeps
    exactly its blended number of rows, the quantity the mixture check measures.
    """

    def __init__(self, tokens: Path | str | None, block_size: int, val_frac: float, val_windows: int,
                 blend: BlendedSamples | DataArgsBlend | None = None) -> None:
        # Memory-maps shards (or Megatron parts) and the index: nothing loaded.
        self.blend = blend if blend is not None else BlendedSamples(tokens)
        tokens = tokens or "the data args"
        meta, self.seq_len, self.block = self.blend.metadata, self.blend.seq_len, block_size
        if block_size > self.seq_len:
            raise DataError(f"block_size {block_size} > the blend's seq_len {self.seq_len}: pass "
                            f"--block-size {self.seq_len}, or re-tokenize with seq_len >= {block_size}")
        self.chunks = self.seq_len // block_size
        self.sources = list(self.blend.sources)
        self.windows = [int(s["windows"]) for s in meta["blend"]["sources"]]
        self.n_val = [min(w - 1, val_windows, max(1, int(val_frac * w))) if w > 1 else 0
                      for w in self.windows]
        self.vocab_size = int(meta["tokenizer"]["vocab_size"])
        self.declared = declared_shares(meta)
        self.n_rows = len(self.blend) * self.chunks
        if self.n_rows == 0:
            raise DataError(f"{tokens}: the blend holds no samples; re-run the tokenize step with more data")

    def train_row(self, r: int) -> tuple[int, int, int]:
        """(source, window, chunk) of training row r; past the end, the blend repeats."""
        i, chunk = divmod(r % self.n_rows, self.chunks)
        s, w = int(self.blend.source_index[i]), int(self.blend.sample_index[i])
        if w >= self.windows[s]:
            raise DataError(f"blend sample {i}: window {w} of source {self.sources[s]!r}, which has "
                            f"{self.windows[s]}: the blended index is corrupt; re-run the tokenize step")
        return s, w % (self.windows[s] - self.n_val[s]), chunk

    def read(self, s: int, w: int, chunk: int) -> np.ndarray:
        return self.blend.streams[s].read(w * self.seq_len + chunk * self.block, self.block + 1)

    def val_rows(self, s: int, limit: int) -> list[tuple[int, int, int]]:
        first = self.windows[s] - self.n_val[s]
        return [(s, w, c) for w in range(first, self.windows[s]) for c in range(self.chunks)][:limit]

    def batch(self, rows: list[tuple[int, int, int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets on `device`; pinned memory and an async copy on CUDA."""
        buf = torch.from_numpy(np.stack([self.read(*row) for row in rows]))
        if device == "cuda":
            buf = buf.pin_memory().to(device, non_blocking=True)
        return buf[:, :-1], buf[:, 1:]


# ------------------------------------------------------------------------------- validation


@torch.no_grad()
def evaluate(model: nn.Module, data: BlendRows, batch_size: int, limit: int, device: str
             ) -> list[float | None]:
    """Mean token loss on each source's held-out rows (None for a source with none held out)."""
    model.eval()
    out: list[float | None] = []
    for s in range(len(data.sources)):
        rows, total, n = data.val_rows(s, limit), 0.0, 0
        for i in range(0, len(rows), batch_size):
            x, y = data.batch(rows[i : i + batch_size], device)
            with autocast(device):
                _, loss = model(x, y)
            total, n = total + loss.sum().item(), n + loss.numel()
        out.append(total / n if n else None)
    model.train()
    return out


def mixture_rows(step: int, data: BlendRows, seen: np.ndarray, train_loss: list, val_loss: list
                 ) -> list[dict]:
    """One row per source, declared or blended, in VALIDATION_SCHEMA."""
    names = sorted(set(data.sources) | set(data.declared))
    total = max(int(seen.sum()), 1)
    rows = []
    for name in names:
        s = data.sources.index(name) if name in data.sources else None
        rows.append({"step": step, "source": name, "tokens_seen": int(seen[s]) if s is not None else 0,
                     "realised_share": seen[s] / total if s is not None else 0.0,
                     "declared_share": data.declared.get(name, 0.0),
                     "train_loss": train_loss[s] if s is not None else None,
                     "val_loss": val_loss[s] if s is not None else None})
    return rows


def mixture_errors(rows: list[dict], tolerance: float) -> list[str]:
    return [f"source {r['source']!r}: realised share {r['realised_share']:.4f}, declared "
            f"{r['declared_share']:.4f} (off by {abs(r['realised_share'] - r['declared_share']):.4f} > "
            f"--mix-tolerance {tolerance:g})"
            for r in rows if abs(r["realised_share"] - r["declared_share"]) > tolerance]

# ------------------------------------------------------------------------------------- loop


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tokenize/train.py", description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--data", help="pipeline output DIR (holding tokens/), DIR/tokens, or a Megatron data args file")
    add("--data-args", help=f"train on a Megatron data args list ('w1 prefix1 w2 prefix2 ...', e.g. "
        f"DIR/tokens/megatron/{DATA_ARGS_FILE}) instead of the blended index; prefixes relative to --data "
        "(default: the folder three levels above the file)")
    add("--data-seed", type=int, default=1234, help="window order of a --data-args blend")
    add("--config", choices=sorted(PRESETS), default="tiny", help="model preset (default tiny)")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add("--steps", type=int, default=300, help="optimizer steps")
    add("--batch-size", type=int, help="rows per micro-step (preset default)")
    add("--grad-accum", type=int, default=1, help="micro-steps per optimizer step")
    add("--lr", type=float, help="peak learning rate (preset default); cosine decay to lr/10")
    add("--warmup", type=int, help="linear warm-up steps (preset default)")
    add("--weight-decay", type=float, default=0.1)
    add("--grad-clip", type=float, default=1.0, help="0: off")
    for name in ("n-layer", "n-head", "n-embd", "block-size"):
        add(f"--{name}", type=int, help="override the preset")
    add("--dropout", type=float, default=0.0)
    add("--seed", type=int, default=1337, help="model initialisation (the data order is the blend's)")
    add("--compile", action=argparse.BooleanOptionalAction, help="torch.compile (default: on CUDA, off CPU)")
    add("--eval-every", type=int, default=100, help="steps between evaluations and mixture checks")
    add("--eval-rows", type=int, default=64, help="held-out rows evaluated per source")
    add("--val-frac", type=float, default=0.05, help="share of each source's windows held out")
    add("--val-windows", type=int, default=8, help="at most this many windows held out per source")
    add("--mix-tolerance", type=float, default=0.01, help="allowed |realised - declared| share")
    add("--min-tokens", type=int, default=1_000_000, help="trained tokens before the check is enforced")
    add("--log-every", type=int, default=10)
    add("--run", help="run name in the manifest file name (default: UTC time + random suffix)")
    add("--bench", action="store_true", help="time the steps after --bench-warmup; report tokens/s, MFU")
    add("--bench-warmup", type=int, help="untimed steps (default: 10 on CUDA, compile included; 2 on CPU)")
    add("--peak-tflops", type=float, help="peak bf16 TFLOP/s for MFU (default: from the device name)")
    a = p.parse_args(argv)
    if not a.data and not a.data_args:
        p.error("give --data (the pipeline's output folder) or --data-args")
    for key, value in PRESETS[a.config].items():  # preset values fill what was not given
        if getattr(a, key) is None:
            setattr(a, key, value)
    for key in ("steps", "batch_size", "grad_accum", "eval_every", "eval_rows", "log_every", "block_size"):
        if getattr(a, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(a, key)}")
    return a


def lr_at(step: int, a: argparse.Namespace) -> float:
    """Linear warm-up, then cosine from lr down to lr/10 at the last step (nanoGPT's schedule)."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    frac = (step - a.warmup) / max(1, a.steps - 1 - a.warmup)
    return a.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, frac))))


def validate(step: int, model: GPT, data: BlendRows, a: argparse.Namespace, device: str, seen: np.ndarray,
             train_loss: list, history: list[dict], manifest: str) -> int:
    """Evaluate, write the manifest, print the per-source table, check the mix; an exit code."""
    val_loss = evaluate(model, data, a.batch_size, a.eval_rows, device)
    rows = mixture_rows(step, data, seen, train_loss, val_loss)
    history += rows
    storage.write_parquet(manifest, pa.Table.from_pylist(history, schema=VALIDATION_SCHEMA))  # atomic
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in rows:
        print(f"  {r['source']:<16} tokens {r['tokens_seen']:>12,}  share {r['realised_share']:.4f} "
              f"(declared {r['declared_share']:.4f})  train loss {fmt(r['train_loss'])}  "
              f"val loss {fmt(r['val_loss'])}")
    total = int(seen.sum())
    if total < a.min_tokens:
        print(f"mixture check: not enforced, {total:,} tokens trained < --min-tokens {a.min_tokens:,}")
        return 0
    errors = mixture_errors(rows, a.mix_tolerance)
    if errors:
        print(f"train: mixture check failed at step {step} after {total:,} tokens:\n  " + "\n  ".join(errors)
              + f"\n  the blend does not deliver the declared mix; see {manifest} and the warnings in "
              "tokens/metadata.json, then rebuild the mixture", file=sys.stderr)
        return EXIT_MIX
    print(f"mixture check: passed at step {step} (every source within {a.mix_tolerance:g} of its declared "
          "share)")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if device == "cuda" and not torch.cuda.is_available():
        print("train: error: --device cuda, but torch sees no GPU (a CPU build of torch? see "
              "tokenize/README.md)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        root, blend = open_data(a)
        data = BlendRows(None, a.block_size, a.val_frac, a.val_windows, blend=blend)
    except (DataError, ShardFormatError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    torch.manual_seed(a.seed)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls outside autocast may use TF32
        torch.backends.cudnn.allow_tf32 = True
    cfg = GPTConfig((data.vocab_size + 63) // 64 * 64, a.block_size, a.n_layer, a.n_head, a.n_embd, a.dropout)
    model = GPT(cfg).to(device)
    opt = make_optimizer(model, a.lr, a.weight_decay, device)
    use_compile = device == "cuda" if a.compile is None else a.compile
    fwd = torch.compile(model) if use_compile else model
    block, rows_per_step = a.block_size, a.batch_size * a.grad_accum
    print(f"train: {a.config}, {a.n_layer} layers, {a.n_head} heads, {a.n_embd} dims, block {block}, vocab "
          f"{cfg.vocab_size}: {model.num_params() / 1e6:.2f} M parameters (without position embeddings); "
          f"{device}, compile {use_compile}, {a.batch_size} x {a.grad_accum} rows a step")
    print(f"train: {len(data.sources)} sources, {data.n_rows:,} rows of {block} tokens a pass over the "
          f"blend; held-out windows per source {dict(zip(data.sources, data.n_val, strict=True))}")
    run = a.run or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    manifest = storage.join(root, "manifests", f"validation-{run}.parquet")
    seen = np.zeros(len(data.sources), dtype=np.int64)  # tokens trained per source: the mix check's input
    loss_sum = torch.zeros(len(data.sources), device=device)  # row losses per source, summed on device
    row_count = np.zeros(len(data.sources), dtype=np.int64)
    history: list[dict] = []
    warm = a.bench_warmup if a.bench_warmup is not None else (10 if device == "cuda" else 2)
    t_bench, t_log = None, time.perf_counter()
    for step in range(a.steps):
        if a.bench and step == warm:
            torch.cuda.synchronize() if device == "cuda" else None
            t_bench = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_now = lr_at(step, a)
        for micro in range(a.grad_accum):
            first = (step * a.grad_accum + micro) * a.batch_size
            rows = [data.train_row(r) for r in range(first, first + a.batch_size)]
            x, y = data.batch(rows, device)
            src = np.array([r[0] for r in rows])
            with autocast(device):
                try:
                    _, tok_loss = fwd(x, y)
                except Exception as exc:  # torch.compile "where it works": fall back to eager once
                    if fwd is model or step > 0:
                        raise
                    print(f"train: torch.compile failed ({type(exc).__name__}: {exc}); running eager",
                          file=sys.stderr)
                    fwd = model
                    _, tok_loss = fwd(x, y)
            (tok_loss.mean() / a.grad_accum).backward()
            # Each row's mean token loss goes to its row's source; no host sync here.
            loss_sum.index_add_(0, torch.from_numpy(src).to(device), tok_loss.detach().mean(1))
            np.add.at(row_count, src, 1)
            np.add.at(seen, src, block)
        if a.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        last = step == a.steps - 1
        if (step + 1) % a.log_every == 0 or last:
            loss, now = tok_loss.mean().item(), time.perf_counter()  # .item() syncs: only here
            logged = (step % a.log_every) + 1  # steps since the last log line
            print(f"step {step + 1:6d} | loss {loss:.4f} | lr {lr_now:.2e} | "
                  f"{logged * rows_per_step * block / (now - t_log):,.0f} tokens/s", flush=True)
            t_log = now
        if not a.bench and ((step + 1) % a.eval_every == 0 or last):
            train_loss = [v / n if n else None for v, n in zip(loss_sum.tolist(), row_count, strict=True)]
            loss_sum.zero_()
            row_count[:] = 0
            if code := validate(step + 1, model, data, a, device, seen, train_loss, history, manifest):
                return code
    if not a.bench:
        print(f"train: validation manifest {manifest}")
        return 0
    torch.cuda.synchronize() if device == "cuda" else None
    if t_bench is None:
        print(f"train: error: --bench needs --steps > --bench-warmup ({warm})", file=sys.stderr)
        return EXIT_BAD_INPUT
    dt = (time.perf_counter() - t_bench) / (a.steps - warm)
    tok_s = rows_per_step * block / dt
    achieved = flops_per_token(model, block) * tok_s
    peak, name = peak_flops(device, a.peak_tflops)
    mfu = f"{achieved / peak:.1%} of the {peak / 1e12:.0f} TFLOP/s bf16 peak of {name}" if peak else \
        f"n/a (no bf16 peak known for {name}; pass --peak-tflops)"
    print(f"bench: {a.config} on {device} ({name}), {a.steps - warm} timed steps of {rows_per_step} x "
          f"{block} tokens: {dt * 1000:.1f} ms/step, {tok_s:,.0f} tokens/s, {achieved / 1e12:.3f} TFLOP/s, "
          f"MFU {mfu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
