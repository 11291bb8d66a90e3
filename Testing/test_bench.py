"""The benchmark runs end to end on a tiny case and its arithmetic is consistent (speed itself is not tested)."""

import json

import pytest

from MDTextureLib.bench import format_report, run_bench

#: Keys the README and the lead's scripts read from `mdtexture bench --json`: they must stay.
STABLE_KEYS = {"volume", "variant", "batch_size", "threads", "precision", "end_to_end_s", "bare_forward_s",
               "bare_forward_fp32_s", "bare_forward_bf16_s", "gradcam_per_slice_s", "end_to_end_over_forward",
               "gradcam_over_end_to_end", "forward_gflop", "forward_gflops_per_s", "matmul_peak_gflops_per_s",
               "matmul_peak_bf16_gflops_per_s", "stages_s"}


def test_bench_tiny_case():
    precision = "bf16"  # the floors of both precisions are timed whatever the end-to-end precision
    r = run_bench(n_slices=3, matrix=64, repeats=1, memory_probe=False, precision=precision, process_probe=False,
                  matmul_sizes=(256,))
    assert STABLE_KEYS <= set(r)
    assert r["precision"] == precision
    json.dumps(r)  # --json writes it as it is
    assert r["end_to_end_over_forward"] == pytest.approx(r["end_to_end_s"] / r["bare_forward_s"])
    assert r["batch_cases"] == 4 and 0 < r["batch_per_case_s"]
    assert r["batch_per_case_over_forward"] == pytest.approx(r["batch_per_case_s"] / r["bare_forward_s"])
    assert r["end_to_end_over_fp32_floor"] == pytest.approx(r["end_to_end_s"] / r["bare_forward_fp32_s"])
    assert r["gradcam_over_end_to_end"] == pytest.approx(r["gradcam_per_slice_s"] / r["end_to_end_s"])
    assert r["fat_map_over_end_to_end"] == pytest.approx(r["end_to_end_fat_map_s"] / r["end_to_end_s"])
    assert r["bf16_floor_speedup"] == pytest.approx(r["bare_forward_fp32_s"] / r["bare_forward_bf16_s"])
    # the chosen precision's floor is the folded network in that precision, the one classify runs
    assert r["bare_forward_s"] == r[f"bare_forward_folded_{precision}_s"]
    # ResNet18 up to layer3 at 224² is ~1.4 GMAC = ~2.8 GFLOP per slice
    assert 2.5 < r["forward_gflop"] / 3 < 3.1
    assert 0 < r["forward_gflops_per_s"] and r["matmul_peak_gflops_per_s"] > 0
    assert r["matmul_peak_bf16_gflops_per_s"] > 0
    assert set(r["stages_s"]) == {"read_ff", "read_segmentation", "stacks", "classify_volume", "heatmap_to_native",
                                  "texture_scores", "write"}
    assert all(t > 0 for t in r["stages_s"].values())
    outside = sum(t for k, t in r["stages_s"].items() if k != "classify_volume")
    assert r["unaccounted_s"] == pytest.approx(r["end_to_end_s"] - r["bare_forward_s"] - outside)
    text = format_report(r)
    assert "float32 floor" in text and "bfloat16 floor" in text and "Grad-CAM" in text and "64x64x3" in text
    assert "read segmentation" in text and f"precision: {precision}" in text


