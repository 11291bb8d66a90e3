"""Numerical precision of the network: float32, or bfloat16 where the silicon runs it natively; batch norm folded.

``--precision auto|fp32|bf16`` on every command that runs the network resolves here:

* ``auto`` → ``bf16`` on CPUs with AMX-BF16 or AVX512-BF16 instructions (read from torch's CPU feature probe, else
  from ``/proc/cpuinfo``) and on CUDA GPUs that do bfloat16 in hardware (compute capability ≥ 8.0); ``fp32``
  everywhere else, where bfloat16 would be emulated and slower than float32.
* ``bf16``: the convolutions run under ``torch.autocast`` (bfloat16 operands, float32 accumulation); the weights,
  the optimiser state and everything outside the trunk stay float32.
* ``fp32``: plain float32.

What stays float32 whatever the precision: the head. The trunk's feature maps are cast to float32 before global
average pooling, the linear layer and the class maps (Eq. 1-2), so logits, softmax, maps and the identity
mean_xy(M^c) = S^c − b^c (over the leg, for leg-pooled variants) are float32 computations on the features; only the
features carry bfloat16 rounding.

For inference the batch-norm layers are folded into the convolutions before them (a folded copy; the model's own
network is left untouched): y = γ (W x + b − μ) / √(σ² + ε) + β is one convolution with weights γ W / √(σ² + ε)
and bias β + γ (b − μ) / √(σ² + ε), so a pass skips one read and write of every feature map.

torch is imported inside the functions: the command line builds its parser from :data:`PRECISIONS` without it.
"""

from __future__ import annotations

import contextlib
import copy
import platform
import weakref

#: What ``--precision`` accepts.
PRECISIONS = ("auto", "fp32", "bf16")
#: The resolved precisions as a reader names them.
PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16"}
#: x86 CPU flags (``/proc/cpuinfo``) that mean bfloat16 matrix arithmetic in hardware.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

PRECISION_HELP = ("numbers inside the network: auto (default) = bf16 where the hardware runs bfloat16 natively "
                  "(CPUs with AMX or AVX512-BF16, CUDA GPUs of compute capability 8.0 or newer), else fp32")


def cpu_flags(cpuinfo_text: str | None = None) -> set:
    """The CPU feature flags of ``/proc/cpuinfo`` (or of ``cpuinfo_text``); empty where there is no such file."""
    if cpuinfo_text is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo_text = fh.read()
        except OSError:
            return set()
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_has_native_bf16(cpuinfo_text: str | None = None) -> bool:
    """True when this x86 CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16).

    torch's own probe (cpuinfo, the library oneDNN dispatches on) is asked first; ``/proc/cpuinfo`` is the fallback
    for builds without it. Other architectures answer False: without a measured speed-up, ``auto`` keeps float32.
    """
    if cpuinfo_text is None:
        try:
            import torch

            capability = torch._C._cpu._get_cpu_capability()  # {'avx512_bf16': True, 'amx_bf16': False, ...}
            if any(flag in capability for flag in CPU_BF16_FLAGS):
                return any(bool(capability.get(flag)) for flag in CPU_BF16_FLAGS)
        except (ImportError, AttributeError, RuntimeError):
            pass
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return False
    return bool(cpu_flags(cpuinfo_text) & set(CPU_BF16_FLAGS))


def device_has_native_bf16(device) -> bool:
    """True when ``device`` (a torch.device or 'cpu' / 'cuda[:n]') runs bfloat16 arithmetic natively."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        # Compute capability 8.0 (Ampere) and newer have bfloat16 tensor cores; older ones only emulate it.
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device) -> str:
    """``auto`` / ``fp32`` / ``bf16`` → the precision to run in on ``device``: ``fp32`` or ``bf16``."""
    from .errors import InputError

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device_has_native_bf16(device) else "fp32"
    if precision == "bf16" and _is_cuda(device):
        import torch

        # CUDA autocast quietly falls back to float32 on a GPU without bfloat16: say so instead of recording bf16
        if not torch.cuda.is_bf16_supported():
            raise InputError(f"--precision bf16: the GPU {torch.cuda.get_device_name(device)} has no bfloat16; "
                             "use --precision fp32 (or auto)")
    return precision


def _is_cuda(device) -> bool:
    import torch

    return torch.device(device).type == "cuda"


def autocast(precision: str, device):
    """The context the network's forward (and, in training, the loss) runs in for a resolved ``precision``."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"resolve the precision first (fp32 or bf16), got {precision!r}")


def fold_batchnorm(net):
    """An eval-mode copy of ``net`` with every BatchNorm2d that directly follows a Conv2d folded into it.

    Pairs are found the way torchvision's ResNet names them: sibling attributes ``convN`` / ``bnN`` and
    ``nn.Sequential`` runs of (Conv2d, BatchNorm2d) such as ``downsample``. A folded batch norm becomes
    ``nn.Identity``; anything that does not match is left as it is (and still correct, only not faster).
    """
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(net).eval()
    with torch.no_grad():
        for module in list(folded.modules()):
            if isinstance(module, nn.Sequential):
                names = list(module._modules)
                for a, b in zip(names, names[1:]):
                    conv, bn = module._modules[a], module._modules[b]
                    if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                        module._modules[a] = fuse_conv_bn_eval(conv, bn)
                        module._modules[b] = nn.Identity()
            for name, child in list(module.named_children()):
                if isinstance(child, nn.Conv2d) and name.startswith("conv"):
                    bn = getattr(module, "bn" + name[len("conv"):], None)
                    if isinstance(bn, nn.BatchNorm2d):
                        setattr(module, name, fuse_conv_bn_eval(child, bn))
                        setattr(module, "bn" + name[len("conv"):], nn.Identity())
    return folded


