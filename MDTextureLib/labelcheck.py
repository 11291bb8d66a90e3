"""Does a segmentation lie on this image? A plausibility check of muscle labels against the body mask.

Calf muscles lie under skin and subcutaneous fat: a muscle label drawn on this scan has (almost) no voxel in air.
Labels shifted by a few centimetres, mirrored, drawn on another scan or on the other leg put a large part of their
voxels outside the body. Measured on 30 phantoms (DMD, CMD, normal, 3 slices each; body mask FF > 0 with holes
filled): labels as drawn 0 % outside the body; shifted 30 mm in any of four in-plane directions at least 22 % of
all labelled voxels (13 % with the looser W+F > 10 % of p99 mask), single segments up to 99 %; with the leg 20 mm
off the image centre, labels mirrored about the image centre at least 13 % overall and 26 % for the worst segment.
Hence two thresholds, with room for hand-drawn outlines that touch the skin: a warning when at least 5 % of all
labelled voxels, or at least 10 % of one segment's voxels, lie outside the body.

Not caught: labels mirrored about the leg's own centre (they stay inside the leg: 0-11 % outside, 8 of 30 phantoms
flagged) and labels shifted along the leg (other slices of the same leg).

A segment that covers most of the leg's cross-section is no single calf muscle: a binary muscle mask (every muscle
value 1, read as "TA" by the 1-7 convention) or a whole-leg mask. Measured on the phantom (``python -m
MDTextureLib.labelcheck``, 30 scans, the checks' own body mask): the largest segment, the soleus, covers at most
25 % of its leg's cross-section on the slices it is drawn on (MG 12 %, TA 9 %), all seven muscles together 33 % and
more (median 45 %); a segment above ``MAX_SEGMENT_SHARE_OF_LEG`` (40 %) gets a warning, which a one-value mask of all
seven earns on 73 % of the phantom scans; a segmentation of the value 1 alone (a binary mask, read as TA) is held to
``LONE_SEGMENT_MAX_SHARE`` (20 %, twice the phantom's largest TA), which every such mask of the 30 exceeds and a TA
drawn alone does not.

Not used, on purpose: the share of labelled voxels in fat-like tissue (FF ≥ 0.9). Fat-replaced muscle in
advanced DMD or CMD reaches it: correctly placed labels of a CMD phantom had 17 % of their voxels at FF ≥ 0.9,
as many as the same labels shifted by 30 mm (5-22 %). A fat test would cry wolf on exactly the patients the tool
is for.
"""

from __future__ import annotations

import numpy as np

#: Warn when at least this share of all labelled voxels lies outside the body.
OUTSIDE_BODY_SHARE_ALL = 0.05
#: ... or when at least this share of one segment's voxels does.
OUTSIDE_BODY_SHARE_SEGMENT = 0.10
#: Warn when one segment covers more than this share of its leg's cross-section (on the slices it is drawn on).
MAX_SEGMENT_SHARE_OF_LEG = 0.40
#: ... and a segmentation of one segment, value 1 (TA by the 1-7 convention: at most 9 % on the phantom), above this.
LONE_SEGMENT_MAX_SHARE = 0.20


def outside_body_shares(layers: np.ndarray, body_mask: np.ndarray) -> tuple[dict, float]:
    """({label value: share of its voxels outside ``body_mask``}, share of all labelled voxels outside it).

    ``layers`` is a (z, y, x) labelmap or Slicer's layers (L, z, y, x) with label values unique across layers;
    a voxel in two segments counts once in the overall share.
    """
    layers = layers[None] if layers.ndim == 3 else layers
    if layers.shape[1:] != body_mask.shape:
        raise ValueError(f"labels {layers.shape} and body mask {body_mask.shape} must share one grid")
    n_values = int(layers.max()) + 1
    total, outside = np.zeros(n_values), np.zeros(n_values)
    air = ~body_mask.ravel()
    for layer in layers:
        flat = layer.ravel()
        at = np.flatnonzero(flat)  # the labelled voxels only: a segmentation covers a small part of the image
        values = flat[at]
        total += np.bincount(values, minlength=n_values)
        outside += np.bincount(values[air[at]], minlength=n_values)
    labelled = (layers > 0).any(axis=0).ravel()
    n_labelled = int(labelled.sum())
    per_value = {v: float(outside[v] / total[v]) for v in range(1, n_values) if total[v] > 0}
    return per_value, (float((labelled & air).sum() / n_labelled) if n_labelled else 0.0)


def label_warnings(layers: np.ndarray, names: dict, body_mask: np.ndarray) -> list[str]:
    """Warnings (one line each, with numbers) when the labels do not lie on the body of this image."""
    per_value, overall = outside_body_shares(layers, body_mask)
    bad = sorted(((share, v) for v, share in per_value.items() if share >= OUTSIDE_BODY_SHARE_SEGMENT), reverse=True)
    if overall < OUTSIDE_BODY_SHARE_ALL and not bad:
        return []
    listed = ", ".join(f"{names.get(v, f'label {v}')} {share:.0%}" for share, v in bad)
    return [f"segmentation does not fit this image: {overall:.0%} of its labelled voxels lie outside the body"
            + (f" (per segment: {listed})" if listed else "")
            + "; is it shifted, mirrored, from another scan or of the other leg? Check it over the FF image: the "
            "texture scores of these segments are unreliable"]


