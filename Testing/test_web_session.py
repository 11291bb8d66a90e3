"""The web app's callbacks in this process, without a browser: a real trame-slicer scene and the shared Logic.

Numbers are checked against what the engine (``mdtexture classify``) computes from the same files, or against
counts known by construction (a threshold fills exactly the voxels in range). trame-slicer is in the ``test``
extra: without it this file fails at import, it does not skip.
"""

from __future__ import annotations

import itertools
import json
import os
import time

import numpy as np
import pytest
import SimpleITK as sitk
from trame.app import get_server

from MDTextureLib.constants import CLASSES, MUSCLES
from MDTextureLib.errors import InputError
from MDTextureLib.io import load_dixon
from MDTextureLib.slicer_bridge.volumes import array_of_volume, nodes_of_class
from MDTextureLib.web.serve import build_app

from web_fixtures import data_root, engine_answer  # noqa: F401  (pytest fixtures)

_names = itertools.count()


def new_session(root, upload_limit_mb=512.0, precision="auto"):
    return build_app(get_server(f"mdtexture-test-{next(_names)}", client_type="vue3"), root, upload_limit_mb,
                     precision)


def run_classification(session, timeout_s=300):
    session.start_classify()
    deadline = time.monotonic() + timeout_s
    while session.poll_classify():
        assert time.monotonic() < deadline, "classification did not finish"
        time.sleep(0.2)


def voxels(session):
    return {s["name"]: s["voxels"] for s in session.state.segments}


@pytest.fixture(scope="module")
def classified(data_root):  # noqa: F811
    """The phantom case opened from its files, classified (with the fat attribution map ticked) and scored, as the
    page does it."""
    session = new_session(data_root)
    case = data_root / "case"
    session.open_files(ff=str(case / "ff.nrrd"), segmentation=str(case / "muscles.seg.nrrd"))
    session.state.fat_map = True
    run_classification(session)
    assert session.state.error == ""
    session.compute_scores()
    return session


def test_verdict_probabilities_and_scores_equal_the_command_line(classified, engine_answer):  # noqa: F811
    expected = engine_answer["prediction"]
    state = classified.state
    assert state.verdict == expected["verdict"]
    shown = {p["name"]: p["percent"] for p in state.probabilities}
    for c in CLASSES:
        assert shown[c] == f"{100 * expected['probabilities'][c]:.1f}"  # one decimal always, as the CLI prints
    assert classified.scores_csv() == engine_answer["csv"]
    assert [r["muscle"] for r in state.score_rows] == list(MUSCLES)
    assert state.chart_svg.count("<polyline") == len(CLASSES)


def test_heatmap_class_opacity_and_legend_reach_the_slice_view_nodes(classified):
    scene = classified.views.scene
    classified.set_opacity(0.8)
    composites = nodes_of_class(scene, "vtkMRMLSliceCompositeNode")
    assert composites and all(c.GetForegroundOpacity() == pytest.approx(0.8) for c in composites)
    classified.show_class("CMD")
    heat = classified.p.heatmap("CMD")
    assert all(c.GetForegroundVolumeID() == heat.GetID() for c in composites)
    assert all(c.GetBackgroundVolumeID() == classified.p.ff.GetID() for c in composites)
    assert "ICAM CMD" in classified.state.legend_html
    classified.set_display_floor(0.3)
    assert heat.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.3)
    classified.show_class(classified.p.verdict)


