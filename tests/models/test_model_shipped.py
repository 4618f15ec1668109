"""The shipped current model's family guess and explanations point at the right things.

Shape checks alone would pass a constant ``(None, 0.0)`` or an explanation that names the
TLD every time; these use names of the corpus test split (never trained on) whose family
and random part are known.
"""

from __future__ import annotations

import re

import pytest

from dnsentinel.models import load

TEST_SPLIT_NAMES = {  # corpus test-split names (models/data/dga.csv.xz), one family each
    "banjori": ["ameeestnessbiophysicalohax.com", "amkcestnessbiophysicalohax.com"],
    "ramdo": ["aaaayukeuaouweao.org", "aaasqseomiaukwag.org"],
    "tinba": ["bbbgdebxqbyq.com", "bbbmdgkcbfof.com"],
}


@pytest.fixture(scope="module")
def shipped():
    return load()


def test_family_guess_names_the_family_of_clear_cases(shipped):
    for family, names in TEST_SPLIT_NAMES.items():
        guesses = shipped.predict_family(names)
        assert [g for g, _ in guesses] == [family] * len(names), (family, guesses)
        assert all(p > 0.5 for _, p in guesses)
    assert shipped.predict_family(["www.wikipedia.org"]) == [(None, 0.0)]


def test_explanation_points_at_the_random_part_of_a_name(shipped):
    name = "googlexqzjkvwpfh.com"  # characters 7-16 are random
    text = shipped.explain(name)
    windows = [(int(a), int(b)) for a, b in re.findall(r"\(chars (\d+)-(\d+)\)", text)]
    assert windows and "towards malicious" in text
    first_a, first_b = windows[0]
    assert 7 <= first_a and first_b <= 16, text
