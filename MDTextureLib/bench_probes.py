"""The measurements of ``mdtexture bench`` that run outside its timing loop.

* peak memory of one 512×512×60 case, and the whole-process wall time of one ``mdtexture classify``, each in a
  fresh child process (so start-up and the case's own peak are what is measured), with the import times that
  dominate start-up measured apart;
* training throughput (iterations per second of the shipped recipe, float32 against bfloat16);
* bfloat16-against-float32 agreement of the answers on a phantom cohort (``--agreement N``).

torch is imported inside the functions, as in :mod:`.bench`.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Imports timed one after another in a fresh interpreter: what `mdtexture classify` pays before its first voxel
#: (matplotlib only for report.png). Each figure is what that import adds after the ones before it. torchvision is
#: not among them: MDTexture defines its own ResNet18 (resnet.py), and classify never imports it.
STARTUP_IMPORTS = ("torch", "SimpleITK", "MDTextureLib.pipeline", "matplotlib.pyplot")

#: The steps of one `mdtexture classify` process that :func:`startup_breakdown_s` times, in order.
PROCESS_STEPS = ("python_start", "import_torch", "import_engine", "load_model", "case", "write_outputs", "report_png",
                 "exit")


def write_case_files(folder: Path, n_slices: int, matrix: int, seed: int = 0) -> tuple[Path, Path]:
    """A DMD phantom of ``matrix``² × ``n_slices`` over a 240 mm field of view: ff.nrrd and muscles.seg.nrrd."""
    from .phantom import make_scan, write_scan

    scan = make_scan("DMD", seed=seed, n_slices=n_slices, matrix=matrix, pixel_mm=240.0 / matrix)
    write_scan(scan, folder)
    return folder / "ff.nrrd", folder / "muscles.seg.nrrd"


# ---------------------------------------------------------------------------------------------- child processes
def peak_memory_mb(matrix: int, n_slices: int, precision: str = "auto") -> float:
    """Peak resident memory (MB) of a fresh process that classifies a ``matrix``²×``n_slices`` case end to end.

    The phantom files are made here, so the child's peak is the case's alone (reading, network, heatmap, scores,
    writing), plus the interpreter, torch and the model.
    """
    with tempfile.TemporaryDirectory() as tmp:
        ff_path, seg_path = write_case_files(Path(tmp) / "case", n_slices, matrix)
        proc = subprocess.run([sys.executable, "-m", "MDTextureLib.bench", "--memory-probe", str(ff_path),
                               str(seg_path), precision], capture_output=True, text=True, check=True)
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def _peak_rss_mb() -> float:
    """This process's peak resident set (MB). VmHWM belongs to the address space and restarts at exec, unlike
    getrusage's ru_maxrss, which a child inherits from the parent that forked it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(ff_path: str, seg_path: str, precision: str = "auto") -> None:
    """The child's side of :func:`peak_memory_mb`: one case end to end, then print the peak as JSON."""
    from .modelfile import build_model
    from .pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    model = build_model("icam28")
    before = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        options = CaseOptions(device="cpu", report=False, precision=precision)
        case = analyse_case(CaseInputs(ff=ff_path, segmentation=seg_path), model, options)
        write_case(case, Path(tmp) / "out", options)
    peak = _peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak, "rss_before_case_mb": before}))


def startup_imports_s() -> dict:
    """Seconds to start a bare interpreter, then to import each of :data:`STARTUP_IMPORTS` in turn (fresh child)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python_start = time.perf_counter() - t0
    script = ("import importlib, json, time\nout = {}\n"
              f"for name in {list(STARTUP_IMPORTS)!r}:\n"
              "    t0 = time.perf_counter(); importlib.import_module(name); out[name] = time.perf_counter() - t0\n"
              "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    imports = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"python_start": python_start, **imports}


def startup_breakdown_s(ff_path: Path, seg_path: Path, out: Path, precision: str, model_path=None) -> dict:
    """Where the wall time of one classify process goes: a fresh child runs the steps of ``mdtexture classify``
    one after another and stamps the clock after each (:data:`PROCESS_STEPS`: the interpreter up to the probe,
    importing torch, the engine's other imports, loading the model, the case from reading to scores — the first
    pass of the network's one-time costs included —, writing the outputs, report.png with matplotlib's import, and
    the interpreter's exit). The steps add up to the child's wall time, ``wall_s``."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "MDTextureLib.bench", "--startup-probe", str(ff_path), str(seg_path),
                           str(out), precision, str(model_path or "")], capture_output=True, text=True)
    t_end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"the start-up probe failed: {proc.stderr.strip()[-500:]}")
    stamps = json.loads(proc.stdout.strip().splitlines()[-1])
    steps, before = {}, t0
    for name, stamp in stamps:
        steps[name], before = stamp - before, stamp
    steps["exit"] = t_end - before
    return {"wall_s": t_end - t0, "steps_s": steps}


