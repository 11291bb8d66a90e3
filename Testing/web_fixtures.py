"""Fixtures shared by the web app's tests: a phantom case written to files inside a data folder, and what
``mdtexture classify`` says about exactly those files (the numbers the page must show)."""

from __future__ import annotations

import json

import pytest

from MDTextureLib.cli import main as mdtexture
from MDTextureLib.phantom import make_scan, write_scan



@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data folder with one synthetic phantom case in ``case/`` (ff, water, fat, muscles.seg.nrrd, …), its slices,
    matrix and pixel size drawn like a scanner's (as ``mdtexture demo`` makes it)."""
    root = tmp_path_factory.mktemp("data")
    write_scan(make_scan("DMD", seed=3), root / "case")
    return root


@pytest.fixture(scope="session")
def engine_answer(data_root, tmp_path_factory):
    """``mdtexture classify --ff case/ff.nrrd --segmentation case/muscles.seg.nrrd``: its prediction.json and the
    text of its texture_scores.csv."""
    out = tmp_path_factory.mktemp("cli") / "result"
    case = data_root / "case"
    code = mdtexture(["classify", "--ff", str(case / "ff.nrrd"), "--segmentation", str(case / "muscles.seg.nrrd"),
                      "--out", str(out), "--no-report", "--quiet"])
    assert code == 0
    return {"prediction": json.loads((out / "prediction.json").read_text()),
            "csv": (out / "texture_scores.csv").read_text(encoding="utf-8")}
