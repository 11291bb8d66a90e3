"""Synthetic lower-leg Dixon MRI cohort: anatomy, disease patterns (DMD / CMD / normal), signal, cohort writer.

Public API::

    from MDTextureLib.phantom import make_scan, write_scan, write_cohort
    scan = make_scan("DMD", seed=3)           # arrays (z, y, x), spacing (x, y, z) mm, LPS origin, truth dict
    write_scan(scan, "out/S001_1")            # water/fat/ff/muscles/involvement .nrrd, muscles.seg.nrrd, truth.json
    records = write_cohort("out", subjects=48, seed=0)   # + cohort.csv; returns MDTextureLib.cohort records

Modules: ``anatomy`` (geometry and muscle layout), ``subject`` (traits by body cues, scanner settings), ``disease``
(amount of fat), ``patterns`` (where the fat goes: the pattern families), ``signal`` (Dixon magnitudes, coil,
noise), ``scan`` (one scan + truth), ``io`` (files), ``cohort`` (many scans, atomic), ``preview`` (PNG sheet),
``stats`` (cohort statistics), ``confounds`` (what besides the pattern classifies a cohort), ``cli`` (commands).

Two cohorts: ``body_cues="texture"`` (default; body traits and fat level from one distribution for every class)
and ``"realistic"`` (the literature's class-linked traits; the same images the phantom made before body cues).
"""
from .cohort import write_cohort
from .io import write_scan
from .scan import Scan, make_scan

__all__ = ["Scan", "make_scan", "write_scan", "write_cohort"]
