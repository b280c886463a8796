"""Small file utilities shared by every package: atomic writes, checksums, located errors.

Everything that writes a file the user keeps goes through :func:`atomic_write` so that a crash or
Ctrl-C leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from convrec.errors import DataError

__all__ = ["DataError", "atomic_write", "iter_jsonl", "open_input", "sha256_file", "sha256_text", "write_json"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; results are meant to be shared
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once at import, before any thread exists.
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, ensure_ascii=False)
        handle.write("\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


# What JSON itself counts as whitespace; str.strip() would also remove e.g. U+00A0, which JSON rejects.
_JSON_WHITESPACE = " \t\r\n"
# A \u escape of a UTF-16 surrogate: valid JSON syntax, but one that is not half of a pair is no character
# and could not be written back as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_TO_UTF8_HINT = "convert the file to UTF-8 first, e.g. `iconv -f {encoding} -t UTF-8 FILE > FILE.utf8`"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank line of a UTF-8 JSON Lines file.

    Every problem is a :class:`DataError` that names the file and, past opening it, the line: a missing file
    or a directory, bytes that are not UTF-8 (with their offset and value), and JSON that does not parse.
    Lines are read as bytes and decoded one by one so that a bad byte can be located exactly.
    """
    with open_input(path) as handle:
        offset = 0  # of the current line in the file, in bytes
        for number, raw in enumerate(handle, start=1):
            size = len(raw)
            if number == 1:
                raw = _without_byte_order_mark(raw, path)
            line = _decode_line(raw, path, number, offset + size - len(raw)).rstrip(_JSON_WHITESPACE)
            offset += size
            if line:
                yield number, _parse_json_line(line, path, number)


def open_input(path: str | os.PathLike, expected: str = "a JSON Lines file") -> IO[bytes]:
    """``open(path, "rb")``, its failures as a DataError naming the file (``expected`` says what it should be)."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except IsADirectoryError:
        raise DataError(f"is a directory, expected {expected}", path) from None
    except OSError as err:
        raise DataError(f"cannot be read: {err.strerror or err}", path) from None


def _without_byte_order_mark(raw: bytes, path: str | os.PathLike) -> bytes:
    """A UTF-8 byte order mark (some Windows editors write one) is dropped; a UTF-16 or UTF-32 one refused."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):]
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"starts with a UTF-16 byte order mark (bytes 0x{raw[:2].hex()}): the file is UTF-16 "
                        "(or UTF-32), convrec reads UTF-8 only", path, 1,
                        hint=_TO_UTF8_HINT.format(encoding="UTF-16"))
    return raw


def _decode_line(raw: bytes, path: str | os.PathLike, number: int, offset: int) -> str:
    # NUL is valid UTF-8 but never valid in JSON text: it is what UTF-16 without a byte order mark looks like.
    nul = raw.find(b"\0")
    if nul >= 0:
        raise DataError(f"NUL byte at byte {nul} of the line (byte {offset + nul} of the file): the file looks "
                        "like UTF-16 or binary, convrec reads UTF-8 text only", path, number,
                        hint=_TO_UTF8_HINT.format(encoding="UTF-16"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"byte 0x{raw[err.start]:02x} at byte {err.start} of the line (byte {offset + err.start} "
                        "of the file) is not UTF-8; convrec reads UTF-8 text only", path, number,
                        hint=_TO_UTF8_HINT.format(encoding="LATIN1") + " if it is Latin-1") from None


def _parse_json_line(line: str, path: str | os.PathLike, number: int) -> Any:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        where = "the end of the line" if err.pos >= len(line) else f"column {err.colno}"
        # Some of json's messages already end in "at" ("Unterminated string starting at").
        joiner = " " if err.msg.endswith(" at") else " at "
        raise DataError(f"not valid JSON ({err.msg}{joiner}{where})", path, number) from None
    except RecursionError:
        raise DataError("JSON nested more deeply than convrec can read", path, number) from None
    except ValueError:  # json's only other error: an integer longer than Python converts
        raise DataError(f"a number with more than {sys.get_int_max_str_digits()} digits, more than convrec "
                        "can read", path, number) from None
    if "\\u" in line and _SURROGATE_ESCAPE.search(line):
        _check_no_lone_surrogate(value, path, number)
    return value


def _check_no_lone_surrogate(value: Any, path: str | os.PathLike, number: int) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        escape = f"\\u{ord(err.object[err.start]):04x}"
        raise DataError(f"the escape {escape} is half of a UTF-16 surrogate pair without its other half, "
                        "not a character (convrec stores text as UTF-8)", path, number) from None
