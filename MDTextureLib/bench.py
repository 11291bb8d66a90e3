"""``mdtexture bench``: how fast is a whole case, against the floor and against what a user would otherwise do.

In one run on one machine it times, in interleaved rounds,
  * end to end in the chosen precision (``--precision``, default auto): read FF + segmentation → stacks →
    network → heatmap → texture scores → write (no report.png),
  * the floors: the bare batched forward pass over the same stacks — of the network as stored, in float32 (the
    float32 floor) and in bfloat16, and of the network as ``classify`` runs it (batch norm folded) in both,
  * the usual alternative: pytorch-grad-cam's Grad-CAM computed slice by slice on the same network (float32),
and prints the ratios, the achieved GFLOP/s of the forward pass against float32 and bfloat16 matrix-multiply
peaks measured in the same run, where the time outside the network goes (stage by stage), the peak memory of a
512×512×60 case and the wall time of one whole ``mdtexture classify`` process (start-up included, with the
import times that make it up). ``--training`` adds the training loop's iterations per second (float32 and
bfloat16) and the shipped recipe's wall time in each; ``--agreement N`` compares bfloat16 with float32 answers
on N phantom scans.
"""

from __future__ import annotations

# torch is imported inside the functions: `mdtexture --help` registers this command without loading torch.

import argparse
import copy
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .bench_probes import (classify_process_wall_s, memory_probe, peak_memory_mb, precision_agreement,
                           startup_breakdown_s, startup_imports_s, startup_probe, training_throughput,
                           write_case_files)
from .precision import PRECISIONS

#: Copies of the case the bench runs through `mdtexture batch`'s loop for the per-case time of a batch.
BATCH_CASES = 4

#: The issue's targets, printed next to the figures.
TARGETS = {"end_to_end_over_forward": 1.15, "end_to_end_over_fp32_floor": 0.45, "gradcam_over_end_to_end": 6.0,
           "peak_rss_512x512x60_mb": 2048, "training_bf16_over_fp32": 2.0}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak_gflops(sizes: tuple = (1024, 2048, 3072), repeats: int = 5, dtype: str = "float32") -> float:
    """Matrix-multiply throughput on this machine in ``dtype`` (the practical peak for convolutions here).

    A peak is the best the machine did, so this is the fastest of ``repeats`` runs at the best of ``sizes``.
    """
    import torch

    dt = getattr(torch, dtype)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
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


def _bench_model(model):
    """The model to time: the one given, else the shipped one, else an untrained icam28 (speed does not depend
    on the weights; the agreement does, which is why the shipped model comes first)."""
    from .modelfile import build_model, default_model_path, load_model

    if model is not None:
        return model
    path = default_model_path()
    return load_model(path) if path is not None else build_model("icam28")