def startup_probe(ff_path: str, seg_path: str, out: str, precision: str, model_path: str = "") -> None:
    """The child's side of :func:`startup_breakdown_s`: classify's steps with a time stamp after each (JSON)."""
    stamps = [("python_start", time.time())]
    import torch  # noqa: F401  (timed on its own: the largest import)

    stamps.append(("import_torch", time.time()))
    from .cli import load_model_arg
    from .pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    stamps.append(("import_engine", time.time()))
    model = load_model_arg(model_path or None)
    stamps.append(("load_model", time.time()))
    inputs = CaseInputs(ff=ff_path, segmentation=seg_path)
    options = CaseOptions(device="cpu", precision=precision, report=False)
    case = analyse_case(inputs, model, options)
    stamps.append(("case", time.time()))
    write_case(case, Path(out) / "without_report", options)
    stamps.append(("write_outputs", time.time()))
    from .report import write_report

    write_report(Path(out) / "report.png", case.series.ff, case.result.heatmap, case.summary, case.series.grid.spacing,
                 case.scores, labels=case.labels.labels if case.labels else None,
                 label_names=case.labels.names if case.labels else None, leg_scores=case.leg_scores)
    stamps.append(("report_png", time.time()))
    print(json.dumps(stamps))


def classify_process_wall_s(ff_path: Path, seg_path: Path, out: Path, precision: str, model_path=None,
                            report: bool = True) -> float:
    """Wall time of one ``mdtexture classify`` as a user runs it: a fresh interpreter, imports, model, the case,
    every output (report.png included unless ``report`` is False)."""
    cmd = [sys.executable, "-m", "MDTextureLib.cli", "classify", "--ff", str(ff_path), "--segmentation",
           str(seg_path), "--out", str(out), "--device", "cpu", "--precision", precision, "--quiet"]
    if model_path is not None:
        cmd += ["--model", str(model_path)]
    if not report:
        cmd.append("--no-report")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"mdtexture classify failed in the benchmark: {proc.stderr.strip()[-500:]}")
    return wall


# -------------------------------------------------------------------------------------------- training speed
def _synthetic_training_set(size_px: int, pixel_mm: float, n_scans: int = 6, n_slices: int = 8, matrix: int = 192):
    """A few small phantom scans as a SliceDataset at the model's real window: what one training step reads."""
    from .constants import CLASSES
    from .phantom import make_scan
    from .io import series_from_arrays, Grid
    from .training import ScanItem, SliceDataset

    items = []
    for i in range(n_scans):
        cls = CLASSES[i % len(CLASSES)]
        scan = make_scan(cls, seed=100 + i, n_slices=n_slices, matrix=matrix, pixel_mm=240.0 / matrix)
        grid = Grid(tuple(int(s) for s in scan.ff.shape[::-1]), tuple(scan.spacing_mm), tuple(scan.origin_mm),
                    tuple(scan.direction))
        items.append(ScanItem(f"b{i}", f"b{i}", cls, series_from_arrays(grid, ff=scan.ff, ff_unit="fraction")))
    return SliceDataset.build(items, pixel_mm=pixel_mm, size_px=size_px)


def training_throughput(cards: list, iterations: int = 16, rounds: int = 3, batch_size: int = 8,
                        scan_matrix: int = 192) -> dict:
    """Iterations per second of the training loop (augmentation, forward, loss, backward, SGD step) at batch
    ``batch_size``, float32 against bfloat16, for the variant of each model card in ``cards``, and the shipped
    recipe's wall time in each (the card's iterations × the measured seconds per iteration).

    Rounds alternate the precisions, so a drifting machine slows both alike; each round is one short training run
    after a one-iteration warm-up; the median seconds per iteration of the rounds counts, and each round's own
    ratio is kept (``bf16_over_fp32_rounds``: their spread is how far one short measurement can be trusted; with
    two rounds of six iterations one day's runs gave 1.51× and 2.09× for the same code). The data are a few
    ``scan_matrix``² phantom scans resampled to the card's window, so a step costs what it costs in training.

    Beside the loop, the network's own forward and backward pass on one batch (``network_bf16_over_fp32``), timed
    the same way: the ratio the hardware gives the convolutions, which the loop (augmentation, loss, SGD step: the
    same cost in both precisions) can only dilute. It is the ceiling of the loop's ratio on this machine.
    """
    import torch

    from .modelfile import DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX
    from .training import TrainConfig, train

    out = {"batch_size": batch_size, "threads": torch.get_num_threads(), "iterations_timed": iterations,
           "rounds": rounds, "variants": {}}
    datasets = {}
    for card in cards:
        variant = card["variant"]
        inp = card.get("input", {})
        key = (inp.get("size_px", DEFAULT_SIZE_PX), inp.get("pixel_mm", DEFAULT_PIXEL_MM))
        if key not in datasets:
            datasets[key] = _synthetic_training_set(key[0], key[1], matrix=scan_matrix)
        dataset = datasets[key]

        def config(precision: str, its: int) -> TrainConfig:
            return TrainConfig(variant=variant, iterations=its, lr_steps=((0, 1e-3),), batch_size=batch_size,
                               pixel_mm=key[1], size_px=key[0], precision=precision)

        per_it = {"fp32": [], "bf16": []}
        for precision in per_it:
            train(dataset, config(precision, 1), progress=False)  # warm-up: allocator, kernel choice
        for _ in range(rounds):
            for precision in per_it:
                per_it[precision].append(train(dataset, config(precision, iterations), progress=False).wall_s
                                         / iterations)
        s_it = {p: statistics.median(v) for p, v in per_it.items()}
        network = _network_step_s(variant, key[0], batch_size, iterations, rounds)
        recipe = (card.get("training") or {}).get("iterations")
        out["variants"][variant] = {
            "fp32_it_per_s": 1 / s_it["fp32"], "bf16_it_per_s": 1 / s_it["bf16"],
            "bf16_over_fp32": s_it["fp32"] / s_it["bf16"],
            "bf16_over_fp32_rounds": [f / b for f, b in zip(per_it["fp32"], per_it["bf16"])],
            "network_fp32_s": network["fp32"], "network_bf16_s": network["bf16"],
            "network_bf16_over_fp32": network["fp32"] / network["bf16"],
            "recipe_iterations": recipe,
            "recipe_fp32_min": recipe * s_it["fp32"] / 60 if recipe else None,
            "recipe_bf16_min": recipe * s_it["bf16"] / 60 if recipe else None,
            "card_wall_min": round((card.get("training") or {}).get("wall_time_s", 0) / 60, 1) or None,
            "card_threads": (card.get("training") or {}).get("torch_threads"),
        }
    return out


