"""One case end to end, as the command line, the batch runner and the benchmark use it:
read → classify → heatmap → texture scores → write ``prediction.json``, ``heatmap.nrrd`` (0..1, 0 outside the
body), ``heatmap_signed.nrrd`` (the same map in logit units before ReLU and scaling), ``texture_scores.csv``,
``report.png`` into one folder (atomically).

Reading (:func:`read_case`, every input check) and the rest (:func:`analyse_loaded`) are separate halves of
:func:`analyse_case`, so that ``batch`` (:mod:`MDTextureLib.batch`) can read the next subject while the network runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .constants import DEFAULT_HEATMAP_NORMALISATION, TEXTURE_SCORE_CAVEAT
from .dicom import laterality as dicom_laterality
from .errors import InputError
from .inference import VolumeResult, classify_volume
from .io import DixonSeries, check_distinct_files, load_dixon, write_image
from .labelcheck import label_warnings, mirrored_labels_warning, segment_size_warnings
from .labels import LabelMap, read_labels
from .modelfile import Model
from .outputs import atomic_dir, describe_os_error
from .scores import (ScoreParameters, normal_class_warning, scores_as_dicts, texture_scores,
                     write_scores_csv)


@dataclass
class CaseInputs:
    ff: str | None = None
    water: str | None = None
    fat: str | None = None
    segmentation: str | None = None
    ff_unit: str = "auto"
    study: str | None = None  # a DICOM study folder: water / fat / FF series picked by their tags (dicom.py)
    series: tuple = ()  # --series choices within the study: KEY or ROLE=KEY
    side: str | None = None  # "left" / "right": the leg of a one-leg image whose anatomy does not tell


@dataclass
class CaseOptions:
    target_class: str | None = None
    device: str = "auto"
    batch_size: int = 16
    params: ScoreParameters = field(default_factory=ScoreParameters)
    report: bool = True
    compress: bool = False  # gzip the heatmap NRRD (smaller, ~3x slower to write)
    precision: str = "auto"  # auto, fp32 or bf16 (MDTextureLib.precision); what ran is in the summary
    heatmap_normalisation: str = DEFAULT_HEATMAP_NORMALISATION  # inference.HEATMAP_NORMALISATIONS
    fat_map: bool = False  # also compute and write the fat attribution (fat_map.nrrd)


@dataclass
class CaseResult:
    series: DixonSeries
    result: VolumeResult
    labels: LabelMap | None
    scores: list | None  # the verdict's leg's (the only leg's) muscle scores
    summary: dict
    leg_scores: dict = field(default_factory=dict)  # side → muscle scores, when the segmentation covers the leg


@dataclass
class LoadedCase:
    """A case's inputs read and checked, the network not yet run (:func:`read_case`)."""
    inputs: CaseInputs
    series: DixonSeries
    study_facts: dict  # facts about a DICOM study's series ({} for image files)
    labels: LabelMap | None


def read_case(inputs: CaseInputs) -> LoadedCase:
    """Read the case's images and segmentation with every input check (files whole, body mask, FF plausibility,
    water/fat swap, labels on the body). No network and no shared state, so ``batch`` runs it in a thread for
    the next subject while the network works on this one."""
    series, study_facts = _load_series(inputs)
    labels = read_labels(inputs.segmentation, series.grid) if inputs.segmentation else None
    if labels is not None:
        labels.warnings.extend(label_warnings(labels.layers, labels.names, series.body_mask()))
        labels.warnings.extend(segment_size_warnings(labels.layers, labels.names, series.body_mask()))
    return LoadedCase(inputs=inputs, series=series, study_facts=study_facts, labels=labels)


def analyse_case(inputs: CaseInputs, model: Model, options: CaseOptions = CaseOptions(),
                 progress=None, loaded: LoadedCase | None = None) -> CaseResult:
    """Read the inputs, classify, and score the muscles when a segmentation is given. Writes nothing.

    ``loaded``: :func:`read_case` of these same inputs, done beforehand (batch reads one subject ahead); then only
    the network and the scores run here."""
    if loaded is None:
        loaded = read_case(inputs)
    elif loaded.inputs != inputs:
        raise ValueError("analyse_case: loaded comes from other inputs")
    return analyse_loaded(loaded, model, options, progress)


def analyse_loaded(loaded: LoadedCase, model: Model, options: CaseOptions = CaseOptions(),
                   progress=None) -> CaseResult:
    """The network, the heatmap and the texture scores of a case :func:`read_case` has read. Writes nothing."""
    inputs, series, study_facts, labels = loaded.inputs, loaded.series, loaded.study_facts, loaded.labels
    result = classify_volume(series, model, device=options.device, target_class=options.target_class,
                             batch_size=options.batch_size, progress=progress, side=inputs.side,
                             laterality=dicom_laterality(inputs.study or inputs.ff or inputs.water),
                             precision=options.precision, normalisation=options.heatmap_normalisation,
                             fat_map=options.fat_map)
    scores = None
    leg_scores = {}
    summary = result.summary()
    summary["inputs"] = {k: (os.path.basename(v) if isinstance(v, str) else v) for k, v in asdict(inputs).items()}
    summary["inputs"].update(study_facts)
    if labels is not None:
        leg_scores = scores_per_leg(result, labels, series, options.params, notes=labels.warnings)
        summary["warnings"] += labels.warnings
        if len(result.legs) > 1:
            lead = result.verdict_leg.side if result.verdict_leg.side in leg_scores else next(iter(leg_scores), None)
            scores = leg_scores.get(lead)
            summary["texture_scores_leg"] = lead  # the top-level table is this leg's; every leg's is in "legs"
            for leg in summary["legs"]:
                if leg["side"] in leg_scores:
                    leg["texture_scores"] = scores_as_dicts(leg_scores[leg["side"]])
            missing = [leg.side for leg in result.legs if leg.side not in leg_scores]
            if missing:
                summary["warnings"].append(f"the segmentation has no labels on the {' and '.join(missing)} leg: "
                                           "no texture scores there")
        else:
            scores = next(iter(leg_scores.values()))
        summary["texture_scores"] = scores_as_dicts(scores) if scores is not None else []
        summary["texture_score_caveat"] = TEXTURE_SCORE_CAVEAT
        scored = ({leg.side: leg.target_class for leg in result.legs if leg.side in leg_scores}
                  if len(result.legs) > 1 else {"": result.target_class})
        note = normal_class_warning(scored)
        if note:
            summary["warnings"].append(note)
    summary["texture_score_parameters"] = asdict(options.params)
    summary["body_fraction"] = round(series.body_fraction, 4)  # share of the image inside the body mask
    summary["geometry"] = {"size": list(series.grid.size), "spacing_mm": list(series.grid.spacing),
                           "origin_mm_lps": list(series.grid.origin), "direction": list(series.grid.direction)}
    return CaseResult(series=series, result=result, labels=labels, scores=scores, summary=summary,
                      leg_scores=leg_scores)


