"""Texture scores say which class's map they come from when it is the class normal (a finding of issue 12: on the
phantom, one training run gave normal scans texture scores of 0.6 on average, read as disease texture)."""

from __future__ import annotations

import json

import numpy as np

from MDTextureLib.scores import normal_class_warning


def test_normal_class_warning_names_the_legs_scored_on_a_normal_map():
    assert normal_class_warning({"": "DMD"}) is None
    assert normal_class_warning({"right": "CMD", "left": "DMD"}) is None
    one = normal_class_warning({"": "normal"})
    assert one.startswith("the texture scores come from the heatmap of the class normal")
    two = normal_class_warning({"right": "DMD", "left": "normal"})
    assert "(left leg)" in two and "right leg" not in two


def test_classify_warns_when_the_scores_are_of_the_normal_map(tmp_path):
    """The warning reaches prediction.json (and so report.png, summary.csv, the apps) exactly when the scored heatmap
    is the class normal's: a target class asked for decides it here, whatever an untrained network says."""
    from MDTextureLib.modelfile import build_model
    from MDTextureLib.phantom import make_scan, write_scan
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    write_scan(make_scan("DMD", seed=2, n_slices=5, matrix=112, pixel_mm=1.6), tmp_path / "case")
    inputs = CaseInputs(ff=str(tmp_path / "case" / "ff.nrrd"), segmentation=str(tmp_path / "case" / "muscles.seg.nrrd"))
    model = build_model("icam28")
    for target, warned in (("normal", True), ("DMD", False)):
        options = CaseOptions(device="cpu", report=False, target_class=target)
        case = analyse_case(inputs, model, options)
        write_case(case, tmp_path / f"out_{target}", options)
        summary = json.loads((tmp_path / f"out_{target}" / "prediction.json").read_text())
        assert summary["target_class"] == target
        assert any("heatmap of the class normal" in w for w in summary["warnings"]) is warned, summary["warnings"]
        assert len(summary["texture_scores"]) == 7 and np.isfinite(
            [r["texture_score"] for r in summary["texture_scores"] if r["texture_score"] is not None]).all()
