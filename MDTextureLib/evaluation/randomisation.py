"""Model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

*Cascading* randomisation: starting from the trained network, re-initialise the classifier (``fc``), then the
residual blocks from the top down (``layer4.1``, ``layer4.0``, ``layer3.1``, ``layer3.0``, … as far as the network
goes and ``depth`` asks), keeping every earlier re-initialisation, and recompute the maps after each step. Each
re-initialisation calls the module's own ``reset_parameters`` (PyTorch's default initialisation; batch norm also
resets its running statistics) after ``torch.manual_seed(seed + step)``. A map that explains the model must change:
its Spearman rank correlation with the trained model's map must drop. A map that stays the same is explaining the
input (edges, fat), not the model.

Similarity: Spearman's ρ (``scipy.stats.spearmanr``) between the trained and randomised map of the same slice, on
the raw signed map and on the displayed map (ReLU), per slice, then averaged over slices (slices where either map
is constant are skipped and counted).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy import stats


def cascade_steps(net, depth: int | None = None) -> list[tuple[str, list[torch.nn.Module]]]:
    """[(name, modules)] top-down: fc, then each residual block of the deepest layer downwards."""
    steps = [("fc", [net.fc])]
    for layer_name in reversed(net.layer_names):
        layer = getattr(net, layer_name)
        for b in reversed(range(len(layer))):
            steps.append((f"{layer_name}.{b}", [layer[b]]))
    return steps if depth is None else steps[:depth]


def reinitialise(modules, seed: int) -> None:
    """Reset every submodule that has ``reset_parameters`` (conv, linear, batch norm), seeded."""
    torch.manual_seed(int(seed))
    for module in modules:
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


def spearman(a, b) -> float:
    """Spearman's ρ between two maps (flattened); NaN when either is constant."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def per_slice_spearman(maps_a, maps_b) -> tuple[float, int]:
    """Mean ρ over slices of two (Z, h, w) map stacks, and the number of slices where ρ was defined."""
    rhos = [spearman(a, b) for a, b in zip(np.asarray(maps_a), np.asarray(maps_b))]
    valid = [r for r in rhos if np.isfinite(r)]
    return (float(np.mean(valid)) if valid else float("nan")), len(valid)


def cascading_randomisation(net, stacks: torch.Tensor, class_index: int, map_functions: dict,
                            depth: int | None = None, seed: int = 1000) -> dict:
    """Run the cascade on a copy of ``net``.

    ``map_functions`` maps a method name to ``f(net, stacks, class_index) -> (Z, h, w)`` raw maps on the model
    grid. Returns {"steps": [...names], "methods": {method: {"signed": [ρ per step], "relu": [...],
    "valid_slices": [...]}}}; step 0 is the trained network itself (ρ = 1 by construction).
    """
    work = copy.deepcopy(net).eval()
    reference = {m: np.asarray(f(work, stacks, class_index), dtype=np.float64) for m, f in map_functions.items()}
    names = ["trained"]
    result = {m: {"signed": [1.0], "relu": [1.0], "valid_slices": [int(stacks.shape[0])]} for m in map_functions}
    for k, (name, modules) in enumerate(cascade_steps(work, depth), start=1):
        reinitialise(modules, seed + k)
        work.eval()
        names.append(name)
        for m, f in map_functions.items():
            current = np.asarray(f(work, stacks, class_index), dtype=np.float64)
            signed, n_signed = per_slice_spearman(reference[m], current)
            relu, _ = per_slice_spearman(np.maximum(reference[m], 0), np.maximum(current, 0))
            result[m]["signed"].append(signed)
            result[m]["relu"].append(relu)
            result[m]["valid_slices"].append(n_signed)
    return {"steps": names, "methods": result}
