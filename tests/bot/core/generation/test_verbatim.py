from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from bot.core.generation.verbatim import (
    CopyGuard,
    VerbatimIndex,
    VerbatimIndexError,
    index_path_for,
    load_index_or_none,
)

SECRET = "the vault code is 7413 and the spare key sits under the blue flowerpot"
CORPUS = "hello there, general chatter about games.\n" * 5 + SECRET + "\nbye for now.\n"


def test_finds_a_copy_longer_than_the_span_and_its_extent() -> None:
    index = VerbatimIndex.build(CORPUS, span=40)
    text = "I heard that " + SECRET[5:60] + "!!"
    assert index.find_copy(text) == (13, 13 + 55)


def test_exactly_span_characters_are_allowed() -> None:
    index = VerbatimIndex.build(CORPUS, span=40)
    assert index.find_copy("xx" + SECRET[:40] + "yy") is None
    assert index.find_copy("xx" + SECRET[:41] + "yy") == (2, 43)


def test_copies_inside_the_prompt_do_not_count() -> None:
    index = VerbatimIndex.build(CORPUS, span=40)
    prompt = SECRET[:50]
    assert index.find_copy(prompt + " and then something new", start=len(prompt)) is None
    # A copy that runs on from the prompt into the generated text does count.
    assert index.find_copy(SECRET[:30] + SECRET[30:45], start=30) == (0, 45)


def test_empty_and_short_texts() -> None:
    assert len(VerbatimIndex.build("", span=40)) == 0
    assert VerbatimIndex.build("short", span=40).find_copy("short") is None
    assert VerbatimIndex.build(CORPUS).find_copy("") is None


def test_non_ascii_characters_hash_as_code_points() -> None:
    corpus = "🦜 les perroquets répètent tout ce qu'on leur dit, même les secrets 🤫"
    index = VerbatimIndex.build(corpus, span=10)
    assert index.find_copy("> " + corpus[3:20]) == (2, 19)


def test_guard_agrees_with_find_copy_on_random_text() -> None:
    rng = random.Random(7)
    corpus = "".join(rng.choice("abc") for _ in range(3000))
    index = VerbatimIndex.build(corpus, span=6)
    text = "".join(rng.choice("abcd") for _ in range(400))
    guard = CopyGuard(index, text[:3])
    for position in range(3, len(text)):
        window = text[max(0, position - 6) : position + 1]
        expected = len(window) == 7 and window in corpus
        assert guard.would_copy(text[position]) == expected
        guard.push(text[position])


def test_only_the_next_character_of_the_copy_is_refused() -> None:
    index = VerbatimIndex.build(CORPUS, span=40)
    guard = CopyGuard(index, "> " + SECRET[:40])
    candidates = "abcdefghijklmnopqrstuvwxyz 0123456789"
    assert [c for c in candidates if guard.would_copy(c)] == [SECRET[40]]
    assert not CopyGuard(index, SECRET[:39]).would_copy(SECRET[39])  # not armed yet


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = VerbatimIndex.build(CORPUS, span=12)
    path = index_path_for(tmp_path / "model.ckpt")
    assert path.name == "model.ckpt.verbatim"
    index.save(path)
    loaded = VerbatimIndex.load(path)
    assert loaded.span == 12
    assert np.array_equal(loaded.hashes, index.hashes)
    assert loaded.find_copy("zz" + SECRET[:13]) == (2, 15)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"not a numpy archive at all",
        lambda data: b"",
    ],
)
def test_corrupt_files_are_a_clear_error_and_disable_the_guard(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.ckpt.verbatim"
    VerbatimIndex.build(CORPUS).save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(VerbatimIndexError, match=r"model\.ckpt\.verbatim"):
        VerbatimIndex.load(path)
    with caplog.at_level(logging.WARNING):
        assert load_index_or_none(path) is None
    assert "verbatim guard disabled" in caplog.text


def test_a_pickle_or_foreign_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.verbatim"
    with path.open("wb") as handle:
        np.savez(handle, meta=np.array([object()], dtype=object), hashes=np.zeros(3, np.uint64))
    with pytest.raises(VerbatimIndexError):
        VerbatimIndex.load(path)
    with path.open("wb") as handle:
        np.savez(handle, meta=np.array([99, 40, 1], dtype=np.uint64), hashes=np.zeros(0, np.uint64))
    with pytest.raises(VerbatimIndexError, match="unsupported"):
        VerbatimIndex.load(path)


def test_missing_index_means_no_guard_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_index_or_none(tmp_path / "absent.verbatim") is None
    assert caplog.text == ""


def test_prefix_filter_lets_few_unrelated_rows_through() -> None:
    rng = random.Random(1)
    alphabet = "abcdefghijklmnopqrstuvwxyz "
    index = VerbatimIndex.build("".join(rng.choice(alphabet) for _ in range(50_000)), span=40)
    guards = [
        CopyGuard(index, "".join(rng.choice(alphabet) for _ in range(40))) for _ in range(500)
    ]
    false_hits = sum(index.may_continue(guard.prefix_hash) for guard in guards)
    assert false_hits < 25  # 16 bits and 2 probes per window: about 1% of 500
    secret_index = VerbatimIndex.build(CORPUS, span=40)
    guard = CopyGuard(secret_index, SECRET[:40])
    assert secret_index.may_continue(guard.prefix_hash)
