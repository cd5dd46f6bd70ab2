"""Train a quality classifier GPT-3 style: reference text (positive) against raw web text (negative).

    python -m filters.train_quality --positive wiki_run/:wiki --positive books/*.txt \
        --negative cc_run/ --output my_quality.bin

A SOURCE is either a finished run's output folder (its `curated/*.parquet`; `DIR:COLLECTION` keeps
one collection) or anything `--input` accepts (a file, glob or directory; `[FORMAT:]PATH`), read by
the registered reader of its format and sent through the configured per-document stages (for WARC:
read, extract and the heuristics), so negatives are raw pages that passed the heuristics. The
`quality_model` stage itself is never applied here.

Then: exact duplicates (after normalisation) are removed, a text found in both classes is dropped
from both, the larger class is down-sampled to the smaller (seeded), 10 % of each class is held out
by a hash of its text, and fastText is trained with one thread and a fixed seed, so the same inputs
give the same model bytes. An output ending in `.ftz` is quantized. Printed: ROC-AUC, precision and
recall at the operating point, on the held-out part. Beside the model: MODEL.json and MODEL.md, the
model card (sources, counts, date, settings, metrics, config hash).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from filters.quality_model import normalize, positive_probability


def _pin_mmap_threshold() -> None:
    """fastText's DenseMatrix::uniform initialises only a tenth of the input matrix when thread=1;
    the rest is whatever malloc returns. Making every allocation >= 128 kB a fresh (zeroed) mmap
    makes repeated trainings in one process give the same bytes (bench/train_toxicity.py measured
    it). Called by `train()` only: this module is imported by the stage registry's discovery, and
    a pipeline worker's malloc must not change because of it."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except OSError:  # not glibc: training works, repeated runs may differ
        pass


class SourceError(ValueError):
    """A SOURCE that cannot be read: the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    positive_label: str = "__label__hq"
    negative_label: str = "__label__cc"
    holdout: float = 0.1
    seed: int = 1
    threshold: float = 0.5      # the operating point the metrics are reported at
    max_chars: int = 10_000
    lowercase: bool = True
    newline: str = " "
    min_chars: int = 200        # shorter texts teach the model little and are skipped
    dim: int = 32
    epoch: int = 25
    lr: float = 0.5
    word_ngrams: int = 2
    min_count: int = 2
    bucket: int = 200_000
    minn: int = 0
    maxn: int = 0
    # Quantization (.ftz output): keep this many word and n-gram rows (0: all).
    cutoff: int = 50_000

    def fasttext_args(self) -> dict:
        return {"dim": self.dim, "epoch": self.epoch, "lr": self.lr, "wordNgrams": self.word_ngrams,
                "minCount": self.min_count, "bucket": self.bucket, "minn": self.minn, "maxn": self.maxn,
                "loss": "softmax", "thread": 1, "seed": self.seed, "verbose": 0}


@dataclasses.dataclass
class Source:
    spec: str
    texts: list[str]
    read: int = 0  # documents read (kept and dropped by the stages)


def _run_folder(spec: str) -> tuple[str, str | None] | None:
    """(folder, collection) when `spec` names a finished run's output folder, else None."""
    from pipeline import storage

    for folder, coll in ((spec, None), *([tuple(spec.rsplit(":", 1))] if ":" in spec else [])):
        if coll is not None and "/" in coll:
            continue
        if storage.isdir(storage.join(folder, "curated")):
            return folder, coll
    return None


def _read_run(folder: str, collection: str | None, spec: str) -> Source:
    from pipeline import storage

    files = sorted(f for f in storage.list_files(storage.join(folder, "curated")) if f.endswith(".parquet"))
    if not files:
        raise SourceError(f"{spec}: {folder}/curated holds no parquet files (did the run finish?)")
    texts, seen_colls = [], set()
    for f in files:
        t = storage.read_parquet(f, columns=["text", "collection"])
        for text, coll in zip(t["text"].to_pylist(), t["collection"].to_pylist(), strict=True):
            seen_colls.add(coll)
            if collection is None or coll == collection:
                texts.append(text or "")
    if collection is not None and collection not in seen_colls:
        raise SourceError(f"{spec}: no collection {collection!r} in {folder}/curated; it has {sorted(seen_colls)}")
    return Source(spec, texts, len(texts))


