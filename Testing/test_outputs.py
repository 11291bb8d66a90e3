"""Output folders never destroy what MDTexture did not write; batch never loses good results; signals clean up.

Each test here reproduces a finding of the "data as clinics export it" issue: on the code before this module's rule,
`--out` replaced whatever folder it named (the subject's own images, a whole cohort, an unrelated folder, left 0700),
SIGTERM/SIGHUP left the hidden temporary folder behind, and one crashing subject aborted a whole batch.
"""

import csv
import errno
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import leg_volume, write_nrrd
from MDTextureLib import outputs
from MDTextureLib.cli import main
from MDTextureLib.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err):
    """The single ``mdtexture: error:`` line of a refused command (exit 2)."""
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("mdtexture: error:")]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes' sha256 and its mode, and every folder's mode."""
    snap = {".": stat.S_IMODE(folder.stat().st_mode)}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        snap[rel] = (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None,
                     stat.S_IMODE(p.stat().st_mode))
    return snap


def make_subject(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    vol = leg_volume(seed=seed)
    write_nrrd(vol["ff"], folder / "ff.nrrd")
    write_nrrd(vol["labels"], folder / "muscles.nrrd")
    return folder


def zero_spacing_seg_nrrd(path: Path, labels: np.ndarray) -> Path:
    """A .seg.nrrd whose first axis has zero spacing: SimpleITK raises a multi-line RuntimeError reading it."""
    nz, ny, nx = labels.shape
    header = (f"NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: {nx} {ny} {nz}\n"
              "space directions: (0,0,0) (0,1.1,0) (0,0,4)\nkinds: domain domain domain\nencoding: raw\n"
              "space origin: (0,0,0)\nSegment0_ID:TA\nSegment0_Name:TA\nSegment0_LabelValue:1\nSegment0_Layer:0\n\n")
    path.write_bytes(header.encode() + labels.astype(np.uint8).tobytes())
    return path


# ---- the subject's own inputs, the cohort, unrelated folders -------------------------------------------------------

def test_classify_never_writes_over_its_own_inputs(tmp_path, model_files, capsys):
    subject = make_subject(tmp_path / "subject")
    before = snapshot(subject)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["classify", "--ff", subject / "ff.nrrd", "--segmentation", subject / "muscles.nrrd",
                            "--model", model_files, "--out", subject, *extra], capsys)
        assert "contains the input" in one_error_line(code, err)
        assert snapshot(subject) == before
    # through a symbolic link to the same folder, and into the model's own folder
    (tmp_path / "link").symlink_to(subject, target_is_directory=True)
    code, _, err = run(["classify", "--ff", subject / "ff.nrrd", "--model", model_files, "--out", tmp_path / "link",
                        "--overwrite"], capsys)
    assert "contains the input" in one_error_line(code, err)
    code, _, err = run(["classify", "--ff", subject / "ff.nrrd", "--model", model_files,
                        "--out", model_files.parent], capsys)
    assert "contains the input" in one_error_line(code, err)
    assert snapshot(subject) == before and model_files.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_batch_never_writes_over_or_into_its_data(tmp_path, model_files, capsys):
    data = tmp_path / "cohort"
    make_subject(data / "s0")
    make_subject(data / "s1", seed=1)
    before = snapshot(data)
    for out, message in ((data, "is the input"), (data / "results", "lies inside the input"),
                         (data / "s0" / "r", "lies inside the input")):
        for extra in ([], ["--overwrite"]):
            code, _, err = run(["batch", "--data", data, "--out", out, "--model", model_files, "--quiet", *extra],
                               capsys)
            assert message in one_error_line(code, err), err
            assert snapshot(data) == before
    # a parent of the data folder is refused as well (with --overwrite it would be replaced as a whole)
    code, _, err = run(["batch", "--data", data, "--out", tmp_path, "--model", model_files, "--quiet",
                        "--overwrite"], capsys)
    assert "contains the input" in one_error_line(code, err)
    assert snapshot(data) == before


def test_an_unrelated_folder_is_refused_and_left_as_it_was(tmp_path, leg_files, model_files, capsys):
    out = tmp_path / "thesis"
    (out / "chapter1").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes")
    (out / "chapter1" / "draft.tex").write_text("\\section{}")
    out.chmod(0o750)
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out,
                            "--no-report", *extra], capsys)
        line = one_error_line(code, err)
        assert "not empty" in line and "not an MDTexture output" in line and "2 entries" in line
        assert snapshot(out) == before
    # the phantom command had its own --overwrite that replaced any folder: now the same rule
    code, _, err = run(["phantom", "--out", out, "--subjects", "1", "--slices", "4", "--matrix", "64",
                        "--pixel-mm", "3", "--workers", "1", "--quiet", "--overwrite"], capsys)
    assert "not an MDTexture output" in one_error_line(code, err)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_earlier_output_is_replaced_only_with_overwrite_and_only_whole(tmp_path, leg_files, model_files,
                                                                         capsys, monkeypatch):
    out = tmp_path / "result"
    code, _, _ = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out, "--no-report",
                      "--target-class", "DMD"], capsys)
    assert code == 0
    manifest = json.loads((out / outputs.MANIFEST).read_text())
    assert manifest["written_by"] == "MDTexture" and manifest["command"] == "classify"
    assert manifest["files"] == ["heatmap.nrrd", "heatmap_signed.nrrd", "prediction.json"]
    from MDTextureLib import __version__
    assert manifest["version"] == __version__ and manifest["time_utc"].endswith("Z")
    first = snapshot(out)
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out], capsys)
    assert "earlier MDTexture output (classify" in one_error_line(code, err) and "--overwrite" in err
    assert snapshot(out) == first
    # a run that fails half-way through writing leaves the earlier output exactly as it was
    import MDTextureLib.pipeline as pipeline

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(pipeline, "write_scores_csv", full_disk)
        code, _, err = run(["classify", "--ff", leg_files["ff"], "--segmentation", leg_files["muscles"],
                            "--model", model_files, "--out", out, "--no-report", "--overwrite"], capsys)
    assert "no space left on device" in one_error_line(code, err)
    assert snapshot(out) == first
    code, _, _ = run(["classify", "--ff", leg_files["ff"], "--segmentation", leg_files["muscles"], "--model",
                      model_files, "--out", out, "--no-report", "--target-class", "CMD", "--overwrite"], capsys)
    assert code == 0 and json.loads((out / "prediction.json").read_text())["target_class"] == "CMD"
    assert json.loads((out / outputs.MANIFEST).read_text())["files"] == ["heatmap.nrrd", "heatmap_signed.nrrd",
                                                                         "prediction.json", "texture_scores.csv"]
    # hostile run: a prediction.json the user had edited was replaced by --overwrite; an edited file is theirs now
    edited = (out / "prediction.json").read_text().replace('"target_class": "CMD"', '"target_class": "CMD", "x": 1')
    (out / "prediction.json").write_text(edited)
    before = snapshot(out)
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out, "--overwrite"],
                       capsys)
    assert "prediction.json changed since MDTexture wrote it" in one_error_line(code, err)
    assert snapshot(out) == before
    contents = json.loads((out / outputs.MANIFEST).read_text())["contents"]
    assert contents["prediction.json"]["bytes"] < len(edited.encode()) and len(contents["prediction.json"]["sha256"]) == 64
    (out / "prediction.json").unlink()  # a file of ours removed: nothing of the user's is lost by replacing
    code, _, _ = run(["classify", "--ff", leg_files["ff"], "--segmentation", leg_files["muscles"], "--model",
                      model_files, "--out", out, "--no-report", "--target-class", "CMD", "--overwrite"], capsys)
    assert code == 0
    # a file the user put into an earlier output is theirs: --overwrite no longer replaces that folder
    (out / "my_measurements.xlsx").write_text("x")
    before = snapshot(out)
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out, "--overwrite"],
                       capsys)
    assert "my_measurements.xlsx" in one_error_line(code, err) and snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_empty_folder_is_used_and_permissions_follow_the_umask(tmp_path, leg_files, model_files, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    old = os.umask(0o027)
    try:
        code, _, _ = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out,
                          "--no-report"], capsys)
        data = tmp_path / "cohort"
        make_subject(data / "s0")
        code2, _, _ = run(["batch", "--data", data, "--out", tmp_path / "res", "--model", model_files, "--quiet",
                           "--no-report"], capsys)
    finally:
        os.umask(old)
    assert code == 0 and code2 == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "prediction.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "res").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "res" / "s0").stat().st_mode) == 0o750


def test_every_command_that_writes_a_folder_follows_the_same_rule(tmp_path, model_files, capsys):
    data = tmp_path / "cohort"
    data.mkdir()
    (data / "cohort.csv").write_text("subject,scan,class,folder\n")
    before = snapshot(data)
    for argv, message in (
            (["evaluate", "table1", "--data", data, "--out", data / "eval", "--quick"], "lies inside the input"),
            (["crossval", "--data", data, "--out", data, "--overwrite"], "is the input"),
            (["evaluate-model", "--data", data, "--model", model_files, "--out", model_files.parent],
             "contains the input"),
            (["phantom", "--out", data, "--subjects", "1", "--overwrite"], "not an MDTexture output"),
            (["cohort-stats", "--data", data, "--out", data / "stats"], "lies inside the input")):
        code, _, err = run(argv, capsys)
        assert message in one_error_line(code, err), argv
        assert snapshot(data) == before and model_files.exists()


def test_a_symbolic_link_to_a_folder_is_written_through(tmp_path, leg_files, model_files, capsys):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    code, _, _ = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", tmp_path / "link",
                      "--no-report"], capsys)
    assert code == 0 and (tmp_path / "link").is_symlink()
    assert json.loads((tmp_path / "elsewhere" / "prediction.json").read_text())["n_slices"] == 6


def test_a_path_that_is_a_file_is_refused(tmp_path, leg_files, model_files, capsys):
    (tmp_path / "a_file").write_text("x")
    code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", tmp_path / "a_file"],
                       capsys)
    assert "is not a folder" in one_error_line(code, err)
    assert (tmp_path / "a_file").read_text() == "x"


# ---- permissions ------------------------------------------------------------------------------------------------
# The suite runs as root, where chmod cannot take a permission away; the operating system's answer (EACCES) is
# simulated where it would come from, and the test checks what the user reads and that nothing was touched.

def test_an_unwritable_place_says_permission_denied(tmp_path, leg_files, model_files, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    with monkeypatch.context() as m:
        m.setattr(outputs.tempfile, "mkdtemp", denied)
        code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files,
                            "--out", tmp_path / "r", "--no-report"], capsys)
    line = one_error_line(code, err)
    assert "cannot write output folder" in line and "permission denied" in line
    assert not (tmp_path / "r").exists()


def test_an_unreadable_output_folder_is_refused_not_replaced(tmp_path, leg_files, model_files, capsys,
                                                            monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    (out / "secret.txt").write_text("not ours")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == out:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)
    with monkeypatch.context() as m:
        m.setattr(outputs.os, "scandir", scandir)
        code, _, err = run(["classify", "--ff", leg_files["ff"], "--model", model_files, "--out", out,
                            "--no-report", "--overwrite"], capsys)
    line = one_error_line(code, err)
    assert "cannot read output folder" in line and "permission denied" in line
    assert (out / "secret.txt").read_text() == "not ours"


# ---- batch keeps every good result ------------------------------------------------------------------------------

def test_batch_turns_any_failure_into_a_row_and_keeps_the_others(tmp_path, model_files, capsys, monkeypatch):
    data = tmp_path / "cohort"
    for i in range(4):
        make_subject(data / f"s{i}", seed=i)
    # s1: a real file SimpleITK cannot take (zero spacing), whatever error type the reader turns it into
    (data / "s1" / "muscles.nrrd").unlink()
    zero_spacing_seg_nrrd(data / "s1" / "muscles.seg.nrrd", leg_volume()["labels"])
    # s2: an unexpected crash inside the analysis, with a two-line message; s3: the disk fails while writing
    import MDTextureLib.pipeline as pipeline
    real_analyse, real_write = pipeline.analyse_case, pipeline.write_image

    def analyse(inputs, *args, **kwargs):
        if Path(inputs.ff).parent.name == "s2":
            raise ValueError("operands could not be broadcast\ntogether with shapes (3,) (4,)")
        return real_analyse(inputs, *args, **kwargs)

    def write_image(array, grid, path, **kwargs):
        if Path(path).parent.name.startswith(".s3.tmp-"):  # the subject's temporary folder
            raise OSError(errno.EIO, "Input/output error")
        return real_write(array, grid, path, **kwargs)
    monkeypatch.setattr(pipeline, "analyse_case", analyse)
    monkeypatch.setattr(pipeline, "write_image", write_image)
    code, stdout, err = run(["batch", "--data", data, "--out", tmp_path / "res", "--model", model_files,
                             "--no-report", "--quiet"], capsys)
    assert code == 1 and "1/4 subjects" in stdout
    with open(tmp_path / "res" / "summary.csv", newline="") as fh:
        rows = {r["subject"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["s0", "s1", "s2", "s3"]
    pred = json.loads((tmp_path / "res" / "s0" / "prediction.json").read_text())
    assert rows["s0"]["error"] == "" and rows["s0"]["verdict"] == pred["verdict"]
    for c, p in pred["probabilities"].items():
        assert float(rows["s0"][f"p_{c}"]) == pytest.approx(p, abs=1e-4)
    assert rows["s1"]["verdict"] == "" and "spacing" in rows["s1"]["error"].lower()
    assert rows["s2"]["error"] == "ValueError: operands could not be broadcast together with shapes (3,) (4,)"
    assert rows["s3"]["error"] == f"cannot write output folder {tmp_path / 'res' / 's3'}: input/output error"
    for name in ("s1", "s2", "s3"):
        assert "\n" not in rows[name]["error"] and not (tmp_path / "res" / name).exists()
        assert any(ln.startswith(f"mdtexture: error: {name}: ") for ln in err.splitlines())
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [outputs.MANIFEST, "s0", "summary.csv"]


def test_batch_stops_whole_on_a_signal(tmp_path, model_files, capsys, monkeypatch):
    """SIGTERM is not one subject's failure: the batch stops, and leaves no folder and no temporary folder."""
    data = tmp_path / "cohort"
    for i in range(3):
        make_subject(data / f"s{i}", seed=i)
    import MDTextureLib.pipeline as pipeline
    real_analyse, seen = pipeline.analyse_case, []

    def analyse(inputs, *args, **kwargs):
        seen.append(Path(inputs.ff).parent.name)
        if len(seen) == 2:
            raise outputs.Terminated(signal.SIGTERM)
        return real_analyse(inputs, *args, **kwargs)
    monkeypatch.setattr(pipeline, "analyse_case", analyse)
    code, _, err = run(["batch", "--data", data, "--out", tmp_path / "res", "--model", model_files, "--no-report",
                        "--quiet"], capsys)
    assert code == 128 + signal.SIGTERM and "stopped by SIGTERM" in err
    assert seen == ["s0", "s1"] and not (tmp_path / "res").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_batch_with_every_subject_failing_still_writes_its_summary(tmp_path, model_files, capsys):
    data = tmp_path / "cohort"
    for i in range(2):
        (data / f"s{i}").mkdir(parents=True)
        (data / f"s{i}" / "ff.nrrd").write_bytes(b"broken")
    code, stdout, _ = run(["batch", "--data", data, "--out", tmp_path / "res", "--model", model_files, "--quiet"],
                          capsys)
    assert code == 1 and "0/2 subjects" in stdout
    with open(tmp_path / "res" / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["subject"] for r in rows] == ["s0", "s1"] and all(r["error"] for r in rows)


