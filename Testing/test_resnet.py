"""MDTexture's own ResNet18 (``MDTextureLib/resnet.py``) against torchvision's: the same names and shapes, the same
initial weights under the same seed, the same outputs with the same weights. torchvision is needed only here."""

import subprocess
import sys

import pytest
import torch
from torchvision.models import resnet18

from MDTextureLib.network import LAYER_CHANNELS, VARIANTS, ICAMNet
from MDTextureLib.resnet import ResNet18


def _shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_same_names_and_shapes_as_torchvision():
    assert _shapes(ResNet18()) == _shapes(resnet18(weights=None))
    assert [name for name, _ in ResNet18().named_modules()] == [name for name, _ in resnet18().named_modules()]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_a_slice_of_torchvision_resnet18(variant):
    """The trunk's tensors are torchvision's, name for name and shape for shape (only ``fc`` is our own)."""
    reference = _shapes(resnet18(weights=None))
    own = {k: s for k, s in _shapes(ICAMNet(variant)).items() if not k.startswith("fc.")}
    assert own and all(reference[k] == s for k, s in own.items())
    depth = max(int(s[-1]) for s in VARIANTS[variant])
    expected = {k for k in reference if not k.startswith("fc.")
                and not any(k.startswith(f"layer{i}.") for i in range(depth + 1, 5))}
    assert set(own) == expected


def test_same_seed_same_initial_weights_as_torchvision():
    """Seeded training starts from torchvision's draw exactly: every tensor equal bit for bit, and the generator
    left in the same state afterwards (so whatever is drawn next, e.g. ICAMNet's own linear layer, is too)."""
    torch.manual_seed(123)
    theirs = resnet18(weights=None).state_dict()
    after_theirs = torch.rand(4)
    torch.manual_seed(123)
    ours = ResNet18().state_dict()
    after_ours = torch.rand(4)
    assert theirs.keys() == ours.keys()
    for k in theirs:
        assert torch.equal(theirs[k], ours[k]), k
    assert torch.equal(after_theirs, after_ours)


@pytest.mark.parametrize("variant", ["icam28", "icam14", "icam56-leg"])
def test_icamnet_initial_weights_match_the_torchvision_built_network(variant):
    """ICAMNet built on our ResNet18 equals ICAMNet built on torchvision's (what the shipped models were trained
    from), trunk and head, under the same seed."""
    in_features = sum(LAYER_CHANNELS[s] for s in VARIANTS[variant])
    torch.manual_seed(7)
    trunk = resnet18(weights=None)
    head = torch.nn.Linear(in_features, 3)  # drawn right after the trunk, as ICAMNet does
    torch.manual_seed(7)
    net = ICAMNet(variant)
    reference = {**trunk.state_dict(), **{f"fc.{k}": v for k, v in head.state_dict().items()}}
    for k, v in net.state_dict().items():
        assert torch.equal(v, reference[k]), k


def test_same_weights_same_outputs_as_torchvision():
    torch.manual_seed(3)
    theirs = resnet18(weights=None)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode uses them
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    ours = ResNet18()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 96, 96)
    for train in (False, True):
        theirs.train(train)
        ours.train(train)
        with torch.no_grad():
            assert torch.equal(ours(x), theirs(x))


def test_classify_imports_neither_torchvision_nor_torch_compiler(tmp_path):
    """A whole `mdtexture classify` (shipped model, every output, report.png included) needs torch alone:
    torchvision costs about 1.4 s of every such process, and so does torch._dynamo, which torch imports the first
    time a random draw is asked of a meta tensor (the shapes-only networks that loading a model builds)."""
    from MDTextureLib.phantom import make_scan, write_scan

    folder = write_scan(make_scan("CMD", seed=3, n_slices=6, matrix=128, pixel_mm=240.0 / 128), tmp_path / "scan")
    code = ("import sys\n"
            "from MDTextureLib.cli import main\n"
            f"code = main(['classify', '--ff', {str(folder / 'ff.nrrd')!r}, '--out', {str(tmp_path / 'out')!r},"
            " '--quiet'])\n"
            "print(code, 'torchvision' in sys.modules, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0 False False"
    assert (tmp_path / "out" / "report.png").is_file()
