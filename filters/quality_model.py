"""Model-based quality: a fastText classifier's probability that a document reads like reference text.

GPT-3 filtered CommonCrawl with a classifier trained to tell curated text (WebText, Wikipedia,
books) from raw crawl; DCLM keeps the top 10 % by a fastText classifier. This stage scores every
document that reaches it and stores, whatever is decided:
  quality_model_score  probability of `positive_label` (float32)
  quality_model_name   which model scored it: file name @ first 12 hex of its sha256
Then the rule decides:
  threshold     keep when score >= threshold                       (drop: quality_model_below_threshold)
  pareto        GPT-3: keep when pareto(alpha) > 1 - score, the draw a function of (doc_id, seed)
                alone, so reruns and worker counts agree; P(keep) = (2 - score) ** -alpha
                                                                    (drop: quality_model_pareto)
  top_fraction  keep the best `fraction` per collection over the whole run: this stage only
                scores; the global step in pipeline/quality_cut.py cuts (drop:
                quality_model_not_top_fraction)

The text is normalised the way `filters/train_quality.py` trains (`normalize`): the first
`max_chars` characters, lower-cased, each newline replaced by `newline` (fastText reads one line),
whitespace runs collapsed. The model's labels are read from the file's header and dictionary
without loading its matrices (`read_labels`), so a bad model path or a missing label is a config
error at load time, before any task starts, even for a multi-GB .bin.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Filter

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent / "data" / "quality_model"
DEFAULT_MODEL = DEFAULT_DIR / "quality_model.ftz"
RULES = ("threshold", "pareto", "top_fraction")
DROP_THRESHOLD = "quality_model_below_threshold"
DROP_PARETO = "quality_model_pareto"
DROP_TOP_FRACTION = "quality_model_not_top_fraction"

# fastText's file header: FASTTEXT_FILEFORMAT_MAGIC_INT32 and the model version it writes.
_MAGIC = 793712314
# Args::save: 12 int32 (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn,
# maxn, lrUpdateRate) and one double (t).
_ARGS_BYTES = 12 * 4 + 8


class ModelFileError(ValueError):
    """Not a fastText model, or not one this stage can use: the message names the file."""


def resolve_model(model: str) -> Path:
    """`"default"` -> the shipped model; anything else a path (relative to the working directory)."""
    return DEFAULT_MODEL if model == "default" else Path(model).expanduser()


def read_labels(path: str | Path, block: int = 1 << 20) -> list[str]:
    """The labels of a fastText .bin/.ftz, read from its dictionary without loading the matrices.

    The dictionary sorts words before labels (Dictionary::threshold), so the labels are its last
    `nlabels` entries; each entry is a NUL-terminated string, an int64 count and an int8 type.
    """
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be opened ({exc.strerror or type(exc).__name__})") from None
    with f:
        head = f.read(8 + _ARGS_BYTES + 4 * 3 + 8 * 2)
        if len(head) < 8 or struct.unpack("<i", head[:4])[0] != _MAGIC:
            raise ModelFileError(f"{path}: not a fastText model (no fastText header); labels: none")
        size, nwords, nlabels = struct.unpack_from("<3i", head, 8 + _ARGS_BYTES)
        if not (0 <= nlabels <= size and 0 <= nwords <= size):
            raise ModelFileError(f"{path}: corrupt fastText dictionary header; labels: none")
        buf, pos, entries, labels = b"", 0, 0, []
        while entries < size:
            end = buf.find(b"\0", pos)
            if end < 0 or end + 10 > len(buf):
                more = f.read(block)
                if not more:
                    raise ModelFileError(f"{path}: truncated fastText dictionary ({entries} of {size} entries); "
                                         f"labels: {labels or 'none'}")
                buf, pos = buf[pos:] + more, 0
                continue
            if entries >= size - nlabels:
                labels.append(buf[pos:end].decode("utf-8", "replace"))
            pos, entries = end + 1 + 8 + 1, entries + 1
    return labels


def model_name(path: str | Path) -> str:
    """`file.ftz@<12 hex of sha256>`: names the exact bytes that scored a document."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return f"{Path(path).name}@{h.hexdigest()[:12]}"


@functools.lru_cache(maxsize=2)
def load_model(path: str):
    from filters import fasttext_model

    return fasttext_model.load(path)


def normalize(text: str, max_chars: int = 10_000, lowercase: bool = True, newline: str = " ") -> str:
    """The classifier's input line; the trainer uses this same function."""
    text = text[:max_chars]
    if lowercase:
        text = text.lower()
    # fastText's predict refuses a newline (it would end the line). Other whitespace is left as
    # it is: fastText splits words on runs of it anyway, and collapsing it cost 30 % of the stage.
    return text.replace("\n", newline)


def positive_probability(model: Any, lines: list[str], positive_label: str) -> np.ndarray:
    """P(positive_label) for each normalised line, from one batched predict call."""
    labels, probs = model.predict(lines, k=-1, threshold=0.0)
    out = np.zeros(len(lines), dtype=np.float64)
    for i, (lab, p) in enumerate(zip(labels, probs, strict=True)):
        for name, value in zip(lab, p):
            if name == positive_label:
                # fastText's softmax can round a sure prediction to 1.00001.
                out[i] = min(1.0, max(0.0, float(value)))
                break
    return out


