from __future__ import annotations

import pytest

from models.vocab import UNK_TOKEN, Vocab


def test_round_trip_of_seen_text_including_emoji_cjk_and_combining_marks() -> None:
    text = "Hello, wörld! 😀🦜 漢字かな e\u0301 \u200d\n\t"
    vocab = Vocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.to_list()[0] == UNK_TOKEN


def test_unseen_characters_encode_to_unk_and_decode_to_nothing() -> None:
    vocab = Vocab.build("abc")
    ids = vocab.encode("a🦜b漢\u0301c")
    assert ids[1] == ids[3] == ids[4] == Vocab.UNK
    assert vocab.decode(ids) == "abc"


def test_growth_appends_and_never_moves_old_ids() -> None:
    old = Vocab.build("hello world")
    grown = old.extended("hello world 😀 new chars ✓")
    assert grown.to_list()[: len(old)] == old.to_list()
    assert len(grown) > len(old)
    assert grown.encode("😀") != [Vocab.UNK]
    assert old.extended("hello") == old


def test_cap_keeps_the_most_frequent_characters() -> None:
    text = "a" * 10 + "b" * 5 + "c" * 3 + "d"
    vocab = Vocab.build(text, max_size=3)  # <unk> + 2
    assert vocab.to_list() == [UNK_TOKEN, "a", "b"]
    assert vocab.encode("cd") == [Vocab.UNK, Vocab.UNK]
    assert len(vocab.extended("zzzz")) == 3  # the cap holds on growth too


def test_list_round_trip_and_validation() -> None:
    vocab = Vocab.build("xyz 😀")
    assert Vocab.from_list(vocab.to_list()) == vocab
    with pytest.raises(ValueError):
        Vocab(["a", "b"])
    with pytest.raises(ValueError):
        Vocab([UNK_TOKEN, "a", "a"])
    with pytest.raises(ValueError):
        Vocab([UNK_TOKEN, "ab"])
