"""Model files: safetensors weights + a JSON model card. Nothing is ever unpickled.

A model is two files with one stem, ``NAME.safetensors`` and ``NAME.json``. The card names the variant, the class
order, the input preprocessing (pixel size, window, normalisation), how the weights were trained, their metrics
and the sha256 of the weights file, which is checked on every load.

A calibrated model (``mdtexture train`` with a calibration split) also carries the card keys ``calibration``
(temperature) and ``unfamiliar`` (method, threshold), and the unfamiliar-score arrays in the same safetensors file
under the prefix ``unfamiliar.`` (``means``, ``precision``, ``present``; see :mod:`MDTextureLib.calibration`).
They are split off before the network's state dict is loaded; the sha256 covers the whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .constants import CLASSES, DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX, LEG_VARIANTS, pooling_of
from .errors import InputError
from .modelcard import DEFAULT_MODEL_NAME, MODELS_DIR, default_model_path  # noqa: F401  (torch-free; re-exported)
from .network import VARIANTS, ICAMNet, infer_variant
from .orientation import CANONICAL as CANONICAL_ORIENTATION

CARD_FORMAT = 1
#: Prefix of the unfamiliar-score arrays stored beside the network's tensors.
UNFAMILIAR_PREFIX = "unfamiliar."

#: Input preprocessing of models built here (the card of a loaded model is authoritative).
DEFAULT_NORMALISATION = {"mean": 0.2, "std": 0.3}  # FF fraction; roughly the cohort's in-window mean and std


@dataclass
class Model:
    """A network ready for inference and the card that describes it."""

    net: ICAMNet
    card: dict
    path: Path | None = None
    unfamiliar: dict | None = None  # arrays of the unfamiliar score (means, precision, present) when calibrated

    @property
    def name(self) -> str:
        return self.card.get("name", self.card["variant"])

    @property
    def sha256(self) -> str:
        return self.card.get("sha256", "")

    @property
    def pixel_mm(self) -> float:
        return float(self.card["input"]["pixel_mm"])

    @property
    def size_px(self) -> int:
        return int(self.card["input"]["size_px"])

    @property
    def normalisation(self) -> tuple[float, float]:
        n = self.card["input"]["normalisation"]
        return float(n["mean"]), float(n["std"])

    @property
    def trained(self) -> bool:
        return bool(self.card.get("training"))

    @property
    def temperature(self) -> float | None:
        """The calibration temperature of the card, or None for an uncalibrated model."""
        calibration = self.card.get("calibration") or {}
        return float(calibration["temperature"]) if calibration.get("temperature") else None

    @property
    def unfamiliar_stats(self) -> dict | None:
        """Everything the unfamiliar score needs (arrays and threshold), or None when the model has none."""
        info = self.card.get("unfamiliar")
        if not info or self.unfamiliar is None:
            return None
        return {**self.unfamiliar, "threshold": float(info["threshold"]), "percentile": info.get("percentile")}


def new_card(variant: str, name: str | None = None, **extra) -> dict:
    """A model card for a freshly built network; training adds ``training`` and ``metrics``."""
    card = {
        "format": CARD_FORMAT,
        "name": name or variant,
        "variant": variant,
        "classes": list(CLASSES),
        "input": {
            "channels": "axial fat-fraction slices k-1, k, k+1 (fraction 0-1)",
            "pixel_mm": DEFAULT_PIXEL_MM,
            "size_px": DEFAULT_SIZE_PX,
            "window": "centred on the leg (body-mask centroid), zero outside the image"
                      + ("; 0 outside the body after normalisation" if pooling_of(variant) == "leg" else ""),
            "normalisation": dict(DEFAULT_NORMALISATION),
        },
        "orientation": dict(CANONICAL_ORIENTATION),
        "map": {"stages": list(VARIANTS[variant]), "upsampling": "bilinear x2, align_corners=False",
                "pooling": pooling_of(variant)},
        "training": None,
        "metrics": None,
        "intended_use": "research; not for clinical use",
    }
    card.update(extra)
    return card


def build_model(variant: str = DEFAULT_MODEL_NAME, seed: int | None = 0, name: str | None = None) -> Model:
    """A randomly initialised model (seeded), with an untrained card. For tests and for the demo's fallback."""
    if seed is not None:
        torch.manual_seed(seed)
    net = ICAMNet(variant).eval()
    return Model(net=net, card=new_card(variant, name=name or f"{variant}-untrained"))


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, card) for a path given as either file or as the common stem."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_model(model: Model, path: str | os.PathLike, half: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.safetensors`` and ``NAME.json`` (card with the weights' sha256). Returns both paths."""
    weights_path, card_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
               for k, v in model.net.state_dict().items()}
    for k, v in (model.unfamiliar or {}).items():
        tensors[UNFAMILIAR_PREFIX + k] = torch.from_numpy(np.ascontiguousarray(v)).contiguous()
    save_file(tensors, str(weights_path), metadata={"variant": model.card["variant"], "format": str(CARD_FORMAT)})
    card = dict(model.card)
    card["weights_file"] = weights_path.name
    card["weights_dtype"] = "float16" if half else "float32"
    card["sha256"] = sha256_of(weights_path)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    model.card = card
    model.path = card_path
    return weights_path, card_path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Load a model card + safetensors weights, checking the sha256 and that the variant matches the weights."""
    weights_path, card_path = _paths(path)
    if not card_path.exists():
        raise InputError(f"model card not found: {card_path}")
    if not weights_path.exists():
        raise InputError(f"model weights not found: {weights_path}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"model card {card_path.name} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    for key in ("variant", "classes", "input", "sha256"):
        if key not in card:
            raise InputError(f"model card {card_path.name} lacks the field {key!r}")
    if card["variant"] not in VARIANTS:
        raise InputError(f"model card {card_path.name} names an unknown variant {card['variant']!r}")
    if list(card["classes"]) != list(CLASSES):
        raise InputError(f"model card {card_path.name} has classes {card['classes']}; expected {list(CLASSES)}")
    digest = sha256_of(weights_path)
    if digest != card["sha256"]:
        raise InputError(f"model weights {weights_path.name} do not match their card (sha256 {digest[:12]}… "
                         f"≠ {card['sha256'][:12]}…): the file is truncated or altered")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"cannot read model weights {weights_path.name}: {exc}") from None
    pooling = (card.get("map") or {}).get("pooling", "image")  # cards written before leg pooling: "image"
    if pooling != pooling_of(card["variant"]):
        raise InputError(f"model card {card_path.name} says map pooling {pooling!r} but variant {card['variant']} "
                         f"pools over the {pooling_of(card['variant'])}")
    unfamiliar = {k[len(UNFAMILIAR_PREFIX):]: v.numpy() for k, v in state.items() if k.startswith(UNFAMILIAR_PREFIX)}
    state = {k: v for k, v in state.items() if not k.startswith(UNFAMILIAR_PREFIX)}
    if card.get("unfamiliar") and not {"means", "precision", "present"} <= set(unfamiliar):
        raise InputError(f"model card {card_path.name} has an unfamiliar-input threshold but {weights_path.name} "
                         "lacks its arrays (unfamiliar.means, unfamiliar.precision, unfamiliar.present)")
    found = infer_variant(state)
    if found != LEG_VARIANTS.get(card["variant"], card["variant"]):
        raise InputError(f"model card {card_path.name} says variant {card['variant']} but the weights are "
                         f"{'of variant ' + found if found else 'of no known variant'}")
    with torch.device("meta"):  # no random initial values to draw: every tensor is replaced by the file's
        net = ICAMNet(card["variant"])
    # each tensor in the network's own dtype: float32 weights (float16 files widened), int64 batch counters
    dtypes = {k: v.dtype for k, v in net.state_dict().items()}
    net.load_state_dict({k: v.to(dtypes[k]) for k, v in state.items()}, assign=True)
    return Model(net=net.to(device).eval(), card=card, path=card_path,
                 unfamiliar=unfamiliar if card.get("unfamiliar") else None)


def load_imagenet_file(path: str | os.PathLike) -> dict:
    """A torchvision ResNet18 ImageNet state dict from a local file (.safetensors, or .pth read weights-only).

    ``torch.load(weights_only=True)`` uses PyTorch's restricted loader, which accepts tensors and plain containers
    only, so no arbitrary object is ever unpickled. Nothing is downloaded.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"ImageNet weights not found: {p}")
    try:
        if p.suffix == ".safetensors":
            return load_file(str(p))
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # both loaders raise assorted types for a bad file
        raise InputError(f"cannot read ImageNet weights {p.name}: {str(exc).splitlines()[0][:200]}") from None
