"""Training ICAM-ResNet18 with the protocol of Cai et al. (§3.2, §3.4), subject-level cross-validation and DDP.

``dataset`` (slices of a cohort as cached 3-slice FF stacks), ``augment`` (§3.2 augmentation, batched),
``loop`` (SGD schedule, logging, saving), ``evaluate`` (accuracy through ``classify_volume``), ``crossval``
(k-fold by subject), ``ddp`` (DistributedDataParallel), ``cli`` (``train``, ``crossval``, ``evaluate-model``).
"""

import importlib

# Public names → the submodule defining them. Loaded on first use (PEP 562), so that registering the command line
# (`mdtexture --help`) does not import torch. The function `augment` is not among them: lazily, the package
# attribute of that name would be the function or the submodule `training.augment` depending on import order;
# it is always the submodule (the function: `training.augment.augment`).
_EXPORTS = {
    "AugmentConfig": "augment", "apply_augmentation": "augment", "sample_params": "augment",
    "ScanItem": "dataset", "SliceDataset": "dataset", "items_from_records": "dataset",
    "Evaluation": "evaluate", "evaluate_items": "evaluate",
    "TrainConfig": "loop", "TrainResult": "loop", "default_lr_steps": "loop", "parse_lr_steps": "loop",
    "save_trained": "loop", "train": "loop",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
