"""One TOML file -> frozen dataclasses, validated up front.

Every section belongs to one module, named in the explicit table below (no class paths in
config files). Each section is that module's frozen config dataclass; an unknown section or
key, or a value of the wrong type, is a `ConfigError` that names the file, the section, the
key and what was expected (the CLI turns it into exit code 2).

    [pipeline]
    stages = ["url", "extract", "length", "langid", "quality", "toxicity", "pii"]

    [langid]
    keep = ["en", "de", "zh"]
    threshold = 0.65
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """Bad configuration: the message says where and what was expected."""


# Sections of the global steps: name -> (module, dataclass). Every per-document stage and every
# reader brings its own section, named by its key in pipeline/registry.py.
GLOBAL_SECTIONS: dict[str, tuple[str, str]] = {
    "pipeline": ("pipeline.config", "PipelineConfig"),
    "dedup": ("pipeline.dedup", "DedupConfig"),
    "tokenize": ("pipeline.tokens", "TokenizeConfig"),
}


def sections() -> dict[str, type]:
    """Every valid [section]: the global steps', then one per registered stage and reader."""
    from pipeline import registry

    out = {name: getattr(importlib.import_module(m), c) for name, (m, c) in GLOBAL_SECTIONS.items()}
    for key, entry in {**registry.readers(), **registry.stages()}.items():
        if key in out:
            raise ConfigError(f"section [{key}] is claimed twice (a stage or reader named like a global step)")
        out[key] = entry.config_cls
    return out


def default_stages() -> tuple[str, ...]:
    from pipeline.registry import default_stages as registered

    return registered()


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    # Per-document stages in order. Cheap first: the URL check needs no extraction, length
    # needs no model, language ID comes before the language-aware quality rules.
    stages: tuple[str, ...] = dataclasses.field(default_factory=default_stages)
    # Global steps after the per-shard stages.
    dedup: bool = True
    tokenize: bool = True
    # Documents handed to each stage at once (models predict faster on batches).
    batch_size: int = 256
    # Ray retries for a shard task whose worker died.
    max_retries: int = 3

    def validate(self) -> None:
        if self.batch_size < 1:  # 0 read no record at all and exited 0
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_retries < 0:  # Ray reads -1 as "retry forever": a bad input would hang the run
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


