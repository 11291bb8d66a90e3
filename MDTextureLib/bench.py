"""``mdtexture bench``: how fast is a whole case, against the floor and against what a user would otherwise do.

In one run on one machine it times
  * end to end: read FF + segmentation → stacks → network → heatmap → texture scores → write (no report.png),
  * the floor: the bare batched forward pass of the same network over the same stacks,
  * the usual alternative: pytorch-grad-cam's Grad-CAM computed slice by slice on the same network,
and prints the ratios, the achieved GFLOP/s of the forward pass against a float32 matrix-multiply peak measured
in the same run, and the peak memory of classifying a 512×512×60 volume (in a child process, so it is that
case's own peak).
"""

from __future__ import annotations

# torch is imported inside the functions: `mdtexture --help` registers this command without loading torch.

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak_gflops(sizes: tuple = (1024, 2048, 3072), repeats: int = 5) -> float:
    """Float32 matrix-multiply throughput on this machine (the practical peak for convolutions here).

    A peak is the best the machine did, so this is the fastest of ``repeats`` runs at the best of ``sizes``.
    """
    import torch

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def forward_flops(net, stacks) -> float:
    """Floating-point operations of one forward pass of ``net`` over ``stacks`` (torch's own counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(stacks)
    return float(counter.get_total_flops())


def _write_case_files(folder: Path, n_slices: int, matrix: int, seed: int = 0) -> tuple[Path, Path]:
    from .phantom import make_scan, write_scan

    scan = make_scan("DMD", seed=seed, n_slices=n_slices, matrix=matrix, pixel_mm=240.0 / matrix)  # 240 mm FOV
    write_scan(scan, folder)
    return folder / "ff.nrrd", folder / "muscles.seg.nrrd"


def run_bench(model=None, n_slices: int = 35, matrix: int = 256, repeats: int = 3, batch_size: int = 16,
              memory_probe: bool = True) -> dict:
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from .inference import classify_volume, model_inputs
    from .io import load_dixon
    from .modelfile import build_model
    from .pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    model = model or build_model("icam28")
    net = model.net.eval()
    options = CaseOptions(device="cpu", batch_size=batch_size, report=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ff_path, seg_path = _write_case_files(tmp / "case", n_slices, matrix)
        inputs = CaseInputs(ff=str(ff_path), segmentation=str(seg_path))

        def end_to_end():
            write_case(analyse_case(inputs, model, options), tmp / "out", options, overwrite=True)

        series = load_dixon(ff=ff_path)
        stacks, _ = model_inputs(series, model)  # exactly what classify_volume feeds the network

        def bare_forward():
            with torch.inference_mode():
                for start in range(0, stacks.shape[0], batch_size):
                    net(stacks[start:start + batch_size])

        flops = forward_flops(net, stacks)
        verdict = classify_volume(series, model, device="cpu").verdict
        target = [ClassifierOutputTarget(("DMD", "CMD", "normal").index(verdict))]
        layer = getattr(net, net.stages[-1])[-1]

        def gradcam_per_slice():
            with GradCAM(model=net, target_layers=[layer]) as cam:
                for k in range(stacks.shape[0]):
                    cam(input_tensor=stacks[k:k + 1], targets=target)

        paths = {"end_to_end": end_to_end, "bare_forward": bare_forward, "gradcam": gradcam_per_slice}
        for fn in paths.values():
            fn()  # warm-up: first-call allocations, lazy imports, kernel selection
        # Interleaved rounds, so that a machine whose speed drifts (shared hosts do) slows every path alike.
        times = {name: [] for name in paths}
        for _ in range(repeats):
            for name, fn in paths.items():
                times[name].append(_median_time(fn, 1))
        t_e2e, t_fwd, t_gc = (statistics.median(times[name]) for name in paths)
        stages = _stage_times(series, inputs, model, options, tmp / "stages", repeats)
    peak = matmul_peak_gflops()
    result = {
        "volume": f"{matrix}x{matrix}x{n_slices}", "variant": model.card["variant"], "batch_size": batch_size,
        "threads": torch.get_num_threads(), "end_to_end_s": t_e2e, "bare_forward_s": t_fwd,
        "gradcam_per_slice_s": t_gc, "end_to_end_over_forward": t_e2e / t_fwd,
        "gradcam_over_end_to_end": t_gc / t_e2e, "forward_gflop": flops / 1e9,
        "forward_gflops_per_s": flops / t_fwd / 1e9, "matmul_peak_gflops_per_s": peak,
        "stages_s": stages,
    }
    if memory_probe:
        result["peak_rss_512x512x60_mb"] = peak_memory_mb(512, 60)
    return result


def _stage_times(series, inputs, model, options, out: Path, repeats: int) -> dict:
    """Median time of each step outside the network, one at a time: where the end-to-end overhead goes."""
    from .inference import classify_volume, model_inputs
    from .io import load_dixon, read_labels
    from .pipeline import analyse_case, write_case
    from .scores import texture_scores

    labels = read_labels(inputs.segmentation, series.grid)
    result = classify_volume(series, model, device="cpu", batch_size=options.batch_size)
    heatmap = result.heatmap
    case = analyse_case(inputs, model, options)

    def project_heatmap():
        result._heatmaps.clear()  # the projection is cached on first use; time the computation itself
        return result.heatmap

    steps = {
        "read_ff": lambda: load_dixon(ff=inputs.ff),
        "read_segmentation": lambda: read_labels(inputs.segmentation, series.grid),
        "stacks": lambda: model_inputs(series, model),
        "heatmap_to_native": project_heatmap,
        "texture_scores": lambda: texture_scores(heatmap, labels.labels, labels.names, series.ff,
                                                 series.grid.spacing, options.params),
        "write": lambda: write_case(case, out, options, overwrite=True),
    }
    return {name: _median_time(fn, repeats) for name, fn in steps.items()}


def peak_memory_mb(matrix: int, n_slices: int) -> float:
    """Peak resident memory (MB) of a fresh process that classifies a ``matrix``²×``n_slices`` case end to end.

    The phantom files are made here, so the child's peak is the case's alone (reading, network, heatmap, scores,
    writing), plus the interpreter, torch and the model.
    """
    with tempfile.TemporaryDirectory() as tmp:
        ff_path, seg_path = _write_case_files(Path(tmp) / "case", n_slices, matrix)
        proc = subprocess.run([sys.executable, "-m", "MDTextureLib.bench", "--memory-probe", str(ff_path),
                               str(seg_path)], capture_output=True, text=True, check=True)
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


def _memory_probe(ff_path: str, seg_path: str) -> None:
    from .modelfile import build_model
    from .pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    model = build_model("icam28")
    before = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        options = CaseOptions(device="cpu", report=False)
        case = analyse_case(CaseInputs(ff=ff_path, segmentation=seg_path), model, options)
        write_case(case, Path(tmp) / "out", options)
    peak = _peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak, "rss_before_case_mb": before}))


def format_report(r: dict) -> str:
    lines = [
        f"mdtexture bench: {r['variant']} on a {r['volume']} volume, batch {r['batch_size']}, "
        f"{r['threads']} CPU threads",
        f"  end to end (read→stacks→net→heatmap→scores→write): {r['end_to_end_s']:.3f} s",
        f"  bare forward pass (floor):                         {r['bare_forward_s']:.3f} s   "
        f"→ end to end = {r['end_to_end_over_forward']:.2f}× the floor (target ≤ 1.25×)",
        f"  Grad-CAM slice by slice (pytorch-grad-cam):         {r['gradcam_per_slice_s']:.3f} s   "
        f"→ end to end is {r['gradcam_over_end_to_end']:.1f}× faster (target ≥ 3×)",
        f"  forward: {r['forward_gflop']:.1f} GFLOP at {r['forward_gflops_per_s']:.1f} GFLOP/s = "
        f"{100 * r['forward_gflops_per_s'] / r['matmul_peak_gflops_per_s']:.0f} % of the measured float32 "
        f"matmul peak ({r['matmul_peak_gflops_per_s']:.1f} GFLOP/s)",
    ]
    if "stages_s" in r:
        lines.append("  outside the network, step by step: " + ", ".join(
            f"{name.replace('_', ' ')} {1000 * t:.0f} ms" for name, t in r["stages_s"].items()))
    if "peak_rss_512x512x60_mb" in r:
        lines.append(f"  peak memory, 512×512×60 case end to end: {r['peak_rss_512x512x60_mb']:.0f} MB (target < 2048 MB)")
    return "\n".join(lines)


def cmd_bench(args) -> int:
    from .cli import load_model_arg

    model = load_model_arg(args.model, allow_untrained=True) if args.model else None
    result = run_bench(model, n_slices=args.slices, matrix=args.matrix, repeats=args.repeats,
                       memory_probe=not args.no_memory)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="time a whole case against the bare forward pass and per-slice Grad-CAM",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="M", help="model to time (default: an icam28 network; speed does not "
                                                "depend on the weights)")
    p.add_argument("--slices", type=int, default=35)
    p.add_argument("--matrix", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-memory", action="store_true", help="skip the 512×512×60 peak-memory probe")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=cmd_bench)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-probe":
        _memory_probe(sys.argv[2], sys.argv[3])
