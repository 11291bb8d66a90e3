"""The engine's Python packages inside Slicer: which are missing or too old, read without importing them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tempfile

#: What the engine needs beyond Slicer's own Python (numpy, scipy and SimpleITK come with Slicer and are never
#: replaced): pip requirement, with the oldest version that works. Not torchvision: the network is the engine's own
#: (MDTextureLib/resnet.py); only the evaluation suite's Grad-CAM baselines use it, and they do not run in Slicer.
ENGINE_REQUIREMENTS = {"torch": "torch>=2.1", "safetensors": "safetensors>=0.4"}
MINIMUM_VERSIONS = {name: requirement.split(">=")[1] for name, requirement in ENGINE_REQUIREMENTS.items()}

#: Slicer's own packages, pinned during an install so that pip cannot replace them.
SLICER_OWN_PACKAGES = ("numpy", "SimpleITK", "scipy")


def version_tuple(text: str) -> tuple:
    """'2.14.1+cu121' -> (2, 14, 1): enough to compare with a minimum version."""
    parts = []
    for piece in str(text).split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def package_problems() -> dict:
    """{package: what is wrong} for the engine's packages, read from the installed metadata without importing them
    (an import would keep an old version loaded until Slicer restarts)."""
    problems = {}
    for name, minimum in MINIMUM_VERSIONS.items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is None or importlib.util.find_spec(name) is None:
            problems[name] = f"{name} is not installed"
        elif version_tuple(version) < version_tuple(minimum):
            problems[name] = f"{name} {version} is installed but MDTexture needs {minimum} or newer"
    return problems


def constraints_file() -> str:
    """A pip constraints file pinning Slicer's own packages at their installed versions; the caller removes it."""
    lines = []
    for name in SLICER_OWN_PACKAGES:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    handle, path = tempfile.mkstemp(prefix="MDTexture-constraints-", suffix=".txt")
    with os.fdopen(handle, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
