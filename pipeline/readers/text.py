"""Plain text files (`.txt`, `.txt.gz`, `.txt.bz2`, `.txt.zst`): books and other clean text.

`split` says what a document is: `file` (default: one book per file), `blank_lines` (each
paragraph) or `lines` (each non-blank line). A document's `source_row` is the 1-based line it
starts on, `warc_offset` that line's byte offset in the (decompressed) file, doc_id
`<shard>/<line>`. Line ends are normalised to `\\n` (Gutenberg files are CRLF, with stray CRs).

Project Gutenberg boilerplate is removed when the file has it (`strip_gutenberg`): everything up
to the `*** START OF THE/THIS PROJECT GUTENBERG EBOOK ... ***` marker (or the older `*END*THE
SMALL PRINT` one) and the "Produced by ..." credits after it; everything from `*** END OF ...`,
"End of the Project Gutenberg EBook ..." or the licence that follows. The header's `Title:` and
`[EBook #N]` become the document's title and source_id (`gutenberg:N`). A file without a start
marker in its first `header_lines` lines is read as it is.

Bytes: UTF-8; a document that is not UTF-8 is decoded with the encoding charset-normalizer
detects in it (older Gutenberg files are Latin-1), recorded in `charset`; one that is not text
at all (NUL bytes, or mostly control characters) is dropped as `not_text`; one that no encoding
fits as `not_utf8`, and so is UTF-16/32 text (its byte-order mark named: convert it to UTF-8). A
UTF-8 byte-order mark is not kept in the text. Other drops: `empty_text`, `record_too_large`, `truncated_file`,
`corrupt_file`, `unreadable_file`, `empty_file`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import IO

from pipeline.document import Document
from pipeline.readers import Reader
from pipeline.readers._stream import open_decompressed, open_error, stream_error
from pipeline.registry import register_reader

SPLITS = ("file", "blank_lines", "lines")
_START = re.compile(rb"^\s*(\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG|\*{3}\s*START OF THE COPYRIGHTED"
                    rb"|\*END\*?\s*THE SMALL PRINT)", re.I)
_END = re.compile(rb"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|END OF (THE )?PROJECT GUTENBERG"
                  rb"|End of Project Gutenberg'?s|\*{3}\s*START: FULL LICENSE)", re.I)
# Credit paragraphs right after the start marker (transcribers, not the author).
_CREDITS = re.compile(rb"^\s*(produced by|prepared by|e-?text prepared by|this e-?text was|transcribed from"
                      rb"|transcriber'?s note|special thanks)", re.I)
_TITLE = re.compile(rb"^Title:\s*(.+?)\s*$")
_EBOOK_NO = re.compile(rb"\[e-?(?:book|text) #(\d+)\]", re.I)
_WESTERN_CONFUSABLE = {"cp1250", "cp775", "cp850", "cp437", "cp858", "latin_1", "iso8859_15", "iso8859_2", "mac_roman",
                       "mac_latin2", "cp1252", "iso8859_13", "cp1257"}
_CENTRAL_EUROPEAN = {"Polish", "Czech", "Slovak", "Hungarian", "Croatian", "Slovene", "Romanian", "Lithuanian",
                     "Latvian", "Estonian"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    split: str = "file"
    strip_gutenberg: bool = True
    # How far into a file the Gutenberg start marker is looked for (real headers: 20-60 lines).
    header_lines: int = 400
    # A longer document is dropped as `record_too_large` (read past, never held whole).
    max_document_bytes: int = 64 * 2**20

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        if self.header_lines < 0:
            raise ValueError(f"header_lines must be >= 0, got {self.header_lines}")
        if self.max_document_bytes <= 0:
            raise ValueError(f"max_document_bytes must be > 0, got {self.max_document_bytes}")


# Byte-order marks of encodings this reader does not read (its line logic works on bytes): the
# file is text, so the reason says what it is and what to do, not "binary data".
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
              (b"\xfe\xff", "UTF-16"))


def decode(data: bytes) -> tuple[str | None, str, str | None]:
    """(text or None, charset, drop reason): UTF-8, else the detected encoding, else a reason."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            return None, "", f"not_utf8: {name} text (byte-order mark); convert the file to UTF-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # UTF-8's byte-order mark is not part of the text
    if b"\x00" in data[:65536]:
        return None, "", "not_text: NUL bytes (binary data)"
    try:
        text, charset = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:1 << 20]).best()
        if best is None or best.encoding in ("utf_8", "utf-8"):
            return None, "", f"not_utf8: byte {exc.start} and no other encoding fits"
        encoding = best.encoding
        # A few accented letters in English or French prose fit cp1250, cp850 or cp775 as well
        # as cp1252, and the detector may pick any of them (measured: "thé" came out "thť");
        # Western text is far more often cp1252/Latin-1, so that wins unless the detector
        # recognised a Central European language.
        if encoding in _WESTERN_CONFUSABLE and best.language not in _CENTRAL_EUROPEAN:
            try:
                data.decode("cp1252")
                encoding = "cp1252"
            except UnicodeDecodeError:
                pass
        try:
            text, charset = data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError):
            return None, "", f"not_utf8: byte {exc.start} (detected {best.encoding} does not decode it)"
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > 0.05 * len(sample):
        return None, "", "not_text: mostly control characters"
    return text, charset, None


