"""Training on short text is exact: an expert inside `padded_to(512)` reading a prompt batch
with one zero token after the longest prompt gives what it gives on the farm's 512
zero-padded tokens, for prompts of different lengths and the empty (CFG) prompt."""

from __future__ import annotations

import pytest
import torch

from farm.toy import model as toy
from farm.toy.short_text import padded_to

pytestmark = pytest.mark.model

PROMPTS = ["a red circle moves right on a blue background", "",
           "an orange triangle moves up slowly on a black to gray gradient", "a square"]


@pytest.fixture(scope="module")
def parts():
    tokenizer = toy.build_tokenizer()
    encoder = toy.build_text_encoder(len(tokenizer)).eval()
    expert = toy.build_expert("transformer").eval()
    with torch.no_grad():  # non-zero biases: zero tokens then have their own key and value
        gen = torch.Generator().manual_seed(1)
        for p in expert.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return tokenizer, encoder, expert


def _forward(expert, emb):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(len(PROMPTS), 16, 2, 8, 8, generator=gen)
    t = torch.tensor([999.0, 900.0, 500.0, 20.0])
    with torch.no_grad():
        return expert(x, t, emb, return_dict=False)[0]


def test_short_text_inside_padded_to_equals_the_full_padding(parts):
    tokenizer, encoder, expert = parts
    cpu = torch.device("cpu")
    with torch.no_grad():
        full = toy.encode_prompts(tokenizer, encoder, PROMPTS, cpu)                   # (4, 512, 64)
        short = toy.encode_prompts(tokenizer, encoder, PROMPTS, cpu, short=True)      # (4, 14, 64)
    assert full.shape[1] == toy.TEXT_LEN and short.shape[1] < 20
    torch.testing.assert_close(short, full[:, :short.shape[1]], rtol=0, atol=0)
    want = _forward(expert, full)
    with padded_to([expert], toy.TEXT_LEN):
        got = _forward(expert, short)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # without the processors the short text is a different (shorter) padding
    assert (_forward(expert, short) - want).abs().max() > 1e-2


def test_padded_to_restores_the_processors_and_refuses_longer_text(parts):
    _, _, expert = parts
    before = [b.attn2.processor for b in expert.blocks]
    with pytest.raises(ValueError, match="longer than the 8"), padded_to([expert], 8):
        _forward(expert, torch.zeros(len(PROMPTS), 9, toy.TEXT_DIM))
    assert [b.attn2.processor for b in expert.blocks] == before
