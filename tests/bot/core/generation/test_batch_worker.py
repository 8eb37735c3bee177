"""The guarded batch sampler on a real (random-weight) model.

Greedy decoding of a fixed model is deterministic, so the text the model "wants" to write is
known: index exactly that text as the corpus, and the guard must steer every row away from
it (through BatchSampler's public `step(exclude=...)`, `handles` and `text_of`).
"""

from __future__ import annotations

import torch

from bot.core.generation.batch_worker import GuardedBatchSampler
from bot.core.generation.verbatim import VerbatimIndex
from models.charrnn import CharRNN, CharRNNConfig
from models.sample import BatchSampler, SampleRequest
from models.vocab import Vocab

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,\n"


def tiny_model(seed: int = 3) -> tuple[CharRNN, Vocab]:
    torch.manual_seed(seed)
    vocab = Vocab.build(ALPHABET)
    config = CharRNNConfig(
        vocab_size=len(vocab), embed_dim=8, hidden_size=32, num_layers=1, dropout=0.0
    )
    return CharRNN(config).eval(), vocab


def run(sampler: BatchSampler, requests: list[SampleRequest]) -> list[str]:
    handles = [sampler.add(request) for request in requests]
    while sampler.active:
        sampler.step()
    return [sampler.release(handle) for handle in handles]


def test_without_a_copy_the_guard_changes_nothing() -> None:
    model, vocab = tiny_model()
    requests = [SampleRequest("the ", max_chars=80, temperature=0.7, seed=s) for s in range(4)]
    plain = run(BatchSampler(model, vocab), requests)
    unrelated = VerbatimIndex.build("zzzz " * 200, span=10)
    guarded = GuardedBatchSampler(model, vocab, verbatim=unrelated)
    assert run(guarded, requests) == plain


def test_greedy_rows_are_steered_off_the_text_they_would_copy() -> None:
    model, vocab = tiny_model()
    prompts = ["hello ", "the cat ", "a"]
    greedy = [SampleRequest(p, max_chars=150, temperature=0.0) for p in prompts]
    wanted = run(BatchSampler(model, vocab), greedy)
    corpus = "\n".join(p + w for p, w in zip(prompts, wanted, strict=True))
    index = VerbatimIndex.build(corpus, span=20)
    assert all(index.find_copy(p + w, start=len(p)) for p, w in zip(prompts, wanted, strict=True))

    guarded = GuardedBatchSampler(model, vocab, verbatim=index)
    handles = [guarded.add(request) for request in greedy]
    while guarded.active:
        guarded.step()
    blocked = [guarded.blocked[h] for h in handles]
    texts = [guarded.release(h) for h in handles]
    for prompt, text in zip(prompts, texts, strict=True):
        assert len(text) == 150
        assert index.find_copy(prompt + text, start=len(prompt)) is None
    assert all(count > 0 for count in blocked)


def test_rows_joining_mid_batch_are_guarded_from_their_first_character() -> None:
    model, vocab = tiny_model()
    wanted = run(BatchSampler(model, vocab), [SampleRequest("x", max_chars=60, temperature=0.0)])[0]
    corpus = "x" + wanted
    index = VerbatimIndex.build(corpus, span=10)
    guarded = GuardedBatchSampler(model, vocab, verbatim=index)
    first = guarded.add(SampleRequest("q", max_chars=40, temperature=0.5, seed=1))
    for _ in range(5):
        guarded.step()
    # The prompt is 10 characters of the corpus: the very next character may not extend it.
    late = guarded.add(SampleRequest(corpus[:10], max_chars=40, temperature=0.0))
    while guarded.active:
        guarded.step()
    assert guarded.done(first)
    text = guarded.release(late)
    assert text[0] != corpus[10]
    assert index.find_copy(corpus[:10] + text, start=10) is None


def test_the_guard_sees_every_character_when_stop_strings_hold_text_back() -> None:
    model, vocab = tiny_model()
    greedy = SampleRequest("hello ", max_chars=150, temperature=0.0)
    wanted = run(BatchSampler(model, vocab), [greedy])[0]
    index = VerbatimIndex.build("hello " + wanted, span=20)
    plain = run(GuardedBatchSampler(model, vocab, verbatim=index), [greedy])[0]
    # "QQ" never occurs (no Q in the vocabulary) but makes step() hold one character back.
    held = SampleRequest("hello ", max_chars=150, temperature=0.0, stop=("QQ",))
    assert run(GuardedBatchSampler(model, vocab, verbatim=index), [held]) == [plain]
    assert index.find_copy("hello " + plain, start=6) is None