def scores_per_leg(result: VolumeResult, labels: LabelMap, series: DixonSeries, params: ScoreParameters,
                   notes: list | None = None) -> dict:
    """side → muscle scores, each leg's labels restricted to the part of the image it owns (labels may carry
    leading layer axes: the (z, y, x) region broadcasts). A leg the segmentation does not cover is left out.
    A leg whose labels look mirrored (lateral muscles medial) gets a warning in ``notes``.

    Scores count AXIAL slices (Eq. 5), so a non-axial input is scored in its reordered (canonical) axis order.
    """
    heat, ff, spacing = result.heatmap, series.ff, series.grid.spacing
    orient = result.orientation.reordering() if result.orientation is not None else None
    if orient is not None and not orient.is_identity:
        heat, ff, spacing = orient.to_canonical(heat), orient.to_canonical(ff), orient.spacing_xyz_mm
    out = {}
    for leg in result.legs or [None]:
        region = result.leg_region(leg) if leg is not None else None
        leg_labels = labels.layers if region is None else np.where(region, labels.layers, 0)
        if region is not None and not leg_labels.any():
            continue
        if orient is not None and not orient.is_identity:
            leg_labels = orient.to_canonical(leg_labels)
        if notes is not None and leg is not None:
            mirrored = mirrored_labels_warning(leg_labels, labels.names, leg.side, leg.side_source)
            if mirrored:
                notes.append(mirrored)
        out[leg.side if leg is not None else "right"] = texture_scores(heat, leg_labels, labels.names, ff, spacing,
                                                                       params)
    return out


def _load_series(inputs: CaseInputs) -> tuple[DixonSeries, dict]:
    """The Dixon series of a case, from image files or a DICOM study; facts about the study's series (or {})."""
    check_distinct_files({"fat-fraction image": inputs.ff, "water image": inputs.water, "fat image": inputs.fat,
                          "segmentation": inputs.segmentation})
    if inputs.study:
        from .dicom import load_study
        return load_study(inputs.study, inputs.series, ff_unit=inputs.ff_unit)
    return load_dixon(inputs.ff, inputs.water, inputs.fat, ff_unit=inputs.ff_unit), {}


def write_case(case: CaseResult, out: str | os.PathLike, options: CaseOptions = CaseOptions(),
               title: str = "", overwrite: bool = False, inputs=(), command: str = "classify") -> Path:
    """Write the case's outputs into ``out`` all-or-nothing; returns ``out``.

    ``out`` follows :mod:`MDTextureLib.outputs`' rule: never one of ``inputs`` (every path the case was read
    from) or a folder around them, and an earlier MDTexture output is replaced only with ``overwrite``.
    """
    out = Path(out)
    with atomic_dir(out, command, overwrite=overwrite, inputs=inputs) as tmp:
        try:
            write_image(case.result.heatmap, case.series.grid, tmp / "heatmap.nrrd", compress=options.compress)
            write_image(case.result.heatmap_signed, case.series.grid, tmp / "heatmap_signed.nrrd",
                        compress=options.compress)
            if case.result.fat_maps is not None:
                write_image(case.result.fat_heatmap, case.series.grid, tmp / "fat_map.nrrd", compress=options.compress)
            if len(case.result.legs) > 1 and case.leg_scores:
                write_scores_csv(case.leg_scores, tmp / "texture_scores.csv", options.params)
            elif case.scores is not None:
                write_scores_csv(case.scores, tmp / "texture_scores.csv", options.params)
            if options.report:
                from .report import write_report
                # the picture shows axial slices in the canonical (radiological) view, whatever the storage order
                orient = case.result.orientation.reordering() if case.result.orientation is not None else None
                show = orient.to_canonical if orient is not None else (lambda a: a)
                write_report(tmp / "report.png", show(case.series.ff), show(case.result.heatmap), case.summary,
                             orient.spacing_xyz_mm if orient is not None else case.series.grid.spacing, case.scores,
                             title=title, labels=show(case.labels.labels) if case.labels else None,
                             label_names=case.labels.names if case.labels else None, leg_scores=case.leg_scores)
            (tmp / "prediction.json").write_text(json.dumps(case.summary, indent=2) + "\n")
        except OSError as exc:  # a full disk, a quota, a file system gone read-only: one line, nothing left behind
            raise InputError(f"cannot write output folder {out}: {describe_os_error(exc)}") from None
    return out
