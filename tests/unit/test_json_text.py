"""app.json_text against the standard library's encoder, whose output it replaced."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.json_text import compact, compact_ascii

STDLIB_COMPACT = json.JSONEncoder(separators=(",", ":"))

# Every JSON document an answer, token, record or log line can be, floats aside: any
# text (non-ASCII, controls, DEL, lone surrogates), integers past 64 bits, nesting.
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(document=documents)
def test_answers_are_the_standard_librarys_bytes(document: Any) -> None:
    assert compact_ascii(document) == STDLIB_COMPACT.encode(document).encode("ascii")


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(document=documents)
def test_compact_json_reads_back_as_the_document(document: Any) -> None:
    assert json.loads(compact(document)) == document


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # orjson's own writing: UTF-8, compact, key order kept.
        ({"b": "é", "a": [1, None, True]}, '{"b":"é","a":[1,null,true]}'.encode()),
        ('\x00\x1f\x7f"\\/', b'"\\u0000\\u001f\x7f\\"\\\\/"'),
        # What orjson refuses is written as the standard library always wrote it.
        ("a\ud800b", b'"a\\ud800b"'),
        ({"n": 2**64}, b'{"n":18446744073709551616}'),
        ({1: "x"}, b'{"1":"x"}'),
    ],
)
def test_compact_json(document: Any, expected: bytes) -> None:
    assert compact(document) == expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"token": "pypi-abc", "expires": 1}, b'{"token":"pypi-abc","expires":1}'),
        # Escaped as Flask's jsonify (and PyPI) write it: non-ASCII, DEL, surrogates.
        ({"m": "é"}, b'{"m":"\\u00e9"}'),
        ("\x7f", b'"\\u007f"'),
        ("\ud800", b'"\\ud800"'),
        ("😀", b'"\\ud83d\\ude00"'),
    ],
)
def test_ascii_json(document: Any, expected: bytes) -> None:
    assert compact_ascii(document) == expected


def test_what_neither_encoder_can_write_is_refused() -> None:
    with pytest.raises(TypeError):
        compact({"when": object()})
    with pytest.raises(TypeError):
        compact_ascii({"when": object()})