# Defaults per source kind, between the code's defaults and the user's [section] values (merged
# key by key, tables included). Web rules gut clean text; measured with bench/kind_rules.py on real
# Gutenberg novels and Wikipedia articles (bench/results/readers.md), tuned on part, checked on the
# rest. Book chunks: the web defaults drop 47 of 105 (tuning) and 37 of 38 (held-out novel), mostly
# gopher_below_alpha_threshold (punctuation-heavy dialogue) and fineweb_line_punct_ratio (lines
# wrapped at 70 columns); whole books also hit the 100k-word cap and the curly-bracket rule
# (footnote marks); with these: 0 and 0. Wikipedia: 19 of 50 and 6 of 19 (lists, short stubs,
# few C4 "sentences"); with these: 8 and 1 (what is left are stubs and list pages). A kind not
# listed here (web: WARC, JSONL, Parquet) keeps the web defaults.
KIND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "books": {
        "length": {"max_chars": 30_000_000},
        "quality": {"remove_lines": False, "c4_curly_bracket": False,
                    "languages": {"*": {"max_doc_words": -1, "line_punct_thr": -1, "min_alpha_words_ratio": 0.7}}},
    },
    "wiki": {
        "quality": {"remove_lines": False,
                    "languages": {"*": {"c4_min_sentences": 2, "min_doc_words": 30, "min_alpha_words_ratio": 0.65}}},
    },
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, tables merged key by key (a user's [quality.languages.de] does
    not erase a kind's [quality.languages."*"])."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclasses.dataclass(frozen=True)
class CollectionPlan:
    """One collection's effective plan: its stages and its config (sections merged)."""

    name: str
    format: str
    kind: str
    config: "Config"

    @property
    def stages(self) -> tuple[str, ...]:
        return self.config.pipeline.stages


@dataclasses.dataclass(frozen=True)
class Config:
    sections: dict[str, Any]
    source: str = "<defaults>"
    # The TOML as read: per-collection plans are built from it (see `for_collection`).
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    @property
    def pipeline(self) -> PipelineConfig:
        return self.sections["pipeline"]

    @property
    def collections(self) -> dict[str, Any]:
        return self.raw.get("collections", {})

    def for_collection(self, name: str, fmt: str) -> CollectionPlan:
        """The plan of one collection read by reader `fmt`.

        Stages: `[collections.NAME] stages` if set, else `[pipeline] stages` less those that do
        not apply to the format (`url`, `extract` need WARC records). Sections: code defaults <
        the kind's defaults (KIND_DEFAULTS; kind = `[collections.NAME] kind` or the reader's) <
        the user's `[section]` < `[collections.NAME.section]`.
        """
        from pipeline import registry

        where = f"{self.source}: [collections.{name}]"
        coll = dict(self.collections.get(name, {}))
        kind = coll.pop("kind", None) or registry.reader_for(fmt).kind
        kinds = sorted({e.kind for e in registry.readers().values()})
        if kind not in kinds:  # any other word silently meant the web defaults
            raise ConfigError(f"{where} kind: expected one of {kinds}, got {kind!r}")
        stages = coll.pop("stages", None)
        if stages is None:
            stages = tuple(s for s in self.pipeline.stages if registry.applies(s, fmt))
        else:
            stages = _coerce(stages, tuple[str, ...], f"{where} stages")
            for s in stages:
                if s not in registry.stages():
                    raise ConfigError(f"{where} stages names unknown stage '{s}'; valid: {sorted(registry.stages())}")
                if not registry.applies(s, fmt):
                    raise ConfigError(f"{where} stages: '{s}' cannot run on {fmt} input (it needs "
                                      f"{' or '.join(registry.stages()[s].formats)}); remove it for this collection")
        sections = dict(self.sections)
        kind_defaults = KIND_DEFAULTS.get(kind, {})
        for section in sorted(set(kind_defaults) | set(coll)):
            if section not in sections or section == "pipeline":
                raise ConfigError(f"{where}: unknown key or section '{section}'; valid: kind, stages, and "
                                  f"the stage/reader sections {sorted(k for k in sections if k != 'pipeline')}")
            values = _merge(_merge(kind_defaults.get(section, {}), self.raw.get(section, {})), coll.get(section, {}))
            sections[section] = build_section(section, values, f"{where}.{section}" if section in coll else where)
        sections["pipeline"] = dataclasses.replace(self.pipeline, stages=tuple(stages))
        if coll:
            _check_language_codes(sections, where)
        return CollectionPlan(name, fmt, kind, Config(sections=sections, source=self.source, raw={}))

    def to_dict(self) -> dict[str, Any]:
        out = {name: _plain(dataclasses.asdict(obj)) for name, obj in sorted(self.sections.items())}
        if self.collections:
            out["collections"] = _plain(self.collections)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def section_class(name: str) -> type:
    return sections()[name]


def build_section(name: str, values: dict[str, Any], where: str) -> Any:
    cls = section_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: [{name}] has unknown key(s) {unknown}; valid keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}: [{name}] {key}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: [{name}] {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{where}: [{name}] {exc}") from None
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, where) for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf: no setting means either (inf timeout_s
            # failed every page, inf max_epochs the tokenize step, nan slipped past `x < 0` checks)
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _check_language_codes(sections: dict[str, Any], where: str) -> None:
    """Language codes other sections key on must be ones the language-ID model predicts: a table
    for "eng" (lid.176 says "en") would never apply, silently."""
    from filters.langid import MODEL_PATH, check_codes, model_languages

    langid, quality, toxicity = (sections.get(k) for k in ("langid", "quality", "toxicity"))
    path = getattr(langid, "model_path", "") or str(MODEL_PATH)
    try:
        model_languages(path)
    except ValueError:
        return  # an unreadable model_path is [langid]'s own error
    uses = []
    if quality is not None:
        uses += [("quality", "languages", [c for c in quality.languages if c != "*"]),
                 ("quality", "stop_words", list(quality.stop_words))]
    if toxicity is not None:
        uses.append(("toxicity", "score_languages", list(toxicity.score_languages)))
    for section, key, codes in uses:
        try:
            check_codes(key, sorted(codes), path, "the language-ID model's")
        except ValueError as exc:
            raise ConfigError(f"{where}: [{section}] {exc}") from None


def load_config(path: str | Path | None = None) -> Config:
    """Defaults, overridden by the TOML file at `path` if given."""
    raw: dict[str, Any] = {}
    where = "<defaults>"
    if path is not None:
        where = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    valid = sections()
    collections = raw.get("collections", {})
    if not isinstance(collections, dict) or not all(isinstance(v, dict) for v in collections.values()):
        raise ConfigError(f"{where}: [collections] must hold one table per collection, e.g. [collections.books]")
    raw_sections = {k: v for k, v in raw.items() if k != "collections"}
    unknown = sorted(set(raw_sections) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; valid sections: {sorted(valid)} and collections")
    for name, values in raw_sections.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: '{name}' must be a [section] table, got {values!r}")
    built = {name: build_section(name, raw.get(name, {}), where) for name in valid}
    from pipeline.registry import stages

    for stage in built["pipeline"].stages:
        if stage not in stages():
            raise ConfigError(
                f"{where}: [pipeline] stages names unknown stage '{stage}'; valid: {sorted(stages())}"
            )
    _check_language_codes(built, where)
    config = Config(sections=built, source=where, raw=raw)
    from pipeline.registry import readers

    for name in collections:
        # Validate each collection's plan now (exit 2 before any task) for every reader it could
        # use; a stage that cannot run on a format is checked again once inputs are resolved.
        for fmt in readers():
            try:
                config.for_collection(name, fmt)
            except ConfigError as exc:
                if "cannot run on" not in str(exc):
                    raise
    return config
