"""Fat attribution: which fat in a slice moved the network towards a class.

The ICAM of the paper (``network.class_maps``) is the class evidence at each cell of a deep feature map. On the
texture phantom it tells *which muscles* carry the disease (texture score vs true involvement, Spearman 0.73) but
not *where inside a muscle*: against the phantom's involvement masks its pixel AUC inside the muscles is at chance
(0.52), with small receptive fields and leg pooling alike (README, *Experiments*). Disease here is fat replacing
muscle, so the question a reader of the map asks is "which of this fat made the network say DMD?". Gradient ×
input against a fat-free reference answers it to first order (Shrikumar et al. 2016; Ancona et al. 2018):

    A^c(x, y) = ∂S^c / ∂u(x, y) · (u(x, y) − u_0),     u = (FF − mean) / std,   u_0 = (0 − mean) / std

where u is the normalised FF of the stack's own slice (channel 1: the stack's centre, the slice whose
probability and map are shown) and u_0 the same with no fat at all. Summed over the slice, A^c is the first-order
change of the slice's logit S^c between a fat-free slice and this one; a pixel with no fat gets exactly 0, a fatty
pixel gets the share of the logit its fat carries (negative when its fat argues against the class). Units: logit
units per pixel. The cost is one backward pass through the trunk per batch (about twice the forward pass).

What it is not: a map of the network's internal evidence wherever it lies (that is the ICAM). By construction it
can only light fat, so it is compared with the FF image itself in every localisation table — and with its null,
the FF image with a coin-flip sign per pixel: after ReLU any sign pattern keeps half the fat at full value, so a
pixel AUC above ½ shows nothing by itself. Measured on the phantom (README, *Experiments*), the shipped networks'
fat maps do not beat that null (in-muscle AUC 0.67–0.77 against 0.80) and their signs on the involved tissue are a
coin flip (48–53 % positive): first-order gradients of these ReLU networks change sign from pixel to pixel. The map
shows which fat the network is sensitive to, not which fat is disease; ``constants.FAT_MAP_CAVEAT`` says so
wherever it is shown.
"""

from __future__ import annotations

import torch

from .precision import forward_with_maps

#: The channel of a 3-slice stack that holds the slice the map is drawn on (k−1, k, k+1).
CENTRE_CHANNEL = 1

METHOD = ("fat attribution: gradient of the class logit with respect to the slice's normalised FF times its "
          "difference from a fat-free slice, ∂S^c/∂u · (u − u_0) (gradient × input, Shrikumar et al. 2016), "
          "logit units per pixel, computed on the model window")


def fat_free_level(mean: float, std: float) -> torch.Tensor:
    """The normalised input u_0 of FF = 0 (a fat-free pixel) under the card's normalisation, computed in float32
    exactly as the pipeline normalises FF, so that a fat-free pixel's u − u_0 is exactly 0."""
    return (torch.zeros((), dtype=torch.float32) - mean) / std


def fat_attribution(net, stacks: torch.Tensor, class_index: torch.Tensor | None, mean: float, std: float,
                    precision: str = "fp32", mask: torch.Tensor | None = None) -> torch.Tensor:
    """A^c of each stack's centre slice, float32 on the model window: for the class ``class_index[b]`` of each
    stack, (B, H, W); with ``class_index`` None, for every class, (B, C, H, W) (one backward pass per class).

    ``stacks`` (B, 3, H, W) normalised as the card says (``mean``, ``std``), ``mask`` (B, 1, H, W) the body
    (leg-pooled networks); ``precision`` as :func:`precision.forward_with_maps` (the trunk may run in bfloat16; the
    map is float32). Works on inference tensors: the inputs are copied into ordinary ones first.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x = stacks.detach().clone().requires_grad_(True)
        m = None if mask is None else mask.detach().clone()
        logits = forward_with_maps(net, x, precision, m)[0].float()
        excess = x.detach()[:, CENTRE_CHANNEL].float() - fat_free_level(mean, std)
        if class_index is not None:
            chosen = logits.gather(1, class_index.to(logits.device).long().view(-1, 1)).sum()
            return _centre_gradient(chosen, x) * excess
        n = logits.shape[1]
        return torch.stack([_centre_gradient(logits[:, c].sum(), x, retain=c < n - 1) * excess for c in range(n)],
                           dim=1)


def _centre_gradient(total: torch.Tensor, x: torch.Tensor, retain: bool = False) -> torch.Tensor:
    """∂ total / ∂ x for the centre channel, float32 (B, H, W). Slices are independent, so the gradient of the sum
    over the batch is each slice's own gradient."""
    (grad,) = torch.autograd.grad(total, x, retain_graph=retain)
    return grad[:, CENTRE_CHANNEL].float().detach()
