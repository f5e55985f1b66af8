"""Build a tiny random-weight Llama chat model offline, for running a real vLLM engine on CPU.

Run with the vLLM environment's python (its transformers version reads the folder back):

    .venv-vllm/bin/python tests/story/tiny_llm.py DIR [--seed N]

Byte-level BPE tokenizer (every string is expressible, so structured decoding can emit any
JSON), trained on a few built-in sentences; Llama with hidden 128, 2 layers, 2 heads of
head size 64 (vLLM's CPU attention rejects smaller heads), bf16, a chat template.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CORPUS = [
    '{"title": "The Lighthouse", "scenes": [{"id": "s010", "prompt": "a lighthouse keeper '
    'climbs the stairs at night", "frames": 17}]}',
    "a red fox runs through fresh snow at dawn, camera tracking low, soft golden light",
    "Subject: an old sailor with a grey beard. Motion: he turns slowly. Camera: slow dolly "
    "in. Lighting: warm lantern light, deep shadows.",
    "characters description references cast name Mira Tomas harbor village storm rain",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build(out: Path, seed: int = 0) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=64,
        max_position_embeddings=16384, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True, torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    build(a.out, a.seed)
    print(a.out)