def run_bench(model=None, n_slices: int = 35, matrix: int = 256, repeats: int = 3, batch_size: int = 16,
              memory_probe: bool = True, precision: str = "auto", process_probe: bool = True,
              matmul_sizes: tuple = (1024, 2048, 3072)) -> dict:
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from .batch import run_subjects
    from .inference import classify_volume, model_inputs
    from .io import load_dixon
    from .pipeline import CaseInputs, CaseOptions, analyse_case, write_case
    from .precision import autocast, cpu_has_native_bf16, inference_net, resolve_precision

    model = _bench_model(model)
    chosen = resolve_precision(precision, "cpu")
    # The network as stored, in the channels-last layout of the stacks (a copy: the model's own is left as it is);
    # in the other layout every convolution would first reorder its input, and the floors would not be floors.
    net = copy.deepcopy(model.net).eval().to(memory_format=torch.channels_last)
    folded = inference_net(model.net, "cpu")
    options = CaseOptions(device="cpu", batch_size=batch_size, report=False, precision=chosen)
    with_fat_map = CaseOptions(device="cpu", batch_size=batch_size, report=False, precision=chosen, fat_map=True)
    dtypes = ("float32", "bfloat16")
    # A peak is the best the machine did: measured before and after the timed paths, so that a burst of load from
    # elsewhere on a shared host does not pass for the machine's peak.
    peaks = {dtype: matmul_peak_gflops(matmul_sizes, dtype=dtype) for dtype in dtypes}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ff_path, seg_path = write_case_files(tmp / "case", n_slices, matrix)
        inputs = CaseInputs(ff=str(ff_path), segmentation=str(seg_path))

        def end_to_end():
            write_case(analyse_case(inputs, model, options), tmp / "out", options, overwrite=True)

        def end_to_end_fat_map():
            write_case(analyse_case(inputs, model, with_fat_map), tmp / "out_fat", with_fat_map, overwrite=True)

        batch_runs = itertools.count()

        def batch_of_cases():
            # `mdtexture batch`'s loop over BATCH_CASES copies of the case: the next one read and the previous one
            # written while the network runs (every subject's folder written whole; a failure fails the bench)
            def report(name, case, error):
                if error is not None:
                    raise error
            out = tmp / f"batch{next(batch_runs)}"
            out.mkdir()
            run_subjects([(f"s{k}", inputs) for k in range(BATCH_CASES)], model, options, out, report)

        series = load_dixon(ff=ff_path)
        stacks, _ = model_inputs(series, model)  # exactly what classify_volume feeds the network

        def bare_forward(network, prec):
            def run():
                with torch.inference_mode(), autocast(prec, "cpu"):
                    for start in range(0, stacks.shape[0], batch_size):
                        network(stacks[start:start + batch_size])
            return run

        flops = forward_flops(net, stacks)
        verdict = classify_volume(series, model, device="cpu", precision=chosen).verdict
        target = [ClassifierOutputTarget(("DMD", "CMD", "normal").index(verdict))]
        layer = getattr(net, net.stages[-1])[-1]

        def gradcam_per_slice():
            with GradCAM(model=net, target_layers=[layer]) as cam:
                for k in range(stacks.shape[0]):
                    cam(input_tensor=stacks[k:k + 1], targets=target)

        paths = {"end_to_end": end_to_end,
                 "fp32": bare_forward(net, "fp32"), "bf16": bare_forward(net, "bf16"),
                 "fp32_folded": bare_forward(folded, "fp32"), "bf16_folded": bare_forward(folded, "bf16"),
                 "gradcam": gradcam_per_slice, "end_to_end_fat_map": end_to_end_fat_map,
                 "batch": batch_of_cases}
        for fn in paths.values():
            fn()  # warm-up: first-call allocations, lazy imports, kernel selection
        # Interleaved rounds, so that a machine whose speed drifts (shared hosts do) slows every path alike.
        times = {name: [] for name in paths}
        for _ in range(repeats):
            for name, fn in paths.items():
                times[name].append(_median_time(fn, 1))
        t = {name: statistics.median(v) for name, v in times.items()}
        stages = _stage_times(series, inputs, model, options, tmp / "stages", repeats)
        process = None
        if process_probe:
            process = {"classify_s": classify_process_wall_s(ff_path, seg_path, tmp / "proc", chosen, model.path),
                       "no_report_s": classify_process_wall_s(ff_path, seg_path, tmp / "proc2", chosen, model.path,
                                                              report=False),
                       "imports_s": startup_imports_s(),
                       "steps": startup_breakdown_s(ff_path, seg_path, tmp / "proc3", chosen, model.path)}
    peaks = {dtype: max(peaks[dtype], matmul_peak_gflops(matmul_sizes, dtype=dtype)) for dtype in dtypes}
    t_e2e, t_fwd, t_gc = t["end_to_end"], t[f"{chosen}_folded"], t["gradcam"]
    outside = sum(v for k, v in stages.items() if k != "classify_volume")
    result = {
        "volume": f"{matrix}x{matrix}x{n_slices}", "variant": model.card["variant"], "model": model.name,
        "batch_size": batch_size, "threads": torch.get_num_threads(),
        "cpu": {"name": _cpu_name(), "native_bf16": cpu_has_native_bf16()},
        "precision": chosen,
        "end_to_end_s": t_e2e,
        "bare_forward_s": t_fwd,  # the chosen precision's floor: the network exactly as classify runs it
        "bare_forward_fp32_s": t["fp32"], "bare_forward_bf16_s": t["bf16"],
        "bare_forward_folded_fp32_s": t["fp32_folded"], "bare_forward_folded_bf16_s": t["bf16_folded"],
        "gradcam_per_slice_s": t_gc,
        # --fat-map: the same case with the fat attribution of every class (one backward pass per class) written too
        "end_to_end_fat_map_s": t["end_to_end_fat_map"],
        "fat_map_over_end_to_end": t["end_to_end_fat_map"] / t_e2e,
        "end_to_end_over_forward": t_e2e / t_fwd,
        # per case in `mdtexture batch` (reading and writing overlapped with the network across cases)
        "batch_cases": BATCH_CASES,
        "batch_per_case_s": t["batch"] / BATCH_CASES,
        "batch_per_case_over_forward": t["batch"] / BATCH_CASES / t_fwd,
        "end_to_end_over_fp32_floor": t_e2e / t["fp32"],
        "bf16_floor_speedup": t["fp32"] / t["bf16"],
        "gradcam_over_end_to_end": t_gc / t_e2e,
        "gradcam_per_slice_ms": 1000 * t_gc / n_slices,
        "forward_gflop": flops / 1e9,
        "forward_gflops_per_s": flops / t_fwd / 1e9,
        "matmul_peak_gflops_per_s": peaks["float32"],
        "matmul_peak_bf16_gflops_per_s": peaks["bfloat16"],
        "matmul_bf16_over_fp32": peaks["bfloat16"] / peaks["float32"],
        "stages_s": stages,
        # what end to end spends beyond the network and the stages timed one by one (interpreter, allocation,
        # cache effects of running them together)
        "unaccounted_s": t_e2e - t_fwd - outside,
    }
    if process is not None:
        result["classify_process_wall_s"] = process["classify_s"]
        result["classify_process_no_report_wall_s"] = process["no_report_s"]
        result["startup_imports_s"] = process["imports_s"]
        # the same process step by step (a separate child; its steps add up to its own wall time)
        result["classify_process_steps_s"] = process["steps"]["steps_s"]
        result["classify_process_steps_wall_s"] = process["steps"]["wall_s"]
    if memory_probe:
        result["peak_rss_512x512x60_mb"] = peak_memory_mb(512, 60, chosen)
    return result