def _read_inputs(spec: str, config) -> Source:
    """Read an input spec through its reader and the configured per-document stages."""
    from pipeline.inputs import InputError, resolve_inputs
    from pipeline.registry import applies, build_stages, reader_for

    try:
        files = resolve_inputs([spec])
    except InputError as exc:
        raise SourceError(str(exc)) from None
    if not files:
        raise SourceError(f"{spec}: no input files found")
    stages = [s for s in build_stages(config) if not s.name.startswith("quality_model")]
    names = [n for n in config.pipeline.stages if n != "quality_model"]
    texts, read = [], 0
    for f in files:
        try:
            entry = reader_for(f.format)
        except KeyError:
            raise SourceError(f"{spec}: no reader is registered for format {f.format!r} yet ({f.path})") from None
        reader = entry.cls(config[f.format] if f.format in config.sections else None)
        use = [s for s, n in zip(stages, names, strict=True) if applies(n, f.format)]
        for s in use:
            s.ensure_setup()
        for batch in _batches(reader.read(f.path, f.shard_id), config.pipeline.batch_size):
            read += len(batch)
            alive = [d for d in batch if d.kept]
            for s in use:
                if alive:
                    s.process_batch(alive)
                    alive = [d for d in alive if d.kept]
            texts += [d.text for d in alive]
    return Source(spec, texts, read)


def _batches(docs: Iterator, n: int) -> Iterator[list]:
    batch = []
    for d in docs:
        batch.append(d)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def load_source(spec: str, config=None) -> Source:
    """Every text of one SOURCE (see the module docstring)."""
    from pipeline.config import load_config

    run = _run_folder(spec)
    if run is not None:
        return _read_run(run[0], run[1], spec)
    return _read_inputs(spec, config or load_config())


def _unit(key: str, text: str) -> float:
    h = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, key=key.encode()).digest()
    return (int.from_bytes(h, "little") >> 11) / float(1 << 53)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC with tied scores sharing their average rank."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    pred = scores >= threshold
    tp = int((pred & (labels == 1)).sum())
    fp = int((pred & (labels == 0)).sum())
    fn = int((~pred & (labels == 1)).sum())
    return {"roc_auc": round(roc_auc(labels, scores), 4), "threshold": threshold,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "accuracy": round(float((pred == (labels == 1)).mean()), 4), "n": int(len(labels))}


def prepare(positives: list[Source], negatives: list[Source], s: TrainSettings) -> dict:
    """Normalised, de-duplicated, balanced train/held-out lines; counts per source."""
    norm = lambda t: normalize(t, s.max_chars, s.lowercase, s.newline)  # noqa: E731
    classes: list[dict[str, str]] = []
    per_source = []
    for label, sources in ((1, positives), (0, negatives)):
        lines: dict[str, str] = {}
        for src in sources:
            before = len(lines)
            for t in src.texts:
                if len(t) >= s.min_chars and (line := norm(t)):
                    lines.setdefault(line, src.spec)
            per_source.append({"source": src.spec, "class": "positive" if label else "negative",
                               "documents_read": src.read, "texts": len(src.texts),
                               "unique_used": len(lines) - before})
        classes.append(lines)
    both = set(classes[0]) & set(classes[1])
    sets = []
    for lines in classes:
        # Round-robin over the class's sources, each in a seeded hash order: when the class is
        # down-sampled, a small source (60 wiki articles beside 400 book passages) is used whole
        # before a large one fills the rest.
        by_src: dict[str, list[str]] = {}
        for line, src in lines.items():
            if line not in both:
                by_src.setdefault(src, []).append(line)
        queues = [sorted(v, key=lambda x: _unit(f"order{s.seed}", x)) for _, v in sorted(by_src.items())]
        sets.append([q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)])
    n = min(len(sets[0]), len(sets[1]))
    if n < 10:
        raise SourceError(f"too little data: {len(sets[0])} positive and {len(sets[1])} negative texts of "
                          f">= {s.min_chars} characters after de-duplication (need >= 10 each)")
    split = {"train": ([], []), "holdout": ([], [])}
    for label, lines in ((1, sets[0][:n]), (0, sets[1][:n])):
        for line in lines:
            part = "holdout" if _unit(f"holdout{s.seed}", line) < s.holdout else "train"
            split[part][0].append(line)
            split[part][1].append(label)
    return {"split": split, "per_source": per_source, "conflicts": len(both), "balanced_to": n,
            "available": {"positive": len(sets[0]), "negative": len(sets[1])}}


