"""JSON Lines (`.jsonl`, `.jsonl.gz`, `.json.gz`, `.jsonl.zst`, ...): one document per line, text
already extracted (WebText-like sets, FineWeb/RedPajama/C4/Pile dumps).

Every non-blank line becomes one Document (blank lines are not records and are skipped):
- kept, with `text`, `source_id` (the `id_field`), `url`, `title`, `source_row` (1-based line
  number), `warc_offset` (the line's byte offset in the decompressed stream) and
  doc_id `<shard>/<line>` (stable across reruns);
- a string holding an unpaired UTF-16 surrogate escape (`"\\ud83d"` alone: valid JSON, often a
  scraper's emoji cut in half, but not text any later stage or Parquet can hold) keeps its
  document: each lone surrogate becomes U+FFFD, and `charset` says `utf-8/surrogates-replaced`;
- or dropped at stage `read`: `malformed_json` (not JSON, or not a JSON object), `not_utf8`,
  `missing_text_field` (absent or null), `text_not_a_string`, `empty_text` (blank after strip),
  `record_too_large` (a line over `max_record_bytes`, skipped without being held whole).
A compressed file cut short ends with one `truncated_file` row after the lines read before the
cut; a corrupt one with `corrupt_file`; a file that cannot be opened is one `unreadable_file` row.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

from pipeline.document import Document
from pipeline.readers import Reader
from pipeline.readers._stream import open_decompressed, open_error, stream_error
from pipeline.registry import register_reader


@dataclasses.dataclass(frozen=True)
class JsonlConfig:
    # Top-level keys of each JSON object; an absent id/url/title leaves the field empty.
    text_field: str = "text"
    id_field: str = "id"
    url_field: str = "url"
    title_field: str = "title"
    # A longer line is dropped as `record_too_large` (read in pieces, never whole).
    max_record_bytes: int = 64 * 2**20

    def validate(self) -> None:
        for name in ("text_field", "id_field", "url_field", "title_field"):
            value = getattr(self, name)
            if not isinstance(value, str) or (name == "text_field" and not value):
                raise ValueError(f"{name} must be a {'non-empty ' if name == 'text_field' else ''}string, "
                                 f"got {value!r}")
        if self.max_record_bytes <= 0:
            raise ValueError(f"max_record_bytes must be > 0, got {self.max_record_bytes}")


# After json.loads has paired what pairs, any code point left in this range is a lone surrogate.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPAIRED_CHARSET = "utf-8/surrogates-replaced"


def _loads_repairing(line: bytes) -> Any:
    """Python's json for a line orjson refused over surrogates: it accepts unpaired ones (valid
    JSON), which then become U+FFFD in every string of the object. Raises ValueError otherwise,
    also for surrogates encoded as bytes (not UTF-8: `not_utf8`, as before)."""
    obj = json.loads(line.decode("utf-8"))

    def fix(v: Any) -> Any:
        if type(v) is str:
            return _LONE_SURROGATE.sub("\ufffd", v)
        if type(v) is dict:
            return {fix(k): fix(x) for k, x in v.items()}
        if type(v) is list:
            return [fix(x) for x in v]
        return v

    return fix(obj)


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


@register_reader("jsonl", suffixes=(".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".jsonl.bz2",
                                    ".ndjson", ".ndjson.gz"), kind="web")
class JsonlReader(Reader):
    """JSON Lines, plain or gzip/bzip2/zstd compressed (detected from the bytes, not the name)."""

    format = "jsonl"
    config_cls = JsonlConfig

    def read(self, url: str, shard_id: str) -> Iterator[Document]:
        cfg = self.config
        try:
            stream, _codec = open_decompressed(url)
        except Exception as exc:
            yield self.unreadable(url, shard_id, open_error(exc))
            return
        text_key, id_key, url_key, title_key = cfg.text_field, cfg.id_field, cfg.url_field, cfg.title_field
        limit = cfg.max_record_bytes
        readline = stream.readline
        offset = line_no = records = 0
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        with stream:
            try:
                while True:
                    line = readline(limit + 1)
                    if not line:
                        break
                    line_no += 1
                    start = offset
                    offset += len(line)
                    if len(line) > limit and not line.endswith(b"\n"):
                        offset += self._skip_rest(readline, limit)
                        records += 1
                        yield self._dropped(url, shard_id, line_no, start, offset - start,
                                            f"record_too_large: over {limit} bytes")
                        continue
                    repaired = False
                    try:
                        obj = loads(line)
                    except decode_error as exc:
                        if not line.strip():
                            continue  # a blank line is not a record
                        try:
                            if "surrogate" not in str(exc):
                                raise ValueError(exc)
                            obj, repaired = _loads_repairing(line), True
                        except (ValueError, RecursionError):
                            records += 1
                            yield self._dropped(url, shard_id, line_no, start, len(line), self._why_bad(line))
                            continue
                    records += 1
                    doc = Document(doc_id=f"{shard_id}/{line_no}", warc_path=url, warc_offset=start,
                                   record_type="document", input_format="jsonl", source_row=line_no,
                                   n_bytes=len(line), charset=REPAIRED_CHARSET if repaired else None)
                    if type(obj) is not dict:
                        doc.drop("read", f"malformed_json: a {type(obj).__name__}, not an object")
                        yield doc
                        continue
                    doc.source_id = _str_or_none(obj.get(id_key))
                    doc.url = _str_or_none(obj.get(url_key))
                    doc.title = _str_or_none(obj.get(title_key))
                    text = obj.get(text_key)
                    if type(text) is not str:
                        if text is None:
                            doc.drop("read", f"missing_text_field: no {text_key!r}")
                        else:
                            doc.drop("read", f"text_not_a_string: {type(text).__name__}")
                    elif not text.strip():
                        doc.drop("read", "empty_text")
                    else:
                        doc.text = text
                        doc.n_chars = len(text)
                    yield doc
            except Exception as exc:
                reason = stream_error(exc)
                if reason is None:
                    raise
                records += 1
                yield self._dropped(url, shard_id, line_no + 1, offset, 0, reason, "unparsed")
                return
        if records == 0 and offset == 0:
            yield self.unreadable(url, shard_id, "empty_file")

    @staticmethod
    def _skip_rest(readline: Any, limit: int) -> int:
        skipped = 0
        while True:
            piece = readline(limit)
            skipped += len(piece)
            if not piece or piece.endswith(b"\n"):
                return skipped

    @staticmethod
    def _why_bad(line: bytes) -> str:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not_utf8: byte {exc.start} of the line"
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return f"malformed_json: {str(exc).splitlines()[0][:160]}"
        return "malformed_json"

    def _dropped(self, url: str, shard_id: str, line_no: int, offset: int, n_bytes: int, reason: str,
                 record_type: str = "document") -> Document:
        return Document(doc_id=f"{shard_id}/{line_no}", warc_path=url, warc_offset=offset, record_type=record_type,
                        input_format=self.format, source_row=line_no, n_bytes=n_bytes,
                        drop_stage="read", drop_reason=reason)
