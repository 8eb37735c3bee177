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
    build_index_file,
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


# --- a fine-tune's index covers its lineage (issue #12) -----------------------------------


def _every_prefix_passes_the_filter(index: VerbatimIndex, text: str) -> bool:
    """Whether every `span`-character run of `text` that some character follows may continue."""
    guard = CopyGuard(index)
    for pushed, char in enumerate(text[:-1], start=1):  # the last run ends the text
        guard.push(char)
        if pushed >= index.span and not guard.risky:
            return False
    return True


def test_a_child_index_blocks_what_only_its_parent_saw(tmp_path: Path) -> None:
    forgotten = "my phone number is 555 0199 and I live on Quiet Lane, number 12"
    parent_path, child_path = tmp_path / "parent.verbatim", tmp_path / "child.verbatim"
    VerbatimIndex.build(CORPUS + forgotten, span=20).save(parent_path)
    build_index_file(CORPUS, 20, child_path, parent=parent_path)  # the text is gone now
    child = VerbatimIndex.load(child_path)
    assert child.find_copy("so " + forgotten[3:40]) is not None
    assert child.find_copy("say " + SECRET[:30]) is not None  # and its own text
    assert _every_prefix_passes_the_filter(child, forgotten)


def test_a_small_parent_filter_is_widened_without_losing_a_prefix() -> None:
    rng = random.Random(5)
    parent_text = "".join(rng.choice("abcdefgh ") for _ in range(3_000))
    child_text = "".join(rng.choice("ijklmnop ") for _ in range(300_000))
    parent = VerbatimIndex.build(parent_text, span=12)
    child = VerbatimIndex.build(child_text, span=12, parent=parent)
    assert child.filter_bits > parent.filter_bits  # the widening path ran
    assert _every_prefix_passes_the_filter(child, parent_text)
    assert _every_prefix_passes_the_filter(child, child_text)
    assert np.array_equal(
        child.hashes, np.union1d(parent.hashes, VerbatimIndex.build(child_text, span=12).hashes)
    )


def test_a_parent_with_another_span_or_no_file_is_refused(tmp_path: Path) -> None:
    parent_path = tmp_path / "parent.verbatim"
    VerbatimIndex.build(CORPUS, span=30).save(parent_path)
    with pytest.raises(VerbatimIndexError, match="30 characters"):
        build_index_file(CORPUS, 20, tmp_path / "child.verbatim", parent=parent_path)
    with pytest.raises(VerbatimIndexError, match="not found"):
        build_index_file(CORPUS, 20, tmp_path / "child.verbatim", parent=tmp_path / "gone")
    assert not (tmp_path / "child.verbatim").exists()


def test_the_in_place_build_matches_numpy_unique() -> None:
    rng = random.Random(9)
    text = "".join(rng.choice("ab") for _ in range(50_000))  # many repeated windows
    index = VerbatimIndex.build(text, span=8)
    codes = np.array([ord(c) + 1 for c in text], dtype=np.uint64)
    expected = np.zeros(len(text) - 8, dtype=np.uint64)
    for offset in range(9):
        expected = expected * np.uint64(0x9E3779B97F4A7C15) + codes[offset : offset + len(expected)]
    assert np.array_equal(index.hashes, np.unique(expected))
