"""clkhash's JSON interchange format, read as it streams and written out as an encodings file.

``{"clks": ["<base64>", ...]}`` is all clkhash writes. Reading it with ``json.loads`` costs
several times the file's size in memory and fails on deeply nested input; this reader accepts
exactly that shape, one token at a time, so memory stays bounded by one batch of CLKs
whatever the file holds, and anything else (other keys, nesting, escapes, numbers) is refused
with the position where it went wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .encodings_file import EncodingsMetadata, EncodingsWriter, tool_version
from .errors import InputError

__all__ = ["convert_clkhash_json"]

_READ_BYTES = 1 << 20
_BATCH = 65536
_MAX_STRING = 16384  # base64 of 12 KiB: longer than any CLK
_TOKEN = re.compile(rb'\s*(?:([{}\[\]:,])|"([A-Za-z0-9+/=]*)("?))')


def _tokens(path: Path, name: str) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, punctuation or string, is_string) of each token; InputError on anything
    that is not one of clkhash's tokens."""
    buffer, consumed = b"", 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_READ_BYTES)
            buffer += chunk
            position = 0
            while True:
                match = _TOKEN.match(buffer, position)
                if match is None or (match.group(2) is not None and not match.group(3)):
                    # an incomplete token at the end of the buffer: read on, unless done
                    if chunk and len(buffer) - position <= _MAX_STRING + 2:
                        break
                    if not buffer[position:].strip():
                        position = len(buffer)
                        break
                    raise InputError(f"{name}: not clkhash JSON at byte {consumed + position:,}"
                                     f" (only {{\"clks\": [\"<base64>\", ...]}} is accepted)")
                if match.group(1) is not None:
                    yield consumed + match.start(1), match.group(1), False
                else:
                    if len(match.group(2)) > _MAX_STRING:
                        raise InputError(f"{name}: a string at byte {consumed + position:,} "
                                         f"is too long for a CLK")
                    yield consumed + match.start(2), match.group(2), True
                position = match.end()
            consumed += position
            buffer = buffer[position:]
            if not chunk:
                return


def _expect(tokens: Iterator[tuple[int, bytes, bool]], name: str, wanted: bytes) -> None:
    for offset, token, is_string in tokens:
        if is_string or token != wanted:
            raise InputError(f"{name}: expected {wanted.decode()!r} at byte {offset:,} (only "
                             f"clkhash's {{\"clks\": [...]}} is accepted)")
        return
    raise InputError(f"{name}: ends before {wanted.decode()!r}")


def convert_clkhash_json(source: Path, target: Path, name: str, max_records: int
                         ) -> tuple[int, int]:
    """Read clkhash JSON from ``source`` and write it to ``target`` as an encodings file
    (record ids are positions, as clkhash has none; no schema fingerprint, no key check
    value); returns (records, bits).

    Raises:
        InputError: not that shape, invalid base64, CLKs of different lengths, no CLK at
            all, or more than ``max_records``.
    """
    tokens = _tokens(source, name)
    _expect(tokens, name, b"{")
    key = next(tokens, None)
    if key is None or not key[2] or key[1] != b"clks":
        raise InputError(f'{name}: expected the key "clks" first (clkhash JSON)')
    _expect(tokens, name, b":")
    _expect(tokens, name, b"[")
    writer: EncodingsWriter | None = None
    width = -1
    count = 0
    batch: list[bytes] = []

    def flush() -> None:
        nonlocal writer
        if not batch:
            return
        if writer is None:
            writer = EncodingsWriter(target, EncodingsMetadata(
                width * 8, None, tool_version=tool_version(), source_format="clkhash-json"))
        clks = np.frombuffer(b"".join(batch), np.uint8).reshape(len(batch), width)
        writer.write([str(i) for i in range(count - len(batch), count)], clks,
                     np.bitwise_count(clks).sum(axis=1, dtype=np.uint16))
        batch.clear()

    try:
        expect_value = True
        for offset, token, is_string in tokens:
            if expect_value and is_string:
                try:
                    clk = base64.b64decode(token, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise InputError(f"{name}: clks[{count}] is not valid base64") from e
                if width < 0:
                    width = len(clk)
                    if not width:
                        raise InputError(f"{name}: clks[0] is empty")
                elif len(clk) != width:
                    raise InputError(f"{name}: clks[{count}] has {len(clk)} bytes, clks[0] "
                                     f"{width}: CLKs must all have the same length")
                batch.append(clk)
                count += 1
                if count > max_records:
                    raise InputError(f"{name}: holds more than the {max_records:,} records "
                                     f"one upload may hold")
                if len(batch) == _BATCH:
                    flush()
                expect_value = False
            elif not expect_value and token == b",":
                expect_value = True
            elif token == b"]" and (not expect_value or count == 0):
                break
            else:
                raise InputError(f"{name}: unexpected {'string' if is_string else 'token'} at "
                                 f"byte {offset:,} in the clks list")
        else:
            raise InputError(f"{name}: ends inside the clks list")
        _expect(tokens, name, b"}")
        trailing = next(tokens, None)
        if trailing is not None:
            raise InputError(f"{name}: unexpected content after the JSON object at byte "
                             f"{trailing[0]:,}")
        if count == 0:
            raise InputError(f"{name}: holds no CLK; an empty upload would replace the "
                             f"party's data with nothing")
        flush()
        assert writer is not None
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    return count, width * 8
