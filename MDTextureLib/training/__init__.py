"""Training ICAM-ResNet18 with the protocol of Cai et al. (§3.2, §3.4), subject-level cross-validation and DDP.

``dataset`` (slices of a cohort as cached 3-slice FF stacks), ``augment`` (§3.2 augmentation, batched),
``loop`` (SGD schedule, logging, saving), ``evaluate`` (accuracy through ``classify_volume``), ``crossval``
(k-fold by subject), ``ddp`` (DistributedDataParallel), ``cli`` (``train``, ``crossval``, ``evaluate-model``).
"""

from .augment import AugmentConfig, apply_augmentation, augment, sample_params
from .dataset import ScanItem, SliceDataset, items_from_records
from .evaluate import Evaluation, evaluate_items
from .loop import TrainConfig, TrainResult, default_lr_steps, parse_lr_steps, save_trained, train

__all__ = ["AugmentConfig", "apply_augmentation", "augment", "sample_params", "ScanItem", "SliceDataset",
           "items_from_records", "Evaluation", "evaluate_items", "TrainConfig", "TrainResult", "default_lr_steps",
           "parse_lr_steps", "save_trained", "train"]
