"""Classify a Dixon volume: canonical orientation → legs → stacks → one batched ICAM pass → per-leg
probabilities, verdicts and one heatmap volume on the input grid.

Every leg is shown to the network as the model card's canonical leg (``orientation``: LPS axis order, a right calf;
left legs mirrored in x), each in its own window centred on it, with the other leg blanked (FF 0, as air). The maps
go back exactly: mirror and window by the inverse affine, axis order by the inverse permutation.

Calibrated models (card keys ``calibration`` / ``unfamiliar``, see :mod:`.calibration`) divide every logit by the
card's temperature before the softmax, and score each leg's pooled features against the training scans; a leg
above the card's threshold gets a warning. Older models give raw probabilities and no score, and say so.

Two legs, one verdict: the top-level verdict, probabilities and per-slice probabilities are those of the MORE
ABNORMAL leg (the lower probability of ``normal``); when the legs' verdicts differ a warning says so. Each leg's own
verdict is in ``legs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import calibration as cal
from .attribution import METHOD as FAT_METHOD
from .attribution import fat_attribution
from .constants import CLASSES, DEFAULT_HEATMAP_NORMALISATION, FAT_MAP_CAVEAT, HEATMAP_NORMALISATIONS
from .errors import InputError
from .io import DixonSeries, Grid
from .legs import Leg, column_mask, find_legs
from .modelcard import verdict_notes
from .modelfile import Model
from .orientation import Orientation, model_leg_side, orientation_for
from .precision import forward_with_maps, inference_net, resolve_precision
from .stacks import StackGeometry, make_stacks, maps_to_native, mask_window, resample_slices, window_for

VERDICT_RULE = ("one leg: its verdict; two legs: the verdict, probabilities and per-slice probabilities of the more "
                "abnormal leg (lower probability of normal), with a warning when the legs' verdicts differ")


def pick_device(device: str = "auto") -> torch.device:
    """'auto' → CUDA when available else CPU; 'cuda' without a GPU is an InputError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available")
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def _rounded(probabilities) -> dict:
    return {c: round(float(p), 6) for c, p in zip(CLASSES, probabilities)}


@dataclass
class LegResult:
    """One leg's classification. Its maps are on its own model window; ``geometry`` takes them home exactly."""

    side: str  # "right" or "left"
    side_source: str  # how the side was known: position, anatomy, DICOM laterality, --side, assumed
    probabilities: np.ndarray  # (3,)
    slice_probabilities: np.ndarray  # (Z, 3)
    class_maps: np.ndarray  # (Z, 3, h, w)
    geometry: StackGeometry
    columns: tuple | None  # canonical columns [x0, x1) it owns; None: the whole image
    target_class: str
    warnings: list = field(default_factory=list)
    pooled: np.ndarray | None = None  # (Z, D) float32: the feature vector the linear layer saw, per slice
    unfamiliar: dict | None = None  # {score, threshold, flagged}; None when the model has no unfamiliar statistics
    fat_maps: np.ndarray | None = None  # (Z, 3, S, S) fat attribution per class on the window (``fat_map=True``)

    @property
    def verdict(self) -> str:
        return CLASSES[int(np.argmax(self.probabilities))]

    def summary(self) -> dict:
        return {"side": self.side, "side_from": self.side_source, "verdict": self.verdict,
                "probabilities": _rounded(self.probabilities), "target_class": self.target_class,
                "unfamiliar": self.unfamiliar,
                "mirrored": bool(self.geometry.mirror_x),
                "per_slice": [{"slice": k, **_rounded(row)} for k, row in enumerate(self.slice_probabilities)],
                "warnings": list(self.warnings)}


