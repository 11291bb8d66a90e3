"""ICAM-ResNet18: Eq. (1)-(2), the mean identity, variants, ImageNet loading and model files."""

import json

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from MDTextureLib.errors import InputError
from MDTextureLib.modelfile import build_model, load_model, save_model
from MDTextureLib.constants import LEG_VARIANTS
from MDTextureLib.network import MAP_SIZE_224, VARIANTS, ICAMNet, infer_variant, load_imagenet_trunk


@pytest.fixture(scope="module")
def x224():
    torch.manual_seed(1)
    return torch.randn(2, 3, 224, 224)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_map_mean_equals_logit_minus_bias(variant, x224):
    """GAP is a mean and ×2 bilinear upsampling keeps the mean, so mean_xy(M^c) = S^c − b^c exactly."""
    torch.manual_seed(2)
    net = ICAMNet(variant).eval()
    with torch.no_grad():
        net.fc.bias.uniform_(-3, 3)  # a non-zero bias, so the test sees it
        logits, maps = net.forward_with_maps(x224)
    side = MAP_SIZE_224[variant]
    assert maps.shape == (2, 3, side, side)
    assert torch.allclose(maps.mean(dim=(2, 3)), logits - net.fc.bias, atol=1e-5, rtol=1e-5)
    assert torch.allclose(net(x224), logits)


def test_icam_is_eq2_literally(x224):
    """Weighting before upsampling equals Eq. (2) as written: Σ w_k f^m_k + Σ w_{k+M} U(f^n_k, 2)."""
    torch.manual_seed(3)
    net = ICAMNet("icam14").eval()
    with torch.no_grad():
        fm, fn = net.features(x224)
        M = fm.shape[1]
        W = net.fc.weight  # (C, M+N)
        literal = torch.einsum("ck,bkhw->bchw", W[:, :M], fm) + torch.einsum(
            "ck,bkhw->bchw", W[:, M:], F.interpolate(fn, scale_factor=2, mode="bilinear", align_corners=False))
        assert torch.allclose(net.class_maps([fm, fn]), literal, atol=1e-5)
        assert fm.shape[-1] == 2 * fn.shape[-1] == 14


def test_align_corners_true_would_break_the_identity():
    """Guards the choice of align_corners=False: the other convention does not conserve the mean."""
    f = torch.rand(1, 1, 7, 7)
    good = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False).mean()
    bad = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=True).mean()
    assert torch.isclose(good, f.mean(), atol=1e-6)
    assert not torch.isclose(bad, f.mean(), atol=1e-4)


def test_variants_cut_the_trunk_where_the_paper_says():
    assert ICAMNet("icam14").layer_names[-1] == "layer4"
    assert ICAMNet("icam28").layer_names[-1] == "layer3" and not hasattr(ICAMNet("icam28"), "layer4")
    assert ICAMNet("resnet28").layer_names[-1] == "layer2"
    assert ICAMNet("icam14").fc.in_features == 256 + 512
    assert ICAMNet("icam28").fc.in_features == 128 + 256
    assert ICAMNet("resnet7").fc.in_features == 512
    for v in VARIANTS:
        assert infer_variant(ICAMNet(v).state_dict()) == LEG_VARIANTS.get(v, v)


def test_imagenet_trunk_loads_key_for_key():
    torch.manual_seed(4)
    tv = resnet18(weights=None).state_dict()
    net = ICAMNet("icam28")
    fc_before = net.fc.weight.clone()
    loaded = load_imagenet_trunk(net, tv)
    assert "layer3.1.conv2.weight" in loaded and not any(k.startswith("layer4") for k in loaded)
    assert torch.equal(net.layer2[0].conv1.weight, tv["layer2.0.conv1.weight"])
    assert torch.equal(net.fc.weight, fc_before)
    with pytest.raises(ValueError, match="not a torchvision ResNet18"):
        load_imagenet_trunk(ICAMNet("icam28"), {"conv1.weight": tv["conv1.weight"]})


def test_imagenet_file_is_read_without_unpickling_objects(tmp_path):
    from MDTextureLib.modelfile import load_imagenet_file

    sd = resnet18(weights=None).state_dict()
    torch.save(sd, tmp_path / "resnet18.pth")
    assert torch.equal(load_imagenet_file(tmp_path / "resnet18.pth")["fc.weight"], sd["fc.weight"])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(InputError, match="cannot read ImageNet weights"):
        load_imagenet_file(tmp_path / "evil.pth")


def test_model_roundtrip_and_sha256(tmp_path):
    model = build_model("icam14", seed=5)
    weights, card = save_model(model, tmp_path / "m")
    loaded = load_model(card)
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, loaded.net.state_dict()[k])
    assert loaded.card["sha256"] == json.loads(card.read_text())["sha256"]
    assert load_model(weights).name == loaded.name  # either file names the model


def test_half_precision_weights_load_as_float(tmp_path):
    model = build_model("icam28", seed=6)
    _, card = save_model(model, tmp_path / "h", half=True)
    loaded = load_model(card)
    assert loaded.card["weights_dtype"] == "float16"
    w = model.net.state_dict()["layer1.0.conv1.weight"]
    assert torch.allclose(loaded.net.state_dict()["layer1.0.conv1.weight"], w, atol=1e-3)


def test_truncated_or_altered_weights_are_refused(tmp_path):
    weights, card = save_model(build_model("icam28"), tmp_path / "m")
    data = weights.read_bytes()
    weights.write_bytes(data[:-100])
    with pytest.raises(InputError, match="truncated or altered"):
        load_model(card)


def test_card_variant_must_match_weights(tmp_path):
    _, card = save_model(build_model("icam28"), tmp_path / "m")
    c = json.loads(card.read_text())
    c["variant"] = "icam14"
    card.write_text(json.dumps(c))
    with pytest.raises(InputError, match="says variant icam14 but the weights are of variant icam28"):
        load_model(card)


def test_missing_and_broken_cards(tmp_path):
    with pytest.raises(InputError, match="model card not found"):
        load_model(tmp_path / "nothing.json")
    weights, card = save_model(build_model("icam28"), tmp_path / "m")
    card.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_model(card)
