"""The vocabulary is the one place the contract's words are spelled (issue 14).

Go checks its constants against ``vectors.json``'s ``vocabulary`` section (generated from
vocabulary.py, see test_vc_vectors); here the Python side is held to the same rule: the
other contract modules derive from it, and no product module spells a list of its words.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dnsentinel.verdict_cache import events, keys, policy, vocabulary
from dnsentinel.verdict_cache.events import InvalidEvent, QueryEvent, encode_event, parse_event

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("common", "verdict_cache", "models", "stream_processor", "producers", "dashboard", "cli")
WORDS = {w for words in vocabulary.as_dict().values() for w in words}


def test_contract_modules_derive_from_the_vocabulary() -> None:
    assert tuple(keys.LABEL_CODES) == vocabulary.VERDICT_LABELS
    assert policy.VETTED_ACTIONS == vocabulary.VETTED_ACTIONS and policy.DECISIONS == vocabulary.DECISIONS
    assert events.SOURCES == set(vocabulary.SOURCES) and events.ACTIONS == set(vocabulary.ACTIONS)
    assert events.DECISIONS == set(vocabulary.DECISIONS) and events.LABELS == set(vocabulary.VERDICT_LABELS)
    assert set(vocabulary.BLOCKING_DECISIONS) <= set(vocabulary.DECISIONS)
    assert set(vocabulary.FLAGGED_LABELS) <= set(vocabulary.VERDICT_LABELS) <= set(vocabulary.LABELS)


@pytest.mark.parametrize("field,words", [("source", vocabulary.SOURCES), ("action", vocabulary.ACTIONS),
                                         ("decision", vocabulary.DECISIONS), ("proto", vocabulary.PROTOS)])
def test_events_accept_exactly_the_vocabulary(field: str, words: tuple[str, ...]) -> None:
    now = 1_795_392_000_000
    base = {"ts": now, "name": "example.com", "qtype": "A", "client": "192.0.2.1", "source": "live"}
    for word in words:
        assert getattr(parse_event(encode_event(QueryEvent(**(base | {field: word}))), now_ms=now), field) == word
    with pytest.raises(InvalidEvent, match=f"bad_value:{field}"):
        parse_event(encode_event(QueryEvent(**(base | {field: "not-a-word"}))), now_ms=now)


def _spelled_word_lists(path: Path) -> list[str]:
    """Tuple/list/set literals of two or more strings, all of them vocabulary words."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.elts) and set(values) <= WORDS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {values}")
    return found


def test_no_product_module_spells_the_vocabulary() -> None:
    spelled = [hit for folder in PRODUCT for path in sorted((ROOT / folder).rglob("*.py"))
               if path.name != "vocabulary.py" for hit in _spelled_word_lists(path)]
    assert not spelled, "import these from dnsentinel.verdict_cache.vocabulary:\n" + "\n".join(spelled)
