"""Heatmaps to compare, all computed on one trained network and brought onto the native grid the same way.

Methods (``METHODS``):

``icam``
    our network's own class map (Eq. 2; for ``resnet7`` this is plain CAM, Zhou et al. 2016), exactly what
    ``classify_volume`` computes.
``gradcam``, ``gradcam++``, ``layercam``
    Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhay et al. 2018) and LayerCAM (Jiang et al. 2021) from
    ``pytorch_grad_cam``, at the network's *map stage* (the finest feature stage: the layer whose resolution the
    ICAM has; ``layer4`` for resnet7). The library's own weighting (``get_cam_weights`` / ``get_cam_image``) is
    used on one shared forward/backward pass per batch; its per-image min-max + ``cv2.resize`` post-processing is
    not, so every method goes through the same path as ICAM below.
``random``
    i.i.d. uniform noise on the map grid of the network (seeded), the chance reference with the same smoothness
    after upsampling.
``ff``
    the fat-fraction image itself, the reference a reader already has.

``ff-pooled``
    the FF image on the model window average-pooled to the network's map resolution, then taken home like a map:
    what a map of that resolution could show at best by following fat (the ceiling row of the localisation table).
``ff-random-sign``
    the FF image on the model window with an i.i.d. random sign per pixel, taken home like the fat map: the null of
    a gradient × FF map. After ReLU such a map keeps half of the fat at its full value, so it scores a pixel AUC well
    above ½ with no evidence at all in its signs; a fat map has to beat it to show that its signs mean something.

Common path (the one ``VolumeResult.heatmap_for`` uses): raw map on the model window (Z, h, w) → ReLU →
``maps_to_native`` (bilinear, inverse of the input resampling) → 0 outside the body (when given) → divided by
its maximum per slice (the product's rule) or over the volume (the rule before issue 12, ``to_native``'s default,
kept so results stay comparable), so [0, 1].

Leg-pooled networks (``net.pooling == "leg"``, e.g. ``icam28-leg``) take the body mask on the window beside their
input (``net(x, mask)``, ``net.forward_with_maps(x, mask)``); every function here passes it when given ``masks``
(Z, 1, S, S) and the network asks for it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..stacks import StackGeometry, maps_to_native

METHODS = ("icam", "gradcam", "gradcam++", "layercam", "random", "ff")
GRADIENT_METHODS = ("gradcam", "gradcam++", "layercam")
METHOD_LABELS = {"icam": "ICAM / CAM (own map)", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++",
                 "layercam": "LayerCAM", "random": "random map", "ff": "FF image as map",
                 "icam-slice": "own map, per slice within the leg", "ff-pooled": "FF image pooled to the map grid",
                 "fat": "fat attribution (gradient × FF), per slice within the leg",
                 "ff-random-sign": "FF image × random sign per pixel (a gradient × FF map whose signs are noise)",
                 "involvement": "involvement mask as map (truth)"}


def map_layer(net) -> torch.nn.Module:
    """The module whose output is the network's map stage (the finest stage of its head)."""
    return getattr(net, net.stages[0])


def _per_slice(class_index, n: int) -> np.ndarray:
    """A class index per slice from one index or a sequence of ``n``."""
    idx = np.asarray(class_index, dtype=int)
    if idx.ndim == 0:
        return np.full(n, int(idx))
    if idx.shape != (n,):
        raise ValueError(f"need one class index or {n} of them, got shape {idx.shape}")
    return idx


def uses_mask(net) -> bool:
    """Whether ``net`` pools over the leg and so needs the body mask beside its input."""
    return getattr(net, "pooling", "image") == "leg"


def _mask_args(net, masks, start: int, stop: int) -> tuple:
    """() for an image-pooled network; (mask batch,) for a leg-pooled one (refused without masks)."""
    if not uses_mask(net):
        return ()
    if masks is None:
        raise ValueError("a leg-pooled network needs the body masks of its input (masks=...)")
    return (masks[start:stop],)