@dataclass
class VolumeResult:
    """What classifying one volume gives. Maps are kept on the model grid so any class can be projected later.

    ``probabilities``, ``slice_probabilities``, ``class_maps`` and ``geometry`` are those of the leg the verdict
    comes from (see VERDICT_RULE); ``legs`` holds every leg; heatmaps cover every leg.
    """

    probabilities: np.ndarray  # (3,) volume-level, mean of slice probabilities
    slice_probabilities: np.ndarray  # (Z, 3)
    class_maps: np.ndarray  # (Z, 3, h, w) raw ICAM per class on the model window
    geometry: StackGeometry
    grid: Grid
    target_class: str
    model_name: str
    model_sha256: str
    ff_unit: str
    warnings: list = field(default_factory=list)
    legs: list = field(default_factory=list)  # [LegResult], right leg first
    orientation: Orientation | None = None
    precision: str = "fp32"  # what the network ran in (fp32 or bf16)
    body: np.ndarray | None = None  # (z, y, x) bool on the input grid: the body; maps are 0 outside it
    pooling: str = "image"  # the model's pooling: "image" (GAP over the window) or "leg" (over the body mask)
    normalisation: str = DEFAULT_HEATMAP_NORMALISATION  # HEATMAP_NORMALISATIONS
    pooled: np.ndarray | None = None  # (Z, D) the verdict leg's pooled feature vectors
    temperature: float | None = None  # the card's calibration temperature; None: probabilities uncalibrated
    fat_maps: np.ndarray | None = None  # (Z, 3, S, S) the verdict leg's fat attribution (``fat_map=True``)
    _heatmaps: dict = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        return CLASSES[int(np.argmax(self.probabilities))]

    @property
    def verdict_leg(self) -> LegResult | None:
        """The leg the verdict comes from (VERDICT_RULE): the more abnormal one, i.e. the lower P(normal)."""
        return more_abnormal(self.legs) if self.legs else None

    @property
    def heatmap(self) -> np.ndarray:
        """The target class's heatmap on the FF grid, (z, y, x) float32 in [0, 1]; with two legs each leg shows its
        own target class (its verdict's, unless a target class was asked for)."""
        return self._target_heatmap("relu", "icam")

    @property
    def heatmap_signed(self) -> np.ndarray:
        """Like ``heatmap`` but the raw map in logit units (``signed_heatmap_for``), 0 outside the body."""
        return self._target_heatmap("signed", "icam")

    @property
    def fat_heatmap(self) -> np.ndarray:
        """Fat attribution of the target class(es) on the FF grid, scaled like ``heatmap`` (ReLU, 0 outside the
        body, per slice or volume in the leg); InputError when it was not computed (``fat_map=True``)."""
        return self._target_heatmap("relu", "fat")

    def fat_heatmap_for(self, class_name: str, normalisation: str | None = None) -> np.ndarray:
        """Fat attribution of ``class_name`` on the FF grid, scaled like ``heatmap_for``."""
        return self._heatmap(class_name, "relu", normalisation or self.normalisation, "fat")

    def heatmap_for(self, class_name: str, normalisation: str | None = None) -> np.ndarray:
        """ICAM of ``class_name`` on the FF grid, (z, y, x) float32 in [0, 1]: ReLU, back on the FF grid, 0 outside
        the body (and outside the leg's own part of the image), divided by its maximum inside the leg per slice
        (``normalisation`` "slice", the default) or over the volume ("volume"); with two legs each leg's part is
        scaled on its own (each leg reads as it would alone)."""
        return self._heatmap(class_name, "relu", normalisation or self.normalisation)

    def signed_heatmap_for(self, class_name: str) -> np.ndarray:
        """The raw class map M^c of ``class_name`` on the FF grid, in logit units (no ReLU, no scaling), 0 outside
        the body. For a leg-pooled model its mean over the leg on the model window is the slice's logit minus the
        bias; the resampling onto the FF grid keeps that only approximately (bilinear, partial pixels)."""
        return self._heatmap(class_name, "signed", None)

    def _target_heatmap(self, kind: str, source: str) -> np.ndarray:
        """The map of the target class; with two legs each leg shows its own target class."""
        if not self.legs:
            normalisation = self.normalisation if kind == "relu" else None
            return self._heatmap(self.target_class, kind, normalisation, source)
        return self._legs_heatmap(tuple(leg.target_class for leg in self.legs), kind, None, source)

    def _heatmap(self, class_name: str, kind: str, normalisation: str | None, source: str = "icam") -> np.ndarray:
        if class_name not in CLASSES:
            raise InputError(f"unknown class {class_name!r}; choose one of {', '.join(CLASSES)}")
        if normalisation is not None:
            check_normalisation(normalisation)
        if not self.legs:
            return self._map_home(_source_maps(self, source), self.geometry, class_name, self.body, kind,
                                  normalisation)
        return self._legs_heatmap((class_name,) * len(self.legs), kind, normalisation, source)

    def _legs_heatmap(self, classes: tuple, kind: str = "relu", normalisation: str | None = None,
                      source: str = "icam") -> np.ndarray:
        normalisation = normalisation or (self.normalisation if kind == "relu" else None)
        key = (classes, kind, normalisation, source)
        if key not in self._heatmaps:
            total = None
            for leg, c in zip(self.legs, classes):
                region = self.leg_region(leg)
                if self.body is not None:
                    region = self.body if region is None else region & self.body
                part = self._map_home(_source_maps(leg, source), leg.geometry, c, region, kind, normalisation)
                total = part if total is None else total + part
            self._heatmaps[key] = total
        return self._heatmaps[key]

    @staticmethod
    def _map_home(class_maps: np.ndarray, geometry: StackGeometry, class_name: str, region: np.ndarray | None,
                  kind: str = "relu", normalisation: str | None = DEFAULT_HEATMAP_NORMALISATION) -> np.ndarray:
        maps = torch.from_numpy(np.ascontiguousarray(class_maps[:, CLASSES.index(class_name)]))
        if kind == "relu":
            maps = maps.clamp_min(0)
        native = maps_to_native(maps, geometry, _region_box(region, geometry)).numpy()
        if region is not None:
            native = np.where(region, native, 0.0)
        if kind == "signed":
            return native.astype(np.float32)
        return scale_heatmap(native, normalisation, _slice_axis(geometry)).astype(np.float32)

    def leg_region(self, leg: LegResult) -> np.ndarray | None:
        """Boolean (z, y, x) mask on the input grid of the part of the image a leg owns (None: all of it)."""
        if leg.columns is None or self.orientation is None:
            return None
        canonical = column_mask(leg.columns, self.orientation.shape_zyx).astype(np.float32)
        return self.orientation.from_canonical(canonical) > 0.5

    def summary(self) -> dict:
        """JSON-ready verdict, probabilities and per-slice probabilities."""
        return {
            "verdict": self.verdict,
            "probabilities": _rounded(self.probabilities),
            "calibrated": self.temperature is not None,
            "temperature": self.temperature,
            "probabilities_rule": ("mean over slices of softmax(logits / temperature), temperature fitted on held-out "
                                   "training subjects" if self.temperature is not None else
                                   "mean over slices of softmax(logits); this model carries no calibration"),
            "unfamiliar": self.verdict_leg.unfamiliar if self.legs else None,
            "target_class": self.target_class,
            "per_slice": [{"slice": k, **_rounded(row)} for k, row in enumerate(self.slice_probabilities)],
            "n_slices": int(self.slice_probabilities.shape[0]),
            "ff_unit_detected": self.ff_unit,
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "heatmap": {"method": "ICAM (Cai et al. Eq. 2), ReLU, 0 outside the body, scaled to [0, 1] by its "
                                  + ("maximum inside the leg on each axial slice" if self.normalisation == "slice"
                                     else "maximum inside the leg over the volume")
                                  + ("; with two legs each leg's part shows its own verdict's class (unless a target "
                                     "class was asked for) scaled on its own" if len(self.legs) > 1 else ""),
                        "normalisation": self.normalisation,
                        "pooling": self.pooling,
                        "signed": "heatmap_signed.nrrd: the same map before ReLU and scaling, logit units, 0 "
                                  "outside the body",
                        "map_size": list(self.class_maps.shape[-2:])},
            "fat_map": None if self.fat_maps is None else {
                "file": "fat_map.nrrd", "method": FAT_METHOD,
                "shown": "ReLU, 0 outside the body, scaled like the heatmap; the class of each leg's heatmap",
                "use": "which fat the network's class logit is sensitive to, slice by slice; the texture scores come "
                       "from the ICAM heatmap, not from this map",
                "caveat": FAT_MAP_CAVEAT},
            "precision": self.precision,
            "warnings": list(self.warnings),
            "legs": [leg.summary() for leg in self.legs],
            "verdict_rule": VERDICT_RULE,
            "orientation": self.orientation.describe() if self.orientation is not None else None,
        }