# net → (fingerprint, prepared copy). Weak keys: the cache never keeps a network alive. The fingerprint holds every
# parameter's storage address and in-place version counter, so training or loading new weights (both write in
# place), or moving the network, makes the cached copy stale and it is rebuilt.
_PREPARED = weakref.WeakKeyDictionary()


def _fingerprint(net, device) -> tuple | None:
    tensors = list(net.parameters()) + list(net.buffers())
    try:
        return (str(device),) + tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:  # tensors made under torch.inference_mode keep no version counter: never cache those
        return None


def inference_net(net, device):
    """``net`` ready for inference on ``device``: batch norm folded, eval mode, channels-last weights (the CPU
    convolutions run about 30 % faster on channels-last stacks). A copy, cached while ``net``'s weights do not
    change; ``net`` itself is not modified."""
    import torch

    key = _fingerprint(net, device)
    cached = _PREPARED.get(net)
    if key is not None and cached is not None and cached[0] == key:
        return cached[1]
    prepared = fold_batchnorm(net).to(device, memory_format=torch.channels_last).eval()
    for p in prepared.parameters():
        p.requires_grad_(False)
    if key is not None:
        _PREPARED[net] = (key, prepared)
    return prepared


def forward_with_maps(net, x, precision: str, mask=None):
    """Logits (B, C), class maps (B, C, h, w) and the pooled feature vector (B, D) the linear layer saw, all
    float32: the trunk in ``precision``, the head in float32.

    ``mask`` (B, 1, H, W) in [0, 1]: the body in the window; leg-pooled variants set the input to 0 outside it and
    pool over it, the paper's variants ignore it. A network without ICAMNet's ``features`` / ``pool`` /
    ``class_maps`` split (a stand-in with only ``forward_with_maps``) runs whole in ``precision``, without the
    mask, and has no pooled vector (None).
    """
    if not all(hasattr(net, name) for name in ("features", "pool", "class_maps")):
        with autocast(precision, x.device):
            logits, maps = net.forward_with_maps(x)
        return logits.float(), maps.float(), None
    with autocast(precision, x.device):
        feats = net.features(net.masked_input(x, mask))
    feats = [f.float() for f in feats]
    pooled = net.pool(feats, mask)
    return net.fc(pooled), net.class_maps(feats), pooled


#: How close a bfloat16 answer must stay to the float32 one (the issue's guard; Testing/test_precision.py and
#: ``mdtexture bench --agreement N`` hold every case to it).
AGREEMENT_LIMITS = {"slice_probability_abs": 0.02, "heatmap_pearson_r": 0.99, "texture_score_abs": 0.05}


def agreement(reference, other) -> dict:
    """How far ``other``'s answer on a scan lies from ``reference``'s (two ``pipeline.CaseResult`` of one scan).

    Verdicts; the largest difference of any slice probability; Pearson r of the reference target class's heatmaps,
    scaled by their volume maximum, over the voxels where either is non-zero (the zeros outside the leg would
    inflate r) — the volume scaling compares the network's maps; the per-slice display scaling magnifies slices with
    almost no evidence up to 1, where bfloat16 rounding is as large as the evidence (phantom DMD case of the test:
    r 0.987 per slice against 0.9987 by volume), so that r is reported too (``heatmap_pearson_r_slice``) but not
    held to the limit; the largest difference
    of a texture score (a muscle scored in one and absent in the other counts as infinitely far), and the largest
    difference in highlighted slices. A texture score moves in steps of 1/(slices the muscle is present in), so on a
    short scan one slice crossing the threshold exceeds 0.05: a score is within the limit when it differs by at most
    0.05 or by at most one highlighted slice (both figures are reported).
    """
    import numpy as np

    a, b = reference.result, other.result
    def pearson(ha, hb) -> float:
        support = (ha > 0) | (hb > 0)
        return float(np.corrcoef(ha[support], hb[support])[0, 1]) if support.sum() > 1 else 1.0

    r = pearson(a.heatmap_for(a.target_class, "volume"), b.heatmap_for(a.target_class, "volume"))
    r_slice = pearson(a.heatmap_for(a.target_class, "slice"), b.heatmap_for(a.target_class, "slice"))
    score_diffs, slice_diffs, scores_ok = [], [], True
    for sa, sb in zip(reference.scores or [], other.scores or []):
        if (sa.texture_score is None) != (sb.texture_score is None):
            score_diffs.append(float("inf"))
            scores_ok = False
        elif sa.texture_score is not None:
            score_diffs.append(abs(sa.texture_score - sb.texture_score))
            slice_diffs.append(abs(sa.slices_highlighted - sb.slices_highlighted))
            scores_ok &= (score_diffs[-1] <= AGREEMENT_LIMITS["texture_score_abs"]
                          or (sa.slices_present == sb.slices_present and slice_diffs[-1] <= 1))
    out = {
        "same_verdict": a.verdict == b.verdict,
        "slice_probability_abs": float(np.abs(a.slice_probabilities - b.slice_probabilities).max()),
        "heatmap_pearson_r": r,
        "heatmap_pearson_r_slice": r_slice,
        "texture_score_abs": max(score_diffs, default=0.0),
        "texture_score_slices": max(slice_diffs, default=0),
    }
    out["within_limits"] = bool(out["same_verdict"]
                                and out["slice_probability_abs"] <= AGREEMENT_LIMITS["slice_probability_abs"]
                                and out["heatmap_pearson_r"] >= AGREEMENT_LIMITS["heatmap_pearson_r"]
                                and scores_ok)
    return out
