"""Where the story writer's LLM runs: an OpenAI-compatible server (vLLM's `vllm serve`, a
Ray Serve LLM app) by URL, or a local vLLM engine through its Python API.

vLLM is optional: the farm never imports it. A local engine runs `vllm_worker.py` in the
Python that has vLLM (`--vllm-python`, $REELFARM_VLLM_PYTHON, this interpreter if it has
vLLM, else the checkout's .venv-vllm made by `make vllm`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from farm.story.writer import LlmRequest, StoryError

INSTALL_HINT = (
    "vLLM is not installed: run `make vllm` (creates .venv-vllm with vLLM's CPU build; on a "
    "GPU machine `python3 -m venv .venv-vllm && .venv-vllm/bin/pip install vllm`), or use "
    "--llm-url with a running vLLM server")
WORKER = Path(__file__).with_name("vllm_worker.py")


class LlmUnavailable(RuntimeError):
    """No LLM can run: the message is one line telling what to install or pass."""


def find_vllm_python(explicit: str | None = None) -> str:
    """The Python that runs the local engine; LlmUnavailable with INSTALL_HINT if none."""
    given = explicit or os.environ.get("REELFARM_VLLM_PYTHON")
    if given:
        if not Path(given).is_file():
            raise LlmUnavailable(f"no such Python: {given} ({INSTALL_HINT})")
        return given
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / ".venv-vllm" / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    raise LlmUnavailable(INSTALL_HINT)


class LocalVllm:
    """A vLLM engine in a child process, started on the first request, closed with close()."""

    def __init__(self, model: str, python: str, *, temperature: float = 0.7, seed: int = 0,
                 dtype: str = "auto", max_model_len: int | None = None, verbose: bool = False):
        self.model, self.python, self.temperature, self.seed = model, python, temperature, seed
        self.args = ["--model", model, "--dtype", dtype, "--seed", str(seed)]
        if max_model_len:
            self.args += ["--max-model-len", str(max_model_len)]
        self.verbose = verbose
        self.proc: subprocess.Popen | None = None
        self.log = None

    def _start(self) -> subprocess.Popen:
        env = {**os.environ}
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        self.log = None if self.verbose else tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([self.python, str(WORKER), *self.args], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log)
        hello = self._receive()
        if hello.get("missing"):
            self.close()
            raise LlmUnavailable(f"{hello['error']} ({INSTALL_HINT})")
        return self.proc

    def _receive(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise StoryError(f"the vLLM worker exited ({code}) loading {self.model}:\n"
                             f"{self._tail()}")
        message = json.loads(line)
        if "error" in message and not message.get("missing"):
            raise StoryError(f"vLLM: {message['error']}")
        return message

    def _tail(self, lines: int = 15) -> str:
        if self.log is None:
            return "(its output is above)"
        self.log.seek(0)
        return "".join(self.log.readlines()[-lines:])

    def complete(self, requests: Sequence[LlmRequest]) -> list[str]:
        proc = self.proc or self._start()
        assert proc.stdin is not None
        batch = {"requests": [{"messages": r.messages, "schema": r.schema,
                               "max_tokens": r.max_tokens} for r in requests],
                 "temperature": self.temperature, "seed": self.seed}
        proc.stdin.write(json.dumps(batch) + "\n")
        proc.stdin.flush()
        return self._receive()["outputs"]

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


class OpenAiServer:
    """Chat completions with `response_format: json_schema` (vLLM's structured outputs)."""

    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None,
                 temperature: float = 0.7, seed: int = 0, max_tokens: int | None = None,
                 timeout: float = 600.0):
        base = url.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        self.model, self.api_key, self.temperature = model, api_key, temperature
        self.seed, self.max_tokens, self.timeout = seed, max_tokens, timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise StoryError(f"{self.base}{path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise StoryError(f"{self.base}{path}: {exc}") from None

    def served_model(self) -> str:
        if self.model is None:
            models = self._call("GET", "/models").get("data") or []
            if not models:
                raise StoryError(f"{self.base}/models lists no model; pass --llm-served-model")
            self.model = models[0]["id"]
        return self.model

    def _one(self, i: int, r: LlmRequest) -> str:
        body = {"model": self.served_model(), "messages": r.messages,
                "max_tokens": min(r.max_tokens, self.max_tokens or r.max_tokens),
                "temperature": self.temperature, "seed": self.seed + i,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": r.name, "schema": r.schema, "strict": True}}}
        choice = self._call("POST", "/chat/completions", body)["choices"][0]
        if choice.get("finish_reason") == "length":
            raise StoryError(f"{r.name}: the answer was cut at max_tokens={body['max_tokens']}")
        return choice["message"]["content"]

    def complete(self, requests: Sequence[LlmRequest]) -> list[str]:
        self.served_model()
        with ThreadPoolExecutor(max_workers=min(8, len(requests) or 1)) as pool:
            return list(pool.map(self._one, range(len(requests)), requests))

    def close(self) -> None:
        pass