def _source_maps(result, source: str) -> np.ndarray:
    """The per-class maps a heatmap of ``source`` is made from ("icam": the class maps, "fat": the fat attribution)
    of a VolumeResult or LegResult; InputError when the fat attribution was not computed."""
    if source != "fat":
        return result.class_maps
    if result.fat_maps is None:
        raise InputError("no fat attribution was computed for this result (classify with fat_map=True)")
    return result.fat_maps


def _region_box(region: np.ndarray | None, geometry: StackGeometry) -> tuple | None:
    """(rows, columns) slices of the canonical slice that hold every voxel of ``region`` (input order): the only
    pixels a heatmap kept to ``region`` needs. None (the whole slice) without a region or when it is empty."""
    if region is None:
        return None
    # In-plane extent only: the reordering without slice averaging tells which canonical rows and columns it spans.
    canonical = region if geometry.orientation is None else geometry.orientation.reordering().to_canonical(region)
    plane = canonical.any(axis=0)
    if not plane.any():
        return None
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    return slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)


def check_normalisation(normalisation: str) -> None:
    """InputError unless ``normalisation`` is one of HEATMAP_NORMALISATIONS."""
    if normalisation not in HEATMAP_NORMALISATIONS:
        raise InputError(f"unknown heatmap normalisation {normalisation!r}; choose one of "
                         f"{', '.join(HEATMAP_NORMALISATIONS)}")


