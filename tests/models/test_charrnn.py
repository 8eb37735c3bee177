from __future__ import annotations

import pytest
import torch

from models.charrnn import ARCHS, CharRNN, CharRNNConfig


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes_and_loss_for_each_cell(arch: str) -> None:
    config = CharRNNConfig(arch=arch, vocab_size=11, embed_dim=8, hidden_size=16, num_layers=2)  # type: ignore[arg-type]
    model = CharRNN(config)
    idx = torch.randint(0, 11, (3, 7))
    logits, loss, hidden = model(idx, targets=idx)
    assert logits.shape == (3, 7, 11)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)
    h = hidden[0] if isinstance(hidden, tuple) else hidden
    assert h.shape == (2, 3, 16)
    assert isinstance(hidden, tuple) == (arch == "lstm")
    # The carried state continues the sequence: two halves == the whole.
    model.eval()
    whole, _, _ = model(idx)
    first, _, carried = model(idx[:, :4])
    second, _, _ = model(idx[:, 4:], carried)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    _, no_loss, _ = model(idx)
    assert no_loss is None


def test_resize_vocab_keeps_old_rows_and_copies_unk_row() -> None:
    model = CharRNN(CharRNNConfig(vocab_size=5, embed_dim=4, hidden_size=8, num_layers=1))
    old_embed = model.embed.weight.detach().clone()
    old_head = model.head.weight.detach().clone()
    model.resize_vocab(8)
    assert model.config.vocab_size == 8
    assert model.embed.weight.shape == (8, 4) and model.head.weight.shape == (8, 8)
    torch.testing.assert_close(model.embed.weight[:5], old_embed)
    torch.testing.assert_close(model.head.weight[:5], old_head)
    torch.testing.assert_close(model.embed.weight[7], old_embed[0])
    with pytest.raises(ValueError):
        model.resize_vocab(3)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        CharRNNConfig(arch="transformer")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CharRNNConfig(hidden_size=0)
    assert CharRNNConfig.from_dict(CharRNNConfig().to_dict()) == CharRNNConfig()
