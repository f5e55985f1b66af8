"""Prompt embeddings, computed once per scene so denoise workers never need the encoder.

Mirrors WanPipeline._get_t5_prompt_embeds: clean the prompt, tokenize to a fixed length,
encode, keep the real tokens and zero the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PromptEmbeds:
    # (1, text_len, text_dim) in the text encoder's dtype.
    prompt: torch.Tensor
    # Same shape; None when no expert uses guidance (no unconditional forward).
    negative: torch.Tensor | None

    @property
    def nbytes(self) -> int:
        ts = [self.prompt, self.negative]
        return sum(t.numel() * t.element_size() for t in ts if t is not None)


@torch.no_grad()
def encode_text(tokenizer, encoder, text: str, max_len: int) -> torch.Tensor:
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    device = next(encoder.parameters()).device
    tokens = tokenizer([prompt_clean(text)], padding="max_length", max_length=max_len,
                       truncation=True, add_special_tokens=True, return_attention_mask=True,
                       return_tensors="pt")
    ids, mask = tokens.input_ids, tokens.attention_mask
    seq_len = int(mask.gt(0).sum(dim=1)[0])
    hidden = encoder(ids.to(device), mask.to(device)).last_hidden_state  # (1, L, D)
    hidden = hidden[0, :seq_len]
    pad = hidden.new_zeros(max_len - seq_len, hidden.size(1))
    return torch.cat([hidden, pad]).unsqueeze(0)  # (1, max_len, D)


def encode_prompts(tokenizer, encoder, prompt: str, negative: str, max_len: int,
                   with_negative: bool) -> PromptEmbeds:
    return PromptEmbeds(encode_text(tokenizer, encoder, prompt, max_len),
                        (encode_text(tokenizer, encoder, negative, max_len)
                         if with_negative else None))