def _slice_axis(geometry: StackGeometry) -> int:
    """The axis of the input array that runs across axial slices (0 unless the input is stored non-axially)."""
    return 0 if geometry.orientation is None else int(geometry.orientation.axes[0])


def scale_heatmap(native: np.ndarray, normalisation: str, slice_axis: int = 0) -> np.ndarray:
    """A non-negative map (z, y, x) divided by its maximum per axial slice (``slice``) or over the volume
    (``volume``); slices (or volumes) whose maximum is 0 stay 0."""
    if normalisation == "volume":
        peak = float(native.max())
        return native / peak if peak > 0 else native
    other = tuple(a for a in range(native.ndim) if a != slice_axis)
    peak = native.max(axis=other, keepdims=True)
    return np.divide(native, peak, out=np.zeros_like(native), where=peak > 0)


def more_abnormal(legs: list) -> LegResult:
    """The leg with the lowest probability of ``normal`` (the first one on a tie)."""
    return min(legs, key=lambda leg: float(leg.probabilities[CLASSES.index("normal")]))


def model_inputs(series: DixonSeries, model: Model, device: torch.device | str = "cpu"
                 ) -> tuple[torch.Tensor, StackGeometry]:
    """The network's input for every slice, (legs·Z, 3, S, S) as ``classify_volume`` builds it, and the first leg's
    window geometry (the only one for a one-leg image)."""
    stacks, _, geometries, _, _ = leg_inputs(series, model, device)
    return stacks, geometries[0]


