"""The command line: outputs with the input's exact geometry, and every bad input as one line + non-zero exit."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import AWKWARD, leg_volume, write_nrrd
from MDTextureLib.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("mdtexture: error:")]
    assert len(lines) == 1, err
    assert pattern in lines[0], lines[0]


def test_classify_writes_everything_on_the_ff_grid(tmp_path, leg_files, model_files, capsys):
    out = tmp_path / "result"
    code, stdout, _ = run(["classify", "--ff", leg_files["ff"], "--segmentation", leg_files["muscles"],
                           "--model", model_files, "--out", out], capsys)
    assert code == 0 and "verdict:" in stdout
    assert sorted(p.name for p in out.iterdir()) == [".mdtexture-output.json", "heatmap.nrrd", "heatmap_signed.nrrd",
                                                     "prediction.json", "report.png", "texture_scores.csv"]
    ff, heat = sitk.ReadImage(str(leg_files["ff"])), sitk.ReadImage(str(out / "heatmap.nrrd"))
    for volume in (heat, sitk.ReadImage(str(out / "heatmap_signed.nrrd"))):
        assert volume.GetSize() == ff.GetSize()
        assert volume.GetSpacing() == ff.GetSpacing()
        assert volume.GetOrigin() == ff.GetOrigin()
        assert volume.GetDirection() == ff.GetDirection()
    h = sitk.GetArrayFromImage(heat)
    assert h.min() >= 0 and h.max() == pytest.approx(1.0)
    pred = json.loads((out / "prediction.json").read_text())
    assert set(pred["probabilities"]) == {"DMD", "CMD", "normal"}
    assert abs(sum(pred["probabilities"].values()) - 1) < 1e-4
    assert len(pred["per_slice"]) == 6 and pred["ff_unit_detected"] == "fraction"
    assert pred["model"]["sha256"] == json.loads(model_files.read_text())["sha256"]
    assert pred["texture_score_parameters"] == {"threshold": 0.5, "min_overlap": 0.1, "min_area_mm2": 10.0}
    # the scores travel with what they are not (measured on the phantom: a scan's muscles ranked only weakly)
    from MDTextureLib.constants import TEXTURE_SCORE_CAVEAT

    assert pred["texture_score_caveat"] == TEXTURE_SCORE_CAVEAT and "not how much" in TEXTURE_SCORE_CAVEAT
    rows = list(csv.DictReader(open(out / "texture_scores.csv")))
    assert [r["muscle"] for r in rows] == ["TA", "EDL", "Per", "TP", "Sol", "LG", "MG"]
    by = {r["muscle"]: r for r in rows}
    vol = leg_volume()
    assert int(by["TA"]["slices_present"]) == 6 and by["EDL"]["texture_score"] == ""
    assert float(by["TA"]["mean_ff"]) == pytest.approx(100 * vol["ff"][vol["labels"] == 1].mean(), abs=1e-3)
    voxel_ml = np.prod(AWKWARD["spacing"]) / 1000
    assert float(by["Sol"]["volume_ml"]) == pytest.approx((vol["labels"] == 5).sum() * voxel_ml, abs=1e-3)


def test_water_and_fat_without_ff(tmp_path, leg_files, model_files, capsys):
    code, _, _ = run(["classify", "--water", leg_files["water"], "--fat", leg_files["fat"], "--model", model_files,
                      "--out", tmp_path / "wf", "--no-report"], capsys)
    assert code == 0
    pred = json.loads((tmp_path / "wf" / "prediction.json").read_text())
    assert pred["ff_unit_detected"] == "derived from water and fat"


def test_percent_ff_and_nan_warn_but_work(tmp_path, model_files, capsys):
    ff = leg_volume()["ff"] * 100
    ff[0, 0, 0] = np.nan
    path = write_nrrd(ff.astype(np.float32), tmp_path / "ffpct.nrrd")
    code, _, err = run(["classify", "--ff", path, "--model", model_files, "--out", tmp_path / "o", "--no-report"],
                       capsys)
    assert code == 0 and "NaN/Inf" in err
    assert json.loads((tmp_path / "o" / "prediction.json").read_text())["ff_unit_detected"] == "percent"


def _bad_inputs(tmp_path, leg_files, model_files):
    """(name, argv, expected message) for each way of failing."""
    vol = leg_volume()
    cases = []
    cases.append(("missing file", ["--ff", tmp_path / "nope.nrrd"], "not found"))
    (tmp_path / "junk.nrrd").write_bytes(b"this is not an image")
    cases.append(("not an image", ["--ff", tmp_path / "junk.nrrd"], "cannot read"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 6), np.float32)), str(tmp_path / "flat.nrrd"))
    cases.append(("2-D", ["--ff", tmp_path / "flat.nrrd"], "is 2-D"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 5, 6, 3), np.uint8), isVector=True),
                    str(tmp_path / "rgb.nrrd"))
    cases.append(("RGB", ["--ff", tmp_path / "rgb.nrrd"], "components"))
    other = write_nrrd(vol["water"], tmp_path / "w2.nrrd", dict(AWKWARD, spacing=(1.0, 1.0, 4.0)))
    other_fat = write_nrrd(vol["fat"], tmp_path / "f2.nrrd", dict(AWKWARD, spacing=(1.0, 1.0, 4.0)))
    cases.append(("grids", ["--ff", leg_files["ff"], "--water", other, "--fat", other_fat], "different voxel grids"))
    neg = write_nrrd(vol["ff"] - 0.5, tmp_path / "neg.nrrd")
    cases.append(("negative FF", ["--ff", neg], "negative"))
    big = write_nrrd(vol["ff"] * 300, tmp_path / "big.nrrd")
    cases.append((">100 FF", ["--ff", big], "above 100"))
    empty = write_nrrd(np.zeros_like(vol["labels"]), tmp_path / "empty_seg.nrrd")
    cases.append(("empty segmentation", ["--ff", leg_files["ff"], "--segmentation", empty], "no labelled voxels"))
    far = write_nrrd(vol["labels"], tmp_path / "far_seg.nrrd", dict(AWKWARD, origin=(900.0, 0.0, 0.0)))
    cases.append(("no overlap", ["--ff", leg_files["ff"], "--segmentation", far], "does not overlap"))
    cases.append(("absent segmentation", ["--ff", leg_files["ff"], "--segmentation", tmp_path / "x.seg.nrrd"],
                  "segmentation not found"))
    cases.append(("only water", ["--water", leg_files["water"]], "both water and fat"))
    return cases


def test_every_bad_input_is_one_line_and_leaves_nothing(tmp_path, leg_files, model_files, capsys):
    for name, argv, message in _bad_inputs(tmp_path, leg_files, model_files):
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        code, stdout, err = run(["classify", *argv, "--model", model_files, "--out", out], capsys)
        assert_one_line_error(code, err, message)
        assert not out.exists(), name
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out_")]
    assert not leftovers


def test_damaged_models_are_refused(tmp_path, leg_files, model_files, capsys):
    import shutil

    weights = model_files.with_suffix(".safetensors")
    shutil.copy(weights, tmp_path / "m.safetensors")
    shutil.copy(model_files, tmp_path / "m.json")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", tmp_path / "m.json",
                        "--out", tmp_path / "o1"], capsys)
    assert_one_line_error(code, err, "truncated or altered")
    shutil.copy(weights, tmp_path / "m.safetensors")
    card = json.loads(model_files.read_text())
    card["variant"] = "resnet7"
    (tmp_path / "m.json").write_text(json.dumps(card))
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", tmp_path / "m.json",
                        "--out", tmp_path / "o2"], capsys)
    assert_one_line_error(code, err, "says variant resnet7")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_unwritable_output_folder(tmp_path, leg_files, model_files, capsys):
    (tmp_path / "a_file").write_text("x")
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files,
                        "--out", tmp_path / "a_file" / "result"], capsys)
    assert_one_line_error(code, err, "cannot write output folder")


def test_batch_summary_with_a_failing_subject(tmp_path, model_files, capsys):
    data = tmp_path / "subjects"
    for i, cls_ff in enumerate([0.05, 0.3]):
        d = data / f"s{i}"
        d.mkdir(parents=True)
        vol = leg_volume(seed=i)
        write_nrrd(vol["ff"], d / "ff.nrrd")
        write_nrrd(vol["labels"], d / "muscles.nrrd")
    (data / "s2").mkdir()
    (data / "s2" / "ff.nrrd").write_bytes(b"broken")
    code, stdout, err = run(["batch", "--data", data, "--out", tmp_path / "res", "--model", model_files,
                             "--no-report", "--quiet"], capsys)
    assert code == 1 and "2/3 subjects" in stdout and "s2" in err
    rows = {r["subject"]: r for r in csv.DictReader(open(tmp_path / "res" / "summary.csv"))}
    assert rows["s0"]["verdict"] in ("DMD", "CMD", "normal") and rows["s0"]["error"] == ""
    assert rows["s2"]["verdict"] == "" and "cannot read" in rows["s2"]["error"]
    assert float(rows["s1"]["p_DMD"]) + float(rows["s1"]["p_CMD"]) + float(rows["s1"]["p_normal"]) == \
        pytest.approx(1, abs=1e-3)
    assert "score_TA" in rows["s0"] and (tmp_path / "res" / "s0" / "heatmap.nrrd").exists()
    # each subject's legs and warnings are in the summary too, as in its prediction.json (a one-leg image whose side
    # the crude test leg cannot tell is assumed right, with a warning)
    prediction = json.loads((tmp_path / "res" / "s0" / "prediction.json").read_text())
    assert rows["s0"]["legs"].startswith(f"right {prediction['legs'][0]['verdict']} ")
    assert rows["s0"]["warnings"] == " | ".join(prediction["warnings"]) and "untrained" in rows["s0"]["warnings"]
    # an old (uncalibrated) model: no temperature, no unfamiliar score, and the table says so
    assert rows["s0"]["calibrated"] == "no" and rows["s0"]["unfamiliar_score"] == rows["s0"]["unfamiliar"] == ""
    assert prediction["calibrated"] is False and prediction["unfamiliar"] is None


def test_console_script_help_is_readable():
    proc = subprocess.run([sys.executable, "-m", "MDTextureLib.cli", "classify", "--help"], capture_output=True,
                          text=True, encoding="utf-8")
    assert proc.returncode == 0
    for word in ("--ff", "--water", "--segmentation", "--target-class", "--threshold", "--min-area-mm2"):
        assert word in proc.stdout


def test_console_script_exit_keeps_what_a_normal_exit_does(tmp_path):
    """The console script leaves without tearing the interpreter down (exit_process), but its exit status, its piped
    output, atexit handlers, temporary folders still open and threads still running are handled as by a normal exit."""
    left_open = tmp_path / "left_open.txt"
    code = ("import atexit, tempfile, threading, time, MDTextureLib.cli as cli\n"
            "atexit.register(print, 'atexit ran')\n"
            "tmp = tempfile.TemporaryDirectory()\n"
            f"open({str(left_open)!r}, 'w').write(tmp.name)\n"
            "def late():\n"
            "    time.sleep(0.3); print('thread done')\n"
            "def work(argv=None):\n"
            "    threading.Thread(target=late).start(); print('answer'); return 3\n"
            "cli.main = work\n"
            "cli.run()\n"
            "print('never')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["answer", "thread", "done", "atexit", "ran"]
    assert not Path(left_open.read_text()).exists()


def test_console_script_exit_stops_idle_thread_pools():
    """A thread pool left open (serve's asyncio executor) must not keep the process alive: the quick exit stops it as
    the interpreter's own exit does (it hung after Ctrl-C in `mdtexture serve`)."""
    code = ("import concurrent.futures as cf, MDTextureLib.cli as cli\n"
            "pool = cf.ThreadPoolExecutor(1); pool.submit(int).result()\n"
            "cli.main = lambda argv=None: 0\n"
            "cli.run()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_console_script_exit_reports_output_it_could_not_write(tmp_path):
    """Output lost on a full disk is an error (exit status 120, as Python's own exit), not a silent success."""
    import os

    code = "import MDTextureLib.cli as cli\ncli.main = lambda argv=None: print('verdict') or 0\ncli.run()\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, text=True, env=env,
                              timeout=60)
    assert proc.returncode == 120 and "could not write the output" in proc.stderr


def test_help_does_not_load_torch():
    """Building the whole parser (every subcommand) must stay light: `mdtexture --help` should answer at once."""
    code = ("import sys; from MDTextureLib.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'sklearn') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_model_cards_are_read_as_utf8_whatever_the_locale(tmp_path):
    """A card holding non-ASCII text (the shipped cards do: '§') loads under a C/ASCII locale too: JSON is UTF-8."""
    import json
    import os
    import subprocess
    import sys

    from MDTextureLib.modelcard import default_model_path

    card = json.loads(default_model_path().read_text(encoding="utf-8"))
    card["intended_use"] += " — non-ASCII on purpose: § é"
    (tmp_path / "m.json").write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")
    os.symlink(default_model_path().with_suffix(".safetensors"), tmp_path / "m.safetensors")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    code = ("import locale, sys; from MDTextureLib.modelfile import load_model; "
            f"m = load_model({str(tmp_path / 'm.json')!r}); print(locale.getpreferredencoding(False), m.name)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr[-800:]
    assert out.stdout.split()[0].upper() in ("ANSI_X3.4-1968", "ASCII", "US-ASCII")  # the locale really was ASCII
