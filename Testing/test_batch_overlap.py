"""`mdtexture batch` reads the next subject and writes the previous one while the network runs (issue 15).

Before, batch did one subject after the other: reading and checking, the network, writing. The overlap test below
fails on that code; the others hold the overlapped batch to what the one-after-the-other batch did: the same files
(the sequential reference is written here by `analyse_case` + `write_case`, as the old loop did), each error on
its own subject's row in subject order, and no folder left behind by a signal while a thread is at work.
"""

import csv
import errno
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MDTextureLib import outputs
from MDTextureLib.cli import main

N_SUBJECTS = 4


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    """Four small phantom subjects (synthetic: 5 slices of 112 x 112), one folder each as batch reads them."""
    from MDTextureLib.phantom import make_scan, write_scan

    data = tmp_path_factory.mktemp("cohort")
    for i, cls in enumerate(("DMD", "normal", "CMD", "DMD")):
        write_scan(make_scan(cls, seed=40 + i, n_slices=5, matrix=112, pixel_mm=1.8), data / f"s{i}")
    return data


def copy_cohort(data: Path, to: Path) -> Path:
    for sub in sorted(data.iterdir()):
        (to / sub.name).mkdir(parents=True)
        for f in sub.iterdir():
            (to / sub.name / f.name).write_bytes(f.read_bytes())
    return to