def _cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _stage_times(series, inputs, model, options, out: Path, repeats: int) -> dict:
    """Median time of each step, one at a time: where the end-to-end time goes. ``classify_volume`` holds the
    stacks and the network; the others are the steps outside it."""
    from .inference import classify_volume, model_inputs
    from .io import load_dixon
    from .labels import read_labels
    from .pipeline import analyse_case, write_case
    from .scores import texture_scores

    labels = read_labels(inputs.segmentation, series.grid)

    def classify():
        return classify_volume(series, model, device="cpu", batch_size=options.batch_size,
                               precision=options.precision)

    result = classify()
    heatmap = result.heatmap
    case = analyse_case(inputs, model, options)

    def project_heatmap():
        result._heatmaps.clear()  # the projection is cached on first use; time the computation itself
        return result.heatmap

    steps = {
        "read_ff": lambda: load_dixon(ff=inputs.ff),
        "read_segmentation": lambda: read_labels(inputs.segmentation, series.grid),
        "stacks": lambda: model_inputs(series, model),
        "classify_volume": classify,
        "heatmap_to_native": project_heatmap,
        "texture_scores": lambda: texture_scores(heatmap, labels.labels, labels.names, series.ff,
                                                 series.grid.spacing, options.params),
        "write": lambda: write_case(case, out, options, overwrite=True),
    }
    return {name: _median_time(fn, repeats) for name, fn in steps.items()}


def _target(value: float, key: str, below: bool = True) -> str:
    goal = TARGETS[key]
    ok = value <= goal if below else value >= goal
    return f"(target {'≤' if below else '≥'} {goal:g}: {'met' if ok else 'MISSED'})"


