"""The bundled trainer (tokenize/train.py) on a real pipeline output: it learns, it validates the
mixture, and it refuses a blend that does not deliver the declared shares.

One module-scoped pipeline run over the zh + web fixture WARCs feeds every test. It trains a
512-token byte-level BPE ([tokenize] tokenizer = "train") so that the tiny model's softmax is
cheap: with GPT-2's 50k vocabulary the output layer is 97% of the tiny model's FLOPs and a step
is ~35x slower on CPU (bench/results/train.md).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import FIXTURES, PYTHON, REPO, run_pipeline

TRAIN = REPO / "tokenize" / "train.py"
COLUMNS = ["step", "source", "tokens_seen", "realised_share", "declared_share", "train_loss", "val_loss"]
# One thread: the test machine's 2 cores are shared, and two threads contending for one free core
# often run a model this small several times slower than one (bench/results/train.md).
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def load_train():
    """tokenize/train.py as a module (it is a script in a plain folder, not a package)."""
    spec = importlib.util.spec_from_file_location("gristmill_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """A real pipeline output: curated zh + web fixture WARCs, tokenized and blended."""
    root = tmp_path_factory.mktemp("train")
    config = root / "small-vocab.toml"
    config.write_text('[tokenize]\ntokenizer = "train"\nvocab_size = 512\nseq_len = 256\nmegatron = false\n')
    result = run_pipeline("--input", str(FIXTURES / "zh"), "--input", str(FIXTURES / "web"),
                          "--output", str(root / "out"), "--config", str(config), "--workers", "0", "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((root / "out" / "tokens" / "metadata.json").read_text())
    assert {s["name"] for s in meta["blend"]["sources"]} == {"web", "zh"}, meta["blend"]["sources"]
    return root / "out"


def train(data, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(TRAIN), "--data", str(data), "--device", "cpu", *args],
                          check=False, capture_output=True, text=True, timeout=300, env=ENV)


def copy_output(out, tmp_path):
    """A private copy of the pipeline output, to damage without touching the shared one."""
    shutil.copytree(out / "tokens", tmp_path / "tokens")
    return tmp_path


def test_tiny_model_learns_and_mixture_validates(out):
    r = train(out, "--config", "tiny", "--steps", "300", "--batch-size", "8", "--log-every", "1",
              "--eval-every", "100", "--min-tokens", "40000", "--run", "smoke")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    losses = [float(x) for x in re.findall(r"^step +\d+ \| loss ([\d.]+)", r.stdout, re.MULTILINE)]
    assert len(losses) == 300
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    # ln(512) = 6.24 at initialisation; 300 steps of 512 tokens bring the tiny model well below.
    assert first > 5.8 and last < first - 0.5, (first, last)
    assert r.stdout.count("mixture check: passed") == 3, r.stdout  # steps 100, 200, 300, all enforced

    table = pq.read_table(out / "manifests" / "validation-smoke.parquet")
    assert table.column_names == COLUMNS
    rows = table.to_pylist()
    assert sorted({row["step"] for row in rows}) == [100, 200, 300]
    final = {row["source"]: row for row in rows if row["step"] == 300}
    assert set(final) == {"web", "zh"}
    assert sum(row["tokens_seen"] for row in final.values()) == 300 * 8 * 64
    # The declared share is the pipeline's own normalised weight (manifests/mixture.parquet).
    mixture = {m["source"]: m for m in pq.read_table(out / "manifests" / "mixture.parquet").to_pylist()}
    early = {row["source"]: row for row in rows if row["step"] == 100}
    for name, row in final.items():
        assert row["declared_share"] == pytest.approx(mixture[name]["normalised_weight"], abs=1e-9)
        assert abs(row["realised_share"] - row["declared_share"]) <= 0.01
        assert row["val_loss"] < math.log(512), row  # held-out rows of every source: below chance
        assert row["train_loss"] < early[name]["train_loss"], (row, early[name])
    # The held-out loss, averaged over sources, still falls between steps 100 and 300 (one source's
    # held-out tail may be unlike the rest of it and stall).
    assert np.mean([r["val_loss"] for r in final.values()]) < np.mean([r["val_loss"] for r in early.values()])


def test_wrong_declared_weights_fail_naming_the_source(out, tmp_path):
    data = copy_output(out, tmp_path)
    meta_path = data / "tokens" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    real = {s["name"]: s["weight"] for s in meta["blend"]["sources"]}
    # Declare a mix 0.1 away from what the blend delivers: as if the index were built from another spec.
    meta["mix"]["declared_weights"] = {"web": real["web"] - 0.1, "zh": real["zh"] + 0.1}
    meta_path.write_text(json.dumps(meta))
    # Step 20 has 20 x 8 x 64 = 10,240 tokens, under --min-tokens: reported, not enforced; step 40 fails.
    r = train(data, "--steps", "60", "--batch-size", "8", "--eval-every", "20", "--min-tokens", "15000",
              "--run", "wrong")
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "mixture check: not enforced, 10,240 tokens trained < --min-tokens 15,000" in r.stdout
    assert "mixture check failed at step 40 after 20,480 tokens" in r.stderr
    assert "step     60" not in r.stdout  # it stopped at the failed check
    last = {row["source"]: row for row in pq.read_table(data / "manifests" / "validation-wrong.parquet")
            .to_pylist() if row["step"] == 40}
    for name in ("web", "zh"):
        row = last[name]
        assert (f"source '{name}': realised share {row['realised_share']:.4f}, declared "
                f"{row['declared_share']:.4f}") in r.stderr
    assert last["zh"]["declared_share"] == pytest.approx(real["zh"] + 0.1)


def test_corrupt_blend_index_over_representing_a_source_fails(out, tmp_path):
    data = copy_output(out, tmp_path)
    blend = data / "tokens" / "blend"
    meta = json.loads((data / "tokens" / "metadata.json").read_text())
    names = [s["name"] for s in meta["blend"]["sources"]]
    zh, windows = names.index("zh"), meta["blend"]["sources"][names.index("zh")]["windows"]
    source = np.load(blend / "source_index.npy")
    sample = np.load(blend / "sample_index.npy")
    # Every sample of the first half now comes from zh (valid zh windows), as a buggy blender might do.
    half = len(source) // 2
    source[:half] = zh
    sample[:half] = np.arange(half) % windows
    np.save(blend / "source_index.npy", source)
    np.save(blend / "sample_index.npy", sample)
    r = train(data, "--steps", "20", "--batch-size", "8", "--eval-every", "20", "--min-tokens", "1000")
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    msg = re.search(r"source 'zh': realised share ([\d.]+), declared ([\d.]+)", r.stderr)
    assert msg, r.stderr
    assert float(msg.group(1)) == 1.0
    assert float(msg.group(2)) == pytest.approx(meta["blend"]["sources"][zh]["weight"], abs=1e-4)


def test_held_out_windows_are_never_trained_and_rows_keep_the_blend(out):
    t = load_train()
    data = t.BlendRows(out / "tokens", block_size=64, val_frac=0.05, val_windows=8)
    assert data.chunks == 256 // 64
    counts = np.zeros(len(data.sources), dtype=int)
    for r in range(data.n_rows):
        s, w, _ = data.train_row(r)
        assert w < data.windows[s] - data.n_val[s]  # never a held-out window
        counts[s] += 1
    blended = np.bincount(np.asarray(data.blend.source_index), minlength=len(data.sources)) * data.chunks
    assert counts.tolist() == blended.tolist()  # remapping kept every source's share exactly
    for s in range(len(data.sources)):
        held = data.val_rows(s, limit=10_000)
        assert len(held) == data.n_val[s] * data.chunks >= data.chunks
        assert all(w >= data.windows[s] - data.n_val[s] for _, w, _ in held)
    # Rows are the blended samples' tokens: row (s, w, 0) starts window w of source s.
    s, w, _ = data.train_row(0)
    x, y = data.batch([(s, w, 0)], "cpu")
    assert torch.equal(x[0], torch.from_numpy(data.blend.streams[s].read(w * 256, 64)))
    assert torch.equal(y[0, :-1], x[0, 1:])


@pytest.fixture(scope="module")
def megatron_out(out, tmp_path_factory):
    """The same curated shards tokenized with Megatron parts (the fixture run has them off):
    DIR/tokens/megatron/<source>/<shard>_text_document.{bin,idx} and data_args.txt."""
    from pipeline.mixture import build_mixture
    from pipeline.tokens import TokenizeConfig, prepare_tokenizer, tokenize_shard

    root = tmp_path_factory.mktemp("megatron")
    shutil.copytree(out / "curated", root / "curated")
    config = TokenizeConfig(tokenizer=str(out / "tokens" / "tokenizer.json"), seq_len=256)
    spec = prepare_tokenizer(config, str(root / "tokens"))
    results = [tokenize_shard(str(p), str(root / "tokens"), config, spec)
               for p in sorted((root / "curated").glob("*.parquet"))]
    return root, build_mixture(str(root / "tokens"), results, config, spec)


def test_trains_on_megatron_data_args_and_checks_their_mix(megatron_out):
    root, mix = megatron_out
    args_file = root / "tokens" / "megatron" / "data_args.txt"
    r = train(root, "--data-args", str(args_file), "--steps", "40", "--batch-size", "8", "--eval-every", "20",
              "--min-tokens", "10000", "--run", "margs")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.count("mixture check: passed") == 2, r.stdout
    rows = [x for x in pq.read_table(root / "manifests" / "validation-margs.parquet").to_pylist() if x["step"] == 40]
    declared = {m["source"]: m["normalised_weight"] for m in mix.mixture.to_pylist()}
    assert {x["source"] for x in rows} == set(declared) == {"web", "zh"}
    for x in rows:  # the data args' weights, summed per source, are the mix's shares
        assert x["declared_share"] == pytest.approx(declared[x["source"]], abs=1e-9)
        assert abs(x["realised_share"] - x["declared_share"]) <= 0.01


def test_data_args_streams_are_the_token_shards(megatron_out):
    """Read through the Megatron parts, each source's stream is its gristmill shards' tokens,
    and `--data FILE` finds the same list."""
    from pipeline.shards import TokenStream

    t = load_train()
    root, mix = megatron_out
    args_file = root / "tokens" / "megatron" / "data_args.txt"
    a = t.parse_args(["--data", str(args_file)])
    base, blend = t.open_data(a)
    assert base == str(root) and blend.sources == ["web", "zh"] and len(blend) > 0
    for name, stream in zip(blend.sources, blend.streams, strict=True):
        shards = TokenStream([root / "tokens" / p for p in mix.metadata["sources"][name]["shards"]])
        assert len(stream) == len(shards)
        np.testing.assert_array_equal(stream.read(0, len(stream)), shards.read(0, len(shards)))
    assert blend.metadata["tokenizer"]["vocab_size"] == 512  # from tokens/metadata.json beside it


def test_missing_tokens_is_a_clear_error(tmp_path, capsys):
    assert load_train().main(["--data", str(tmp_path), "--steps", "1"]) == 2
    assert "no tokens/metadata.json" in capsys.readouterr().err


def test_bench_reports_tokens_per_second(out, capsys):
    t = load_train()
    before = sorted((out / "manifests").glob("validation-*"))
    args = ["--data", str(out), "--bench", "--steps", "4", "--bench-warmup", "1", "--device", "cpu"]
    assert t.main(args) == 0
    out_text = capsys.readouterr().out
    line = next(x for x in out_text.splitlines() if x.startswith("bench:"))
    assert re.search(r"3 timed steps of 16 x 64 tokens: [\d.]+ ms/step, [\d,]+ tokens/s", line), line
    assert "MFU n/a (no bf16 peak known for cpu" in line
    assert sorted((out / "manifests").glob("validation-*")) == before  # a bench writes no manifest


def test_gpt2_small_size_and_flops():
    t = load_train()
    with torch.device("meta"):  # shapes only: no 500 MB of weights on a CI runner
        model = t.GPT(t.GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768))
    assert model.num_params(non_embedding=False) == 124_475_904  # GPT-2 small, vocab padded to 50304
    # 6 N + 12 L H Q T, N without position embeddings (nanoGPT's estimate_mfu): 0.855 GFLOP a token.
    assert t.flops_per_token(model, 1024) == 6 * 123_689_472 + 12 * 12 * 12 * 64 * 1024


@pytest.mark.gpu
def test_cpu_and_cuda_agree_on_one_step():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    t = load_train()
    torch.manual_seed(0)
    cfg = t.GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=2, n_embd=64)
    cpu = t.GPT(cfg)
    gpu = t.GPT(cfg).cuda()
    gpu.load_state_dict(cpu.state_dict())
    batch = torch.randint(0, 512, (8, 65), generator=torch.Generator().manual_seed(1))
    losses = {}
    for device, model in (("cpu", cpu), ("cuda", gpu)):
        opt = t.make_optimizer(model, 1e-3, 0.1, device)
        x, y = batch[:, :-1].to(device), batch[:, 1:].to(device)
        seen = []
        for _ in range(2):  # the loss before the step, and after one fused/unfused AdamW step
            with t.autocast(device):
                _, loss = model(x, y)
            seen.append(loss.mean().item())
            loss.mean().backward()
            opt.step()
            opt.zero_grad()
        losses[device] = seen
    # bf16 autocast on CUDA against float32 on CPU: ~3 significant digits.
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=2e-2), losses
