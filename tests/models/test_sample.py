from __future__ import annotations

import pytest
import torch

from models.checkpoint import Checkpoint
from models.config import Precision
from models.errors import InvalidSettingError
from models.sample import BatchSampler, SampleRequest, sample_batch, stream
from models.train import train
from models.vocab import Vocab
from tests.models.conftest import tiny_config


def _sampler(ckpt: Checkpoint, precision: Precision = "auto") -> BatchSampler:
    return BatchSampler(ckpt.build_model(), ckpt.vocab, precision=precision)


# bf16 steps round each GEMM output to 8 bits of mantissa, and a row's rounding can depend on
# the batch's blocking: the tolerance is that of bf16, not of fp32.
TOLERANCE: dict[str, tuple[float, float]] = {
    "fp32": (1e-5, 1e-4),
    "bf16": (3e-3, 3e-2),
}  # atol, rtol


def test_seeded_sampling_is_reproducible(tiny_checkpoint: Checkpoint) -> None:
    request = SampleRequest("the quick", max_chars=80, seed=42)
    first = sample_batch(tiny_checkpoint, [request])[0]
    assert first == sample_batch(tiny_checkpoint, [request])[0]
    assert len(first) == 80
    assert (
        first
        != sample_batch(tiny_checkpoint, [SampleRequest("the quick", max_chars=80, seed=43)])[0]
    )


def test_a_rows_text_does_not_depend_on_its_batch_mates(tiny_checkpoint: Checkpoint) -> None:
    request = SampleRequest("to be", max_chars=60, seed=7, temperature=0.7)
    alone = sample_batch(tiny_checkpoint, [request])[0]
    others = [
        SampleRequest(p, max_chars=n, seed=i, top_k=3)
        for i, (p, n) in enumerate([("a", 10), ("the lazy dog", 90), ("", 30)])
    ]
    together = sample_batch(tiny_checkpoint, [others[0], request, *others[1:]])
    assert together[1] == alone


def _solo_distribution(
    ckpt: Checkpoint, request: SampleRequest, prompt: str, precision: Precision
) -> torch.Tensor:
    solo = _sampler(ckpt, precision)
    handle = solo.add(
        SampleRequest(
            prompt, temperature=request.temperature, top_k=request.top_k, top_p=request.top_p
        )
    )
    return solo.distributions()[handle]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batched_distribution_equals_solo_distribution(
    tiny_checkpoint: Checkpoint, precision: Precision
) -> None:
    requests = [
        SampleRequest("the quick brown", temperature=0.8, seed=1),
        SampleRequest("a", temperature=1.3, top_k=5, seed=2),
        SampleRequest("to be or not to be, that", temperature=0.5, top_p=0.9, seed=3),
        SampleRequest("", temperature=1.0, seed=4),
        SampleRequest("😀 漢字 unseen", temperature=0.9, top_k=10, top_p=0.8, seed=5),
    ]
    batch = _sampler(tiny_checkpoint, precision)
    handles = [batch.add(r) for r in requests[:3]]
    generated = {h: "" for h in handles}
    for handle, text in batch.step().items():  # rows 0-2 advance, then two more join
        generated[handle] += text
    for request in requests[3:]:
        handles.append(batch.add(request))
        generated[handles[-1]] = ""
    for _ in range(4):
        batched = batch.distributions()
        for handle, request in zip(handles, requests, strict=True):
            # Solo: prime the same prompt plus what this row has sampled so far.
            prompt = (request.prompt or "\n") + generated[handle]
            solo = _solo_distribution(tiny_checkpoint, request, prompt, precision)
            atol, rtol = TOLERANCE[precision]
            torch.testing.assert_close(batched[handle], solo, atol=atol, rtol=rtol)
        for handle, text in batch.step().items():
            generated[handle] += text


def test_filters_cut_the_distribution(tiny_checkpoint: Checkpoint) -> None:
    sampler = _sampler(tiny_checkpoint)
    top_k = sampler.add(SampleRequest("the", top_k=3))
    greedy = sampler.add(SampleRequest("the", temperature=0))
    nucleus = sampler.add(SampleRequest("the", top_p=0.5))
    full = sampler.add(SampleRequest("the"))
    dists = sampler.distributions()
    assert int((dists[top_k] > 0).sum()) == 3
    assert int((dists[greedy] > 0).sum()) == 1
    assert 1 <= int((dists[nucleus] > 0).sum()) < int((dists[full] > 0).sum())
    for dist in dists.values():
        assert dist[Vocab.UNK] == 0  # <unk> is never a candidate
        assert float(dist.sum()) == pytest.approx(1.0, abs=1e-5)