def test_fat_overlay_equals_the_engine_and_leaves_the_scores_alone(classified, engine_answer):  # noqa: F811
    from MDTextureLib.inference import classify_volume
    from MDTextureLib.modelcard import default_model_path
    from MDTextureLib.modelfile import load_model
    from MDTextureLib.slicer_bridge.volumes import ijk_to_ras, series_from_nodes

    p, state = classified.p, classified.state
    assert state.has_fat_map and state.overlay == "icam"
    ref = classify_volume(series_from_nodes(ff=p.ff, ff_unit=p.ffUnit), load_model(default_model_path()),
                          fat_map=True)
    for c in CLASSES:
        fat = p.fatHeatmap(c)
        np.testing.assert_array_equal(ijk_to_ras(fat), ijk_to_ras(p.ff))
        np.testing.assert_allclose(array_of_volume(fat), ref.fat_heatmap_for(c), atol=1e-4)
    before = classified.scores_csv()
    classified.set_overlay("fat")
    composites = nodes_of_class(classified.views.scene, "vtkMRMLSliceCompositeNode")
    assert all(c.GetForegroundVolumeID() == p.fatHeatmap(p.viewClass).GetID() for c in composites)
    assert state.overlay == "fat" and f"fat attribution {p.viewClass}" in state.legend_html
    classified.compute_scores()
    assert classified.scores_csv() == before == engine_answer["csv"]
    classified.guarded(classified.set_overlay, "gradcam")
    assert "unknown overlay" in state.error and state.overlay == "fat"
    classified.set_overlay("icam")
    assert all(c.GetForegroundVolumeID() == p.heatmap(p.viewClass).GetID() for c in composites)
    assert state.overlay == "icam" and f"ICAM {p.viewClass}" in state.legend_html


def test_export_folder_is_whole_on_the_ff_grid_and_never_replaces(classified, engine_answer, data_root):  # noqa: F811
    classified.export_folder("exported")
    out = data_root / "exported"
    ff = sitk.ReadImage(str(data_root / "case" / "ff.nrrd"))
    for c in CLASSES:
        heat = sitk.ReadImage(str(out / f"heatmap_{c}.nrrd"))
        assert heat.GetSize() == ff.GetSize() and heat.GetSpacing() == pytest.approx(ff.GetSpacing())
        assert heat.GetOrigin() == pytest.approx(ff.GetOrigin())
        assert heat.GetDirection() == pytest.approx(ff.GetDirection())
        fat = sitk.ReadImage(str(out / f"fat_map_{c}.nrrd"))  # the fat attribution was ticked: exported too
        assert fat.GetSize() == ff.GetSize() and fat.GetOrigin() == pytest.approx(ff.GetOrigin())
        np.testing.assert_array_equal(sitk.GetArrayFromImage(fat), array_of_volume(classified.p.fatHeatmap(c)))
    assert (out / "texture_scores.csv").read_text(encoding="utf-8") == engine_answer["csv"]
    # what the network ran in goes with the export, as prediction.json carries it from the command line
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["precision"] == engine_answer["prediction"]["precision"] == classified.p.precisionUsed
    classified.guarded(classified.export_folder, "exported")
    # hostile run: the page has no --overwrite, yet the refusal said to pass it, beside the first export's message
    assert "export under a new name" in classified.state.error and "--overwrite" not in classified.state.error
    assert classified.state.message == ""
    classified.guarded(classified.export_folder, "../outside")
    assert "outside the data folder" in classified.state.error
    assert not (data_root.parent / "outside").exists()


def test_threshold_fills_exactly_the_voxels_in_range_and_undo_restores(data_root):  # noqa: F811
    session = new_session(data_root)
    session.open_files(ff=str(data_root / "case" / "ff.nrrd"))
    assert session.state.segments == []
    session.create_segments()
    assert sorted(voxels(session)) == sorted(MUSCLES) and set(voxels(session).values()) == {0}
    ta = next(s["id"] for s in session.state.segments if s["name"] == "TA")
    session.select_segment(ta)
    ff = sitk.GetArrayFromImage(sitk.ReadImage(str(data_root / "case" / "ff.nrrd")))
    session.threshold_segment(0.5, 0.7)
    assert voxels(session)["TA"] == int(((ff >= 0.5) & (ff <= 0.7)).sum()) > 0
    before = voxels(session)["TA"]
    session.keep_largest_island()
    assert 0 < voxels(session)["TA"] < before
    session.undo()
    assert voxels(session)["TA"] == before
    session.set_effect("paint")
    assert session.state.effect == "paint"
    assert not session.views.editor.active_effect.is_sphere_brush()  # 2-D brush: one slice per stroke


