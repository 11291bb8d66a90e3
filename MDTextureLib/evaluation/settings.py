"""What an evaluation run depends on, and the experiments' names: plain data, no torch.

Kept apart from :mod:`.experiments` so that the command line can build its parser (defaults, choices) without
loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..constants import DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX, VARIANTS
from ..scores import ScoreParameters

EXPERIMENTS = ("table1", "table2", "neurons", "tsne", "table3", "localisation", "randomisation", "calibration")
#: Experiments run only by name (not by ``all``): they train networks of their own.
EXTRA_EXPERIMENTS = ("families",)
LOCALISATION_VARIANTS = ("icam28", "icam14", "resnet7")
#: Networks an evaluation can train and score: every variant (the paper's, icam56 and the leg-pooled ones).
NETWORK_CHOICES = tuple(VARIANTS)
KMEANS_K = 256  # K-Means dictionary size (paper 900; why smaller: MDTextureLib.evaluation.baselines)


@dataclass
class Settings:
    """Everything an evaluation run depends on (written into every JSON)."""

    iterations: int = 300
    lr_steps: str | None = None  # "IT:LR,..." as `mdtexture train --lr-steps`; default: learning_rate_steps()
    batch_size: int = 8
    n_folds: int = 4
    fold_seed: int = 0
    seed: int = 0
    pixel_mm: float = DEFAULT_PIXEL_MM
    size_px: int = DEFAULT_SIZE_PX
    kmeans_k: int = KMEANS_K
    imagenet: str | None = None
    tsne_max_patches: int = 1500
    randomisation_slices: int = 16
    randomisation_depth: int = 5
    tolerance_mm: float = 12.0  # pointing-game tolerance: 15 px of the 0.8 mm model grid (TorchRay's 15 px)
    table3_cases: int = 4
    networks: tuple = LOCALISATION_VARIANTS  # networks whose maps are scored (localisation, randomisation)
    quick: bool = False
    quiet: bool = False
    precision: str = "fp32"  # of the networks trained here (fp32 or bf16, resolved from --precision)
    calibration_share: float = 0.2  # subjects held out of each training fold to calibrate (as `mdtexture train`)
    ece_bins: int = 10
    family_folds: int = 1  # folds per held-out pattern family (families experiment)
    score_params: ScoreParameters = field(default_factory=ScoreParameters)

    @classmethod
    def quick_profile(cls, **overrides) -> "Settings":
        """A tiny profile for tests and smoke runs: a 64-px window, a few iterations, a small dictionary."""
        base = dict(iterations=3, batch_size=4, pixel_mm=3.0, size_px=64, kmeans_k=16, tsne_max_patches=200,
                    randomisation_slices=4, randomisation_depth=2, quick=True)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["imagenet"] = Path(self.imagenet).name if self.imagenet else None
        return d
