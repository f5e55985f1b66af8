"""The toy model reelfarm trains itself (issue 16): procedural data (data.py, numpy),
its components and training (model.py, train.py, torch) and clip measures (metrics.py).

The trained weights ship in `weights/` (a diffusers-format folder): model name `toy`.
"""

from pathlib import Path

# The model layer serves this folder as model `toy` (farm.model.shipped names it by its
# place in the package, without importing this package). Importing this package stays
# light: the media writers read WEIGHTS to hash the toy's weights.
WEIGHTS = Path(__file__).resolve().parent / "weights"
