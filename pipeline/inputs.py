"""`--input` arguments -> a sorted, de-duplicated list of input files, each with its format and collection.

A spec is `[NAME=][FORMAT:]PATH`:
  NAME=     the collection (default: the file's parent folder name);
  FORMAT:   a reader (`warc`, `jsonl`, `parquet`, `text`, `mediawiki`); default: chosen by suffix;
  PATH      a local path, a glob (`**` recursive), a directory (every file below it that a reader
            claims by suffix), or an fsspec URL (`s3://`, `gs://`, `https://`, `file://`; globs and
            directories/prefixes on object stores too).
A file named `*.paths` or `*.paths.gz` is a list of paths, one a line, as CommonCrawl publishes
per crawl (`warc.paths.gz`): a relative line is joined to `paths_prefix` (default
`https://data.commoncrawl.org/`; `s3://commoncrawl/` inside AWS), an absolute one is used as is.
`limit` keeps the first N files of the resolved list, in its order, so a dump can be tried on
10 files first.

Order: specs in the order given; within a spec, sorted (a paths file keeps its own order).
Shard ids are file stems, made unique with a numeric suffix, so they are stable across reruns.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from dataclasses import dataclass

from pipeline import storage

DEFAULT_PATHS_PREFIX = "https://data.commoncrawl.org/"
PATHS_SUFFIXES = (".paths", ".paths.gz")
_NAME = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")
_FORMAT = re.compile(r"^([a-z][a-z0-9_]*):(?!//)(.+)$")


# Names the global steps give their own manifests (manifests/stages-<name>.parquet), beside the
# per-shard ones: no input's shard id may take one.
GLOBAL_STEP_NAMES = ("quality_cut", "dedup")


class InputError(ValueError):
    """A missing or unusable input: the message names it."""


@dataclass(frozen=True)
class InputFile:
    shard_id: str
    path: str          # local absolute path or URL
    collection: str
    format: str = "warc"


def _split_spec(spec: str) -> tuple[str | None, str | None, str]:
    name = fmt = None
    rest = spec
    m = _NAME.match(rest)
    if m and not (storage.is_local(rest) and os.path.exists(rest)):
        name, rest = m.group(1), m.group(2)
    m = _FORMAT.match(rest)
    if m and not (storage.is_local(rest) and os.path.exists(rest)):
        from pipeline.registry import readers

        if m.group(1) not in readers() and len(m.group(1)) > 1:
            raise InputError(f"--input {spec}: unknown format '{m.group(1)}'; valid formats: {sorted(readers())}")
        if m.group(1) in readers():
            fmt, rest = m.group(1), m.group(2)
    return name, fmt, rest


def _stem(path: str) -> str:
    from pipeline.registry import readers

    name = storage.basename(path)
    suffixes = sorted({s for e in readers().values() for s in e.suffixes} | set(PATHS_SUFFIXES), key=len, reverse=True)
    for suffix in suffixes:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name.split(".")[0] or name


def is_paths_file(path: str) -> bool:
    return storage.basename(path).lower().endswith(PATHS_SUFFIXES)


def read_paths_file(url: str, prefix: str) -> list[str]:
    """The file's lines, relative ones joined to `prefix`, blank lines and `#` comments skipped."""
    data = storage.read_bytes(url)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
        except (OSError, EOFError) as exc:
            raise InputError(f"--input {url}: cannot decompress the paths list: {exc}") from None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"--input {url}: a paths list must be UTF-8 text, one path a line") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "://" in line or line.startswith("/"):
            out.append(line)
        else:
            out.append(prefix.rstrip("/") + "/" + line.lstrip("/") if "://" in prefix
                       else os.path.join(prefix, line))
    return out


def _expand(path_spec: str, spec: str, fmt: str | None, paths_prefix: str) -> list[str]:
    from pipeline.registry import format_of

    if storage.has_magic(path_spec):
        paths = storage.glob(path_spec)
        if not paths:
            raise InputError(f"--input {spec}: the pattern matches no file")
        return paths
    if is_paths_file(path_spec):
        if not storage.exists(path_spec):
            raise InputError(f"--input {spec}: no such file or object")
        paths = read_paths_file(path_spec, paths_prefix)
        if not paths:
            raise InputError(f"--input {spec}: the paths list is empty")
        return paths
    try:
        is_dir = storage.isdir(path_spec)
    except Exception as exc:
        raise InputError(f"--input {spec}: cannot reach it: {storage.redact_text(str(exc))[:200]}") from None
    if is_dir:
        files = storage.list_files(path_spec)
        # A directory means every file a reader claims by suffix (or every file for an explicit
        # FORMAT:, e.g. a folder of Parquet parts named without a suffix).
        paths = [p for p in files if fmt is not None or format_of(p) is not None]
        paths = [p for p in paths if not storage.basename(p).startswith((".", "_"))]
        if not paths:
            from pipeline.registry import readers

            suffixes = sorted({s for e in readers().values() for s in e.suffixes})
            raise InputError(f"--input {spec}: directory has no input files (suffixes read: {' '.join(suffixes)})")
        return paths
    if not storage.is_local(path_spec) and storage.protocol(path_spec) in ("http", "https"):
        return [path_spec]  # existence is checked by the reader, with retries and a recorded reason
    if storage.exists(path_spec):
        return [path_spec]
    raise InputError(f"--input {spec}: no such file or directory")


def resolve_inputs(specs: list[str], paths_prefix: str = DEFAULT_PATHS_PREFIX,
                   limit: int | None = None) -> list[InputFile]:
    """Each spec is `[NAME=][FORMAT:]PATH_GLOB_DIR_OR_URL` (see the module docstring)."""
    from pipeline.registry import format_of

    found: list[tuple[str, str, str]] = []
    for spec in specs:
        name, fmt, path_spec = _split_spec(spec)
        if storage.is_local(path_spec):
            path_spec = storage.local_path(path_spec) if not storage.has_magic(path_spec) else path_spec
        for p in _expand(path_spec, spec, fmt, paths_prefix):
            p = storage.normalize(p)
            f = fmt or format_of(p)
            if f is None:
                raise InputError(f"--input {spec}: cannot tell the format of {p} from its name; "
                                 f"say it as FORMAT:PATH (e.g. jsonl:{p})")
            coll = name or storage.basename(storage.parent(p)) or "default"
            found.append((p, coll, f))
    seen: dict[str, tuple[str, str]] = {}
    for p, coll, f in found:
        # The same file twice (overlapping globs) is read once; named twice differently, which
        # collection's weight and stages it gets would depend on the order: refused.
        if seen.setdefault(p, (coll, f)) != (coll, f):
            (c0, f0), where = seen[p], storage.redact_text(p)
            raise InputError(f"--input: {where} is given as {c0}={f0}: and as {coll}={f}:; "
                             "name each file once, with one collection and format")
    ordered = list(seen)
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be >= 1, got {limit}")
        ordered = ordered[:limit]
    files, used = [], set(GLOBAL_STEP_NAMES)  # a file named dedup.* must not share stages-dedup.parquet
    for p in ordered:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", _stem(p))
        shard_id, k = stem, 2
        while shard_id in used:
            shard_id, k = f"{stem}-{k}", k + 1
        used.add(shard_id)
        coll, f = seen[p]
        files.append(InputFile(shard_id, p, coll, f))
    return files
