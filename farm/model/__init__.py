"""The model layer: the only torch code in `farm` (diffusers adapters, tiny models,
loaders, the phase runner, the streaming decoder and the torch worker)."""