def test_cancel_stops_the_job_and_leaves_no_heatmap(data_root):  # noqa: F811
    session = new_session(data_root)
    session.open_demo()
    session.start_classify()
    process = session.job.process
    session.cancel_classify()
    assert process.poll() is not None
    assert session.job is None and not session.state.classify_running and session.state.verdict == ""
    assert session.p.heatmap("DMD") is None
    assert sorted(voxels(session)) == sorted(MUSCLES) and min(voxels(session).values()) > 0


def test_bad_uploads_show_the_engine_message_and_the_session_goes_on(data_root, tmp_path):  # noqa: F811
    session = new_session(data_root, upload_limit_mb=0.001)
    broken = b"NRRD0004\ntype: float\ndimension: 3\n"
    (tmp_path / "broken.nrrd").write_bytes(broken)
    with pytest.raises(InputError) as engine_says:
        load_dixon(ff=tmp_path / "broken.nrrd")
    session.guarded(session.open_uploads, {"ff": [{"name": "broken.nrrd", "content": broken}]})
    assert session.state.error == str(engine_says.value)
    assert not session.state.has_case
    session.guarded(session.open_uploads, {"ff": [{"name": "big.nrrd", "content": b"x" * 5000}]})
    assert "limited to" in session.state.error
    session.guarded(session.open_uploads, {"ff": [{"name": "notes.txt", "content": b"x"}]})
    assert "not an image file" in session.state.error
    session.guarded(session.open_demo)
    assert session.state.error == "" and session.state.has_case
    good = new_session(data_root)
    good.open_uploads({"ff": [{"name": "ff.nrrd", "content": (data_root / "case" / "ff.nrrd").read_bytes()}],
                       "segmentation": [{"name": "muscles.seg.nrrd",
                                         "content": (data_root / "case" / "muscles.seg.nrrd").read_bytes()}]})
    assert good.state.case_name == "ff.nrrd" and min(voxels(good).values()) > 0
    assert good.uploads.folder.is_dir() and data_root not in good.uploads.folder.parents
    good.uploads.close()
    assert not good.uploads.folder.exists()


def test_picker_lists_images_and_never_leaves_the_data_folder(data_root, tmp_path):  # noqa: F811
    session = new_session(data_root)
    session.browse("case")
    assert "case/ff.nrrd" in session.state.picker["files"]
    assert "case/truth.json" not in session.state.picker["files"]
    assert session.state.picker["parent"] == ""
    for escape in ("..", "case/../../", str(tmp_path)):
        session.guarded(session.browse, escape)
        assert "outside the data folder" in session.state.error
    os.symlink(tmp_path, data_root / "link-out")
    try:
        session.guarded(session.pick, "ff", "link-out/ff.nrrd")
        assert "outside the data folder" in session.state.error
        session.guarded(session.browse, "")
        assert "link-out" not in session.state.picker["folders"]
    finally:
        os.unlink(data_root / "link-out")
    session.open_demo()  # a case before: opening the next one starts from an empty scene
    session.pick("ff", "case/ff.nrrd")
    session.pick("segmentation", "case/muscles.seg.nrrd")
    session.open_picked()
    assert session.state.has_case and min(voxels(session).values()) > 0
    scene = session.views.scene
    assert [n.GetName() for n in nodes_of_class(scene, "vtkMRMLScalarVolumeNode")] == ["ff"]
    assert len(nodes_of_class(scene, "vtkMRMLSegmentationNode")) == 1
    assert np.isclose(session.p.ff.GetSpacing()[0], sitk.ReadImage(str(data_root / "case/ff.nrrd")).GetSpacing()[0])