def format_report(r: dict) -> str:
    p = r["precision"]
    lines = [
        f"mdtexture bench: {r['variant']} ({r['model']}) on a {r['volume']} volume, batch {r['batch_size']}, "
        f"{r['threads']} CPU threads, {r['cpu']['name']} "
        f"(native bfloat16: {'yes' if r['cpu']['native_bf16'] else 'no'})",
        f"  precision: {p}",
        f"  end to end (read→stacks→net→heatmap→scores→write), {p}: {r['end_to_end_s']:.3f} s",
        f"  floor, {p} network as classify runs it (BN folded):    {r['bare_forward_s']:.3f} s   "
        f"→ end to end = {r['end_to_end_over_forward']:.2f}× its floor "
        f"{_target(r['end_to_end_over_forward'], 'end_to_end_over_forward')}",
        f"  float32 floor (network as stored):                       {r['bare_forward_fp32_s']:.3f} s   "
        f"→ end to end = {r['end_to_end_over_fp32_floor']:.2f}× "
        f"{_target(r['end_to_end_over_fp32_floor'], 'end_to_end_over_fp32_floor')}",
        f"  bfloat16 floor (network as stored):                      {r['bare_forward_bf16_s']:.3f} s   "
        f"→ {r['bf16_floor_speedup']:.2f}× faster than float32",
        f"  folded floors: float32 {r['bare_forward_folded_fp32_s']:.3f} s, bfloat16 "
        f"{r['bare_forward_folded_bf16_s']:.3f} s",
        f"  Grad-CAM slice by slice (pytorch-grad-cam, float32):     {r['gradcam_per_slice_s']:.3f} s "
        f"({r['gradcam_per_slice_ms']:.0f} ms/slice)  → end to end is {r['gradcam_over_end_to_end']:.1f}× faster "
        f"{_target(r['gradcam_over_end_to_end'], 'gradcam_over_end_to_end', below=False)}",
        f"  per case in `mdtexture batch` ({r['batch_cases']} cases, reading and writing overlapped with the "
        f"network): {r['batch_per_case_s']:.3f} s → {r['batch_per_case_over_forward']:.2f}× the floor "
        f"{_target(r['batch_per_case_over_forward'], 'end_to_end_over_forward')}",
        f"  end to end with --fat-map (fat attribution of every class): {r['end_to_end_fat_map_s']:.3f} s "
        f"({r['fat_map_over_end_to_end']:.1f}× end to end)",
        f"  matmul peaks: float32 {r['matmul_peak_gflops_per_s']:.1f} GFLOP/s, bfloat16 "
        f"{r['matmul_peak_bf16_gflops_per_s']:.1f} GFLOP/s ({r['matmul_bf16_over_fp32']:.2f}×)",
        f"  forward: {r['forward_gflop']:.1f} GFLOP at {r['forward_gflops_per_s']:.1f} GFLOP/s in {p} = "
        f"{100 * r['forward_gflops_per_s'] / r[_peak_key(p)]:.0f} % of the {p} matmul peak",
    ]
    if "stages_s" in r:
        lines.append("  step by step (one at a time): " + ", ".join(
            f"{name.replace('_', ' ')} {1000 * t:.0f} ms" for name, t in r["stages_s"].items())
            + f"; end to end − floor − steps outside the network = {1000 * r['unaccounted_s']:.0f} ms")
    if "peak_rss_512x512x60_mb" in r:
        lines.append(f"  peak memory, 512×512×60 case end to end ({p}): {r['peak_rss_512x512x60_mb']:.0f} MB "
                     + _target(r["peak_rss_512x512x60_mb"], "peak_rss_512x512x60_mb"))
    if "classify_process_wall_s" in r:
        imp = r["startup_imports_s"]
        lines.append(f"  one `mdtexture classify` process, start-up and report.png included: "
                     f"{r['classify_process_wall_s']:.2f} s; of it python {imp['python_start']:.2f} s, import "
                     f"torch {imp['torch']:.2f} s, SimpleITK {imp['SimpleITK']:.2f} s, MDTextureLib "
                     f"{imp['MDTextureLib.pipeline']:.2f} s, matplotlib {imp['matplotlib.pyplot']:.2f} s; "
                     f"with --no-report {r['classify_process_no_report_wall_s']:.2f} s")
    if "classify_process_steps_s" in r:
        lines.append(f"  the same process step by step ({r['classify_process_steps_wall_s']:.2f} s in all): "
                     + ", ".join(f"{name.replace('_', ' ')} {t:.2f} s"
                                 for name, t in r["classify_process_steps_s"].items()))
    if "training" in r:
        tr = r["training"]
        for variant, v in tr["variants"].items():
            recipe = (f"; the shipped recipe ({v['recipe_iterations']} its) ≈ {v['recipe_fp32_min']:.1f} min "
                      f"float32, {v['recipe_bf16_min']:.1f} min bfloat16" if v["recipe_iterations"] else "")
            lines.append(f"  training {variant}, batch {tr['batch_size']}, {tr['threads']} threads: float32 "
                         f"{v['fp32_it_per_s']:.2f} it/s, bfloat16 {v['bf16_it_per_s']:.2f} it/s = "
                         f"{v['bf16_over_fp32']:.2f}× "
                         f"{_target(v['bf16_over_fp32'], 'training_bf16_over_fp32', below=False)}"
                         + (f" (rounds {min(v['bf16_over_fp32_rounds']):.2f}–{max(v['bf16_over_fp32_rounds']):.2f}×)"
                            if v.get("bf16_over_fp32_rounds") else "")
                         + (f"; the network's forward and backward alone {v['network_bf16_over_fp32']:.2f}× (the "
                            "ceiling on this machine)" if "network_bf16_over_fp32" in v else "")
                         + recipe)
    if "agreement" in r:
        a = r["agreement"]
        lim = a["limits"]
        lines.append(f"  bfloat16 vs float32 on {a['scans']} phantom scans ({a['model']}): same verdict "
                     f"{a['same_verdict']}/{a['scans']}, slice probabilities within "
                     f"{a['slice_probability_abs_max']:.4f} (limit {lim['slice_probability_abs']}), heatmap r ≥ "
                     f"{a['heatmap_pearson_r_min']:.5f} (limit {lim['heatmap_pearson_r']}), texture scores within "
                     f"{a['texture_score_abs_max']:.3f} (limit {lim['texture_score_abs']}, or one highlighted "
                     f"slice: at most {a['texture_score_slices_max']} slice(s) apart): "
                     + ("all within limits" if a["all_within_limits"] else "LIMITS EXCEEDED"))
    return "\n".join(lines)


