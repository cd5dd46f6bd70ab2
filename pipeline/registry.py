"""The one registry: per-document stages and input readers, each registered where its class lives.

    @register_stage("quality", order=50)
    class QualityFilter(Filter):
        config_cls = QualityConfig
        ...

    @register_reader("jsonl", suffixes=(".jsonl", ".jsonl.gz", ...))
    class JsonlReader(Reader): ...

That one decorator is the whole edit: the stage's config section is `[quality]` (its
`config_cls`), its place in the default `[pipeline] stages` is its `order`, and `--dry-run`'s
error for an unknown name lists every registered one. Stage classes live in modules of the
`filters` package (and `pipeline.extract`, the one non-filter stage); readers in
`pipeline.readers`. Those modules are imported on first use (about 0.3 s: heavy models load in
`setup()`, not at import).

`formats` limits a stage to input formats it can work on: `url` and `extract` need raw WARC
records, so a JSONL, Parquet, text or MediaWiki collection skips them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

C = TypeVar("C", bound=type)

STAGE_PACKAGES = ("filters",)
STAGE_MODULES = ("pipeline.extract",)
READER_PACKAGES = ("pipeline.readers",)


@dataclass(frozen=True)
class StageEntry:
    key: str                      # the name used in config: [pipeline] stages, [<key>] section
    cls: type
    order: int                    # position in the default order (cheap checks first)
    default: bool                 # in the default [pipeline] stages
    formats: tuple[str, ...]      # input formats it applies to; () = every format

    @property
    def config_cls(self) -> type:
        return self.cls.config_cls


@dataclass(frozen=True)
class ReaderEntry:
    key: str                      # the FORMAT of `--input FORMAT:PATH`, and its [<key>] section
    cls: type
    suffixes: tuple[str, ...]     # file names ending so are read by it (longest suffix wins)
    kind: str                     # source kind for per-kind defaults: web, text, books, wiki

    @property
    def config_cls(self) -> type:
        return self.cls.config_cls


_STAGES: dict[str, StageEntry] = {}
_READERS: dict[str, ReaderEntry] = {}
_discovered = False


def register_stage(key: str, *, order: int, default: bool = True,
                   formats: tuple[str, ...] = ()) -> Callable[[C], C]:
    def deco(cls: C) -> C:
        old = _STAGES.get(key)
        if old is not None and old.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"stage {key!r} registered twice: {old.cls.__module__}.{old.cls.__qualname__} "
                             f"and {cls.__module__}.{cls.__qualname__}")
        _STAGES[key] = StageEntry(key, cls, order, default, tuple(formats))
        return cls
    return deco


def register_reader(key: str, *, suffixes: tuple[str, ...], kind: str = "web") -> Callable[[C], C]:
    def deco(cls: C) -> C:
        _READERS[key] = ReaderEntry(key, cls, tuple(suffixes), kind)
        return cls
    return deco


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    names = list(STAGE_MODULES)
    for pkg_name in STAGE_PACKAGES + READER_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names += [f"{pkg_name}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.name.startswith("_") and not m.ispkg]
    for name in names:
        importlib.import_module(name)


def stages() -> dict[str, StageEntry]:
    _discover()
    return dict(sorted(_STAGES.items(), key=lambda kv: (kv[1].order, kv[0])))


def readers() -> dict[str, ReaderEntry]:
    _discover()
    return dict(sorted(_READERS.items()))


def default_stages() -> tuple[str, ...]:
    return tuple(k for k, e in stages().items() if e.default)


def stage_class(name: str) -> type:
    entries = stages()
    if name not in entries:
        raise KeyError(f"unknown stage {name!r}; valid stages: {sorted(entries)}")
    return entries[name].cls


def reader_for(name: str) -> ReaderEntry:
    entries = readers()
    if name not in entries:
        raise KeyError(f"unknown input format {name!r}; valid formats: {sorted(entries)}")
    return entries[name]


def format_of(path: str) -> str | None:
    """The reader whose longest suffix ends `path` (case-insensitive), or None."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    best, best_len = None, -1
    for key, entry in readers().items():
        for suffix in entry.suffixes:
            if name.endswith(suffix) and len(suffix) > best_len:
                best, best_len = key, len(suffix)
    return best


def applies(stage: str, fmt: str) -> bool:
    entry = stages()[stage]
    return not entry.formats or fmt in entry.formats


def build_stages(config: Any) -> list[Any]:
    """Stage instances in the configured order, each with its own config section; a stage whose
    decisions depend on other stages' settings (the extraction cascade reads [langid] keep)
    builds itself from the whole config with a `from_config` classmethod."""
    out = []
    for name in config.pipeline.stages:
        cls = stage_class(name)
        make = getattr(cls, "from_config", None)
        out.append(make(config) if make else cls(config[name]))
    return out