@register_reader("text", suffixes=(".txt", ".txt.gz", ".txt.bz2", ".txt.zst", ".text"), kind="books")
class TextReader(Reader):
    """Plain text, one document per file/paragraph/line, Gutenberg boilerplate removed."""

    format = "text"
    config_cls = TextConfig

    def read(self, url: str, shard_id: str) -> Iterator[Document]:
        try:
            stream, _codec = open_decompressed(url)
        except Exception as exc:
            yield self.unreadable(url, shard_id, open_error(exc))
            return
        self._title: str | None = None
        self._ebook: str | None = None
        n = 0
        with stream:
            lines = _Lines(stream)
            try:
                for doc in self._documents(lines, url, shard_id):
                    n += 1
                    yield doc
            except Exception as exc:
                reason = stream_error(exc)
                if reason is None:
                    raise
                yield Document(doc_id=f"{shard_id}/{lines.line_no + 1}", warc_path=url, warc_offset=lines.offset,
                               record_type="unparsed", input_format=self.format, source_row=lines.line_no + 1,
                               drop_stage="read", drop_reason=reason)
                return
        if n == 0 and lines.offset == 0:
            yield self.unreadable(url, shard_id, "empty_file")

    def _content(self, lines: _Lines) -> Iterator[tuple[int, int, bytes]]:
        """(line number, byte offset, line without its line end) of the lines that are content."""
        cfg = self.config
        head: list[tuple[int, int, bytes]] = []
        gutenberg = False
        if cfg.strip_gutenberg:
            for item in lines:
                head.append(item)
                line = item[2]
                if m := _TITLE.match(line):
                    self._title = self._title or m.group(1).decode("utf-8", "replace")
                if m := _EBOOK_NO.search(line):
                    self._ebook = self._ebook or m.group(1).decode()
                if _START.match(line):
                    gutenberg, head = True, []
                    break
                if len(head) >= cfg.header_lines:
                    break
        if not gutenberg:
            self._title = self._ebook = None
            yield from head
            yield from lines
            return
        credits = True  # skipping the credits paragraph(s) that open the text
        for item in lines:
            line = item[2]
            if _END.match(line):
                return  # the rest is the footer and the licence
            if credits:
                if not line.strip():
                    continue
                if _CREDITS.match(line):
                    for item2 in lines:  # the rest of that paragraph
                        if not item2[2].strip():
                            break
                    continue
                credits = False
            yield item

    def _documents(self, lines: _Lines, url: str, shard_id: str) -> Iterator[Document]:
        split, limit = self.config.split, self.config.max_document_bytes
        parts: list[bytes] = []
        first: tuple[int, int] | None = None
        size = 0
        for line_no, offset, line in self._content(lines):
            blank = not line.strip()
            if split == "lines" or (split == "blank_lines" and blank):
                if parts and first is not None:
                    yield self._doc(parts, first, size, url, shard_id)
                parts, first, size = [], None, 0
                if split == "blank_lines" or blank:
                    continue
            if first is None:
                if blank:
                    continue  # leading blank lines are not part of a document
                first = (line_no, offset)
            size += len(line) + 1
            if size <= limit:
                parts.append(line)
            elif parts:
                parts = []  # over the limit: stop holding it; the row says so
        if first is not None:
            yield self._doc(parts, first, size, url, shard_id)

    def _doc(self, parts: list[bytes], first: tuple[int, int], size: int, url: str, shard_id: str) -> Document:
        line_no, offset = first
        doc = Document(doc_id=f"{shard_id}/{line_no}", warc_path=url, warc_offset=offset, record_type="document",
                       input_format=self.format, source_row=line_no, n_bytes=size,
                       title=self._title, source_id=f"gutenberg:{self._ebook}" if self._ebook else None)
        if size > self.config.max_document_bytes:
            doc.drop("read", f"record_too_large: {size} bytes, over {self.config.max_document_bytes}")
            return doc
        text, charset, reason = decode(b"\n".join(parts).rstrip())
        if reason is not None:
            doc.drop("read", reason)
        elif not text or not text.strip():
            doc.drop("read", "empty_text")
        else:
            doc.text, doc.n_chars, doc.charset = text, len(text), charset
        return doc


class _Lines:
    """(1-based line number, byte offset, line without \\r\\n) of a binary stream; keeps the position
    reached, so a stream error can be reported where it happened."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.line_no = 0
        self.offset = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> tuple[int, int, bytes]:
        line = self._stream.readline()
        if not line:
            raise StopIteration
        start = self.offset
        self.offset += len(line)
        self.line_no += 1
        # CRLF, LF and the stray lone CR Gutenberg files carry
        return self.line_no, start, line.rstrip(b"\r\n").replace(b"\r", b"")
