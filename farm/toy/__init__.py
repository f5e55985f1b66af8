"""The toy model reelfarm trains itself (issue 16): procedural data (data.py, numpy),
its components and training (model.py, train.py, torch) and clip measures (metrics.py).

The trained weights ship in `weights/` (a diffusers-format folder): model name `toy`.
"""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
