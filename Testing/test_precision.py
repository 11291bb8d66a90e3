"""--precision: which hardware gets bfloat16, batch-norm folding, a float32 head, and bf16 answers that match fp32."""

import numpy as np
import pytest
import torch

from MDTextureLib import precision
from MDTextureLib.errors import InputError
from MDTextureLib.modelfile import build_model, default_model_path, load_model
from MDTextureLib.network import ICAMNet

XEON_SPR = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
EPYC_ZEN4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
LAPTOP = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"


@pytest.mark.parametrize("text, native", [(XEON_SPR, True), (EPYC_ZEN4, True), (OLD_XEON, False), (LAPTOP, False),
                                          ("", False)])
def test_bf16_only_where_the_cpu_has_it(text, native):
    assert precision.cpu_has_native_bf16(text) is native


def test_auto_resolves_by_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo_text=None: False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo_text=None: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision("fp32", "cpu") == "fp32"  # an explicit choice wins
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        precision.resolve_precision("fp16", "cpu")


def _net_with_nontrivial_batchnorm(variant: str, seed: int = 0) -> ICAMNet:
    """Batch-norm statistics and affine terms far from the identity, so folding them wrongly shows."""
    torch.manual_seed(seed)
    net = ICAMNet(variant)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net.eval()


@pytest.mark.parametrize("variant", ["icam28", "icam14", "icam28-leg", "icam14-leg"])
def test_folded_network_gives_the_same_logits_and_maps(variant):
    net = _net_with_nontrivial_batchnorm(variant)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = precision.fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == (20 if variant.startswith("icam14") else 15)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 1, 96, 96)
    mask[0, :, 10:70, 20:90] = 1
    mask[1, :, 30:90, 5:50] = 1
    with torch.no_grad():
        logits, maps = net.forward_with_maps(x, mask)
        flogits, fmaps = folded.forward_with_maps(x, mask)
    assert logits.abs().max() > 0.1  # the comparison is not between two near-zero tensors
    torch.testing.assert_close(flogits, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fmaps, maps, atol=1e-4, rtol=1e-4)
    for k, v in net.state_dict().items():  # the model's own network is left as it was
        assert torch.equal(v, before[k]), k


def test_prepared_network_is_cached_until_the_weights_change():
    net = _net_with_nontrivial_batchnorm("icam28")
    a = precision.inference_net(net, "cpu")
    assert precision.inference_net(net, "cpu") is a
    with torch.no_grad():
        net.fc.weight.mul_(2.0)  # what an optimiser step or load_state_dict does: an in-place write
    b = precision.inference_net(net, "cpu")
    assert b is not a
    torch.testing.assert_close(b.fc.weight, net.fc.weight)


def test_bf16_trunk_float32_head_keeps_the_mean_identity():
    """Logits and maps come back float32 from bf16 features, so mean_xy(M^c) = S^c − b^c holds to float32."""
    net = _net_with_nontrivial_batchnorm("icam28")
    with torch.no_grad():
        net.fc.bias.uniform_(-3, 3)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        logits, maps, pooled = precision.forward_with_maps(net, x, "bf16")
        reference, _, reference_pooled = precision.forward_with_maps(net, x, "fp32")
    assert pooled.dtype == torch.float32 and pooled.shape == (2, net.fc.in_features)
    assert logits.dtype == maps.dtype == torch.float32
    torch.testing.assert_close(maps.mean(dim=(2, 3)), logits - net.fc.bias, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(net.fc(pooled), logits)  # the pooled vector is what the linear layer saw
    assert pooled.shape == (2, 128 + 256) and 0 < (pooled - reference_pooled).abs().max() < 0.1
    assert 0 < (logits - reference).abs().max() < 0.1  # bf16 did run, and stayed close


@pytest.fixture(scope="module")
def phantom_cases(tmp_path_factory):
    """Two small phantom scans (DMD, normal) with their muscles, as files."""
    from MDTextureLib.phantom import make_scan, write_scan

    root = tmp_path_factory.mktemp("precision")
    return [write_scan(make_scan(cls, seed=seed, n_slices=8, matrix=128, pixel_mm=1.5), root / f"{cls}{seed}")
            for cls, seed in (("DMD", 3), ("normal", 4))]


def test_bf16_answers_match_fp32_with_the_shipped_model(phantom_cases):
    """The guard of issue 15: same verdict, slice probabilities within 0.02, heatmap r ≥ 0.99, scores within 0.05."""
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case

    path = default_model_path()
    assert path is not None, "the shipped model is part of the repository"
    model = load_model(path)
    for folder in phantom_cases:
        inputs = CaseInputs(ff=str(folder / "ff.nrrd"), segmentation=str(folder / "muscles.seg.nrrd"))
        cases = {p: analyse_case(inputs, model, CaseOptions(device="cpu", precision=p)) for p in ("fp32", "bf16")}
        assert cases["bf16"].summary["precision"] == "bf16" and cases["fp32"].summary["precision"] == "fp32"
        got = precision.agreement(cases["fp32"], cases["bf16"])
        assert got["same_verdict"], got
        assert got["slice_probability_abs"] <= 0.02, got
        assert got["heatmap_pearson_r"] >= 0.99, got
        assert got["texture_score_abs"] <= 0.05, got
        assert got["within_limits"]
        # bf16 really ran: the answers are close, not identical
        assert not np.array_equal(cases["fp32"].result.class_maps, cases["bf16"].result.class_maps)


def test_agreement_notices_a_different_answer(phantom_cases):
    """The measure itself: an untrained network against the shipped one disagrees and says so."""
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case

    folder = phantom_cases[0]
    inputs = CaseInputs(ff=str(folder / "ff.nrrd"), segmentation=str(folder / "muscles.seg.nrrd"))
    options = CaseOptions(device="cpu", precision="fp32")
    shipped = analyse_case(inputs, load_model(default_model_path()), options)
    untrained = analyse_case(inputs, build_model("icam28", seed=5), options)
    got = precision.agreement(shipped, untrained)
    assert not got["within_limits"]
    assert got["slice_probability_abs"] > 0.02 and got["heatmap_pearson_r"] < 0.99


def _easy_items():
    """test_training's easy split: nine crude legs whose muscle fat fraction tells the class apart."""
    from test_training import easy_series

    from MDTextureLib.constants import CLASSES
    from MDTextureLib.training import ScanItem

    return [ScanItem(f"s{i}", f"s{i}", c, easy_series(c, i)) for i, c in enumerate(CLASSES * 3)]


def test_bf16_training_learns_keeps_float32_weights_and_says_so():
    """bf16 training: autocast around forward and loss only, so weights (and the optimiser) stay float32; the
    resolved precision goes into the card, the log and the config; the easy split is still learnt."""
    from test_training import quick_config

    from MDTextureLib.training import SliceDataset, train

    dataset = SliceDataset.build(_easy_items(), pixel_mm=4.0, size_px=32)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(dataset, quick_config(iterations=40, precision="bf16"), progress=False)
    finally:
        torch.set_num_threads(before)
    assert all(p.dtype == torch.float32 for p in result.model.net.parameters())
    assert result.model.card["training"]["precision"] == "bf16"
    assert result.log["precision"] == "bf16" and result.log["config"]["precision"] == "bf16"
    h = result.log["history"]
    assert np.mean(h["loss"][-10:]) < 0.6 * np.mean(h["loss"][:10])
    assert np.mean(h["accuracy"][-10:]) > 0.6  # chance is 1/3


def test_training_precision_auto_is_resolved_before_it_is_recorded(monkeypatch):
    from test_training import quick_config

    from MDTextureLib.training import SliceDataset, train

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo_text=None: False)
    dataset = SliceDataset.build(_easy_items()[:3], pixel_mm=4.0, size_px=32)
    result = train(dataset, quick_config(iterations=1, batch_size=2, precision="auto"), progress=False)
    assert result.model.card["training"]["precision"] == "fp32" and result.log["config"]["precision"] == "fp32"
    with pytest.raises(InputError, match="unknown precision"):
        quick_config(precision="half").check()