def train(positives: list[Source], negatives: list[Source], output: str | Path, s: TrainSettings,
          argv: list[str] | None = None) -> dict:
    """Train, evaluate on the held-out part, write MODEL (+ .json/.md card). Returns the card."""
    import fasttext

    _pin_mmap_threshold()
    output = Path(output)
    data = prepare(positives, negatives, s)
    train_lines, train_labels = data["split"]["train"]
    hold_lines, hold_labels = data["split"]["holdout"]
    order = sorted(range(len(train_lines)), key=lambda i: _unit(f"shuffle{s.seed}", train_lines[i]))
    labels = {1: s.positive_label, 0: s.negative_label}
    body = "".join(f"{labels[train_labels[i]]} {train_lines[i]}\n" for i in order).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="gristmill-quality-") as tmp:
        path = Path(tmp) / "train.txt"
        path.write_bytes(body)
        model = fasttext.train_supervised(input=str(path), **s.fasttext_args())
        y = np.array(hold_labels)
        result = {"float": metrics(y, positive_probability(model, hold_lines, s.positive_label), s.threshold)}
        if output.suffix == ".ftz":
            model.quantize(input=str(path), qnorm=True, retrain=False, cutoff=s.cutoff, dsub=2)
            result["quantized"] = metrics(y, positive_probability(model, hold_lines, s.positive_label), s.threshold)
        output.parent.mkdir(parents=True, exist_ok=True)
        model.save_model(str(output))
    final = result.get("quantized", result["float"])
    settings = dataclasses.asdict(s)
    sources = {"positive": [p.spec for p in positives], "negative": [n.spec for n in negatives]}
    config_hash = hashlib.sha256(json.dumps({"settings": settings, "sources": sources}, sort_keys=True)
                                 .encode()).hexdigest()[:16]
    card = {
        "model": output.name, "bytes": output.stat().st_size,
        "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": {"positive": s.positive_label, "negative": s.negative_label},
        "normalisation": {"max_chars": s.max_chars, "lowercase": s.lowercase, "newline": s.newline},
        "sources": data["per_source"], "conflicting_texts_dropped": data["conflicts"],
        "available": data["available"], "balanced_to_per_class": data["balanced_to"],
        "counts": {part: {"positive": int(sum(lab)), "negative": int(len(lab) - sum(lab))}
                   for part, (_, lab) in data["split"].items()},
        "settings": settings, "metrics_holdout": result, "config_hash": config_hash,
        "data_sha256": hashlib.sha256(body).hexdigest(), "argv": argv,
        "fasttext": _version("fasttext-numpy2-wheel"),
    }
    output.with_suffix(".json").write_text(json.dumps(card, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(card_markdown(card), encoding="utf-8")
    print(f"train_quality: {card['counts']['train']} train, {card['counts']['holdout']} held out; "
          f"held-out ROC-AUC {final['roc_auc']:.4f}, precision {final['precision']} and recall {final['recall']} "
          f"at score >= {s.threshold} -> {output} ({card['bytes']:,} B, card {output.with_suffix('.json').name})")
    return card


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def card_markdown(card: dict) -> str:
    m = card["metrics_holdout"].get("quantized", card["metrics_holdout"]["float"])
    rows = "\n".join(f"| {r['class']} | `{r['source']}` | {r['documents_read']:,} | {r['texts']:,} | "
                     f"{r['unique_used']:,} |" for r in card["sources"])
    return f"""# Model card: {card['model']}

Trained {card['created']} by `python -m filters.train_quality`; config hash `{card['config_hash']}`,
sha256 `{card['sha256']}`, {card['bytes']:,} bytes. Labels: `{card['labels']['positive']}` (reference-like)
and `{card['labels']['negative']}`. Text normalisation: {card['normalisation']}.

| class | source | documents read | texts | unique texts used |
| --- | --- | --- | --- | --- |
{rows}

Balanced to {card['balanced_to_per_class']:,} texts per class; train {card['counts']['train']},
held out {card['counts']['holdout']}.
Held-out ROC-AUC **{m['roc_auc']}**; at score >= {m['threshold']}: precision {m['precision']},
recall {m['recall']}, accuracy {m['accuracy']} (n = {m['n']}).

Settings: `{json.dumps(card['settings'], sort_keys=True)}`
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m filters.train_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--positive", action="append", required=True, metavar="SOURCE",
                   help="reference text: a run's output folder [:COLLECTION] or an input spec; repeatable")
    p.add_argument("--negative", action="append", required=True, metavar="SOURCE", help="raw web text; repeatable")
    p.add_argument("--output", required=True, metavar="MODEL.bin", help=".bin, or .ftz to quantize")
    p.add_argument("--config", metavar="FILE.toml", help="pipeline settings for reading input specs")
    defaults = TrainSettings()
    for f in dataclasses.fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, f.name))
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            p.add_argument(flag, type=kind, default=getattr(defaults, f.name))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    from pipeline.config import ConfigError, load_config

    settings = TrainSettings(**{f.name: getattr(a, f.name) for f in dataclasses.fields(TrainSettings)})
    if not 0 < settings.holdout < 1:
        print(f"train_quality: error: --holdout must be within (0, 1), got {settings.holdout}", file=sys.stderr)
        return 2
    try:
        config = load_config(a.config)
        pos = [load_source(spec, config) for spec in a.positive]
        neg = [load_source(spec, config) for spec in a.negative]
        train(pos, neg, a.output, settings, argv)
    except (ConfigError, SourceError) as exc:
        print(f"train_quality: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
