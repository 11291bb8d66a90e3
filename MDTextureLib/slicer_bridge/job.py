"""Classify in a separate process, polled without blocking: what the Widget runs behind its Classify button.

The engine runs in a child Python (Slicer's ``PythonSlicer``, else this interpreter) on temporary files, so Slicer
stays responsive and Cancel kills it at once. The job is polled (the Widget uses a qt.QTimer; tests loop) and knows
nothing of Qt or of the scene.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import CLASSES
from ..errors import InputError
from ..io import DixonSeries, write_image
from . import worker

RUNNING, FINISHED, FAILED, CANCELLED = "running", "finished", "failed", "cancelled"


@dataclass
class ClassifyOutcome:
    """What the worker computed; the same fields the Logic reads from an engine ``VolumeResult``."""

    probabilities: np.ndarray
    slice_probabilities: np.ndarray
    heatmaps: dict
    verdict: str
    target_class: str
    model_name: str
    model_sha256: str
    warnings: list = field(default_factory=list)
    legs: list = field(default_factory=list)  # [{side, side_from, verdict, probabilities, target_class}]
    leg_owner: np.ndarray | None = None  # (z, y, x) uint8: which leg (1, 2) owns a voxel; None with one leg
    fat_heatmaps: dict | None = None  # {class: (z, y, x)} fat attribution; None when the job did not compute it
    precision: str = ""  # what the network ran in (fp32 or bf16); "" from a worker that did not say

    def heatmap_for(self, class_name: str) -> np.ndarray:
        return self.heatmaps[class_name]

    def fat_heatmap_for(self, class_name: str) -> np.ndarray:
        if self.fat_heatmaps is None:
            raise InputError("no fat attribution was computed (classify with the fat attribution map on)")
        return self.fat_heatmaps[class_name]


def python_executable() -> str:
    """Slicer's own Python launcher when there is one (it sets up Slicer's library paths), else this one."""
    return shutil.which("PythonSlicer") or sys.executable


class ClassifyJob:
    """One classification in a child process. ``poll()`` → state; ``cancel()`` kills it; ``outcome()`` reads it."""

    def __init__(self, folder: Path, process: subprocess.Popen):
        self.folder = folder
        self.process = process
        self.done, self.total = 0, 0
        self.error = ""
        self.state = RUNNING
        self._log_offset = 0
        self.context: dict = {}  # what the Logic needs to finish (node IDs)

    # -- starting -------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, series: DixonSeries, model_path: str | None = None, device: str = "auto",
              precision: str = "auto", target_class: str | None = None, batch_size: int = 16, python: str | None = None,
              model=None, env: dict | None = None, fat_map: bool = False) -> "ClassifyJob":
        """Write the FF (as a fraction, on its grid) and the job description to a new temporary folder; start.

        The model is a card path, or an engine ``Model`` (``model=``, e.g. an untrained one in a self-test), which
        is saved into the job folder for the child to load. ``env``: the child's environment (default: this
        process's). ``fat_map``: the child also computes the fat attribution of every class."""
        folder = Path(tempfile.mkdtemp(prefix="MDTexture-classify-"))
        try:
            if model is not None:
                from ..modelfile import Model, save_model

                # a copy, so the caller's model and card are left as they were
                _weights, model_path = save_model(Model(net=model.net, card=dict(model.card)), folder / "model")
            write_image(series.ff.astype(np.float32), series.grid, folder / "ff.nrrd")
            spec = {"ff": "ff.nrrd", "model": str(Path(model_path).resolve()), "device": device,
                    "precision": precision, "target_class": target_class, "batch_size": int(batch_size),
                    "fat_map": bool(fat_map)}
            if series.water is not None and series.fat is not None:
                # the child's body mask (window centres, legs) must come from the same magnitude as this side's
                write_image(np.asarray(series.water, np.float32), series.grid, folder / "water.nrrd")
                write_image(np.asarray(series.fat, np.float32), series.grid, folder / "fat.nrrd")
                spec.update(water="water.nrrd", fat="fat.nrrd")
            (folder / "job.json").write_text(json.dumps(spec))
            log = open(folder / "log.txt", "wb")
            try:
                process = subprocess.Popen([python or python_executable(), worker.__file__, str(folder)],
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           cwd=str(folder), env=env, **_new_process_group())
            finally:
                log.close()  # the child holds its own handle
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, process)

    # -- polling --------------------------------------------------------------------------------------------
    def poll(self) -> str:
        """Read new progress lines; returns the state (running, finished, failed, cancelled)."""
        if self.state != RUNNING:
            return self.state
        returncode = self.process.poll()
        self._read_log()
        if returncode is None:
            return RUNNING
        self._read_log()
        if returncode == 0 and (self.folder / worker.RESULT_ARRAYS).exists():
            self.state = FINISHED
        else:
            self.state = FAILED
            if not self.error:
                tail = self.log_text().strip().splitlines()[-3:]
                self.error = (f"the classification process stopped with exit status {returncode}"
                              + (": " + " | ".join(tail) if tail else ""))
        return self.state

    def _read_log(self) -> None:
        path = self.folder / "log.txt"
        try:
            with open(path, "rb") as fh:
                fh.seek(self._log_offset)
                chunk = fh.read()
        except OSError:
            return
        complete = chunk[:chunk.rfind(b"\n") + 1]  # only whole lines; the rest is read next time
        self._log_offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            if line.startswith(worker.PROGRESS):
                parts = line.split()
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    self.done, self.total = int(parts[1]), int(parts[2])
            elif line.startswith(worker.ERROR):
                self.error = line[len(worker.ERROR):].strip()

    def log_text(self) -> str:
        try:
            return (self.folder / "log.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait(self, timeout_s: float | None = None) -> str:
        """Block until the process ends (for scripts and tests; the Widget polls instead)."""
        self.process.wait(timeout=timeout_s)
        return self.poll()

    # -- ending ---------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Kill the process and its children now; the temporary folder is removed."""
        if self.process.poll() is None:
            _kill_tree(self.process)
        self.state = CANCELLED
        self.cleanup()

    def outcome(self) -> ClassifyOutcome:
        if self.state == FAILED:
            raise InputError(self.error or "the classification failed")
        if self.state != FINISHED:
            raise RuntimeError(f"the classification is {self.state}, not finished")
        fields = json.loads((self.folder / worker.RESULT_FIELDS).read_text(encoding="utf-8"))
        if fields.get("classes") != list(CLASSES):
            raise InputError(f"the classification process returned classes {fields.get('classes')}")
        with np.load(self.folder / worker.RESULT_ARRAYS) as arrays:
            heatmaps = {c: np.array(arrays["heatmaps"][i]) for i, c in enumerate(CLASSES)}
            fat_heatmaps = ({c: np.array(arrays["fat_heatmaps"][i]) for i, c in enumerate(CLASSES)}
                            if "fat_heatmaps" in arrays.files else None)
            return ClassifyOutcome(probabilities=np.array(arrays["probabilities"]),
                                   slice_probabilities=np.array(arrays["slice_probabilities"]), heatmaps=heatmaps,
                                   verdict=fields["verdict"], target_class=fields["target_class"],
                                   model_name=fields["model_name"], model_sha256=fields["model_sha256"],
                                   warnings=list(fields.get("warnings", [])), legs=list(fields.get("legs", [])),
                                   leg_owner=np.array(arrays["leg_owner"]) if "leg_owner" in arrays.files else None,
                                   fat_heatmaps=fat_heatmaps, precision=str(fields.get("precision", "")))

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _new_process_group() -> dict:
    """Start the child in its own process group, so Cancel can kill it with everything it started."""
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def _kill_tree(process: subprocess.Popen) -> None:
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
