"""The pure scheduler: films in, task assignments out, reports back (vLLM v1 style)."""