def leg_inputs(series: DixonSeries, model: Model, device: torch.device | str = "cpu", side: str | None = None,
               laterality: str | None = None, notes: list | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, list[StackGeometry], list[Leg], Orientation]:
    """The network's input for every slice of every leg, (legs·Z, 3, S, S) normalised as the card says (legs one
    after the other, right leg first), the body mask beside each stack (legs·Z, 1, S, S) in [0, 1] (the leg's
    own part of the body, :func:`stacks.mask_window`), each leg's window geometry, the legs, and the orientation.

    The stacks are in channels-last memory order, which the CPU convolution kernels run about 30 % faster on.
    """
    notes = [] if notes is None else notes
    orient = orientation_for(series, model.card, notes)
    ff = orient.to_canonical(series.ff)
    body = orient.to_canonical(series.body_mask().astype(np.float32)) > 0.5
    magnitude = None
    if series.water is not None and series.fat is not None:
        magnitude = orient.to_canonical(np.abs(series.water) + np.abs(series.fat))
    legs = find_legs(ff, body, orient.spacing_xyz_mm, side=side, laterality=laterality, magnitude_zyx=magnitude)
    model_side = model_leg_side(model.card)
    mean, std = model.normalisation
    stacks, masks, geometries = [], [], []
    for leg in legs:
        region = column_mask(leg.columns, ff.shape) if leg.columns is not None else None
        leg_body = body if region is None else body & region
        geometry = window_for(series, model.pixel_mm, model.size_px, orientation=orient, leg_mask_zyx=leg_body,
                              mirror_x=leg.side != model_side)
        leg_ff = np.ascontiguousarray(ff if region is None else np.where(region, ff, 0.0), dtype=np.float32)
        slices = (resample_slices(leg_ff, geometry, device, canonical=True) - mean) / std
        stacks.append(make_stacks(slices))
        masks.append(mask_window(leg_body, geometry, device, canonical=True))
        geometries.append(geometry)
    batch = torch.cat(stacks) if len(stacks) > 1 else stacks[0]
    mask = torch.cat(masks) if len(masks) > 1 else masks[0]
    return (batch.contiguous(memory_format=torch.channels_last), mask.contiguous(memory_format=torch.channels_last),
            geometries, legs, orient)


def classify_volume(series: DixonSeries, model: Model, device: str | torch.device = "auto",
                    target_class: str | None = None, batch_size: int = 16,
                    progress: Callable[[int, int], None] | None = None,
                    cancel: Callable[[], bool] | None = None, side: str | None = None,
                    laterality: str | None = None, precision: str = "auto",
                    normalisation: str = DEFAULT_HEATMAP_NORMALISATION, fat_map: bool = False) -> VolumeResult:
    """Classify every slice of every leg of ``series`` in batches and keep the class maps.

    ``progress(done, total)`` is called with 0 before the first batch (so a progress bar starts its clock with the
    work) and after each batch; ``cancel()`` returning True stops with InterruptedError (the Slicer module's Cancel
    button). ``side`` ('left'/'right'): the user's word for a one-leg image whose anatomy does not tell;
    ``laterality``: the DICOM laterality ('R'/'L') when known. ``precision`` (auto, fp32, bf16) is resolved for the
    device by :mod:`.precision`. ``normalisation``: how heatmaps are scaled (HEATMAP_NORMALISATIONS);
    ``fat_map``: also compute the fat attribution of every class (:mod:`.attribution`; one backward pass per
    class added to each batch), for ``fat_heatmap``.
    """
    check_normalisation(normalisation)
    if target_class is not None and target_class not in CLASSES:
        raise InputError(f"unknown target class {target_class!r}; choose one of {', '.join(CLASSES)}")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    notes = list(series.warnings)
    precision = resolve_precision(precision, dev)
    net = inference_net(model.net, dev)  # batch norm folded, channels-last: a cached copy
    with torch.inference_mode():
        stacks, body_windows, geometries, legs, orient = leg_inputs(series, model, dev, side, laterality, notes)
        n = stacks.shape[0]
        if progress is not None:
            progress(0, n)
        logits, maps, pooled, fat = [], [], [], []
        mean, std = model.normalisation
        for start in range(0, n, batch_size):
            if cancel is not None and cancel():
                raise InterruptedError("classification cancelled")
            batch, batch_mask = stacks[start:start + batch_size], body_windows[start:start + batch_size]
            lg, mp, pl = forward_with_maps(net, batch, precision, batch_mask)
            logits.append(lg)
            maps.append(mp)
            pooled.append(pl)
            if fat_map:
                fat.append(fat_attribution(net, batch, None, mean, std, precision, batch_mask))
            if progress is not None:
                progress(min(start + batch_size, n), n)
        logits_t = torch.cat(logits).float()
        temperature = model.temperature
        slice_probs = torch.softmax(logits_t / (temperature or 1.0), dim=1).cpu().numpy()
        class_maps = torch.cat(maps).float().cpu().numpy()
        fat_maps = torch.cat(fat).cpu().numpy() if fat else None
        pooled_np = torch.cat(pooled).cpu().numpy() if all(p is not None for p in pooled) else None
        empty = model.net.empty_mask(body_windows, class_maps.shape[-2:]) if hasattr(model.net, "empty_mask") \
            else None
    pooling = getattr(model.net, "pooling", "image")
    z = n // len(legs)
    results = []
    for i, (leg, geometry) in enumerate(zip(legs, geometries)):
        probs = slice_probs[i * z:(i + 1) * z].mean(axis=0)
        results.append(LegResult(side=leg.side, side_source=leg.side_source, probabilities=probs,
                                 slice_probabilities=slice_probs[i * z:(i + 1) * z],
                                 class_maps=class_maps[i * z:(i + 1) * z], geometry=geometry, columns=leg.columns,
                                 target_class=target_class or CLASSES[int(np.argmax(probs))],
                                 warnings=list(leg.warnings) + _empty_window_warning(empty, i, z),
                                 pooled=None if pooled_np is None else pooled_np[i * z:(i + 1) * z],
                                 unfamiliar=leg_unfamiliar(model, pooled_np, i * z, (i + 1) * z),
                                 fat_maps=None if fat_maps is None else fat_maps[i * z:(i + 1) * z]))
    lead = more_abnormal(results)
    for r in results:
        if r.unfamiliar is not None and r.unfamiliar["flagged"]:
            r.warnings.append(unfamiliar_warning(r.unfamiliar, (model.card.get("unfamiliar") or {}).get("percentile")))
        notes += [(f"{r.side} leg: {w}" if len(results) > 1 else w) for w in r.warnings]
    if len({r.verdict for r in results}) > 1:
        notes.append("the legs disagree: " + ", ".join(
            f"{r.side} leg {r.verdict} ({float(r.probabilities.max()):.2f})" for r in results)
            + f"; the verdict is the more abnormal leg's ({lead.side})")
    notes += verdict_notes(model.card, lead.verdict)  # what this model was measured to miss, from its card
    if not model.trained:
        notes.append(f"model {model.name} is untrained (random weights): the verdict means nothing")
    return VolumeResult(probabilities=lead.probabilities, slice_probabilities=lead.slice_probabilities,
                        class_maps=lead.class_maps, geometry=lead.geometry, grid=series.grid,
                        target_class=target_class or lead.verdict, model_name=model.name,
                        model_sha256=model.sha256, ff_unit=series.ff_unit, warnings=notes, legs=results,
                        orientation=orient, precision=precision, body=series.body_mask(), pooling=pooling,
                        normalisation=normalisation, pooled=lead.pooled, temperature=temperature,
                        fat_maps=lead.fat_maps)