class _WithMask(torch.nn.Module):
    """``net(x, mask)`` seen as ``module(x)`` (for pytorch_grad_cam, which calls ``model(x)``); ``mask`` is set per
    batch."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.mask_args: tuple = ()

    def forward(self, x):
        return self.net(x, *self.mask_args)


def icam_maps(net, stacks: torch.Tensor, class_index=None, batch_size: int = 16, masks: torch.Tensor | None = None):
    """Own class maps: (logits (Z, C), maps (Z, C, h, w)) or, with ``class_index`` (one index, or one per slice),
    (logits, maps (Z, h, w) of that class). ``masks`` (Z, 1, S, S): the body, for leg-pooled networks."""
    net = net.eval()
    logits, maps = [], []
    with torch.inference_mode():
        for start in range(0, stacks.shape[0], batch_size):
            stop = start + batch_size
            lg, mp = net.forward_with_maps(stacks[start:stop], *_mask_args(net, masks, start, stop))
            logits.append(lg)
            maps.append(mp)
    logits_t, maps_t = torch.cat(logits).float(), torch.cat(maps).float()
    if class_index is not None:
        idx = torch.as_tensor(_per_slice(class_index, maps_t.shape[0]))
        maps_t = maps_t[torch.arange(maps_t.shape[0]), idx]
    return logits_t, maps_t


def gradient_maps(net, stacks: torch.Tensor, class_index, methods=GRADIENT_METHODS,
                  layer: torch.nn.Module | None = None, batch_size: int = 8,
                  masks: torch.Tensor | None = None) -> dict:
    """Raw maps of the gradient methods (before ReLU), each (Z, h, w) at the layer's resolution, for
    ``class_index`` (one index, or one per slice).

    One forward and one backward per batch through ``pytorch_grad_cam``'s hooks; each method's own weighting is
    then applied to the same activations and gradients.
    """
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM}
    unknown = [m for m in methods if m not in classes]
    if unknown:
        raise ValueError(f"unknown gradient method(s) {unknown}; choose from {list(classes)}")
    layer = layer if layer is not None else map_layer(net)
    net = net.eval()
    # The first object's hooks record activations and gradients; the others only lend their weighting code.
    model = _WithMask(net).eval()
    cams = {m: classes[m](model=model, target_layers=[layer]) for m in methods}
    recorder = cams[methods[0]]
    for m in methods[1:]:
        cams[m].activations_and_grads.release()
    out = {m: [] for m in methods}
    per_slice = _per_slice(class_index, stacks.shape[0])
    try:
        for start in range(0, stacks.shape[0], batch_size):
            x = stacks[start:start + batch_size]
            targets = [ClassifierOutputTarget(int(c)) for c in per_slice[start:start + x.shape[0]]]
            model.mask_args = _mask_args(net, masks, start, start + x.shape[0])
            with torch.enable_grad():
                outputs = recorder.activations_and_grads(x)
                net.zero_grad(set_to_none=True)
                loss = sum(t(o) for t, o in zip(targets, outputs))
                loss.backward()
            acts = recorder.activations_and_grads.activations[0].numpy()
            grads = recorder.activations_and_grads.gradients[0].numpy()
            for m in methods:
                out[m].append(np.asarray(cams[m].get_cam_image(x, layer, targets, acts, grads, False),
                                         dtype=np.float32))
    finally:
        recorder.activations_and_grads.release()
        net.zero_grad(set_to_none=True)
    return {m: torch.from_numpy(np.concatenate(v)) for m, v in out.items()}


def fat_maps(net, stacks: torch.Tensor, class_index, normalisation: tuple, batch_size: int = 8,
             masks: torch.Tensor | None = None) -> torch.Tensor:
    """Fat attribution (:mod:`MDTextureLib.attribution`) of each stack's centre slice for ``class_index`` (one
    index, or one per slice), (Z, S, S) on the model window, float32, in logit units. ``normalisation``: the
    card's (mean, std)."""
    from ..attribution import fat_attribution

    per_slice = torch.as_tensor(_per_slice(class_index, stacks.shape[0]))
    net = net.eval()
    out = []
    for start in range(0, stacks.shape[0], batch_size):
        stop = start + batch_size
        mask = _mask_args(net, masks, start, stop)
        out.append(fat_attribution(net, stacks[start:stop], per_slice[start:stop], *normalisation,
                                   mask=mask[0] if mask else None))
    return torch.cat(out)


