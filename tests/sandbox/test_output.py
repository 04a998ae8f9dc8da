"""Output capture: head and tail kept within the limit, however much a command writes."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from workers.sandbox.core import OutputCapture


def capture(limit: int, *chunks: bytes) -> tuple[str, bool]:
    output = OutputCapture(limit)
    for chunk in chunks:
        output.feed(chunk)
    return output.text()


def test_short_output_is_kept_whole() -> None:
    assert capture(100, b"hello ", b"world\n") == ("hello world\n", False)
    assert capture(100) == ("", False)
    assert capture(5, b"12345") == ("12345", False)


def test_long_output_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    data = b"".join(b"%d\n" % n for n in range(100_000))
    text, cut = capture(300, data[:1000], data[1000:])
    assert cut
    assert len(text) <= 300
    found = re.fullmatch(r"(.*)\n\[\.\.\. (\d+) bytes cut \.\.\.\]\n(.*)", text, re.DOTALL)
    assert found is not None
    head, cut_bytes, tail = found[1].encode(), int(found[2]), found[3].encode()
    assert data.startswith(head)
    assert data.endswith(tail)
    assert len(head) + cut_bytes + len(tail) == len(data)
    assert abs(len(head) - len(tail)) <= 1


def test_multibyte_characters_and_invalid_bytes_come_out_as_valid_text() -> None:
    text, cut = capture(200, "é€😀".encode() * 1000 + b"\xff\xfe" * 10)
    assert cut
    assert len(text) <= 200
    text.encode("utf-8")  # no lone surrogates
    assert text.startswith("é€😀é€😀")
    assert text.endswith("\ufffd" * 20)


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(200, 2000))
def test_never_longer_than_the_limit(chunks: list[bytes], limit: int) -> None:
    text, cut = capture(limit, *chunks)
    whole = b"".join(chunks).decode("utf-8", "replace")
    assert len(text) <= limit
    assert cut == (len(whole) > limit)
    if not cut:
        assert text == whole
