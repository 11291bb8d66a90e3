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


def verdict_notes(card: dict, verdict: str) -> list[str]:
    """What a verdict of this model cannot rule out, as measured on the held-out scans its card records
    (``metrics.held_out``, written by ``evaluate-model --record-in-card``): :func:`slight_disease_note` for a normal
    verdict, and :func:`pattern_family_notes`."""
    notes = [slight_disease_note(card)] if verdict == "normal" else []
    return [n for n in notes if n] + pattern_family_notes(card, verdict)


def _held_out(card: dict) -> list:
    return (card.get("metrics") or {}).get("held_out") or []


def slight_disease_note(card: dict) -> str | None:
    """How many of the scans with slight disease (the mildest of ``SEVERITY_BANDS``) in the card's held-out records
    the model called normal, as a note for a normal verdict; None when it called none normal."""
    slight = SEVERITY_BANDS[0][1]
    scans = called_normal = 0
    for record in _held_out(card):
        band = (record.get("by_severity") or {}).get(slight)
        if band:
            scans += int(band["scans"])
            called_normal += int(band["verdicts"].get("normal", 0))
    if not called_normal:
        return None
    return (f"a normal verdict does not rule out slight disease: of {scans} held-out phantom scans with slight "
            f"disease (leg FF at most 3 % above normal), this model called {called_normal} normal (model card)")


#: A pattern family of another class is named in a verdict's notes when the model gave that verdict to at least this
#: share of its held-out scans, and to at least FAMILY_NOTE_MIN_SCANS of them.
FAMILY_NOTE_SHARE, FAMILY_NOTE_MIN_SCANS = 0.5, 3


def pattern_family_notes(card: dict, verdict: str) -> list[str]:
    """Pattern families of another class (one class per family, as the phantom's) that the model mostly gave
    ``verdict`` on its held-out records, one note each: e.g. CMD with a diffuse pattern mostly called DMD."""
    families = {}
    for record in _held_out(card):
        for name, g in (record.get("by_pattern_family") or {}).items():
            if "truth" not in g:
                continue  # a record from before the breakdown counted classes
            f = families.setdefault(name, {"scans": 0, "called": 0, "truth": set()})
            f["scans"] += int(g["scans"])
            f["called"] += int(g["verdicts"].get(verdict, 0))
            f["truth"] |= {c for c, n in g["truth"].items() if n}
    notes = []
    for name, f in sorted(families.items()):
        if len(f["truth"]) != 1 or verdict in f["truth"]:
            continue
        if f["called"] >= max(FAMILY_NOTE_MIN_SCANS, FAMILY_NOTE_SHARE * f["scans"]):
            truth = next(iter(f["truth"]))
            notes.append(f"a {verdict} verdict does not rule out {truth} with the phantom's {name} pattern: of "
                         f"{f['scans']} held-out phantom scans of that pattern, this model called {f['called']} "
                         f"{verdict} (model card)")
    return notes
