"""The separate-process classification the Slicer panel runs, without Qt: a poll loop, the result, Cancel, failure.

The job is what the Widget's timer polls; here a plain loop polls it. Cancel is checked on a real process tree.
"""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest

from MDTextureLib.errors import InputError
from MDTextureLib.inference import classify_volume
from MDTextureLib.io import Grid, series_from_arrays
from MDTextureLib.slicer_bridge import job as jobs

from conftest import leg_volume

GRID = Grid((80, 72, 3), (0.9, 1.1, 4.0), (-81.5, 40.25, -12.0), (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))


@pytest.fixture(scope="module")
def series():
    return series_from_arrays(GRID, ff=leg_volume(n_slices=3)["ff"])


def _poll_until_done(job, timeout_s=300.0):
    seen = []
    deadline = time.monotonic() + timeout_s
    while job.poll() == jobs.RUNNING:
        assert time.monotonic() < deadline, job.log_text()
        seen.append((job.done, job.total))
        time.sleep(0.05)
    return seen


def test_job_result_equals_the_engine_in_this_process(series, model_files):
    from MDTextureLib.modelfile import load_model

    job = jobs.ClassifyJob.start(series, str(model_files), device="cpu", batch_size=2)
    assert job.poll() == jobs.RUNNING  # start returns at once; the engine runs in the child
    _poll_until_done(job)
    assert job.state == jobs.FINISHED, job.log_text()
    assert (job.done, job.total) == (3, 3)  # the last progress line, parsed from the child's output
    outcome = job.outcome()
    ref = classify_volume(series, load_model(model_files), device="cpu", batch_size=2)
    np.testing.assert_allclose(outcome.probabilities, ref.probabilities, atol=1e-5)
    np.testing.assert_allclose(outcome.slice_probabilities, ref.slice_probabilities, atol=1e-5)
    for c in ("DMD", "CMD", "normal"):
        heat = outcome.heatmap_for(c)
        assert heat.shape == GRID.shape_zyx and heat.dtype == np.float32
        np.testing.assert_allclose(heat, ref.heatmap_for(c), atol=1e-4)
    assert (outcome.verdict, outcome.model_sha256) == (ref.verdict, ref.model_sha256)
    assert any("untrained" in w for w in outcome.warnings)
    job.cleanup()
    assert not job.folder.exists()


def test_job_failure_is_one_clear_message(series, tmp_path):
    job = jobs.ClassifyJob.start(series, str(tmp_path / "gone.json"), device="cpu")  # e.g. deleted meanwhile
    _poll_until_done(job)
    assert job.state == jobs.FAILED and job.process.returncode == 2
    assert job.error == f"model card not found: {tmp_path / 'gone.json'}"
    with pytest.raises(InputError, match="model card not found"):
        job.outcome()
    job.cleanup()


@pytest.mark.skipif(os.name == "nt", reason="the stand-in child is a POSIX shell script")
def test_cancel_kills_the_child_and_what_it_started_at_once(series, tmp_path, model_files):
    """A stand-in 'python' that reports progress, starts a grandchild and then hangs: Cancel must end both now."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    "sleep 300 &\n"
                    f"echo $! > {tmp_path / 'grandchild.pid'}\n"
                    "echo 'MDTEXTURE-PROGRESS 1 9'\n"
                    "wait\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    job = jobs.ClassifyJob.start(series, str(model_files), python=str(fake))
    deadline = time.monotonic() + 30
    while job.poll() == jobs.RUNNING and job.done == 0:
        assert time.monotonic() < deadline, job.log_text()
        time.sleep(0.02)
    assert (job.done, job.total) == (1, 9)
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    t0 = time.monotonic()
    job.cancel()
    assert time.monotonic() - t0 < 5.0
    assert job.process.poll() is not None and job.state == jobs.CANCELLED and not job.folder.exists()
    # SIGKILL went to the whole group; on a loaded machine the kernel may take a moment to finish the grandchild
    gone_by = time.monotonic() + 2.0
    while _alive(grandchild) and time.monotonic() < gone_by:
        time.sleep(0.02)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may not reap at once)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_job_returns_the_fat_attribution_only_when_asked(series, model_files):
    from MDTextureLib.modelfile import load_model

    asked = jobs.ClassifyJob.start(series, str(model_files), device="cpu", batch_size=2, fat_map=True)
    plain = jobs.ClassifyJob.start(series, str(model_files), device="cpu", batch_size=2)
    for job in (asked, plain):
        _poll_until_done(job)
        assert job.state == jobs.FINISHED, job.log_text()
    with_fat, without = asked.outcome(), plain.outcome()
    ref = classify_volume(series, load_model(model_files), device="cpu", batch_size=2, fat_map=True)
    for c in ("DMD", "CMD", "normal"):
        fat = with_fat.fat_heatmap_for(c)
        assert fat.shape == GRID.shape_zyx and fat.dtype == np.float32 and fat.max() > 0
        np.testing.assert_allclose(fat, ref.fat_heatmap_for(c), atol=1e-4)
        np.testing.assert_allclose(with_fat.heatmap_for(c), ref.heatmap_for(c), atol=1e-4)  # the ICAM unchanged
    assert without.fat_heatmaps is None
    with pytest.raises(InputError, match="no fat attribution"):
        without.fat_heatmap_for("DMD")
    asked.cleanup()
    plain.cleanup()