#: The size check works on every second row and column: a share of a cross-section does not need every voxel, and
#: the body's 3-D components cost a quarter as much to find.
SIZE_CHECK_STEP = 2


class LegSections:
    """The body's 3-D components (legs, when two do not touch) and their voxels per slice, on the size check's
    subsampled grid, for :meth:`share`."""

    def __init__(self, body_mask: np.ndarray):
        from scipy import ndimage

        self.parts, n = ndimage.label(np.asarray(body_mask, bool)[:, ::SIZE_CHECK_STEP, ::SIZE_CHECK_STEP])
        z = np.arange(self.parts.shape[0])[:, None, None]
        self.per_slice = np.bincount((z * (n + 1) + self.parts).ravel(),
                                     minlength=self.parts.shape[0] * (n + 1)).reshape(-1, n + 1)

    def share(self, segment_zyx: np.ndarray) -> float | None:
        """The share of its leg's cross-section a segment (bool mask on the body's grid) covers: its voxels in the
        body over the voxels of the body components it touches, on the slices it is drawn on — so two legs count
        apart, and a short segment is not diluted by slices it does not reach. None when it lies wholly outside
        the body (which :func:`label_warnings` says)."""
        at = np.flatnonzero(np.asarray(segment_zyx)[:, ::SIZE_CHECK_STEP, ::SIZE_CHECK_STEP])
        part = self.parts.ravel()[at]
        inside = part > 0
        if not inside.any():
            return None
        slices = np.unique(at[inside] // (self.parts.shape[1] * self.parts.shape[2]))
        touched = np.unique(part[inside])
        return float(np.count_nonzero(inside) / max(self.per_slice[np.ix_(slices, touched)].sum(), 1))


def segment_shares_of_leg(layers: np.ndarray, body_mask: np.ndarray) -> dict:
    """{label value: :meth:`LegSections.share`} of a (z, y, x) labelmap or (L, z, y, x) layers."""
    layers = layers[None] if layers.ndim == 3 else layers
    sections = LegSections(body_mask)
    shares = {}
    for layer in layers:
        for value in np.unique(layer[layer > 0]):  # label values are unique across layers
            shares[int(value)] = sections.share(layer == value)
    return {v: share for v, share in shares.items() if share is not None}


def segment_size_warnings(layers: np.ndarray, names: dict, body_mask: np.ndarray) -> list[str]:
    """A warning per segment that covers more of its leg's cross-section than any one calf muscle does; for a
    segmentation of the value 1 alone (a binary mask reads as TA), more than LONE_SEGMENT_MAX_SHARE."""
    shares = segment_shares_of_leg(layers, body_mask)
    if list(shares) == [1] and shares[1] > LONE_SEGMENT_MAX_SHARE:
        return [f"the segmentation holds one segment only, value 1 ({names.get(1, 'label 1')}), covering "
                f"{shares[1]:.0%} of the leg's cross-section on the slices it is drawn on, more than a "
                f"{names.get(1, 'TA')} does: is it a binary mask of all the muscles or of the leg? Its texture score "
                "is not that muscle's; give one value per muscle (1-7: TA, EDL, Per, TP, Sol, LG, MG)"]
    return [_too_large(f"{names.get(value, f'label {value}')!r} (value {value})", share)
            for value, share in sorted(shares.items()) if share > MAX_SEGMENT_SHARE_OF_LEG]


def mask_size_warnings(masks: list, body_mask: np.ndarray) -> list[str]:
    """:func:`segment_size_warnings` for [(segment name, bool mask (z, y, x))] (Slicer's segments)."""
    sections = LegSections(body_mask)
    out = []
    for name, mask in masks:
        share = sections.share(mask)
        if share is not None and share > MAX_SEGMENT_SHARE_OF_LEG:
            out.append(_too_large(repr(name), share))
    return out


def _too_large(segment: str, share: float) -> str:
    return (f"segment {segment} covers {share:.0%} of the leg's cross-section on the slices it is drawn on; no "
            f"single calf muscle covers more than {MAX_SEGMENT_SHARE_OF_LEG:.0%}: is it a mask of all the muscles "
            "or of the whole leg? Its texture score is not that muscle's")


def convention_warning(names: dict) -> str | None:
    """For a plain labelmap (no segment names in the file; ``names``: its values), a warning when it holds none of
    1-7, the values MDTexture reads as TA, EDL, Per, TP, Sol, LG, MG (its segments are scored under label_N
    names)."""
    from .constants import MUSCLES

    if any(1 <= v <= len(MUSCLES) for v in names):
        return None
    shown = ", ".join(str(v) for v in sorted(names)[:8]) + (", …" if len(names) > 8 else "")
    return (f"the labelmap holds none of the values 1-{len(MUSCLES)} that name the calf muscles "
            f"({', '.join(f'{i + 1} {m}' for i, m in enumerate(MUSCLES))}) but {shown}: its segments are scored "
            "as label_N with no muscle named; relabel it, or give a .seg.nrrd with named segments")


#: Muscle pairs of which the first lies lateral of the second in every calf (lateral gastrocnemius / medial
#: gastrocnemius; the peroneal group / tibialis posterior, which lies between tibia and fibula).
LATERAL_OF = (("LG", "MG"), ("Per", "TP"))


def mirrored_labels_warning(layers: np.ndarray, names: dict, side: str, side_source: str = "") -> str | None:
    """A warning when, on a leg of ``side`` ('right'/'left'), every checkable pair of :data:`LATERAL_OF` has its
    lateral muscle on the medial side: labels of the other leg, or flipped in x by a converter, stay inside the body
    (so the body check cannot see them) but score the wrong muscles.

    ``layers``: (z, y, x) or (L, z, y, x) labels of this leg in canonical array order (x towards the patient's left,
    so on a right leg lateral is small x).
    """
    from .musclenames import canonical_muscle

    layers = layers if layers.ndim == 4 else layers[None]
    x_sum, count = {}, {}
    width = layers.shape[-1]
    columns = np.arange(width, dtype=np.float64)
    # Voxels of each label value in each column, in one pass over the labelled voxels (value · width + column).
    at = np.flatnonzero(layers)
    value_column = layers.ravel()[at].astype(np.int64) * width + at % width
    per_value_column = np.bincount(value_column, minlength=(max(names, default=0) + 1) * width)
    for value, name in names.items():
        muscle = canonical_muscle(name)
        if muscle is None:
            continue
        per_column = per_value_column[value * width:(value + 1) * width]  # voxels of this segment in each column
        x_sum[muscle] = x_sum.get(muscle, 0.0) + float(per_column @ columns)
        count[muscle] = count.get(muscle, 0) + int(per_column.sum())
    lateral_is_small_x = side == "right"
    checked, wrong = 0, []
    for lateral, medial in LATERAL_OF:
        if count.get(lateral) and count.get(medial):
            checked += 1
            x_lat, x_med = x_sum[lateral] / count[lateral], x_sum[medial] / count[medial]
            if (x_lat > x_med) if lateral_is_small_x else (x_lat < x_med):
                wrong.append(f"{lateral} lies medial of {medial}")
    if not checked or len(wrong) < checked:
        return None
    how = f" (side from {side_source})" if side_source else ""
    return (f"the segmentation looks mirrored on the {side} leg{how}: {' and '.join(wrong)}; is it of the other "
            "leg, was its x axis flipped by a converter, or is the leg's side wrong (--side)? Its texture scores "
            "belong to other muscles")


def _phantom_shares(n_scans: int = 30) -> None:
    """``python -m MDTextureLib.labelcheck``: per muscle, the largest share of its leg's cross-section on phantom
    scans (DMD, CMD, normal in turn), and the smallest share of all seven together: the numbers behind
    MAX_SEGMENT_SHARE_OF_LEG."""
    from .constants import CLASSES, MUSCLES
    from .io import Grid, series_from_arrays
    from .phantom import make_scan

    largest, together = {}, []
    for i in range(n_scans):
        scan = make_scan(CLASSES[i % 3], seed=500 + i, n_slices=6)
        grid = Grid(scan.ff.shape[::-1], scan.spacing_mm, scan.origin_mm, scan.direction)
        body = series_from_arrays(grid, ff=scan.ff).body_mask()  # the body mask the checks use
        for value, share in segment_shares_of_leg(scan.labels, body).items():
            largest[MUSCLES[value - 1]] = max(largest.get(MUSCLES[value - 1], 0.0), share)
        together.append(segment_shares_of_leg((scan.labels > 0).astype(np.uint16), body)[1])
    caught = np.mean(np.asarray(together) > MAX_SEGMENT_SHARE_OF_LEG)
    print("largest share of the leg's cross-section per muscle: "
          + ", ".join(f"{m} {largest[m]:.0%}" for m in MUSCLES if m in largest)
          + f"; all seven together at least {min(together):.0%} (median {np.median(together):.0%}); "
          f"a one-value mask of all seven is above MAX_SEGMENT_SHARE_OF_LEG ({MAX_SEGMENT_SHARE_OF_LEG:.0%}) on "
          f"{caught:.0%} of the scans, above LONE_SEGMENT_MAX_SHARE ({LONE_SEGMENT_MAX_SHARE:.0%}) on "
          f"{np.mean(np.asarray(together) > LONE_SEGMENT_MAX_SHARE):.0%}")


if __name__ == "__main__":
    _phantom_shares()
