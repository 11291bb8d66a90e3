"""Shared fixtures: small hand-built Dixon volumes on deliberately awkward grids, and throwaway models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

torch.set_num_threads(2)

# A grid that catches transposes and LPS/RAS slips: anisotropic, non-zero origin, a rotated direction.
AWKWARD = {
    "spacing": (0.9, 1.1, 4.0),
    "origin": (-81.5, 40.25, -12.0),
    "direction": (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0),  # 90° in-plane rotation
}


def leg_volume(n_slices: int = 6, rows: int = 72, cols: int = 80, seed: int = 0) -> dict:
    """A crude leg: an ellipse of muscle (FF 5 %) with a fatty rim (FF 90 %) and a fatty blob, in air (FF 0).

    Returns arrays (z, y, x): ff (fraction), water, fat, labels (1 = TA in the left half, 5 = Sol in the right half).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    r = ((xx - cols / 2) / (cols * 0.38)) ** 2 + ((yy - rows / 2) / (rows * 0.38)) ** 2
    body, muscle = r < 1.0, r < 0.7
    ff2d = np.where(body, 0.9, 0.0)
    ff2d[muscle] = 0.05
    blob = ((xx - cols * 0.62) ** 2 + (yy - rows * 0.5) ** 2) < (rows * 0.08) ** 2
    ff2d[blob & muscle] = 0.6
    ff = np.repeat(ff2d[None], n_slices, axis=0).astype(np.float32)
    ff[:, body] += rng.normal(0, 0.01, (n_slices, int(body.sum()))).astype(np.float32)
    ff = np.clip(ff, 0, 1)
    total = np.where(body, 100.0, 2.0).astype(np.float32)
    water, fat = total * (1 - ff), total * ff
    labels = np.zeros(ff.shape, np.uint8)
    labels[:, muscle & (xx < cols / 2)] = 1
    labels[:, muscle & (xx >= cols / 2)] = 5
    return {"ff": ff, "water": water.astype(np.float32), "fat": fat.astype(np.float32), "labels": labels}


def grid_of(scan):
    """The voxel grid of a phantom ``Scan``."""
    from MDTextureLib.io import Grid

    return Grid(tuple(reversed(scan.ff.shape)), scan.spacing_mm, scan.origin_mm, scan.direction)


def true_body(scan) -> np.ndarray:
    """The phantom's body: FF is 0 exactly in its air, so the hole-filled non-zero region of each slice."""
    from scipy import ndimage

    filled = np.stack([ndimage.binary_fill_holes(s) for s in scan.ff > 0])
    labels, _ = ndimage.label(filled)  # the leg, without the specks of air noise above the phantom's 6-SD mask
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def write_nrrd(array: np.ndarray, path: Path, geometry: dict = AWKWARD) -> Path:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(geometry["spacing"])
    img.SetOrigin(geometry["origin"])
    img.SetDirection(geometry["direction"])
    sitk.WriteImage(img, str(path))
    return path


@pytest.fixture
def leg_files(tmp_path):
    """ff.nrrd, water.nrrd, fat.nrrd and muscles.nrrd of :func:`leg_volume` on the awkward grid."""
    vol = leg_volume()
    names = {"ff": "ff", "water": "water", "fat": "fat", "labels": "muscles"}
    return {names[k]: write_nrrd(v, tmp_path / f"{names[k]}.nrrd") for k, v in vol.items()}


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """An untrained icam28 model saved the normal way (safetensors + card): returns the card path."""
    from MDTextureLib.modelfile import build_model, save_model

    folder = tmp_path_factory.mktemp("model")
    _, card = save_model(build_model("icam28", seed=0), folder / "icam28_test")
    return card