@pytest.mark.parametrize("asked, ran", [("fp32", "fp32"), ("bf16", "bf16")])
def test_classify_writes_the_precision_it_ran_in(leg_files, tmp_path, asked, ran):
    import json

    from MDTextureLib.cli import main

    out = tmp_path / "out"
    assert main(["classify", "--ff", str(leg_files["ff"]), "--out", str(out), "--device", "cpu", "--no-report",
                 "--quiet", "--precision", asked]) == 0
    assert json.loads((out / "prediction.json").read_text())["precision"] == ran


def test_every_network_command_takes_precision(monkeypatch):
    """classify, batch, demo, train, crossval, evaluate-model and evaluate accept --precision; evaluate resolves
    it into the settings its run.json records (auto never reaches a record)."""
    from MDTextureLib.cli import build_parser
    from MDTextureLib.evaluation.cli import settings_from_args

    parser = build_parser()
    for argv in (["classify", "--ff", "f", "--out", "o"], ["batch", "--data", "d", "--out", "o"], ["demo"],
                 ["train", "--data", "d", "--out", "o"], ["crossval", "--data", "d", "--out", "o"],
                 ["evaluate-model", "--data", "d"], ["evaluate", "table2", "--data", "d", "--out", "o"]):
        assert parser.parse_args(argv).precision == "auto", argv
        assert parser.parse_args(argv + ["--precision", "bf16"]).precision == "bf16", argv
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo_text=None: False)
    args = parser.parse_args(["evaluate", "table2", "--data", "d", "--out", "o", "--quick"])
    assert settings_from_args(args).precision == "fp32"
    args = parser.parse_args(["evaluate", "table2", "--data", "d", "--out", "o", "--precision", "bf16"])
    assert settings_from_args(args).precision == "bf16"


def test_bf16_leg_variant_keeps_the_mean_over_the_leg():
    """Leg pooling in float32 on bf16 features: Σ m M^c / Σ m = S^c − b^c, and bf16 stays close to fp32."""
    net = _net_with_nontrivial_batchnorm("icam28-leg")
    with torch.no_grad():
        net.fc.bias.uniform_(-3, 3)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    mask = torch.stack([((xx - 40) ** 2 / 900 + (yy - 50) ** 2 / 400 <= 1),
                        ((xx - 60) ** 2 + (yy - 40) ** 2 <= 500)])[:, None].float()
    folded = precision.inference_net(net, "cpu")
    with torch.inference_mode():
        logits, maps, pooled = precision.forward_with_maps(folded, x, "bf16", mask)
        reference, _, ref_pooled = precision.forward_with_maps(net, x, "fp32", mask)
    m = torch.nn.functional.avg_pool2d(mask, 8)
    torch.testing.assert_close((maps * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)), logits - net.fc.bias,
                               atol=1e-5, rtol=1e-5)
    assert 0 < (logits - reference).abs().max() < 0.1
    assert (pooled - ref_pooled).abs().max() < 0.1
