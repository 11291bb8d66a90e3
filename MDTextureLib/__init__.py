"""MDTexture engine: Dixon MRI of the lower leg → ICAM-ResNet18 → heatmap → per-muscle texture scores.

Importable without 3D Slicer. The data path is described in ARCHITECTURE.md; each stage lives in one module:
``io`` (images), ``stacks`` (3-slice inputs), ``network`` (ICAM-ResNet18), ``inference`` (classify a volume),
``scores`` (texture score, Eq. 5), ``phantom`` (synthetic cohort), ``training``, ``evaluation``, ``cli``.
"""

from .constants import CLASSES, MUSCLE_LABELS, MUSCLES
from .errors import InputError

__version__ = "0.1.0"

__all__ = ["CLASSES", "MUSCLES", "MUSCLE_LABELS", "InputError", "__version__"]