def files_of(folder: Path) -> dict:
    """Every file of a subject's folder by its bytes' sha256, but the manifest (it holds the time of writing)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.name != outputs.MANIFEST}


def sequential_reference(data: Path, out: Path, model_files) -> None:
    """What batch wrote before the overlap: each subject read, analysed and written in turn, in this thread."""
    from MDTextureLib.cli import find_case_files
    from MDTextureLib.modelfile import load_model
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    model, options = load_model(model_files), CaseOptions()
    for folder in sorted(data.iterdir()):
        case = analyse_case(CaseInputs(**find_case_files(folder)), model, options)
        write_case(case, out / folder.name, options, title=folder.name, command="batch")


def test_overlapped_batch_writes_what_the_sequential_one_did(subjects, tmp_path, model_files, capsys):
    sequential_reference(subjects, tmp_path / "seq", model_files)
    code, stdout, _ = run(["batch", "--data", subjects, "--out", tmp_path / "res", "--model", model_files, "--quiet"],
                          capsys)
    assert code == 0 and f"{N_SUBJECTS}/{N_SUBJECTS} subjects" in stdout
    rows = list(csv.DictReader(open(tmp_path / "res" / "summary.csv", newline="")))
    assert [r["subject"] for r in rows] == [f"s{i}" for i in range(N_SUBJECTS)]
    for row in rows:
        name = row["subject"]
        seq, res = tmp_path / "seq" / name, tmp_path / "res" / name
        # byte for byte, report.png (drawn in the writer thread) included
        assert files_of(res) == files_of(seq)
        assert set(files_of(res)) >= {"prediction.json", "heatmap.nrrd", "heatmap_signed.nrrd", "texture_scores.csv",
                                      "report.png"}
        pred = json.loads((res / "prediction.json").read_text())
        assert pred == json.loads((seq / "prediction.json").read_text())
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(res / "heatmap.nrrd"))),
                              sitk.GetArrayFromImage(sitk.ReadImage(str(seq / "heatmap.nrrd"))))
        # the row says what the subject's own prediction.json says, not a neighbour's
        assert row["verdict"] == pred["verdict"] and row["n_slices"] == str(pred["n_slices"])
        for c, p in pred["probabilities"].items():
            assert float(row[f"p_{c}"]) == pytest.approx(p, abs=1e-4)
        scores = {r["muscle"]: r["texture_score"] for r in csv.DictReader(open(res / "texture_scores.csv"))}
        for muscle, value in scores.items():
            assert row[f"score_{muscle}"] == ("" if value == "" else f"{float(value):.4f}")


def test_each_error_is_its_own_subjects_row_in_order(subjects, tmp_path, model_files, capsys, monkeypatch):
    """s1's ff.nrrd is cut short (read while s0's network runs), s2's folder cannot be written (while s3 is read):
    each error is that subject's row, in subject order on stderr too, and s0 and s3 are written."""
    data = copy_cohort(subjects, tmp_path / "cohort")
    whole = (data / "s1" / "ff.nrrd").read_bytes()
    (data / "s1" / "ff.nrrd").write_bytes(whole[: len(whole) * 2 // 3])
    import MDTextureLib.pipeline as pipeline
    real_write = pipeline.write_image

    def write_image(array, grid, path, **kwargs):
        if Path(path).parent.name.startswith(".s2.tmp-"):  # s2's temporary folder: the disk fails
            raise OSError(errno.EIO, "Input/output error")
        return real_write(array, grid, path, **kwargs)
    monkeypatch.setattr(pipeline, "write_image", write_image)
    code, stdout, err = run(["batch", "--data", data, "--out", tmp_path / "res", "--model", model_files, "--quiet",
                             "--no-report"], capsys)
    assert code == 1 and "2/4 subjects" in stdout
    rows = {r["subject"]: r for r in csv.DictReader(open(tmp_path / "res" / "summary.csv", newline=""))}
    assert list(rows) == ["s0", "s1", "s2", "s3"]
    # only s1's file is cut short: its message, on its row
    assert rows["s1"]["verdict"] == "" and rows["s1"]["error"].startswith("cannot read fat-fraction image ff.nrrd: ")
    assert "truncated" in rows["s1"]["error"]
    assert rows["s2"]["error"] == f"cannot write output folder {tmp_path / 'res' / 's2'}: input/output error"
    for name in ("s0", "s3"):
        pred = json.loads((tmp_path / "res" / name / "prediction.json").read_text())
        assert rows[name]["error"] == "" and rows[name]["verdict"] == pred["verdict"]
        assert pred["inputs"]["ff"] == "ff.nrrd" and rows[name]["n_slices"] == "5"
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [outputs.MANIFEST, "s0", "s3", "summary.csv"]
    errors = [ln for ln in err.splitlines() if ln.startswith("mdtexture: error: ")]
    assert [ln.split(":")[2].strip() for ln in errors] == ["s1", "s2"]


def instrument(monkeypatch, events: list, pause_s: float = 0.3):
    """Record (stage, subject index, thread, start, end) of every reading, network and writing; each waits
    ``pause_s`` so that overlap, where there is any, is longer than the scheduler's noise."""
    import MDTextureLib.pipeline as pipeline

    def timed(stage, fn, subject_of):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            time.sleep(pause_s)
            try:
                return fn(*args, **kwargs)
            finally:
                events.append((stage, subject_of(*args), threading.current_thread().name, start,
                               time.perf_counter()))
        return wrapper

    networks = iter(range(N_SUBJECTS))  # the network takes the subjects in order, one at a time
    monkeypatch.setattr(pipeline, "_load_series", timed("read", pipeline._load_series,
                                                        lambda inputs: int(Path(inputs.ff).parent.name[1:])))
    monkeypatch.setattr(pipeline, "classify_volume", timed("network", pipeline.classify_volume,
                                                           lambda *a: next(networks)))
    monkeypatch.setattr(pipeline, "write_case", timed("write", pipeline.write_case,
                                                      lambda case, out, *a: int(Path(out).name[1:])))


def test_next_subject_is_read_and_previous_written_while_the_network_runs(subjects, tmp_path, model_files, capsys,
                                                                          monkeypatch):
    events = []
    instrument(monkeypatch, events)
    code, _, _ = run(["batch", "--data", subjects, "--out", tmp_path / "res", "--model", model_files, "--quiet",
                      "--no-report"], capsys)
    assert code == 0
    by = {(stage, k): (thread, start, end) for stage, k, thread, start, end in events}
    assert len(by) == 3 * N_SUBJECTS
    main_name = threading.main_thread().name
    assert all(by[("network", k)][0] == main_name for k in range(N_SUBJECTS))

    def overlap_s(a, b):
        return min(by[a][2], by[b][2]) - max(by[a][1], by[b][1])
    for k in range(N_SUBJECTS - 1):
        assert by[("read", k + 1)][0] != main_name and by[("write", k)][0] != main_name
        assert overlap_s(("read", k + 1), ("network", k)) > 0.05, (k, by)
        assert overlap_s(("write", k), ("network", k + 1)) > 0.05, (k, by)
    # bounded: subject k+2 is not read before subject k's network has started, nor written twice at once
    for k in range(N_SUBJECTS - 2):
        assert by[("read", k + 2)][1] >= by[("network", k)][1]
    writes = sorted((by[("write", k)][1], by[("write", k)][2]) for k in range(N_SUBJECTS))
    assert all(later[0] >= earlier[1] for earlier, later in zip(writes, writes[1:]))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_a_subject_is_written_leaves_nothing(subjects, tmp_path, model_files, capsys, monkeypatch,
                                                            signum):
    """The signal comes while the writer thread is about to write s1 and the reader reads s2: the batch stops,
    but only once the writer is done, so nothing reappears in the temporary folder after it was removed."""
    import MDTextureLib.pipeline as pipeline
    real_write, finished = pipeline.write_case, []

    def write_case(case, out, *args, **kwargs):
        if Path(out).name == "s1":
            os.kill(os.getpid(), signum)  # delivered to the main thread
            time.sleep(0.2)  # the main thread stops meanwhile; this subject is still to be written
        result = real_write(case, out, *args, **kwargs)
        finished.append(Path(out).name)
        return result
    monkeypatch.setattr(pipeline, "write_case", write_case)
    # A shell starts background jobs with SIGINT ignored, and MDTexture leaves an ignored signal ignored (as nohup
    # users expect): the interrupt under test needs Python's own handler, whoever started the test run.
    before = signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    try:
        code, _, err = run(["batch", "--data", subjects, "--out", tmp_path / "res", "--model", model_files,
                            "--quiet", "--no-report"], capsys)
    finally:
        signal.signal(signum, before)
    if signum == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM and "stopped by SIGTERM" in err
    else:
        assert code == 130 and "interrupted" in err
    assert "s1" in finished  # the write that was under way ended before the batch's folder was removed
    assert not (tmp_path / "res").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not any(t.name.startswith("mdtexture-") for t in threading.enumerate())
