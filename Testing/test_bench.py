"""The benchmark runs end to end on a tiny case and its arithmetic is consistent (speed itself is not tested)."""

import pytest

from MDTextureLib.bench import format_report, run_bench


def test_bench_tiny_case():
    r = run_bench(n_slices=3, matrix=64, repeats=1, memory_probe=False)
    assert r["end_to_end_over_forward"] == pytest.approx(r["end_to_end_s"] / r["bare_forward_s"])
    assert r["gradcam_over_end_to_end"] == pytest.approx(r["gradcam_per_slice_s"] / r["end_to_end_s"])
    # ResNet18 up to layer3 at 224² is ~1.4 GMAC = ~2.8 GFLOP per slice
    assert 2.5 < r["forward_gflop"] / 3 < 3.1
    assert 0 < r["forward_gflops_per_s"] and r["matmul_peak_gflops_per_s"] > 0
    assert set(r["stages_s"]) == {"read_ff", "read_segmentation", "stacks", "heatmap_to_native", "texture_scores",
                                  "write"}
    assert all(0 < t < r["end_to_end_s"] for t in r["stages_s"].values())
    text = format_report(r)
    assert "bare forward pass" in text and "Grad-CAM" in text and "64x64x3" in text and "read segmentation" in text
