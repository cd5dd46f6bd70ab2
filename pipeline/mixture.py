"""The global mixing step: epochs per source, the blended sample index, the Megatron data args.

A mixture spec (tokenize/mixes/*.toml) declares a weight per source and, optionally, a token
budget. Weights are divided by their sum (a warning when the sum is not 1 within 1e-6: the
GPT-3 paper's table sums to 1.01). Every source named in the mix must have at least one
sample of tokens: a declared source with no documents raises `MixtureSourceEmpty` (one line:
the source and the collections its [tokenize] sources rules match), since silently giving
its share to the others would train on a different mix than the one asked for. A run with no
curated document at all is not an error: `build_mixture` returns `empty=True` and writes an
empty blend, so the caller can warn once and still write every manifest.

Samples are windows of seq_len + 1 tokens from a source's token stream (its shards in path
order, documents separated by end-of-text), consecutive windows sharing one token. A source
has W = (tokens - 1) // seq_len windows per epoch. From a budget of N samples a source asks
for weight * N: fewer than W is a random subset of windows, more repeats it (each epoch a
fresh permutation, both drawn from the seed), and more than max_epochs * W is capped with a
warning, its shortfall spread over the other sources by weight. The blended order is built
the way Megatron's BlendedDataset builds it: at step k take the source furthest below
weight * k.

What the driver holds as the corpus grows: one `shards` row per file written (token shards and
Megatron parts, a few hundred bytes each), a few integers per source, and one chunk of the
blended index (pipeline/blend.py: 262,144 samples, ~15 MB), streamed to storage chunk by chunk; no
token and no whole index array (before: samples x 5-9 bytes plus every source's window
permutation). The Megatron export is written by the tokenize tasks (pipeline/megatron.py);
here only the weighted list of their parts is written: tokens/megatron/data_args.txt.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import megatron, storage
from pipeline import shards as shard_format
from pipeline.blend import blend_chunks, blend_order, index_dtypes, window_order

__all__ = ["MixtureError", "MixtureResult", "MixtureSourceEmpty", "blend_order", "build_mixture", "load_mix",
           "matching_collections", "plan_samples", "window_order"]

log = logging.getLogger(__name__)
MIXES_DIR = Path(__file__).resolve().parents[1] / "tokenize" / "mixes"
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MixSpec:
    """A parsed mixture TOML: declared weights (as written) and the optional token budget."""

    name: str
    weights: dict[str, float]
    total_tokens: int | None = None
    path: str | None = None


def resolve_mix_path(mix: str) -> Path:
    """A path as given, else a bare name from tokenize/mixes/ ("gpt3" -> tokenize/mixes/gpt3.toml)."""
    path = Path(mix)
    if path.is_file():
        return path
    builtin = MIXES_DIR / (mix if mix.endswith(".toml") else f"{mix}.toml")
    if builtin.is_file():
        return builtin
    known = sorted(p.stem for p in MIXES_DIR.glob("*.toml")) if MIXES_DIR.is_dir() else []
    raise ValueError(f"mix {mix!r}: no such file, and not one of the shipped mixes {known}")


def load_mix(mix: str) -> MixSpec:
    path = resolve_mix_path(mix)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"name", "description", "total_tokens", "weights"})
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {unknown}; valid: name, description, total_tokens, [weights]"
        )
    weights = raw.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{path}: needs a [weights] table, e.g. CommonCrawl = 0.6")
    for source, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ValueError(f"{path}: weight of {source!r} must be a number >= 0, got {w!r}")
    if sum(weights.values()) <= 0:
        raise ValueError(f"{path}: weights sum to 0; give at least one source a positive weight")
    total = raw.get("total_tokens")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        raise ValueError(f"{path}: total_tokens must be a positive integer, got {total!r}")
    floats = {k: float(v) for k, v in weights.items()}
    return MixSpec(str(raw.get("name", path.stem)), floats, total, str(path))


def normalise_weights(weights: dict[str, float], warnings: list[str]) -> dict[str, float]:
    """Divide by the sum; warn when the sum is not 1 within WEIGHT_TOLERANCE."""
    total = sum(weights.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        _warn(warnings, f"mix weights sum to {total:.6g}, not 1; dividing each by the sum")
    return {s: w / total for s, w in weights.items()}


def _warn(warnings: list[str], message: str) -> None:
    log.warning(message)
    warnings.append(message)


def _largest_remainder(targets: dict[str, float], total: int, caps: dict[str, int]) -> dict[str, int]:
    """Integers summing to `total`, each the floor or ceiling of its target and never above its
    cap; the largest remainders get the ceiling (ties by name)."""
    counts = {s: min(int(np.floor(t)), caps[s]) for s, t in targets.items()}
    short = total - sum(counts.values())
    room = [s for s in sorted(targets, key=lambda s: (counts[s] - targets[s], s)) if counts[s] < caps[s]]
    for s in room[: max(0, short)]:
        counts[s] += 1
    return counts


def plan_samples(
    windows: dict[str, int], weights: dict[str, float], n_samples: int, max_epochs: float,
    warnings: list[str],
) -> dict[str, int]:
    """Samples per source: weight * n_samples, capped at max_epochs epochs, the shortfall of a
    capped source spread over the others by weight (water-filling)."""
    caps = {s: int(np.floor(max_epochs * windows[s])) for s in weights}
    active = {s for s, w in weights.items() if w > 0}
    fixed: dict[str, int] = {}
    remaining = n_samples
    while active:
        wsum = sum(weights[s] for s in active)
        targets = {s: remaining * weights[s] / wsum for s in active}
        # The tolerance keeps float noise in weight * n_samples from "capping" an exact fit.
        over = sorted(s for s in active if targets[s] > caps[s] + 1e-6)
        if not over:
            counts = _largest_remainder(targets, remaining, caps)
            return {**fixed, **counts, **{s: 0 for s in weights if weights[s] == 0}}
        for s in over:
            _warn(warnings, (
                f"source {s!r}: its share of {targets[s]:.0f} samples is "
                f"{targets[s] / windows[s]:.2f} epochs "
                f"of its {windows[s]} windows; capped at max_epochs={max_epochs:g} ({caps[s]} samples), "
                "the rest goes to the other sources by weight"
            ))
            fixed[s] = caps[s]
            remaining -= caps[s]
            active.discard(s)
    _warn(warnings, (
        f"every source hit max_epochs={max_epochs:g}: the blend holds {sum(fixed.values())} samples, "
        f"not the {n_samples} the budget asks for; add data, raise max_epochs or lower total_tokens"
    ))
    return {**fixed, **{s: 0 for s in weights if weights[s] == 0}}


@dataclass
class MixtureResult:
    """The `shards` and `mixture` manifest tables, the metadata written, and the warnings.
    `empty`: no curated document reached tokenize; `empty_collections`: input collections with
    no curated document (the caller warns once; they are in `warnings` too, not logged here)."""

    shards: pa.Table
    mixture: pa.Table
    metadata: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    empty: bool = False
    empty_collections: list[str] = field(default_factory=list)


class MixtureError(ValueError):
    """The mix cannot be built from this data. `result` holds the manifest tables when known,
    so the caller can write them before it exits (code 2)."""

    def __init__(self, message: str, result: MixtureResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class MixtureSourceEmpty(MixtureError):
    """A source the mix declares (weight > 0) received no document."""

    def __init__(self, source: str, matching_collections: list[str], mix_name: str = "",
                 also_empty: tuple[str, ...] = (), result: MixtureResult | None = None) -> None:
        self.source, self.matching_collections, self.also_empty = source, matching_collections, also_empty
        feeds = ", ".join(matching_collections) or "none"
        also = f"; also empty: {', '.join(repr(s) for s in also_empty)}" if also_empty else ""
        super().__init__(f"mix {mix_name!r}: declared source {source!r} received no document; collections "
                         f"its [tokenize] sources rules match: {feeds}{also}", result)


def matching_collections(source: str, config: Any) -> list[str]:
    """Who can feed `source`: each [tokenize] sources rule named so (its collection, or "any
    collection" when the rule tests none), and a collection of that very name, which becomes
    the source when no rule matches its documents."""
    out = []
    for i, rule in enumerate(getattr(config, "sources", None) or []):
        if rule.get("name") == source:
            out.append(f"{rule['collection']!r} (rule {i})" if "collection" in rule else f"any (rule {i})")
    return out + [f"{source!r} (no rule matching, by collection name)"]


def _flatten(shard_rows: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows flat, as lists per task, or as TokenizeShardResult objects; and the documents seen
    per collection (from the results that carry it)."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for item in shard_rows:
        if isinstance(item, dict):
            rows.append(item)
        elif hasattr(item, "shards"):
            rows.extend(item.shards)
            for c, n in (getattr(item, "collections", None) or {}).items():
                seen[c] = seen.get(c, 0) + n
        else:
            rows.extend(item)
    return [dict(r, kind=r.get("kind") or "token_shard") for r in rows], seen


def _choose_weights(
    mix: MixSpec | None, windows: dict[str, int], tokens: dict[str, int], seq_len: int, warnings: list[str],
    config: Any,
) -> tuple[dict[str, float], dict[str, float | None]]:
    """(normalised weights over every source with tokens, declared weights as written)."""
    if mix is None:
        # Default mixture: weight = windows (~ tokens / seq_len), so every source is used once.
        for s in sorted(s for s, w in windows.items() if w == 0):
            _warn(warnings, f"source {s!r} has {tokens[s]} tokens, fewer than one sample of "
                            f"{seq_len + 1}; left out of the blend")
        declared: dict[str, float | None] = {s: None for s in windows}
        total = sum(windows.values())
        if total == 0:
            # A tiny run still gets its token shards and Megatron files; only the blend is empty.
            _warn(warnings, f"no source has seq_len + 1 = {seq_len + 1} tokens: the blend is empty; "
                            "add documents or lower [tokenize] seq_len")
            return {s: 0.0 for s in windows}, declared
        return {s: w / total for s, w in windows.items()}, declared
    missing = sorted(s for s, w in mix.weights.items() if w > 0 and s not in windows)
    if missing:
        raise MixtureSourceEmpty(missing[0], matching_collections(missing[0], config), mix.name,
                                 tuple(missing[1:]))
    small = sorted(s for s, w in mix.weights.items() if w > 0 and windows[s] == 0)
    if small:
        raise MixtureError(
            f"mix {mix.name!r}: source(s) {small} have fewer than seq_len + 1 = {seq_len + 1} tokens, "
            "not one sample; add documents, lower seq_len, or drop them from the mix"
        )
    for s in sorted(set(windows) - set(mix.weights)):
        _warn(warnings, f"source {s!r} ({tokens[s]} tokens) is not in mix {mix.name!r}: "
                        "tokenized, not blended")
    weights = normalise_weights(mix.weights, warnings)
    declared = {s: mix.weights.get(s, 0.0) for s in windows}
    return {s: weights.get(s, 0.0) for s in windows}, declared


def _check_rows(root: str, token_rows: list[dict[str, Any]]) -> None:
    """Each token row against its file's header. Local outputs only: the rows come from this
    run's tasks, and one GET per shard in the driver would dominate on an object store."""
    if not storage.is_local(root):
        return
    for row in token_rows:
        shard = shard_format.TokenShard(storage.join(root, row["path"]))  # header only: cheap
        if (shard.n_tokens, shard.n_docs) != (row["tokens"], row["docs"]):
            raise MixtureError(
                f"{row['path']}: holds {shard.n_tokens} tokens / {shard.n_docs} docs, its row says "
                f"{row['tokens']} / {row['docs']}: stale output, re-run the tokenize step"
            )


def _mixture_rows(by_source: dict[str, list[dict]], tokens: dict[str, int], windows: dict[str, int],
                  counts: dict[str, int], weights: dict[str, float], declared: dict[str, float | None],
                  seq_len: int, mix: MixSpec | None) -> list[dict[str, Any]]:
    n_total = sum(counts.values())
    names = sorted(set(by_source) | {s for s, w in (mix.weights.items() if mix else []) if w > 0})
    rows = []
    for s in names:
        c, w = counts.get(s, 0), windows.get(s, 0)
        rows.append({
            "source": s, "declared_weight": declared.get(s, mix.weights.get(s) if mix else None),
            "normalised_weight": weights.get(s, 0.0), "docs": sum(r["docs"] for r in by_source.get(s, [])),
            "tokens_available": tokens.get(s, 0), "windows": w, "samples": c, "tokens_selected": c * seq_len,
            "epochs": c / w if w else 0.0, "realised_share": c / n_total if n_total else 0.0,
        })
    return rows


def _data_args(root: str, parts: dict[str, list[dict]], tokens: dict[str, int], weights: dict[str, float]
               ) -> dict[str, Any] | None:
    """Write tokens/megatron/data_args.txt: every part of every weighted source, weight = the
    source's share x the part's share of the source's tokens. Prefixes relative to DIR."""
    url = storage.join(root, "megatron", megatron.DATA_ARGS_FILE)
    pairs = [(weights[s] * r["tokens"] / tokens[s], f"{storage.basename(root)}/{r['path'].removesuffix('.bin')}")
             for s in sorted(parts) if weights.get(s, 0) > 0 for r in parts[s]]
    if not pairs:
        storage.remove(url)  # no stale list from an earlier run may outlive its parts
        return None
    sha = storage.write_text(url, megatron.data_args_text(pairs))
    return {"data_args": f"megatron/{megatron.DATA_ARGS_FILE}", "sha256": sha, "parts": len(pairs),
            "parts_per_source": {s: len(parts[s]) for s in sorted(parts) if weights.get(s, 0) > 0},
            "source_weights": {s: weights[s] for s in sorted(parts) if weights.get(s, 0) > 0}}


def build_mixture(
    out_dir: str, shard_rows: Any, config: Any, tokenizer_spec: Any, config_hash: str | None = None,
    collections: Any = (),
) -> MixtureResult:
    """Blend the token shards under `out_dir` (DIR/tokens, a local path or a URL) into the
    mixture the config asks for.

    `shard_rows` are the rows (or results) of every tokenize_shard task; `collections` the input
    collections, to name the ones that got nothing. Writes tokens/blend/, tokens/metadata.json,
    tokens/README.md and, when Megatron parts were written, tokens/megatron/data_args.txt;
    returns the `shards` and `mixture` tables (paths relative to DIR). Raises MixtureError
    (MixtureSourceEmpty for a declared source with no document) with `.result` set.
    """
    root = storage.normalize(str(out_dir))
    rows, seen = _flatten(shard_rows)
    rows.sort(key=lambda r: (r["source"], r["path"]))
    warnings: list[str] = []
    empty_collections = sorted(c for c in {str(c) for c in collections} if not seen.get(c))
    for c in empty_collections:  # appended, not logged: the caller warns once for all of them
        warnings.append(f"collection {c!r}: no curated document reached the tokenize step")
    token_rows = [r for r in rows if r["kind"] == "token_shard"]
    _check_rows(root, token_rows)
    by_source: dict[str, list[dict[str, Any]]] = {}
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in token_rows:
        by_source.setdefault(row["source"], []).append(row)
    for row in rows:
        if row["kind"] == "megatron_bin":
            parts.setdefault(row["source"], []).append(row)
    seq_len = config.seq_len
    tokens = {s: sum(r["tokens"] for r in rs) for s, rs in by_source.items()}
    windows = {s: max(0, (t - 1) // seq_len) for s, t in tokens.items()}
    mix = load_mix(config.mix) if config.mix else None
    dir_name = storage.basename(root)
    shard_table = _table([dict(r, path=f"{dir_name}/{r['path']}") for r in rows], _SHARDS_SCHEMA)
    empty = not token_rows
    weights: dict[str, float] = {}
    declared: dict[str, float | None] = {}
    try:
        if empty:
            warnings.append("no curated document reached the tokenize step: the token output is empty"
                            + (f" and mix {mix.name!r} gets nothing" if mix else ""))
        else:
            weights, declared = _choose_weights(mix, windows, tokens, seq_len, warnings, config)
        live = {s: w for s, w in weights.items() if w > 0}
        if not live:
            counts: dict[str, int] = {}
        elif mix is None:
            counts = {s: windows[s] for s in live}
        elif mix.total_tokens is not None:
            counts = plan_samples(windows, live, mix.total_tokens // seq_len, config.max_epochs, warnings)
        else:
            # No budget: the largest blend in which no source repeats.
            n = min(int(windows[s] / w + 1e-9) for s, w in live.items())
            counts = plan_samples(windows, live, n, min(1.0, config.max_epochs), warnings)
        if mix is not None and not empty and sum(counts.values()) == 0:
            raise MixtureError(f"mix {mix.name!r} selects no sample: total_tokens below seq_len={seq_len}, "
                               "or max_epochs too small for the data")
    except MixtureError as exc:
        exc.result = MixtureResult(shard_table, _table(_mixture_rows(
            by_source, tokens, windows, {}, weights, declared, seq_len, mix), _MIXTURE_SCHEMA), {}, warnings)
        raise
    blended = [s for s in sorted(counts) if counts[s] > 0]
    n_total = sum(counts[s] for s in blended)
    dtypes = index_dtypes(len(blended), max(windows.values(), default=0))
    blend_files = shard_format.write_blend(
        root, blend_chunks([counts[s] for s in blended], [windows[s] for s in blended], blended, config.seed),
        n_total, *dtypes)
    megatron_meta = _data_args(root, parts, tokens, weights) if config.megatron else None
    metadata = {
        "format": "gristmill-tokens", "version": shard_format.VERSION,
        "tokenizer": tokenizer_spec.describe() if tokenizer_spec else None,
        "config_hash": config_hash or config.hash,
        "mix": {"name": mix.name if mix else "default", "path": mix.path if mix else None,
                "declared_weights": mix.weights if mix else None,
                # Declared / sum over sources with data; blend.sources[].weight is what the blend
                # realises (they differ only where max_epochs capped a source: see warnings).
                "normalised_weights": {s: w for s, w in weights.items() if w > 0},
                "total_tokens": mix.total_tokens if mix else None},
        "blend": {
            "seq_len": seq_len, "seed": config.seed, "n_samples": n_total, "files": blend_files,
            "sources": [{"name": s, "shards": [r["path"] for r in by_source[s]], "samples": counts[s],
                         "windows": windows[s], "weight": counts[s] / n_total} for s in blended],
        },
        "sources": {s: {"shards": [r["path"] for r in by_source[s]], "tokens": tokens[s]} for s in by_source},
        "megatron": megatron_meta,
        "empty": empty,
        "warnings": warnings,
    }
    storage.write_json(storage.join(root, shard_format.METADATA_FILE), metadata)
    storage.write_text(storage.join(root, "README.md"), _readme(metadata))
    mixture = _table(_mixture_rows(by_source, tokens, windows, counts, weights, declared, seq_len, mix),
                     _MIXTURE_SCHEMA)
    return MixtureResult(shard_table, mixture, metadata, warnings, empty, empty_collections)


_SHARDS_SCHEMA = pa.schema([
    ("path", pa.string()), ("kind", pa.string()), ("source", pa.string()), ("docs", pa.int64()),
    ("tokens", pa.int64()), ("dtype", pa.string()), ("sha256", pa.string()), ("tokenizer", pa.string()),
    ("tokenizer_sha256", pa.string()), ("curated_shard", pa.string()),
])
_MIXTURE_SCHEMA = pa.schema([
    ("source", pa.string()), ("declared_weight", pa.float64()), ("normalised_weight", pa.float64()),
    ("docs", pa.int64()), ("tokens_available", pa.int64()), ("windows", pa.int64()), ("samples", pa.int64()),
    ("tokens_selected", pa.int64()), ("epochs", pa.float64()), ("realised_share", pa.float64()),
])


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def _readme(meta: dict[str, Any]) -> str:
    blend, tok = meta["blend"], meta["tokenizer"]
    lines = ["# tokens/: what is where (written by gristmill's tokenize step)", ""]
    if tok:
        lines += [f"Tokenizer: {tok['name']} (sha256 {tok['sha256'][:16]}..., end-of-text {tok['eot_id']}). "
                  f"Mix: {meta['mix']['name']}.", ""]
    if meta["empty"]:
        lines += ["No curated document reached the tokenize step: there are no token files.", ""]
    lines += [
        "- `<source>/<curated shard>.bin` + `.json`: token shards (format: pipeline/shards.py);",
        "  every document ends with the end-of-text token; the .json names the tokenizer, doc ids, sha256.",
        f"- `blend/source_index.npy`, `blend/sample_index.npy`: {blend['n_samples']} blended samples of "
        f"{blend['seq_len']} + 1 tokens;",
        "  sample i is window sample_index[i] of source source_index[i]",
        "  (sources in the order of metadata.json blend.sources).",
        "  Read with `pipeline.shards.BlendedSamples(\"tokens\")`.",
        "- `metadata.json`: sources, their shards in stream order, blend sources and weights, warnings.",
    ]
    if meta["megatron"]:
        lines += ["- `megatron/<source>/<curated shard>_text_document.{bin,idx}`: Megatron-LM indexed datasets,",
                  "  one part per tokenize task and source; `megatron/data_args.txt` lists them with weights",
                  f"  ({meta['megatron']['parts']} parts): from the output folder, train with Megatron-LM's",
                  "  `--data-args-path tokens/megatron/data_args.txt` (or pass its text to `--data-path`),",
                  "  or `python tokenize/train.py --data . --data-args tokens/megatron/data_args.txt`."]
    return "\n".join(lines) + "\n"
