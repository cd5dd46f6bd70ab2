"""Read every record of a WARC / WET / WAT file as a `Document`, losing none.

fastwarc (about 3x warcio here) does the parsing. What it does quietly, and what we add:
- a gzip member cut short yields a record with a short payload and no error: we compare the
  bytes read with Content-Length and record `truncated_record`;
- a corrupt gzip member raises OSError and ends the iteration: we record the bad member and
  resume at the next gzip member header (plain files: the next `WARC/1.` header);
- in an uncompressed file a wrong Content-Length makes the parser skip whole records: we find
  record headers between the records it returned and give each a row (`malformed_record`).
Every record, read or not, becomes one Document; only HTML responses and WET conversions
keep going (the others are dropped at stage `read` with the record type as the reason).
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import re
import zlib
from collections.abc import Iterator

from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipeline import storage
from pipeline.document import Document
from pipeline.readers import Reader
from pipeline.registry import register_reader

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
HTML_TYPES = ("text/html", "application/xhtml+xml")
_TYPE_NAMES = {int(getattr(WarcRecordType, n)): n for n in (
    "warcinfo", "response", "resource", "request", "metadata", "revisit", "conversion", "continuation", "unknown",
)}
_HEADER_RE = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*?)\r?$", re.M)


def record_type_name(rt: WarcRecordType) -> str:
    return _TYPE_NAMES.get(int(rt), "unknown")


WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".wat", ".wat.gz", ".warc.wet.gz", ".warc.wat.gz",
                 ".warc.wet", ".warc.wat", ".wet.txt", ".warc.wet.txt")


def _is_gzip(path: str) -> bool:
    with storage.open_input(path) as f:
        return f.read(3) == GZIP_MAGIC


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _header_fields(block: bytes) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in _HEADER_RE.findall(block)}


class WarcReader:
    """Iterate a WARC file's records as Documents; see the module docstring for guarantees."""

    def __init__(self, path: str, shard_id: str, max_payload_bytes: int = 5 * 2**20) -> None:
        self.path = path
        self.shard_id = shard_id
        self.max_payload_bytes = max_payload_bytes
        self.read_failed: str | None = None

    def _doc(self, offset: int, record_type: str, **kw) -> Document:
        return Document(doc_id=f"{self.shard_id}/{offset}", warc_path=self.path, warc_offset=offset,
                        record_type=record_type, **kw)

    def __iter__(self) -> Iterator[Document]:
        try:
            size = storage.size_of(self.path)
            gz = _is_gzip(self.path) if size else False
        except Exception as exc:  # missing, forbidden, or still failing after retries
            reason = getattr(exc, "strerror", None) or storage.redact_text(str(exc))[:200] or type(exc).__name__
            yield self._doc(0, "unreadable", drop_stage="read", drop_reason=f"unreadable_file: {reason}")
            return
        if size == 0:
            yield self._doc(0, "unreadable", drop_stage="read", drop_reason="empty_file")
            return
        seen: list[int] = []
        start = 0
        while start < size:
            failed_at = None
            error = ""
            last = None
            with storage.open_input(self.path) as f:
                f.seek(start)
                try:
                    for rec in ArchiveIterator(f, parse_http=False, quirks_mode=True):
                        last = rec.stream_pos  # absolute: fastwarc asks the file for its position
                        seen.append(last)
                        yield self._record(rec, last)
                except Exception as exc:
                    if storage.is_transient(exc):
                        # Still failing after storage's retries: the rest of the file is lost, and said so
                        # (with the underlying cause: fsspec reports a 503 as FileNotFoundError).
                        cause = exc.__cause__ or exc.__context__ or exc
                        self.read_failed = storage.redact_text(f"{type(cause).__name__}: {cause}")[:300]
                        yield self._doc(last or start, "unparsed", drop_stage="read",
                                        drop_reason=f"read_failed: {self.read_failed}")
                        return
                    if not isinstance(exc, OSError):
                        raise
                    error = str(exc)
                    # The record that failed starts after the last good one (or at `start`).
                    failed_at = start if last is None else self._next_magic(last + 1, gz, size)
            if failed_at is None or failed_at >= size:
                if failed_at is not None:
                    yield self._doc(last or start, "unparsed", drop_stage="read",
                                    drop_reason=f"corrupt_record: {error}")
                break
            yield self._doc(failed_at, "unparsed", drop_stage="read",
                            drop_reason=f"corrupt_record: {error}")
            start = self._next_magic(failed_at + 1, gz, size)
        if not gz:
            yield from self._skipped_records(seen, size)
        if not seen and failed_at is None:
            # Parsed to the end without one record and without an error: not a WARC at all.
            yield self._doc(0, "unparsed", drop_stage="read", drop_reason="no_warc_records: not a WARC/WET/WAT file")

    def _next_magic(self, pos: int, gz: bool, size: int) -> int:
        magic = GZIP_MAGIC if gz else WARC_MAGIC
        if not storage.is_local(self.path):
            return self._next_magic_stream(pos, gz, size, magic)
        with open(storage.local_path(self.path), "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            while True:
                i = m.find(magic, pos)
                if i < 0:
                    return size
                # A plain-file header must begin a line.
                if gz or i == 0 or m[i - 1:i] == b"\n":
                    return i
                pos = i + 1

    def _next_magic_stream(self, pos: int, gz: bool, size: int, magic: bytes, block: int = 1 << 20) -> int:
        """`_next_magic` over a remote object: ranged reads from `pos`, never the whole file."""
        with storage.open_input(self.path) as f:
            while pos < size:
                f.seek(max(pos - 1, 0))
                chunk = f.read(block + len(magic) + 1)
                base = max(pos - 1, 0)
                i = chunk.find(magic, pos - base)
                while i >= 0:
                    if gz or base + i == 0 or chunk[i - 1:i] == b"\n":
                        return base + i
                    i = chunk.find(magic, i + 1)
                if len(chunk) < block:
                    return size
                pos = base + block
        return size

    def _skipped_records(self, seen: list[int], size: int) -> Iterator[Document]:
        """Headers that the parser jumped over (a wrong Content-Length in an uncompressed file)."""
        seen_set = set(seen)
        # Uncompressed WARCs only (CommonCrawl's are gzipped): a remote one is fetched once more.
        with storage.as_local_file(self.path) as local, open(local, "rb") as f, \
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            for match in re.finditer(rb"(?:^|\n)(WARC/1\.[01]\r?\n)", m):
                pos = match.start(1)
                if pos in seen_set:
                    continue
                end = m.find(b"\r\n\r\n", pos, pos + 65536)
                end = m.find(b"\n\n", pos, pos + 65536) if end < 0 else end
                fields = _header_fields(m[pos:end if end > 0 else pos + 4096])
                if "warc-type" not in fields:
                    continue  # the string "WARC/1.0" inside a payload, not a header
                yield self._doc(
                    pos, fields.get("warc-type", "unknown"), warc_record_id=fields.get("warc-record-id"),
                    url=fields.get("warc-target-uri"), fetch_date=fields.get("warc-date"),
                    drop_stage="read",
                    drop_reason="malformed_record: skipped by the parser (wrong Content-Length before or in it)",
                )

    def _record(self, rec, offset: int) -> Document:
        rtype = record_type_name(rec.record_type)
        headers = rec.headers
        doc = self._doc(
            offset, rtype,
            warc_record_id=headers.get("WARC-Record-ID"),
            url=(headers.get("WARC-Target-URI") or "").strip("<>") or None,
            fetch_date=headers.get("WARC-Date"),
            n_bytes=rec.content_length,
        )
        if rtype not in ("response", "conversion", "resource"):
            doc.drop("read", f"record_type_{rtype}")
            return doc
        # Read at most one byte past the cap, so a 50 MB page never sits in memory whole.
        payload = rec.reader.read(self.max_payload_bytes + 1)
        if len(payload) > self.max_payload_bytes:
            doc.drop("read", f"payload_too_large: over {self.max_payload_bytes} bytes")
            return doc
        if len(payload) < rec.content_length:
            doc.drop("read", f"truncated_record: {len(payload)} of {rec.content_length} bytes")
            return doc
        if rtype == "conversion":  # WET: the text is already extracted
            doc.content_type = headers.get("Content-Type") or "text/plain"
            doc.raw = payload
            return doc
        if rtype == "resource":
            doc.content_type = headers.get("Content-Type")
            doc.drop("read", "record_type_resource")
            return doc
        return self._http(doc, payload)

    def _http(self, doc: Document, payload: bytes) -> Document:
        head, sep, body = payload.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = payload.partition(b"\n\n")
        status_line, _, rest = head.partition(b"\n")
        parts = status_line.split()
        if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            doc.drop("read", "bad_http_header")
            return doc
        fields = _header_fields(rest)
        doc.content_type = fields.get("content-type")
        status = parts[1].decode("latin-1", "replace")
        if status != "200":
            doc.drop("read", f"http_status_{status}")
            return doc
        if _media_type(doc.content_type) not in HTML_TYPES:
            doc.drop("read", f"not_html: {_media_type(doc.content_type) or 'no content type'}")
            return doc
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body = _dechunk(body)
        encoding = fields.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                body = _inflate(body, self.max_payload_bytes)
            except ValueError as exc:
                doc.drop("read", str(exc))
                return doc
        elif encoding not in ("identity", ""):
            doc.drop("read", f"unsupported_content_encoding: {encoding}")
            return doc
        doc.raw = body
        doc.n_bytes = len(body)
        return doc


def _dechunk(body: bytes) -> bytes:
    """Undo HTTP chunked transfer encoding (wget WARCs keep it; CommonCrawl removes it)."""
    out, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return body if not out else b"".join(out)
        try:
            n = int(body[pos:eol].split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return body if not out else b"".join(out)  # not chunked after all
        if n == 0:
            return b"".join(out)
        out.append(body[eol + 2:eol + 2 + n])
        pos = eol + 2 + n + 2


def _inflate(body: bytes, cap: int) -> bytes:
    """gzip/deflate with a cap on the output, so a gzip bomb costs `cap` bytes, not gigabytes."""
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # 32: accept gzip and zlib headers
    try:
        out = d.decompress(body, cap + 1)
    except zlib.error:
        try:
            out = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, cap + 1)  # raw deflate
        except zlib.error as exc:
            raise ValueError(f"bad_content_encoding: {exc}") from None
    if len(out) > cap or d.unconsumed_tail:
        raise ValueError(f"payload_too_large: decompresses to over {cap} bytes")
    return out


@dataclasses.dataclass(frozen=True)
class WarcConfig:
    # Larger HTTP payloads are dropped as `payload_too_large` without being held whole.
    max_payload_bytes: int = 8_000_000

    def validate(self) -> None:
        if self.max_payload_bytes <= 0:
            raise ValueError(f"max_payload_bytes must be > 0, got {self.max_payload_bytes}")


@register_reader("warc", suffixes=WARC_SUFFIXES, kind="web")
class Warc(Reader):
    """WARC, WET and WAT files (gzipped or not), through `WarcReader`."""

    format = "warc"
    config_cls = WarcConfig

    def read(self, url: str, shard_id: str) -> Iterator[Document]:
        yield from WarcReader(url, shard_id, self.config.max_payload_bytes)
