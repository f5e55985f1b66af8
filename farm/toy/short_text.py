"""Train on short text sequences that act exactly like the farm's zero-padded 512 tokens.

The farm pads every prompt's hidden states with zeros to the profile's 512 tokens. In a
Wan expert the text only enters through cross-attention, token by token with no position
(text_embedder is a per-token MLP, attn2 has no rope), so every zero token becomes the
same key and the same value. n identical keys weigh exactly like one key with log(n) added
to its logit:

    full      [ t0 t1 .. tk  0  0  0 ...  0 ]      512 tokens, 512 - k - 1 zeros
    short     [ t0 t1 .. tk  0 ]                   k + 2 tokens, the last zero's logit
                                                   + log(512 - k - 1): the same softmax

so a training step pays for k + 2 text tokens instead of 512 (the toy prompts are under
20 tokens: half the expert's step time). Shorter prompts of a batch keep their own zeros
before the last column; they are pads of the full sequence too, so they stay as they are.
"""

from __future__ import annotations

import contextlib
import math

import torch


class PaddedCrossAttention:
    """attn2 processor: the last text token stands for itself and the `total - L` zero
    tokens a sequence of L tokens is missing to reach `total`."""

    def __init__(self, inner, total: int):
        self.inner, self.total = inner, total

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        length = encoder_hidden_states.shape[1]
        if length > self.total:
            raise ValueError(f"text of {length} tokens is longer than the {self.total} "
                             "it stands for")
        bias = hidden_states.new_zeros(1, 1, 1, length)                   # (1, heads, Lq, Lk)
        bias[..., -1] = math.log(self.total - length + 1)
        return self.inner(attn, hidden_states, encoder_hidden_states, bias, rotary_emb)


@contextlib.contextmanager
def padded_to(experts: list[torch.nn.Module], total: int):
    """Inside the block, the experts read text ending in one zero token as if it were
    zero-padded to `total` tokens (the processors are restored afterwards)."""
    saved = [[b.attn2.processor for b in e.blocks] for e in experts]
    for expert in experts:
        for block in expert.blocks:
            block.attn2.set_processor(PaddedCrossAttention(block.attn2.processor, total))
    try:
        yield
    finally:
        for expert, procs in zip(experts, saved, strict=True):
            for block, proc in zip(expert.blocks, procs, strict=True):
                block.attn2.set_processor(proc)
