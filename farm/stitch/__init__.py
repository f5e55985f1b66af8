"""Assembling frames: the film-ordered frame stream (pure; numpy arrays are opaque here)."""