def test_whole_process_and_start_up_probes(tmp_path):
    """One `mdtexture classify` in a fresh process takes at least its imports; the imports are timed apart, and
    the steps of a classify process add up to its wall time."""
    from MDTextureLib.bench_probes import (PROCESS_STEPS, STARTUP_IMPORTS, classify_process_wall_s,
                                           startup_breakdown_s, startup_imports_s, write_case_files)

    ff, seg = write_case_files(tmp_path / "case", n_slices=3, matrix=64)
    wall = classify_process_wall_s(ff, seg, tmp_path / "out", "fp32", report=False)
    imports = startup_imports_s()
    assert json.loads((tmp_path / "out" / "prediction.json").read_text())["precision"] == "fp32"
    assert set(imports) == {"python_start", *STARTUP_IMPORTS} and "torchvision" not in imports
    assert 0 < imports["python_start"] < wall and imports["torch"] < wall
    steps = startup_breakdown_s(ff, seg, tmp_path / "steps", "fp32")
    assert tuple(steps["steps_s"]) == PROCESS_STEPS and all(t >= 0 for t in steps["steps_s"].values())
    assert sum(steps["steps_s"].values()) == pytest.approx(steps["wall_s"])
    assert (tmp_path / "steps" / "report.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "steps" / "without_report" / "prediction.json").read_text())["precision"] == "fp32"


def test_training_throughput_prices_the_recipe():
    """Both precisions are timed on the card's own window, and the recipe estimate is iterations × s/it."""
    from MDTextureLib.bench_probes import training_throughput
    from MDTextureLib.modelfile import new_card

    card = new_card("icam28")
    card["input"].update(size_px=32, pixel_mm=6.0)
    card["training"] = {"iterations": 120, "wall_time_s": 600.0, "torch_threads": 1}
    t = training_throughput([card], iterations=1, rounds=2, scan_matrix=48)
    v = t["variants"]["icam28"]
    assert t["batch_size"] == 8 and v["recipe_iterations"] == 120 and v["card_wall_min"] == 10.0
    assert v["recipe_fp32_min"] == pytest.approx(120 / v["fp32_it_per_s"] / 60)
    assert v["recipe_bf16_min"] == pytest.approx(120 / v["bf16_it_per_s"] / 60)
    assert v["bf16_over_fp32"] == pytest.approx(v["bf16_it_per_s"] / v["fp32_it_per_s"])
    # each round's own ratio, so that the spread of a short measurement is on record; the median of two rounds
    # lies between them
    rounds = v["bf16_over_fp32_rounds"]
    assert len(rounds) == 2 and min(rounds) <= v["bf16_over_fp32"] * (1 + 1e-9)
    # the network's own pass, the ceiling of the loop's ratio: timed, and a ratio of its two times
    assert v["network_fp32_s"] > 0 and v["network_bf16_s"] > 0
    assert v["network_bf16_over_fp32"] == pytest.approx(v["network_fp32_s"] / v["network_bf16_s"])


def test_agreement_on_a_tiny_cohort_with_the_shipped_model():
    from MDTextureLib.bench_probes import precision_agreement
    from MDTextureLib.modelfile import default_model_path, load_model

    a = precision_agreement(load_model(default_model_path()), 2, n_slices=5, matrix=96, pixel_mm=2.0)
    assert a["scans"] == 2 and len(a["per_scan"]) == 2 and a["same_verdict"] == 2 and a["all_within_limits"]
    assert [r["class"] for r in a["per_scan"]] == ["DMD", "CMD"]
    assert a["slice_probability_abs_max"] == max(r["slice_probability_abs"] for r in a["per_scan"])
    text = format_report({**_report_stub(), "agreement": a})
    assert "same verdict 2/2" in text and "all within limits" in text


def _report_stub() -> dict:
    """The smallest result format_report accepts (the figures are made up; only the layout is checked)."""
    return {"precision": "bf16", "variant": "icam28", "model": "icam28", "volume": "1x1x1", "batch_size": 1,
            "threads": 1, "cpu": {"name": "x", "native_bf16": True}, "end_to_end_s": 1.0, "bare_forward_s": 1.0,
            "end_to_end_over_forward": 1.0, "bare_forward_fp32_s": 1.0, "end_to_end_over_fp32_floor": 1.0,
            "bare_forward_bf16_s": 1.0, "bf16_floor_speedup": 1.0, "bare_forward_folded_fp32_s": 1.0,
            "bare_forward_folded_bf16_s": 1.0, "gradcam_per_slice_s": 1.0, "gradcam_per_slice_ms": 1.0,
            "gradcam_over_end_to_end": 1.0, "end_to_end_fat_map_s": 1.0, "fat_map_over_end_to_end": 1.0,
            "matmul_peak_gflops_per_s": 1.0, "matmul_peak_bf16_gflops_per_s": 1.0,
            "matmul_bf16_over_fp32": 1.0, "forward_gflop": 1.0, "forward_gflops_per_s": 1.0, "batch_cases": 4,
            "batch_per_case_s": 1.0, "batch_per_case_over_forward": 1.0}
