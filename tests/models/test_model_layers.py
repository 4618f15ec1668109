"""The in-graph name features of charcnn: label positions and shape numbers."""

from __future__ import annotations

import numpy as np

from dnsentinel.models import encoding
from dnsentinel.models.layers import LABEL_POSITIONS, NameShape


def test_label_positions_count_labels_from_the_right():
    x = encoding.encode(["ab.example.com"], 64, 5)
    positions, shape = NameShape()(encoding.trim(x, 5))
    positions = positions.numpy()[0]
    assert list(positions[:14]) == [2, 2, 2] + [1] * 8 + [0] * 3  # "ab." / "example." / "com"
    assert set(positions[14:]) == {LABEL_POSITIONS - 1}  # padding
    length, dots, second, digits, hyphens = shape.numpy()[0]
    assert length * 32 == 14 and dots * 4 == 2 and second * 16 == 7 and digits == 0 and hyphens == 0


def test_deep_names_share_one_position_past_the_third_label():
    positions, _ = NameShape()(encoding.encode(["a.b.c.d.e"], 16, 2))
    assert list(positions.numpy()[0][:9]) == [3, 3, 3, 3, 2, 2, 1, 1, 0]

