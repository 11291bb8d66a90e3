"""Where the shipped model is and what its card says, without torch.

The Slicer panel shows which model it will use before PyTorch is installed, so the lookup and the card reading
live here, apart from :mod:`MDTextureLib.modelfile` (which loads weights and needs torch and safetensors).
``modelfile`` re-exports these names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .constants import SEVERITY_BANDS
from .errors import InputError

MODELS_DIR = Path(__file__).resolve().parent.parent / "Resources" / "Models"
DEFAULT_MODEL_NAME = "icam28"


def default_model_path() -> Path | None:
    """The shipped model's card (or the one named by the MDTEXTURE_MODEL environment variable), if any."""
    env = os.environ.get("MDTEXTURE_MODEL")
    if env:
        return Path(env)
    card = MODELS_DIR / f"{DEFAULT_MODEL_NAME}.json"
    return card if card.exists() else None


def card_path_of(path: str | os.PathLike) -> Path:
    """The card of a model given as its card, its weights file or their common stem."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_suffix(".json")


def read_card(path: str | os.PathLike) -> dict:
    """The JSON model card of ``path`` (card, weights or stem); InputError when it is missing or not JSON."""
    card_path = card_path_of(path)
    if not card_path.exists():
        raise InputError(f"model card not found: {card_path}")
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"model card {card_path.name} is not valid JSON ({getattr(exc, 'msg', exc)})") from None


def slight_disease_note(card: dict) -> str | None:
    """What a normal verdict of this model cannot rule out, from its card: how many of the scans with slight disease
    (the mildest of ``SEVERITY_BANDS``) in its held-out records (``metrics.held_out``, written by ``evaluate-model
    --record-in-card``) it called normal. None when the card records no such scan called normal."""
    slight = SEVERITY_BANDS[0][1]
    scans = called_normal = 0
    for record in (card.get("metrics") or {}).get("held_out") or []:
        band = (record.get("by_severity") or {}).get(slight)
        if band:
            scans += int(band["scans"])
            called_normal += int(band["verdicts"].get("normal", 0))
    if not called_normal:
        return None
    return (f"a normal verdict does not rule out slight disease: of {scans} held-out phantom scans with slight "
            f"disease (leg FF at most 3 % above normal), this model called {called_normal} normal (model card)")
