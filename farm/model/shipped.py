"""The trained models reelfarm ships inside its package, by name: diffusers-format
folders the loader resolves like any model folder (family detected from their configs).

Named by their place in the package, not imported: the toy package (farm.toy), which
trains the toy model from the model layer's parts, sits above the model layer, so the
model layer never imports it (an import-linter contract; tests/toy/test_shipped.py checks
that `toy` resolves to farm.toy.WEIGHTS).
"""

from __future__ import annotations

from pathlib import Path

# farm/toy/weights: the toy model (docs/toy-model.md; `reelfarm models train-toy`).
TOY_WEIGHTS = Path(__file__).resolve().parents[1] / "toy" / "weights"

SHIPPED: dict[str, Path] = {"toy": TOY_WEIGHTS}
