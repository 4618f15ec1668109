"""Encoding: the alphabet, what is kept of long names, and what odd input becomes."""

from __future__ import annotations

import numpy as np

from dnsentinel.models import encoding


def test_alphabet_indices_and_padding():
    row = encoding.encode(["ab-9_.z"], max_len=10)[0]
    assert row.shape == (10,)
    assert list(row[:7]) == [1, 2, 37, 36, 38, 39, 26]
    assert list(row[7:]) == [encoding.PAD] * 3
    assert encoding.decode(row) == "ab-9_.z"


def test_case_whitespace_and_trailing_dot_are_normalized():
    a, b = encoding.encode(["  Example.COM. ", "example.com"], max_len=16)
    assert np.array_equal(a, b)


def test_long_names_keep_the_right_end():
    name = "a" * 100 + ".example.com"
    row = encoding.encode([name], max_len=20)[0]
    assert encoding.decode(row) == name[-20:]
    assert encoding.decode(row).endswith(".example.com")


def test_tail_guarantees_padding_after_the_longest_name():
    arr = encoding.encode(["x" * 30], max_len=20, tail=5)
    assert arr.shape == (1, 25)
    assert np.all(arr[0, 20:] == encoding.PAD)
    trimmed = encoding.trim(encoding.encode(["abc", "abcdef"], max_len=20, tail=5), tail=5)
    assert trimmed.shape == (2, 11)


def test_non_ascii_nul_and_non_strings():
    rows = encoding.encode(["ü.de", "a\x00b", "", None, b"bytes.com", 42], max_len=8)
    assert rows[0][0] == encoding.OTHER
    assert list(rows[1][:3]) == [1, encoding.OTHER, 2]  # NUL is "other", never padding
    assert not rows[2].any() and not rows[3].any() and not rows[5].any()
    assert encoding.decode(rows[4]) == "ytes.com"  # the right-most 8 characters
