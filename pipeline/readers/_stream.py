"""Byte streams for the text readers: one opener that undoes gzip, bzip2 or zstd (chosen by the
file's first bytes, not its name) and names what went wrong when a stream breaks.

Truncation must be an error we can see. gzip and bz2 raise EOFError when the compressed data
ends before its end-of-stream marker; python-zstandard's `stream_reader` does not (a file cut in
half simply reads as shorter), so zstd goes through `_ZstdRaw`, which checks that the last
frame was finished.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zlib
from typing import IO

from pipeline import storage

GZIP_MAGIC = b"\x1f\x8b"
BZ2_MAGIC = b"BZh"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class TruncatedStream(EOFError):
    """The compressed data ended inside a member or frame."""


class _ZstdRaw(io.RawIOBase):
    """Decompress concatenated zstd frames, raising TruncatedStream if the input ends mid-frame."""

    def __init__(self, f: IO[bytes], chunk: int = 1 << 20) -> None:
        super().__init__()
        import zstandard

        self._zstd = zstandard
        self._f = f
        self._chunk = chunk
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False        # the current frame has received input
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._buf and not self._eof:
            data = self._f.read(self._chunk)
            if not data:
                self._eof = True
                if self._fed and not self._d.eof:
                    raise TruncatedStream("zstd: compressed data ended before the end of a frame")
                break
            while data:
                try:
                    self._buf += self._d.decompress(data)
                except self._zstd.ZstdError as exc:
                    raise OSError(f"zstd: {exc}") from None
                self._fed = True
                data = b""
                if self._d.eof:  # a frame ended: the rest of this chunk starts the next one
                    data = self._d.unused_data
                    self._d = self._zstd.ZstdDecompressor().decompressobj()
                    self._fed = False
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def open_decompressed(url: str, buffer_size: int = 1 << 20) -> tuple[IO[bytes], str]:
    """(a buffered binary stream of `url`'s decompressed bytes, codec name: plain/gzip/bz2/zstd)."""
    raw = storage.open_input(url)
    try:
        head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
        if not head:
            head = raw.read(4)
            raw.seek(0)
    except Exception:
        raw.close()
        raise
    # GzipFile and BZ2File buffer by themselves, in small steps: wrapped in a large buffer, a read
    # that meets the end of a cut file would raise before handing over the lines decoded so far.
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb"), "gzip"  # type: ignore[return-value]
    if head.startswith(BZ2_MAGIC):
        return bz2.BZ2File(raw, "rb"), "bz2"  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC):
        return io.BufferedReader(_ZstdRaw(raw), buffer_size), "zstd"
    return raw, "plain"


def stream_error(exc: BaseException) -> str | None:
    """The drop reason for an exception raised while reading a (decompressed) stream, or None if
    it is not a stream error (a bug, to be raised)."""
    if isinstance(exc, EOFError):
        return f"truncated_file: {exc}"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)) or (isinstance(exc, OSError) and not storage.is_transient(exc)):
        return f"corrupt_file: {exc}"[:300]
    if storage.is_transient(exc):
        return f"read_failed: {storage.redact_text(str(exc))}"[:300]
    return None


def open_error(exc: BaseException) -> str:
    """The drop reason for a file that cannot be opened at all."""
    reason = getattr(exc, "strerror", None) or storage.redact_text(str(exc))[:200] or type(exc).__name__
    return f"unreadable_file: {reason}"
