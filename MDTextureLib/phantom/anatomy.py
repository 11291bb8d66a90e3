"""Axial lower-leg anatomy of one right calf on an (z, y, x) voxel grid.

Conventions (LPS, as SimpleITK uses; identity direction):
- column index i grows with x = patient left; row index j grows with y = posterior; slice k grows with z = superior.
  A right leg shown in radiological convention therefore has its lateral side at small i and anterior at small j.
- Leg-local coordinates in millimetres: ``u`` points lateral, ``v`` points anterior, origin at the leg centre.
- ``zfrac`` is the position along the leg: 0 at the knee joint line, 1 at the ankle. Slice 0 is the most distal.

The muscles are placed as a *power diagram* (each region owns the voxels where its score ``w - q(x)`` is the largest,
with ``q`` an elliptical distance to an anatomical anchor). The weights ``w`` are fitted per slice so that every
muscle gets its target share of the muscle compartment. This keeps the layout anatomical (anchors, the interosseous
membrane as a hard boundary) while the areas follow the published proximal-to-distal profiles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..constants import MUSCLES

# ---------------------------------------------------------------------------------------------------------------
# Regions: 1..7 are the labelled muscles (TA..MG, as constants.MUSCLE_LABELS); 8, 9 are unlabelled deep muscles.
REGIONS = MUSCLES + ("FDL", "FHL")          # FDL also stands in for the popliteus proximally
N_REGIONS = len(REGIONS)

#: Knots along the leg (fraction of tibial length below the knee joint line).
ZFRAC_KNOTS = np.array([0.00, 0.10, 0.20, 0.30, 0.40, 0.45, 0.50, 0.55, 0.60, 0.70, 0.80, 0.90])

#: Relative cross-sectional area of each region along the leg. At max girth (zfrac 0.3) the numbers are percent of
#: the muscle compartment (facts §2a: Sol 25-30, MG 17-22, LG 9-12, TA 10-12, Per 7-9, TP 6-8, EDL 4-5, other 4-6,
#: bones ~7). LG ends first (~0.42), MG at mid-calf (~0.52), the soleus is largest at 0.5-0.6; TA/EDL turn tendinous.
AREA_PROFILE = {
    #        0.00  0.10  0.20  0.30  0.40  0.45  0.50  0.55  0.60  0.70  0.80  0.90
    "TA":  (6.0, 10.0, 11.0, 11.0, 10.5, 10.0, 9.5, 9.0, 8.0, 4.0, 0.0, 0.0),
    "EDL": (2.0, 4.0, 4.5, 4.5, 5.0, 5.0, 5.0, 5.0, 4.5, 2.5, 0.0, 0.0),
    "Per": (3.0, 8.0, 9.0, 8.5, 8.0, 7.5, 7.0, 6.5, 6.0, 3.5, 1.5, 0.0),
    "TP":  (0.0, 5.0, 7.0, 7.5, 7.5, 7.0, 6.5, 6.0, 5.0, 2.5, 0.0, 0.0),
    "Sol": (0.0, 8.0, 20.0, 27.0, 32.0, 34.0, 35.0, 35.0, 34.0, 24.0, 10.0, 0.0),
    "LG":  (6.0, 11.0, 12.0, 10.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "MG":  (8.0, 17.0, 21.0, 20.0, 14.0, 8.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "FDL": (10.0, 6.0, 4.0, 3.0, 3.5, 4.0, 4.0, 4.0, 4.5, 4.0, 2.0, 0.0),
    "FHL": (0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 5.0, 0.0),
}
#: A region whose profile value is below this is absent (no slivers of a muscle that is really a tendon).
PRESENCE_MIN = 1.0

#: Compartment radius along the leg relative to max girth (the calf narrows to the ankle).
RADIUS_PROFILE = (0.88, 0.95, 0.99, 1.00, 0.96, 0.93, 0.89, 0.85, 0.81, 0.72, 0.62, 0.55)

# Anchor of every region in compartment-normalised coordinates (u lateral, v anterior; the compartment ellipse has
# radius 1), the semi-axes of its elliptical distance, and which side of the interosseous membrane it must stay on
# (+1 anterior, -1 posterior, 0 free; the lateral compartment is kept lateral of the fibula instead).
ANCHORS = {
    #        u      v     a_u   a_v   side
    "TA":  (-0.02, 0.62, 0.22, 0.28, +1),
    "EDL": (0.30, 0.50, 0.15, 0.25, +1),
    "Per": (0.82, 0.08, 0.18, 0.35, 0),
    "TP":  (0.12, 0.06, 0.24, 0.16, -1),
    "Sol": (0.00, -0.42, 0.65, 0.26, -1),
    "LG":  (0.45, -0.74, 0.30, 0.20, -1),
    "MG":  (-0.38, -0.74, 0.40, 0.22, -1),
    "FDL": (-0.36, 0.02, 0.16, 0.16, -1),
    "FHL": (0.42, -0.20, 0.18, 0.15, -1),
}
TIBIA_CENTRE = (-0.30, 0.42)      # normalised; anteromedial
FIBULA_CENTRE = (0.54, -0.02)     # normalised; posterolateral
NV_BUNDLES = ((0.06, -0.17, 2.5), (0.12, 0.22, 1.5))   # (u, v normalised, radius mm at adult size): fat + vessels

# Tissue codes of the non-muscle volume (what fills a voxel that is not muscle).
AIR, SKIN, SUBCUT_FAT, CORTEX, MARROW, FASCIA_FAT, NV_FAT = range(7)


@dataclass(frozen=True)
class LegSpec:
    """Subject- and scan-specific geometry of one leg (all lengths in mm, angles in degrees)."""
    compartment_radius_mm: float    # deep-fascia (muscle compartment) radius at max girth
    fat_mm: float                   # posterior/lateral subcutaneous fat thickness
    fat_over_tibia_mm: float        # over the anteromedial tibia (it lies under the skin)
    skin_mm: float
    bone_scale: float               # 1.0 = adult bone dimensions
    leg_length_mm: float            # knee joint line to ankle
    aspect: float                   # compartment ML/AP elongation (0.07 = ML 7 % longer than AP)
    centre_mm: tuple                # leg centre (x, y) in the FOV at the slab centre, relative to the FOV centre
    drift_mm_per_slice: tuple       # leg axis slightly oblique to z
    rotation_deg: float
    egg: float = 0.12               # calf narrower anteriorly (v > 0) than posteriorly by this share
    layout: tuple = ()              # per region (du, dv normalised anchor shift, area scale); () = the atlas layout

    @property
    def outer_radius_mm(self) -> float:
        """Skin-surface radius at max girth (posterior/lateral, where the fat is thickest)."""
        return self.compartment_radius_mm * (1 + self.aspect / 2) * 1.14 + self.fat_mm + self.skin_mm


@dataclass(frozen=True)
class GridSpec:
    matrix: int
    pixel_mm: float
    n_slices: int
    slice_mm: float
    slab_centre_frac: float         # zfrac of the middle of the slab


@dataclass
class Anatomy:
    zfrac: np.ndarray               # (z,) position along the leg of every slice
    region: np.ndarray              # int8 (z,y,x): 0 none, 1..7 labelled muscles, 8 FDL, 9 FHL
    labels: np.ndarray              # uint8 (z,y,x): region 1..7 minus the fascia lines
    fascia: np.ndarray              # bool (z,y,x): 1-voxel lines between muscles (intermuscular fat + septa)
    tissue: np.ndarray              # int8 (z,y,x): tissue code of the non-muscle part of the voxel
    muscle_frac: np.ndarray         # float32 (z,y,x): volume fraction of muscle tissue in the voxel
    d_boundary_mm: np.ndarray       # float32: in-plane distance of a muscle voxel to its muscle's boundary
    d_interface_mm: np.ndarray      # float32: in-plane distance to the soleus / gastrocnemius interface
    compartment_radius_mm: np.ndarray   # (z,)


def zfrac_of_slices(grid: GridSpec, leg_length_mm: float) -> np.ndarray:
    """Position along the leg of each slice; slice index grows superior, i.e. toward the knee (smaller zfrac)."""
    k = np.arange(grid.n_slices) - (grid.n_slices - 1) / 2.0
    return grid.slab_centre_frac - k * grid.slice_mm / leg_length_mm


def area_profile(zfrac) -> np.ndarray:
    """Relative areas, shape (N_REGIONS, len(zfrac)); regions below PRESENCE_MIN are set to 0 (absent)."""
    zfrac = np.atleast_1d(np.asarray(zfrac, dtype=float))
    rel = np.stack([np.interp(zfrac, ZFRAC_KNOTS, AREA_PROFILE[r]) for r in REGIONS])
    rel[rel < PRESENCE_MIN] = 0.0
    return rel


def expected_presence(zfrac) -> np.ndarray:
    """bool (len(zfrac), 7): which labelled muscles anatomy says are present on each slice."""
    return area_profile(zfrac)[: len(MUSCLES)].T > 0


def muscle_extent(name: str) -> tuple:
    """(first, last) zfrac where a region is present, from a fine sampling of its profile."""
    f = np.linspace(0.0, 0.9, 901)
    present = f[area_profile(f)[REGIONS.index(name)] > 0]
    return float(present[0]), float(present[-1])


def leg_half_extent_mm(leg: LegSpec, grid: GridSpec) -> float:
    """Half-width of the square around the leg centre that holds the leg on every slice (margin included)."""
    drift = max(abs(d) for d in leg.drift_mm_per_slice) * grid.n_slices / 2.0
    return leg.outer_radius_mm * 1.18 + 3.0 * grid.pixel_mm + drift


def leg_bounding_box(leg: LegSpec, grid: GridSpec) -> tuple:
    """(row slice, column slice) of the FOV that holds the whole leg on every slice, with a small margin.

    Everything is computed inside this box only (the leg covers a third of a typical FOV), then pasted.
    """
    n = grid.matrix
    out = []
    for axis in (1, 0):      # rows follow y, columns follow x
        c = (n - 1) / 2.0 + leg.centre_mm[axis] / grid.pixel_mm
        h = leg_half_extent_mm(leg, grid) / grid.pixel_mm
        lo, hi = int(np.floor(c - h)), int(np.ceil(c + h)) + 1
        if lo < 0 or hi > n:
            raise ValueError("leg does not fit in the field of view")
        out.append(slice(lo, hi))
    return tuple(out)


def _leg_coordinates(leg: LegSpec, grid: GridSpec, box: tuple):
    """u (lateral) and v (anterior) in mm, shape (z, y, x) over ``box``, per slice following the drifting leg axis."""
    n = grid.matrix
    c = (np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * grid.pixel_mm
    k = (np.arange(grid.n_slices, dtype=np.float32) - (grid.n_slices - 1) / 2.0)[:, None, None]
    dx = c[box[1]][None, None, :] - (leg.centre_mm[0] + k * leg.drift_mm_per_slice[0])
    dy = c[box[0]][None, :, None] - (leg.centre_mm[1] + k * leg.drift_mm_per_slice[1])
    t = np.deg2rad(leg.rotation_deg)
    xr = np.cos(t) * dx + np.sin(t) * dy
    yr = -np.sin(t) * dx + np.cos(t) * dy
    # right leg: lateral = patient right = -x; anterior = -y
    return (-xr).astype(np.float32), (-yr).astype(np.float32)


def _tibia_radius(phi, a_ml, b_ap):
    """Outer radius of the (rounded-triangle) tibia at tibia-local angle phi; apex (crest) anterior."""
    ell = 1.0 / np.sqrt((np.cos(phi) / a_ml) ** 2 + (np.sin(phi) / b_ap) ** 2)
    return ell * (1.0 + 0.08 * np.cos(3.0 * (phi - np.pi / 2)))


def _scores(u_n, v_n, w, present, sd_membrane, u_fib_n, layout=()):
    """Power-diagram scores, shape (N_REGIONS, ...); absent regions get -inf. ``layout`` shifts the anchors."""
    out = np.empty((N_REGIONS,) + u_n.shape, dtype=np.float32)
    big = np.float32(1e3)
    penalty = {+1: (sd_membrane < 0) * big, -1: (sd_membrane > 0) * big,
               0: (u_n < u_fib_n) * big}    # the peroneus stays lateral of the fibula's centre
    for r, name in enumerate(REGIONS):
        cu, cv, au, av, side = ANCHORS[name]
        if layout:
            cu, cv = cu + layout[r][0], cv + layout[r][1]
        q = np.square((u_n - np.float32(cu)) * np.float32(1 / au))
        q += np.square((v_n - np.float32(cv)) * np.float32(1 / av))
        q += penalty[side]
        np.subtract(w[r], q, out=out[r])
        out[r][~np.broadcast_to(present[r], q.shape)] = -np.inf
    return out


def build_anatomy(leg: LegSpec, grid: GridSpec, fascia_mm: float = 0.8) -> Anatomy:
    """Voxelise one leg. Vectorised over the whole slab except the per-slice distance transforms."""
    nz = grid.n_slices
    zf = zfrac_of_slices(grid, leg.leg_length_mm)
    radius_rel = np.interp(zf, ZFRAC_KNOTS, RADIUS_PROFILE)
    radius = (leg.compartment_radius_mm * radius_rel).astype(np.float32)                      # (z,)
    ru = (radius * (1 + leg.aspect / 2))[:, None, None]
    rv = (radius * (1 - leg.aspect / 2))[:, None, None]
    box = leg_bounding_box(leg, grid)
    u, v = _leg_coordinates(leg, grid, box)
    # egg-shaped calf: narrower anteriorly, wider over the gastrocnemii (posterior)
    v_n = v / rv
    u_n = u / (ru * (1.0 - leg.egg * np.clip(v_n, -1.2, 1.2)))

    # --- bones (sizes in mm, positions follow the compartment) ---
    bs = leg.bone_scale
    tib_u, tib_v = TIBIA_CENTRE[0] * ru, TIBIA_CENTRE[1] * rv
    a_ml, b_ap, cortex_t = 11.0 * bs, 15.0 * bs, 4.5 * bs
    du, dv = u - tib_u, v - tib_v
    rho, phi = np.hypot(du, dv), np.arctan2(dv, du)
    r_tib = _tibia_radius(phi, a_ml, b_ap)
    tibia = rho <= r_tib
    tib_marrow = rho <= r_tib - cortex_t
    fib_u, fib_v = FIBULA_CENTRE[0] * ru, FIBULA_CENTRE[1] * rv
    r_fib, fib_cortex = 6.5 * bs, 2.2 * bs
    rho_f = np.hypot(u - fib_u, v - fib_v)
    fibula = rho_f <= r_fib
    fib_marrow = rho_f <= r_fib - fib_cortex

    # --- muscle compartment: ellipse, minus the cap anteromedial of the tibia (its face is subcutaneous) ---
    n_t = np.array([-0.70710678, 0.70710678])
    h_t = np.sqrt((a_ml * n_t[0]) ** 2 + (b_ap * n_t[1]) ** 2) * 1.05
    cap = (du * n_t[0] + dv * n_t[1]) > h_t
    compartment = ((u_n ** 2 + v_n ** 2) <= 1.0) & ~cap | tibia

    # --- interosseous membrane: signed distance (mm) to the tibia->fibula line, positive anterior ---
    lu, lv = fib_u - tib_u, fib_v - tib_v
    sd = (lu * (v - tib_v) - lv * (u - tib_u)) / np.hypot(lu, lv)

    nv = np.zeros(u.shape, dtype=bool)
    for cu, cv, rad in NV_BUNDLES:
        nv |= np.hypot(u - cu * ru, v - cv * rv) <= rad * bs
    bone = tibia | fibula
    avail = compartment & ~bone & ~nv

    # --- fit the power-diagram weights on a coarse grid so each region gets its target area ---
    rel = area_profile(zf)                                              # (R, z)
    if leg.layout:                                                      # muscle size jitter between subjects
        rel = rel * np.array([a for _, _, a in leg.layout])[:, None]
    present = (rel > 0)[:, :, None, None]
    step = 2 if grid.matrix >= 128 else 1
    sl = (slice(None), slice(None, None, step), slice(None, None, step))
    uc, vc, sdc, avc = u_n[sl], v_n[sl], sd[sl], avail[sl]
    target = rel / rel.sum(axis=0, keepdims=True) * avc.sum(axis=(1, 2))[None, :]   # voxels per region per slice
    w = np.ones((N_REGIONS, nz, 1, 1), dtype=np.float32)
    fib_un = np.float32(FIBULA_CENTRE[0])
    zi = np.broadcast_to(np.arange(nz)[:, None, None], uc.shape)[avc]
    for _ in range(8):
        lab = np.argmax(_scores(uc, vc, w, present, sdc, fib_un, leg.layout), axis=0)[avc]
        area = np.bincount(zi * N_REGIONS + lab, minlength=nz * N_REGIONS).reshape(nz, N_REGIONS).T
        upd = 0.8 * np.log((target + 1.0) / (area + 1.0))
        w += np.where(rel > 0, upd, 0.0).astype(np.float32)[:, :, None, None]

    region = np.zeros(u.shape, dtype=np.int8)
    for k in range(nz):   # full-resolution assignment, one slice at a time to bound memory
        s = _scores(u_n[k], v_n[k], w[:, k], present[:, k], sd[k], fib_un, leg.layout)
        region[k] = np.where(avail[k], np.argmax(s, axis=0) + 1, 0)

    # --- keep only the largest in-plane piece of each region per slice (no stray slivers of a muscle) ---
    cross = _inplane_cross()[0]
    for k in range(nz):
        for r in np.unique(region[k]):
            if r == 0:
                continue
            comp, n = ndimage.label(region[k] == r, structure=cross)
            if n > 1:
                sizes = np.bincount(comp.ravel())
                sizes[0] = 0
                region[k][(comp > 0) & (comp != np.argmax(sizes))] = 0

    # --- fascia: a one-voxel line wherever two muscle regions meet (intermuscular septa carry fat) ---
    fascia = np.zeros(u.shape, dtype=bool)
    for axis in (1, 2):
        nb = np.roll(region, -1, axis=axis)
        edge = (region != nb) & (region > 0) & (nb > 0)
        if axis == 1:
            edge[:, -1, :] = False
        else:
            edge[:, :, -1] = False
        fascia |= edge
    labels = np.where((region <= len(MUSCLES)) & ~fascia, region, 0).astype(np.uint8)

    # --- subcutaneous fat and skin: thickness by direction, measured from the compartment edge ---
    d_out = ndimage.distance_transform_edt(~compartment, sampling=(1e4, grid.pixel_mm, grid.pixel_mm))
    ang = np.arctan2(v - tib_v, u - tib_u)                               # direction seen from the tibia
    near_tibia = np.clip(np.cos(ang - np.arctan2(n_t[1], n_t[0])), 0, 1) ** 4
    fat_t = leg.fat_mm + (leg.fat_over_tibia_mm - leg.fat_mm) * near_tibia
    tissue = np.full(u.shape, AIR, dtype=np.int8)
    tissue[(d_out > 0) & (d_out <= fat_t + leg.skin_mm)] = SKIN
    tissue[(d_out > 0) & (d_out <= fat_t)] = SUBCUT_FAT
    tissue[compartment] = FASCIA_FAT          # anything in the compartment not claimed below is fatty connective tissue
    tissue[nv] = NV_FAT
    tissue[bone] = CORTEX
    tissue[tib_marrow | fib_marrow] = MARROW

    muscle_frac = (region > 0).astype(np.float32)
    muscle_frac[fascia] = 1.0 - min(1.0, fascia_mm / grid.pixel_mm)

    # --- distances used by the disease patterns (in-plane; the huge z sampling keeps each slice separate) ---
    samp = (1e4, grid.pixel_mm, grid.pixel_mm)
    inner = region > 0
    for axis in (1, 2):
        inner &= (np.roll(region, 1, axis) == region) & (np.roll(region, -1, axis) == region)
    inner &= ~fascia
    d_boundary = ndimage.distance_transform_edt(inner, sampling=samp).astype(np.float32)
    sol = region == REGIONS.index("Sol") + 1
    gas = (region == REGIONS.index("LG") + 1) | (region == REGIONS.index("MG") + 1)
    iface = (sol & ndimage.binary_dilation(gas, structure=_inplane_cross())) | \
            (gas & ndimage.binary_dilation(sol, structure=_inplane_cross()))
    if iface.any():
        d_iface = ndimage.distance_transform_edt(~iface, sampling=samp).astype(np.float32)
        d_iface[d_iface > 1e3] = np.inf          # slices without an interface
    else:
        d_iface = np.full(u.shape, np.inf, dtype=np.float32)
    full = (slice(None),) + box
    def paste(a, fill):
        out = np.full((nz, grid.matrix, grid.matrix), fill, dtype=a.dtype)
        out[full] = a
        return out
    return Anatomy(zf, paste(region, 0), paste(labels, 0), paste(fascia, False), paste(tissue, AIR),
                   paste(muscle_frac, 0.0), paste(d_boundary, 0.0), paste(d_iface, np.inf), radius)


def _inplane_cross() -> np.ndarray:
    s = np.zeros((1, 3, 3), dtype=bool)
    s[0, 1, :] = s[0, :, 1] = True
    return s
