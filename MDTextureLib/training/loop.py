"""The training loop of Cai et al. §3.4: SGD, mini-batch 8, learning rate 1e-4 for 4,000 iterations then 1e-5 for
1,000, cross-entropy over the three classes, §3.2 augmentation on every batch.

What the paper leaves open is chosen here and written into every model card:

* **momentum 0.9** (the paper says "SGD" only; 0.9 is the usual companion of these learning rates),
  no weight decay;
* **sampling**: slices are visited in shuffled epochs (every slice once per epoch, reshuffled each epoch);
* **initialisation**: a local torchvision ResNet18 ImageNet file when given (the paper fine-tunes ImageNet
  weights), otherwise torchvision's default random initialisation seeded by ``seed``; from scratch the command
  line's default rates are ten times the paper's (:func:`default_lr_steps`).

Determinism: one ``torch.Generator`` seeded by ``seed`` drives the shuffling and the augmentation draws, and
``torch.manual_seed(seed)`` the initialisation, so two runs with the same seed, data, thread count and precision
end with identical weights (a bfloat16 run and a float32 run differ). Under DistributedDataParallel every rank
draws the same global batch from the same generator and trains on its own share of it, so the data seen per
iteration do not depend on the number of processes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..constants import CLASSES, pooling_of
from ..errors import InputError
from ..modelfile import (DEFAULT_NORMALISATION, DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX, Model, load_imagenet_file,
                         new_card, save_model, sha256_of)
from ..network import VARIANTS, ICAMNet, load_imagenet_trunk
from ..outputs import temp_sibling
from ..precision import PRECISIONS, autocast, resolve_precision
from .augment import AugmentConfig, apply_augmentation, sample_params, warp_mask
from .dataset import SliceDataset

#: The paper's schedule: 5,000 iterations, the learning rate drops ×0.1 after 4,000 (80 %).
PAPER_ITERATIONS = 5000
PAPER_LR = 1e-4
PAPER_LR_LATE = 1e-5
PAPER_STEP_FRACTION = 0.8
PAPER_BATCH = 8
MOMENTUM = 0.9
#: From scratch (no ImageNet file): the paper's schedule shape at ten times the rate (see ``default_lr_steps``).
SCRATCH_LR = (1e-3, 1e-4)

#: Iterations over which the running accuracy and smoothed loss of the progress bar and the curve are taken.
RUNNING_WINDOW = 50


def default_lr_steps(iterations: int, pretrained: bool = True) -> tuple:
    """The paper's schedule scaled to ``iterations``: 1e-4, then 1e-5 for the last 20 %.

    The paper's rates fine-tune ImageNet weights. From scratch (``pretrained=False``) they barely move a random
    network in a CPU budget of a few thousand iterations (training accuracy 0.46 after 136 iterations on the
    phantom cohort, against 0.9 by 250 at ten times the rate), so the same schedule shape is used ten times higher:
    1e-3, then 1e-4 for the last 20 % — what the shipped from-scratch models were trained with.
    """
    high, low = (PAPER_LR, PAPER_LR_LATE) if pretrained else SCRATCH_LR
    step = int(round(PAPER_STEP_FRACTION * iterations))
    if step <= 0 or step >= iterations:
        return ((0, high),)
    return ((0, high), (step, low))


def parse_lr_steps(text: str, iterations: int) -> tuple:
    """``"0:1e-4,4000:1e-5"`` (iteration:learning-rate pairs, starting at 0) → ((0, 1e-4), (4000, 1e-5)).

    A bare rate (``"1e-3"``) means that rate throughout.
    """
    steps = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        it, sep, lr = part.rpartition(":")
        try:
            steps.append((int(it) if sep else 0, float(lr)))
        except ValueError:
            raise InputError(f"--lr-steps: cannot read {part!r}; write ITERATION:RATE pairs, e.g. "
                             "0:1e-4,4000:1e-5") from None
    if not steps:
        raise InputError("--lr-steps is empty")
    if steps[0][0] != 0:
        raise InputError("--lr-steps must start at iteration 0, e.g. 0:1e-4,4000:1e-5")
    its = [s[0] for s in steps]
    if its != sorted(set(its)):
        raise InputError("--lr-steps iterations must increase strictly")
    if its[-1] >= iterations:
        raise InputError(f"--lr-steps has a step at iteration {its[-1]}, past --iterations {iterations}")
    if any(not (lr > 0 and math.isfinite(lr)) for _, lr in steps):
        raise InputError("--lr-steps rates must be positive")
    return tuple(steps)


def lr_at(steps: tuple, iteration: int) -> float:
    rate = steps[0][1]
    for start, lr in steps:
        if iteration >= start:
            rate = lr
    return rate


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in the model card)."""

    variant: str = "icam28"
    iterations: int = PAPER_ITERATIONS
    lr_steps: tuple = ((0, PAPER_LR), (4000, PAPER_LR_LATE))
    batch_size: int = PAPER_BATCH
    momentum: float = MOMENTUM
    weight_decay: float = 0.0
    seed: int = 0
    pixel_mm: float = DEFAULT_PIXEL_MM
    size_px: int = DEFAULT_SIZE_PX
    normalisation: tuple = (DEFAULT_NORMALISATION["mean"], DEFAULT_NORMALISATION["std"])
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    imagenet: str | None = None  # local torchvision ResNet18 file
    name: str | None = None
    # fp32, bf16 or auto (bf16 where the hardware has it): the forward pass and the loss run under autocast in
    # bf16; weights, gradients and the optimiser stay float32. ``train`` records the resolved value.
    precision: str = "fp32"

    def check(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.iterations < 1:
            raise InputError("--iterations must be at least 1")
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        if self.size_px < 32:
            raise InputError("--size-px must be at least 32")
        if self.normalisation[1] <= 0:
            raise InputError("normalisation std must be positive")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["lr_steps"] = [{"from_iteration": i, "lr": lr} for i, lr in self.lr_steps]
        d["augment"] = self.augment.as_dict()
        d["randomisation"] = self.augment.randomisation.as_dict()
        d["normalisation"] = {"mean": self.normalisation[0], "std": self.normalisation[1]}
        d["imagenet"] = Path(self.imagenet).name if self.imagenet else None
        return d


class EpochSampler:
    """Shuffled epochs over ``n`` slices, driven by a caller's generator (so the stream is reproducible)."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator
        self.order, self.pos, self.epoch = torch.randperm(n, generator=generator), 0, 0

    def next(self, k: int) -> torch.Tensor:
        out = []
        while k > 0:
            if self.pos >= self.n:
                self.order, self.pos, self.epoch = torch.randperm(self.n, generator=self.generator), 0, self.epoch + 1
            take = min(k, self.n - self.pos)
            out.append(self.order[self.pos:self.pos + take])
            self.pos, k = self.pos + take, k - take
        return torch.cat(out)


@dataclass
class TrainResult:
    model: Model
    log: dict
    wall_s: float


def _init_network(config: TrainConfig) -> tuple[ICAMNet, str]:
    torch.manual_seed(config.seed)
    net = ICAMNet(config.variant)
    if not config.imagenet:
        return net, f"from scratch (torchvision default initialisation, torch.manual_seed({config.seed}))"
    loaded = load_imagenet_trunk(net, load_imagenet_file(config.imagenet))
    return net, (f"ImageNet ResNet18 trunk from {Path(config.imagenet).name} (sha256 "
                 f"{sha256_of(config.imagenet)[:16]}…, {len(loaded)} tensors); fc random, seed {config.seed}")


def train(dataset: SliceDataset, config: TrainConfig, device: str | torch.device = "cpu",
          progress: bool = True, dist=None, on_step: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train one network on ``dataset``; returns the model (eval mode, on CPU) with its card and the log.

    ``dist`` is a :class:`MDTextureLib.training.ddp.DistContext` when running under torchrun / spawn; then only
    rank 0 shows progress, and the returned model is identical on every rank.
    """
    config.check()
    if dataset.size_px != config.size_px or abs(dataset.pixel_mm - config.pixel_mm) > 1e-9:
        raise ValueError("dataset window does not match the training configuration")
    world, rank = (dist.world_size, dist.rank) if dist is not None else (1, 0)
    if config.batch_size % world:
        raise InputError(f"--batch-size {config.batch_size} is not divisible by the {world} processes")
    local_bs = config.batch_size // world
    device = torch.device(device)
    config = replace(config, precision=resolve_precision(config.precision, device))
    net, init_note = _init_network(config)
    # channels-last weights and batches: the convolutions (forward and backward) run about 10 % faster on the CPU
    net = net.to(device, memory_format=torch.channels_last).train()
    model = net
    if dist is not None:
        from .ddp import wrap

        model = wrap(net, dist)
    optimiser = torch.optim.SGD(net.parameters(), lr=config.lr_steps[0][1], momentum=config.momentum,
                                weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = EpochSampler(len(dataset), generator)
    mean, std = config.normalisation
    crop = config.augment.crop_px or config.size_px
    leg_pooled = pooling_of(config.variant) == "leg"
    mine = slice(rank * local_bs, (rank + 1) * local_bs)

    history = {"iteration": [], "loss": [], "accuracy": [], "lr": []}
    window = deque(maxlen=RUNNING_WINDOW)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, desc=f"train {config.variant}", unit="it", file=sys.stderr,
                   mininterval=1.0, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for it in range(config.iterations):
            lr = lr_at(config.lr_steps, it)
            for group in optimiser.param_groups:
                group["lr"] = lr
            idx = sampler.next(config.batch_size)
            params = sample_params(config.batch_size, config.size_px, config.augment, generator)
            idx_local = idx[mine]
            x = apply_augmentation(dataset.stacks(idx_local).to(device), params[mine], crop)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            # leg-pooled variants: the body mask, moved with its stack (the network zeroes the input outside it)
            body = warp_mask(dataset.masks(idx_local).to(device), params[mine], crop) if leg_pooled else None
            y = dataset.labels[idx_local].to(device)
            with autocast(config.precision, device):
                logits = model(x, body)
                loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            stats = torch.tensor([float(loss.detach()) * len(y), float((logits.argmax(1) == y).sum()), len(y)],
                                 dtype=torch.float64)
            if dist is not None:
                from .ddp import all_reduce_sum

                stats = all_reduce_sum(stats, dist)
            batch_loss, correct, n = (float(v) for v in stats)
            if not math.isfinite(batch_loss):
                raise FloatingPointError(f"loss became {batch_loss} at iteration {it}; lower the learning rate")
            window.append((batch_loss, correct, n))
            history["iteration"].append(it + 1)
            history["loss"].append(round(batch_loss / n, 5))
            history["accuracy"].append(round(correct / n, 4))
            history["lr"].append(lr)
            if bar is not None:
                wl = sum(w[0] for w in window) / sum(w[2] for w in window)
                wa = sum(w[1] for w in window) / sum(w[2] for w in window)
                bar.set_postfix(loss=f"{wl:.3f}", acc=f"{wa:.2f}", lr=f"{lr:.0e}", refresh=False)
                bar.update(1)
            if on_step is not None:
                on_step(it + 1, {"loss": batch_loss / n, "accuracy": correct / n, "lr": lr})
    finally:
        if bar is not None:
            bar.close()
    if dist is not None:
        from .ddp import average_buffers

        with torch.no_grad():
            average_buffers(net, dist)
    wall = time.perf_counter() - t0
    net = net.eval().cpu().to(memory_format=torch.contiguous_format)
    running_loss = sum(w[0] for w in window) / sum(w[2] for w in window)
    running_acc = sum(w[1] for w in window) / sum(w[2] for w in window)
    card = new_card(config.variant, name=config.name or config.variant)
    card["input"]["pixel_mm"] = config.pixel_mm
    card["input"]["size_px"] = config.size_px
    card["input"]["normalisation"] = {"mean": mean, "std": std}
    card["training"] = {
        "protocol": "Cai et al. §3.2 and §3.4: 3-slice FF stacks, augmentation (resize, rotation, intensity "
                    "scale, crop), SGD, cross-entropy",
        "variant": config.variant,
        "iterations": config.iterations,
        "batch_size": config.batch_size,
        "lr_steps": [{"from_iteration": i, "lr": lr} for i, lr in config.lr_steps],
        "optimizer": f"SGD, momentum {config.momentum} (the paper states SGD only; momentum is our choice), "
                     f"weight decay {config.weight_decay}",
        "loss": "cross-entropy over " + ", ".join(CLASSES),
        "sampling": "shuffled epochs over all training slices",
        "initialisation": init_note,
        "augmentation": config.augment.as_dict(),
        "randomisation": config.augment.randomisation.as_dict(),
        "seed": config.seed,
        "epochs_seen": round(config.iterations * config.batch_size / len(dataset), 2),
        "data": dataset.describe(),
        "wall_time_s": round(wall, 1),
        "seconds_per_iteration": round(wall / config.iterations, 3),
        "device": str(device),
        "precision": config.precision,
        "processes": world,
        "torch_threads": torch.get_num_threads(),
        "final_running_loss": round(running_loss, 4),
        "final_running_accuracy": round(running_acc, 4),
        "running_window_iterations": RUNNING_WINDOW,
        "software": {"torch": torch.__version__, "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "retrain": (f"mdtexture train --data COHORT --variant {config.variant} --out MODEL "
                    "[--imagenet resnet18_imagenet.pth]  (COHORT: a cohort.csv with subject, scan, class, age, "
                    "severity, folder columns and one folder of ff.nrrd etc. per scan)"),
    }
    log = {"config": config.as_dict(), "data": dataset.describe(), "history": history,
           "wall_time_s": round(wall, 1), "final_running_loss": round(running_loss, 4),
           "final_running_accuracy": round(running_acc, 4), "processes": world, "precision": config.precision}
    return TrainResult(model=Model(net=net, card=card), log=log, wall_s=wall)


def smooth(values: list, window: int = RUNNING_WINDOW) -> list:
    """Trailing mean over up to ``window`` values (what the progress bar shows)."""
    out, acc, q = [], 0.0, deque()
    for v in values:
        q.append(v)
        acc += v
        if len(q) > window:
            acc -= q.popleft()
        out.append(acc / len(q))
    return out


def plot_curve(log: dict, path: str | os.PathLike, title: str = "") -> None:
    """Training loss and running accuracy against iteration, learning-rate steps marked; written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = log["history"]
    its = h["iteration"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    ax1.plot(its, h["loss"], color="0.8", lw=0.6, label="batch")
    ax1.plot(its, smooth(h["loss"]), color="C0", lw=1.5, label=f"mean of last {RUNNING_WINDOW}")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("cross-entropy loss")
    ax1.legend(loc="upper right", fontsize=8)
    ax2.plot(its, smooth(h["accuracy"]), color="C1", lw=1.5)
    ax2.axhline(1 / len(CLASSES), color="0.6", ls=":", lw=1)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel(f"training accuracy (last {RUNNING_WINDOW} its)")
    for step in log["config"]["lr_steps"][1:]:
        for ax in (ax1, ax2):
            ax.axvline(step["from_iteration"], color="0.5", ls="--", lw=0.8)
    import textwrap

    title = title or f"{log['config']['variant']}: {len(its)} iterations, {log['wall_time_s']:.0f} s"
    fig.suptitle(textwrap.fill(title, 120), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_trained(result: TrainResult, stem: str | os.PathLike, half: bool = False, title: str = "") -> dict:
    """Write STEM.safetensors, STEM.json (card), STEM.training.json (log) and STEM.training.png.

    Everything is written to a temporary folder beside STEM first and moved into place file by file, the card
    last, so an interrupted save never leaves a card that points at missing or different weights.
    """
    stem = Path(stem)
    if stem.suffix in (".json", ".safetensors"):
        stem = stem.with_suffix("")
    if stem.is_dir():
        raise InputError(f"--out {stem} is a folder; give the model's path stem, e.g. {stem / 'mymodel'}")
    parent = stem.resolve().parent
    tmp = temp_sibling(stem, "model")
    try:
        weights, card = save_model(result.model, tmp / stem.name, half=half)
        log_path = tmp / f"{stem.name}.training.json"
        log = dict(result.log)
        log["model"] = {"weights_file": weights.name, "sha256": result.model.card["sha256"]}
        log_path.write_text(json.dumps(log) + "\n")
        png = tmp / f"{stem.name}.training.png"
        plot_curve(result.log, png, title)
        final = {}
        for src in (log_path, png, weights, card):  # card last
            dst = parent / src.name
            os.replace(src, dst)
            final[src.name] = dst
    finally:
        for leftover in tmp.glob("*"):
            leftover.unlink()
        tmp.rmdir()
    result.model.path = parent / card.name
    return {"weights": parent / weights.name, "card": parent / card.name, "log": parent / log_path.name,
            "curve": parent / png.name}