def random_maps(shape: tuple, seed: int) -> torch.Tensor:
    """Uniform noise (Z, h, w), seeded."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(shape, generator=g)


def to_native(maps_zhw: torch.Tensor, geometry: StackGeometry, body: np.ndarray | None = None,
              normalisation: str = "volume") -> np.ndarray:
    """ReLU → native grid → 0 outside ``body`` (when given) → divided by the maximum per slice or over the volume
    (``normalisation``, as ``inference.scale_heatmap``), (Z, rows, cols) in [0, 1]. With ``body`` and
    ``normalisation="slice"`` this is the heatmap ``classify_volume`` shows; the defaults are the rule before
    issue 12 (no body, volume maximum), kept so results stay comparable."""
    from ..inference import scale_heatmap

    native = maps_to_native(torch.as_tensor(maps_zhw).float().clamp_min(0), geometry).numpy()
    if body is not None:
        native = np.where(body, native, 0.0)
    slice_axis = 0 if geometry.orientation is None else int(geometry.orientation.axes[0])
    return scale_heatmap(native, normalisation, slice_axis).astype(np.float32)


def random_sign(image_zhw: torch.Tensor, seed: int) -> torch.Tensor:
    """``image`` (Z, S, S) times an i.i.d. sign (±1, each with probability ½) per pixel, seeded: the null of a
    gradient × input map whose signs carry no evidence (``ff-random-sign``)."""
    image = torch.as_tensor(image_zhw).float()
    g = torch.Generator().manual_seed(int(seed))
    return image * (torch.randint(0, 2, tuple(image.shape), generator=g) * 2 - 1).float()


def pooled_to_map_grid(image_zhw: torch.Tensor, map_hw: tuple) -> torch.Tensor:
    """An image on the model window (Z, S, S) — the FF image (the ceiling), or a pixel-sharp fat attribution —
    average-pooled to a map's resolution (Z, h, w)."""
    image = torch.as_tensor(image_zhw).float()[:, None]
    return torch.nn.functional.adaptive_avg_pool2d(image, tuple(int(v) for v in map_hw))[:, 0]


def scan_heatmaps(net, stacks: torch.Tensor, geometry: StackGeometry, class_index: int, ff_native: np.ndarray,
                  methods=METHODS, seed: int = 0, masks: torch.Tensor | None = None, body: np.ndarray | None = None,
                  normalisation: str = "volume") -> tuple[dict, torch.Tensor]:
    """Every requested method's native heatmap for one scan (the map of ``class_index``), plus the logits.
    ``masks``: the body beside each stack (leg-pooled networks); ``body``, ``normalisation``: see ``to_native``.
"""
    logits, own = icam_maps(net, stacks, class_index, masks=masks)
    out = {}
    if "icam" in methods:
        out["icam"] = to_native(own, geometry, body, normalisation)
    grad = [m for m in methods if m in GRADIENT_METHODS]
    if grad:
        for m, raw in gradient_maps(net, stacks, class_index, grad, masks=masks).items():
            out[m] = to_native(raw, geometry, body, normalisation)
    if "random" in methods:
        out["random"] = to_native(random_maps(tuple(own.shape), seed), geometry, body, normalisation)
    if "ff" in methods:
        out["ff"] = np.clip(np.asarray(ff_native, dtype=np.float32), 0, 1)
    return out, logits