@pytest.mark.parametrize("command", ["classify", "batch", "demo"])
def test_batch_size_zero_is_refused_by_the_parser(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--ff", "x.nrrd", "--out", "o", "--batch-size", "0"] if command == "classify"
             else [command, "--data", "d", "--out", "o", "--batch-size", "0"] if command == "batch"
             else [command, "--out", "o", "--batch-size", "0"])
    assert exc.value.code == 2
    assert "--batch-size: must be at least 1, got 0" in capsys.readouterr().err


# ---- signals ----------------------------------------------------------------------------------------------------

CHILD = """
import importlib, pathlib, signal, sys, time
# A terminal session's SIGHUP, whatever the test runner inherited (under nohup it is ignored, and MDTexture rightly
# leaves an ignored signal alone).
signal.signal(signal.SIGHUP, signal.SIG_DFL)
module_name, function_name = sys.argv[2].split(":")
module = importlib.import_module(module_name)
real = getattr(module, function_name)
def slow(*args, **kwargs):  # one file is written, then the process is stopped while it writes the rest
    real(*args, **kwargs)
    pathlib.Path(sys.argv[1]).write_text("writing")
    time.sleep(60)
setattr(module, function_name, slow)
from MDTextureLib.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_a_signal_while_writing_leaves_nothing_behind(tmp_path, leg_files, model_files):
    """Real processes stopped while they write: classify by SIGTERM, phantom (no torch to import, so the test is
    quicker) by SIGHUP. Both run at once; both go through cli.main's handlers and atomic_dir's cleanup."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    runs = {signal.SIGTERM: ("MDTextureLib.pipeline:write_image",
                             ["classify", "--ff", leg_files["ff"], "--model", model_files, "--no-report"]),
            signal.SIGHUP: ("MDTextureLib.phantom.cohort:write_scan",
                            ["phantom", "--subjects", "2", "--slices", "4", "--matrix", "64", "--pixel-mm", "4",
                             "--workers", "1"])}
    procs = {}
    try:
        for signum, (hook, argv) in runs.items():
            where = tmp_path / signal.Signals(signum).name
            where.mkdir()
            procs[signum] = where, subprocess.Popen(
                [sys.executable, "-c", CHILD, str(where / "marker"), hook, *map(str, argv), "--quiet",
                 "--out", str(where / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 120
        for signum, (where, proc) in procs.items():
            while not (where / "marker").exists():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the child never started writing"
                time.sleep(0.05)
            assert list(where.glob(".out.tmp-*")), "the temporary folder should exist while writing"
            proc.send_signal(signum)
        for signum, (where, proc) in procs.items():
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 128 + signum, err
            assert f"stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
            assert sorted(p.name for p in where.iterdir()) == ["marker"]  # no out, no hidden temporary folder
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()


# ---- the commit itself ------------------------------------------------------------------------------------------

def test_a_failed_move_puts_the_earlier_output_back(tmp_path, monkeypatch):
    out = tmp_path / "o"
    with outputs.atomic_dir(out, "test") as tmp:
        (tmp / "a.txt").write_text("first")
    real_replace, moves = os.replace, []

    def replace(src, dst):
        moves.append(Path(dst))
        if Path(dst) == out and len(moves) == 2:  # the new folder cannot be moved in (the earlier one is aside)
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)
    with monkeypatch.context() as m:
        m.setattr(outputs.os, "replace", replace)
        with pytest.raises(InputError, match=r"cannot write output folder .*: invalid cross-device link$"):
            with outputs.atomic_dir(out, "test", overwrite=True) as tmp:
                (tmp / "a.txt").write_text("second")
    assert moves[0].name == "previous" and moves[1] == moves[2] == out  # aside, in (fails), back
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_a_signal_during_the_move_waits_until_the_output_is_whole(tmp_path, monkeypatch):
    out = tmp_path / "o"
    with outputs.atomic_dir(out, "test") as tmp:
        (tmp / "a.txt").write_text("first")
    real_move = outputs._move_into_place

    def move_and_get_stopped(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered now, handled only after the move
        real_move(*args)
    monkeypatch.setattr(outputs, "_move_into_place", move_and_get_stopped)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # else signals_raise would leave SIGTERM alone
    with pytest.raises(outputs.Terminated):
        with outputs.signals_raise():
            with outputs.atomic_dir(out, "test", overwrite=True) as tmp:
                (tmp / "a.txt").write_text("second")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored
    assert (out / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_train_replaces_model_files_only_when_they_are_an_earlier_model(tmp_path, model_files, capsys):
    (tmp_path / "mine.json").write_text('{"my": "settings"}')
    for extra, message in (([], "not written by MDTexture"), (["--overwrite"], "not written by MDTexture")):
        code, _, err = run(["train", "--data", tmp_path / "nowhere", "--out", tmp_path / "mine", *extra], capsys)
        assert message in one_error_line(code, err)
    assert (tmp_path / "mine.json").read_text() == '{"my": "settings"}'
    code, _, err = run(["train", "--data", tmp_path / "nowhere", "--out", model_files.with_suffix("")], capsys)
    assert "earlier MDTexture output); pass --overwrite" in one_error_line(code, err)
    # with --overwrite the check passes and the command goes on (here to the missing cohort)
    code, _, err = run(["train", "--data", tmp_path / "nowhere", "--out", model_files.with_suffix(""),
                        "--overwrite"], capsys)
    assert "nowhere" in one_error_line(code, err)
