"""Canonical JSON for log entries: one byte string per entry, the leaf the tree hashes.

A leaf hash must not depend on who wrote the JSON: two nodes that hold the same entry
must hash the same bytes, or their roots disagree and an honest log looks forged. So an
entry is written one way only: keys sorted, no whitespace, UTF-8, strings escaped as
JSON requires and no further (no \\uXXXX for non-ASCII).

Values are str, int, bool, None, lists and dicts with str keys. Floats are refused, all
of them, not only NaN and infinities: their decimal spelling differs between languages
and versions, so use an int (milliseconds, per mille) or a string. Integers must lie
within +-(2**53 - 1), where every JSON reader agrees on them (I-JSON, RFC 7493); larger
numbers go in strings. Within these limits the output is exactly RFC 8785's (JSON
Canonicalization Scheme), including its key order: by UTF-16 code units, which differs
from code point order only for keys mixing characters above U+FFFF with ones from
U+E000 to U+FFFF.

Anything else (tuples, sets, bytes, dict keys that are not str, strings with lone
surrogates, nesting deeper than MAX_DEPTH) raises EntryError, a ValueError, rather than being
converted: a silent conversion is a second spelling of the entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 32


class EntryError(ValueError):
    """The entry holds a value that canonical JSON does not spell one way."""


def canonical(entry: Mapping[str, object]) -> bytes:
    """The entry's canonical JSON bytes. Raises EntryError (a ValueError) for values
    outside the module docstring's types."""
    if not isinstance(entry, Mapping):
        raise EntryError(f"an entry is a mapping, not {type(entry).__name__}")
    return _value(entry, "entry", 0).encode("utf-8")


def _value(value: object, where: str, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise EntryError(f"{where} is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EntryError(f"{where} is an integer beyond +-(2**53 - 1); write it as a string")
        return str(int(value))
    if isinstance(value, float):
        raise EntryError(f"{where} is a float; use an int or a string")
    if isinstance(value, str):
        return _string(value, where)
    if isinstance(value, list):
        items = (_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        return "[" + ",".join(items) + "]"
    if isinstance(value, Mapping):
        names = {}
        for key in value:
            if not isinstance(key, str):
                raise EntryError(f"{where} has a key that is not a string: {key!r}")
            names[key] = _string(key, where)
        # RFC 8785 3.2.3: by UTF-16 code units; big-endian bytes compare the same way.
        order = sorted(names, key=lambda key: key.encode("utf-16-be"))
        members = (
            f"{names[key]}:{_value(value[key], f'{where}.{key}', depth + 1)}" for key in order
        )
        return "{" + ",".join(members) + "}"
    raise EntryError(f"{where} is a {type(value).__name__}, which JSON entries cannot hold")


def _string(text: str, where: str) -> str:
    """JSON string with only the escapes JSON requires (RFC 8785 3.2.2.2): quote,
    backslash, and control characters, as \\b \\t \\n \\f \\r or \\u00xx."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError(f"{where} holds a string that is not valid Unicode") from None
    return json.dumps(text, ensure_ascii=False)