def pareto_draws(doc_ids: list[str], seed: int, alpha: float) -> np.ndarray:
    """numpy.random.pareto(alpha) draws, each a function of (doc_id, seed) only.

    numpy's pareto is the Lomax distribution: exp(E / alpha) - 1 with E ~ Exp(1); E comes from a
    uniform u in [0, 1) made of 53 bits of blake2b(seed, doc_id): E = -log(1 - u).
    """
    u = np.empty(len(doc_ids), dtype=np.float64)
    key = str(seed).encode()
    for i, doc_id in enumerate(doc_ids):
        h = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest()
        u[i] = (int.from_bytes(h, "little") >> 11) / float(1 << 53)
    return np.expm1(-np.log1p(-u) / alpha)


@dataclasses.dataclass(frozen=True)
class QualityModelConfig:
    # "default" (filters/data/quality_model/quality_model.ftz, see its README) or a path to any
    # fastText .bin/.ftz, e.g. DCLM's released classifier with positive_label "__label__hq".
    model: str = "default"
    positive_label: str = "__label__hq"
    rule: str = "threshold"
    # threshold: keep at or above. 0.5 keeps what the shipped model calls reference-like.
    threshold: float = 0.5
    # pareto: GPT-3's alpha.
    alpha: float = 9.0
    # top_fraction: share kept per collection (DCLM keeps 0.1).
    fraction: float = 0.1
    seed: int = 0
    # Normalisation: it must match what the model was trained on (filters/train_quality.py
    # writes it into the model card; a mismatch is logged when the config loads).
    max_chars: int = 10_000
    lowercase: bool = True
    newline: str = " "

    @property
    def model_path(self) -> Path:
        return resolve_model(self.model)

    def validate(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {list(RULES)}, got {self.rule!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be within (0, 1], got {self.fraction}")
        if "\n" in self.newline:
            raise ValueError(f"newline must not contain a newline (fastText reads one line), got {self.newline!r}")
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")
        path = self.model_path
        if not path.is_file():
            hint = " (the shipped model: rebuild it with `python bench/train_quality_model.py`)" \
                if self.model == "default" else ""
            raise ValueError(f"model {str(path)!r} does not exist{hint}")
        try:
            labels = read_labels(path)
        except ModelFileError as exc:
            raise ValueError(f"model {exc}") from None
        if self.positive_label not in labels:
            raise ValueError(f"model {path}: has no label {self.positive_label!r}; its labels: {labels}; "
                             "set positive_label to one of them")
        self._check_card(path)

    def _check_card(self, path: Path) -> None:
        import json

        card = path.with_suffix(".json")
        if not card.is_file():
            return
        try:
            trained = json.loads(card.read_text(encoding="utf-8")).get("normalisation", {})
        except (OSError, ValueError):
            return
        mine = {"max_chars": self.max_chars, "lowercase": self.lowercase, "newline": self.newline}
        diff = {k: (v, trained[k]) for k, v in mine.items() if k in trained and trained[k] != v}
        if diff:
            log.warning("[quality_model] normalisation differs from the model card %s (setting: (ours, trained)): "
                        "%s; scores will not match the trained model's", card, diff)


@register_stage("quality_model", order=55, default=False)
class QualityModelFilter(Filter):
    """Stores the classifier's score and model name; keeps by threshold or pareto, or (top_fraction)
    keeps everything for the global cut."""

    name = "quality_model_v1"
    config_cls = QualityModelConfig
    columns: ClassVar[dict[str, pa.DataType]] = {
        "quality_model_score": pa.float32(),
        "quality_model_name": pa.string(),
    }

    def setup(self) -> None:
        path = str(self.config.model_path)
        self._model = load_model(path)
        self._name = model_name(path)

    def score_batch(self, docs: list[Document]) -> list[dict[str, Any]]:
        c = self.config
        lines = [normalize(d.text, c.max_chars, c.lowercase, c.newline) for d in docs]
        probs = positive_probability(self._model, lines, c.positive_label)
        return [{"quality_model_score": float(p), "quality_model_name": self._name} for p in probs]

    def process_batch(self, docs: list[Document]) -> None:
        # The pareto draws are computed for the whole batch at once (vectorised), then keep().
        if self.config.rule == "pareto":
            self._draws = dict(zip((d.doc_id for d in docs),
                                   pareto_draws([d.doc_id for d in docs], self.config.seed, self.config.alpha),
                                   strict=True))
        super().process_batch(docs)

    def keep(self, doc: Document, scores: dict[str, Any]) -> tuple[bool, str | None]:
        c, score = self.config, scores["quality_model_score"]
        if c.rule == "threshold":
            return (True, None) if score >= c.threshold else (False, DROP_THRESHOLD)
        if c.rule == "pareto":
            draw = self._draws.get(doc.doc_id)
            if draw is None:
                draw = float(pareto_draws([doc.doc_id], c.seed, c.alpha)[0])
            return (True, None) if draw > 1.0 - score else (False, DROP_PARETO)
        return True, None  # top_fraction: decided globally (pipeline/quality_cut.py)
