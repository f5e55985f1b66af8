"""Runs a local vLLM engine for `reelfarm direct --llm-model DIR` (vLLM's Python API).

A standalone script (standard library + vLLM only, so it runs in the environment that has
vLLM, e.g. .venv-vllm, without reelfarm installed there):

    python vllm_worker.py --model DIR [--dtype bfloat16] [--max-model-len N] [--seed N]

Protocol: JSON lines. The worker answers {"ready": true, "vllm": VERSION} once the engine
is up (or {"error": ..., "missing": true} if vLLM cannot be imported), then reads batches
{"requests": [{"messages", "schema", "max_tokens"}], "temperature": T, "seed": S} on stdin
(request i samples with seed S+i)
and answers each with {"outputs": [text, ...]} or {"error": ...}. vLLM's own output goes to
stderr. Decoding is structured (guided JSON, xgrammar, no free whitespace), so every answer
is a document of its request's schema unless cut at max_tokens (reported as an error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _send(channel, message: dict) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _engine(args: argparse.Namespace):
    from vllm import LLM
    from vllm.platforms import current_platform

    cpu = current_platform.is_cpu()
    if cpu:  # engine and model in this process: no engine-core and worker processes to start
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return LLM(model=args.model, dtype=args.dtype, max_model_len=args.max_model_len,
               seed=args.seed, enforce_eager=cpu,
               distributed_executor_backend="uni" if cpu else None,
               structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True})


def _plain_prompt(messages: list[dict]) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "


def _run(llm, batch: dict) -> list[str]:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    seed = batch.get("seed", 0)
    params = [SamplingParams(max_tokens=r["max_tokens"], temperature=batch.get("temperature", 0.7),
                             seed=seed + i,  # one seed per request: same film, same answers
                             structured_outputs=StructuredOutputsParams(json=r["schema"]))
              for i, r in enumerate(batch["requests"])]
    convs = [r["messages"] for r in batch["requests"]]
    if getattr(llm.get_tokenizer(), "chat_template", None):
        results = llm.chat(convs, params, use_tqdm=False)
    else:
        results = llm.generate([_plain_prompt(c) for c in convs], params, use_tqdm=False)
    texts = []
    for i, res in enumerate(results):
        out = res.outputs[0]
        if out.finish_reason == "length":
            raise RuntimeError(f"request {i}: answer cut at max_tokens={params[i].max_tokens} "
                               f"(the model's context is too short for this schema?)")
        texts.append(out.text)
    return texts


def main() -> int:
    ap = argparse.ArgumentParser(description="local vLLM engine for reelfarm direct")
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--max-model-len", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # library prints go to stderr; stdout carries the protocol only
    try:
        import vllm
    except ImportError as exc:
        _send(channel, {"error": f"cannot import vllm in {sys.executable}: {exc}", "missing": True})
        return 3
    llm = _engine(args)
    _send(channel, {"ready": True, "vllm": vllm.__version__})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            _send(channel, {"outputs": _run(llm, json.loads(line))})
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which exits
            _send(channel, {"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