def _empty_window_warning(empty: torch.Tensor | None, leg_index: int, z: int) -> list:
    """A warning when a leg-pooled model saw slices with no body in the window (pooled over the blank window)."""
    if empty is None:
        return []
    slices = [k for k in range(z) if bool(empty[leg_index * z + k])]
    if not slices:
        return []
    return [f"{len(slices)} slice(s) ({', '.join(map(str, slices[:8]))}{', …' if len(slices) > 8 else ''}) have "
            "no body in the model window: their probabilities come from a blank input and mean nothing"]


def leg_unfamiliar(model: Model, pooled: np.ndarray | None, start: int, stop: int) -> dict | None:
    """``{score, threshold, flagged}`` of one leg (its slices ``start:stop``), or None when the model has no
    unfamiliar statistics (or the network gives no pooled features)."""
    stats = model.unfamiliar_stats
    if stats is None or pooled is None:
        return None
    score = float(cal.unfamiliar_scores(pooled[start:stop].mean(axis=0), stats)[0])
    return {"score": round(score, 4), "threshold": round(stats["threshold"], 4),
            "flagged": bool(score > stats["threshold"])}


def unfamiliar_warning(unfamiliar: dict, percentile: float | None = None) -> str:
    below = f" that {percentile:g} % of held-out training scans stay below" if percentile is not None else ""
    return (f"unfamiliar input: the network's features lie at distance {unfamiliar['score']:.1f} (Mahalanobis) from "
            f"the training scans, above the threshold {unfamiliar['threshold']:.1f}{below}; the scan is unlike the "
            "data the model was trained on, so the verdict, probabilities and map may not apply")