def test_excluded_ids_are_never_drawn(tiny_checkpoint: Checkpoint) -> None:
    sampler = _sampler(tiny_checkpoint, "fp32")
    greedy = sampler.add(SampleRequest("the qu", temperature=0, max_chars=5))
    other = sampler.add(SampleRequest("the qu", temperature=0, max_chars=5))
    assert sampler.handles == (greedy, other)
    ranked = sampler.next_logits()[greedy].argsort(descending=True).tolist()
    banned = torch.zeros(len(tiny_checkpoint.vocab), dtype=torch.bool)
    banned[ranked[0]] = True
    sampler.step(exclude={greedy: banned})
    chars = tiny_checkpoint.vocab.to_list()
    # The best character left is drawn; the batch-mate is not affected.
    assert sampler.text_of(greedy) == chars[ranked[1]]
    assert sampler.text_of(other) == chars[ranked[0]]


def test_greedy_is_deterministic_without_a_seed(tiny_checkpoint: Checkpoint) -> None:
    a, b = sample_batch(tiny_checkpoint, [SampleRequest("the", temperature=0, max_chars=40)] * 2)
    assert a == b


def test_stop_strings_end_the_text_before_the_stop(tiny_checkpoint: Checkpoint) -> None:
    for seed in range(5):
        text = sample_batch(
            tiny_checkpoint,
            [SampleRequest("the quick", max_chars=300, seed=seed, stop=("o", "\n"))],
        )[0]
        assert "o" not in text and "\n" not in text and len(text) < 300


def test_unk_is_never_emitted_and_any_prompt_works() -> None:
    # A model trained on 3 characters: the output alphabet is exactly those.
    ckpt = train("abcabcaabbcc" * 30, tiny_config(max_steps=5, eval_interval=5)).checkpoint
    for prompt in ("", "😀", "漢字かな", "e\u0301\u0301", "\x00\ufffd", "abc"):
        text = sample_batch(ckpt, [SampleRequest(prompt, max_chars=50, seed=1, temperature=2.0)])[0]
        assert len(text) == 50 and set(text) <= set("abc")


def test_stream_yields_the_same_text_in_chunks(tiny_checkpoint: Checkpoint) -> None:
    request = SampleRequest("to be", max_chars=50, seed=3, stop=("xyz",))
    chunks = list(stream(tiny_checkpoint, request))
    assert len(chunks) > 1
    assert "".join(chunks) == sample_batch(tiny_checkpoint, [request])[0]


def test_rows_join_and_leave_between_steps(tiny_checkpoint: Checkpoint) -> None:
    sampler = _sampler(tiny_checkpoint)
    short = sampler.add(SampleRequest("a", max_chars=2, seed=1))
    long = sampler.add(SampleRequest("b", max_chars=6, seed=2))
    assert sampler.active == 2
    sampler.step()
    sampler.step()
    assert sampler.done(short) and not sampler.done(long) and sampler.active == 1
    late = sampler.add(SampleRequest("c", max_chars=3, seed=3))
    gone = sampler.add(SampleRequest("d", max_chars=50, seed=4))
    sampler.step()
    sampler.cancel(gone)
    while sampler.active:
        sampler.step()
    assert len(sampler.result(long)) == 6 and len(sampler.result(late)) == 3
    assert len(sampler.result(gone)) == 1
    assert len(sampler.release(short)) == 2
    with pytest.raises(KeyError):
        sampler.result(short)
    assert sampler.step() == {}


def test_lstm_and_rnn_batching(small_text: str) -> None:
    for arch in ("lstm", "rnn"):
        ckpt = train(small_text, tiny_config(arch=arch, max_steps=5, eval_interval=5)).checkpoint
        request = SampleRequest("the", max_chars=20, seed=5)
        alone = sample_batch(ckpt, [request])[0]
        assert sample_batch(ckpt, [SampleRequest("xx", max_chars=5), request])[1] == alone


@pytest.mark.parametrize(
    "request_",
    [
        SampleRequest("x", max_chars=0),
        SampleRequest("x", temperature=-1),
        SampleRequest("x", top_k=-1),
        SampleRequest("x", top_p=0),
        SampleRequest("x", top_p=1.5),
        SampleRequest("x", stop=("",)),
    ],
)
def test_invalid_requests(tiny_checkpoint: Checkpoint, request_: SampleRequest) -> None:
    with pytest.raises(InvalidSettingError):
        _sampler(tiny_checkpoint).add(request_)


def test_the_step_path_matches_the_modules_own_forward(small_text: str) -> None:
    """The hand-written cells (layer 0 from the input-gate table) compute what nn.GRU/LSTM/RNN do."""
    for arch in ("gru", "lstm", "rnn"):
        ckpt = train(small_text, tiny_config(arch=arch, max_steps=5, eval_interval=5)).checkpoint
        model = ckpt.build_model()
        sampler = BatchSampler(model, ckpt.vocab, precision="fp32")
        for prompt in ("the quick", "a"):
            handle = sampler.add(SampleRequest(prompt))
            with torch.inference_mode():
                idx = torch.tensor([ckpt.vocab.encode(prompt)])
                expected = model(idx)[0][0, -1].clone()  # [V]
                expected[0] = -torch.inf  # <unk> is masked by the sampler
            logits = sampler.next_logits()[handle]
            torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-4)
        sampler.step()  # one sampled character through the step path, both rows
        assert sampler.active == 2