def test_two_legs_each_leg_verdict_and_scores_equal_the_command_line(tmp_path):
    """A right DMD phantom leg and a mirrored normal one side by side: the page lists each leg's verdict and the
    per-leg score table and CSV (with its leg column) of ``mdtexture classify`` on the same files."""
    import json

    from MDTextureLib.cli import main as mdtexture
    from MDTextureLib.phantom import make_scan

    right, left = make_scan("DMD", seed=1, n_slices=8, matrix=144, pixel_mm=1.2), \
        make_scan("normal", seed=0, n_slices=8, matrix=144, pixel_mm=1.2)
    root = tmp_path / "data"
    root.mkdir()
    for name, arrays in (("ff", (right.ff, left.ff)), ("muscles", (right.labels, left.labels))):
        image = sitk.GetImageFromArray(np.ascontiguousarray(np.concatenate([arrays[0], arrays[1][:, :, ::-1]], 2)))
        image.SetSpacing((1.2, 1.2, 4.0))
        image.SetOrigin((-172.8, -86.4, 0.0))
        sitk.WriteImage(image, str(root / f"{name}.nrrd"))
    out = tmp_path / "cli"
    assert mdtexture(["classify", "--ff", str(root / "ff.nrrd"), "--segmentation", str(root / "muscles.nrrd"),
                      "--out", str(out), "--no-report", "--quiet"]) == 0
    expected = json.loads((out / "prediction.json").read_text())
    session = new_session(root)
    session.open_files(ff=str(root / "ff.nrrd"), segmentation=str(root / "muscles.nrrd"))
    run_classification(session)
    assert session.state.error == ""
    assert [(leg["side"], leg["verdict"]) for leg in session.state.legs] == \
        [(leg["side"], leg["verdict"]) for leg in expected["legs"]] == [("right", "DMD"), ("left", "normal")]
    session.compute_scores()
    assert {row["leg"] for row in session.state.score_rows} == {"right", "left"}
    assert session.scores_csv() == (out / "texture_scores.csv").read_text(encoding="utf-8")
    # The left leg's rows come from the normal class's map: the page says so as the command line does, once, even
    # when the scores are computed again.
    cli_note = [w for w in expected["warnings"] if "heatmap of the class normal" in w]
    assert len(cli_note) == 1 and "(left leg)" in cli_note[0]
    session.compute_scores()
    assert [w for w in session.state.warnings if "heatmap of the class normal" in w] == cli_note


def test_serve_refuses_a_missing_data_root_and_warns_off_localhost(tmp_path, capsys):
    from MDTextureLib.cli import main as mdtexture

    assert mdtexture(["serve", "--data-root", str(tmp_path / "missing"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err
    assert "warning: listening on 0.0.0.0" in err and "no login" in err
    assert mdtexture(["serve", "--data-root", str(tmp_path / "missing")]) == 2
    assert "warning" not in capsys.readouterr().err  # 127.0.0.1 (the default) is this computer only


def test_serve_precision_reaches_every_classify_and_the_page_says_what_ran(data_root):  # noqa: F811
    """``mdtexture serve --precision fp32``: the page's classifications run in float32, and its message says so."""
    from MDTextureLib.cli import main as mdtexture

    with pytest.raises(SystemExit):
        mdtexture(["serve", "--precision", "fp16"])  # not a choice: refused before anything starts
    session = new_session(data_root, precision="fp32")
    session.open_demo("DMD", 7)
    run_classification(session)
    assert session.state.error == "" and (session.p.precision, session.p.precisionUsed) == ("fp32", "fp32")
    assert session.state.message.endswith("[network in float32]")


def test_a_dicom_study_opens_with_the_series_its_tags_name(tmp_path):
    from test_dicom import _siemens_study, dixon_volumes

    from MDTextureLib.dicom import load_study
    from MDTextureLib.slicer_bridge.volumes import array_of_volume, grid_of_volume

    _siemens_study(tmp_path / "study", dixon_volumes())
    series, _facts = load_study(tmp_path / "study")
    session = new_session(None)
    session.open_study(str(tmp_path / "study"))
    p = session.p
    assert session.state.has_case and session.state.error == ""
    assert not grid_of_volume(p.ff).mismatch(series.grid)
    np.testing.assert_array_equal(array_of_volume(p.ff), series.ff.astype(np.float32))
    np.testing.assert_array_equal(array_of_volume(p.water), series.water.astype(np.float32))
    assert p.ffUnit == "fraction"
