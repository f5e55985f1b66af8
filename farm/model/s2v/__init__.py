"""Wan2.2-S2V-14B (speech-to-video), our own adapter of the published architecture.

    layers.py     norms, 3-axis RoPE, attention, the DiT block with two-segment modulation
    audio.py      wav2vec2 features resampled to the video frame rate, the causal audio
                  encoder and the per-layer audio injectors
    motion.py     frame-pack motion tokens (73 pixel frames of history -> 19 latents)
    dit.py        the S2V transformer (S2VConfig, S2VTransformer)
    weights.py    the official checkpoint folder: config and key mapping
    condition.py  a scene's features (reference, audio) and each clip's Condition
    tiny.py       tiny offline variant (random weights, official layout on disk)
"""