def _peak_key(precision: str) -> str:
    return "matmul_peak_bf16_gflops_per_s" if precision == "bf16" else "matmul_peak_gflops_per_s"


def cmd_bench(args) -> int:
    from .cli import load_model_arg

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_model_arg(args.model, allow_untrained=True) if args.model else None
    result = run_bench(model, n_slices=args.slices, matrix=args.matrix, repeats=args.repeats,
                       memory_probe=not args.no_memory, precision=args.precision,
                       process_probe=not args.no_process)
    if args.training:
        result["training"] = training_throughput(_training_cards(model), iterations=args.training_iterations)
    if args.agreement:
        result["agreement"] = precision_agreement(_bench_model(model), args.agreement)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _training_cards(model) -> list:
    """Cards whose recipe the training benchmark prices: the given model's, else every shipped model's."""
    from .modelfile import MODELS_DIR, new_card

    if model is not None:
        return [model.card]
    cards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(MODELS_DIR).glob("*.json"))
             if not p.name.endswith(".training.json")]
    return [c for c in cards if "variant" in c] or [new_card("icam28")]


def register(sub) -> None:
    p = sub.add_parser("bench", help="time a whole case against the bare forward pass and per-slice Grad-CAM, "
                                     "in float32 and bfloat16",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="M", help="model to time (default: the shipped model, else an untrained "
                                                "icam28 network; speed does not depend on the weights)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="precision of the end-to-end path (default auto: bf16 where the hardware has it)")
    p.add_argument("--slices", type=int, default=35)
    p.add_argument("--matrix", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, one per core)")
    p.add_argument("--no-memory", action="store_true", help="skip the 512×512×60 peak-memory probe")
    p.add_argument("--no-process", action="store_true", help="skip timing a whole `mdtexture classify` process")
    p.add_argument("--training", action="store_true",
                   help="also time the training loop (batch 8, float32 and bfloat16) for the shipped recipes")
    p.add_argument("--training-iterations", type=int, default=16,
                   help="iterations per timed training round (three rounds per precision)")
    p.add_argument("--agreement", type=int, default=0, metavar="N",
                   help="also compare bfloat16 with float32 answers on N phantom scans")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=cmd_bench)


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--memory-probe":
        memory_probe(*sys.argv[2:])
    elif len(sys.argv) in (6, 7) and sys.argv[1] == "--startup-probe":
        from .cli import exit_process

        startup_probe(*sys.argv[2:])
        exit_process(0)  # the "exit" step is the command line's own way out
