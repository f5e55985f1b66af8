"""The story writer (`reelfarm direct`): logline -> storyboard through an LLM under
structured output, Wan-style prompt extension, and the character bible.

Pure parts (no LLM, no vLLM import): `schema` (the JSON schemas the LLM is held to, derived
from the storyboard's), `bible` (which scenes name which characters, prompt composition) and
`writer` (stages, assembly, validation). `llm` talks to an OpenAI-compatible server or runs
`vllm_worker` (a standalone script) in the Python that has vLLM.
"""