def _network_step_s(variant: str, size_px: int, batch_size: int, iterations: int, rounds: int) -> dict:
    """{precision: median seconds} of the network's forward, loss and backward pass on one fixed training batch
    (channels-last, as the loop runs it), the precisions alternating round by round."""
    import torch
    import torch.nn.functional as F

    from .network import ICAMNet
    from .precision import autocast

    torch.manual_seed(0)
    net = ICAMNet(variant).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch_size, 3, size_px, size_px).contiguous(memory_format=torch.channels_last)
    y = torch.arange(batch_size) % 3

    def step(precision: str) -> None:
        with autocast(precision, "cpu"):
            loss = F.cross_entropy(net(x), y)
        net.zero_grad(set_to_none=True)
        loss.backward()

    times = {"fp32": [], "bf16": []}
    for precision in times:
        step(precision)  # warm-up
    for _ in range(rounds):
        for precision in times:
            t0 = time.perf_counter()
            for _ in range(iterations):
                step(precision)
            times[precision].append((time.perf_counter() - t0) / iterations)
    return {p: statistics.median(v) for p, v in times.items()}


# -------------------------------------------------------------------------------------------------- agreement
def precision_agreement(model, n_scans: int, seed: int = 1000, **scan_size) -> dict:
    """bfloat16 against float32 on ``n_scans`` phantom scans (classes in turn, sizes drawn like a scanner's
    unless ``scan_size`` fixes ``n_slices`` / ``matrix`` / ``pixel_mm``): per scan and worst case of the verdict,
    slice probabilities, heatmap r and texture scores (:func:`MDTextureLib.precision.agreement`), with the limits
    each is held to."""
    from .constants import CLASSES
    from .phantom import make_scan, write_scan
    from .pipeline import CaseInputs, CaseOptions, analyse_case
    from .precision import AGREEMENT_LIMITS, agreement

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_scans):
            cls = CLASSES[i % len(CLASSES)]
            scan = make_scan(cls, seed=seed + i, **scan_size)
            folder = write_scan(scan, Path(tmp) / f"scan{i}")
            inputs = CaseInputs(ff=str(folder / "ff.nrrd"), segmentation=str(folder / "muscles.seg.nrrd"))
            cases = {p: analyse_case(inputs, model, CaseOptions(device="cpu", precision=p, report=False))
                     for p in ("fp32", "bf16")}
            row = {"scan": i, "class": cls, "size": list(scan.ff.shape[::-1]),
                   "verdict_fp32": cases["fp32"].result.verdict, "verdict_bf16": cases["bf16"].result.verdict,
                   **agreement(cases["fp32"], cases["bf16"])}
            rows.append(row)
    return {
        "model": model.name, "scans": n_scans, "limits": AGREEMENT_LIMITS,
        "same_verdict": sum(r["same_verdict"] for r in rows),
        "slice_probability_abs_max": max(r["slice_probability_abs"] for r in rows),
        "heatmap_pearson_r_min": min(r["heatmap_pearson_r"] for r in rows),
        "texture_score_abs_max": max(r["texture_score_abs"] for r in rows),
        "texture_score_slices_max": max(r["texture_score_slices"] for r in rows),
        "all_within_limits": all(r["within_limits"] for r in rows),
        "per_scan": rows,
    }
