"""One case end to end, as the command line, the batch runner and the benchmark use it:
read → classify → heatmap → texture scores → write ``prediction.json``, ``heatmap.nrrd``, ``texture_scores.csv``,
``report.png`` into one folder (atomically).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .inference import VolumeResult, classify_volume
from .io import DixonSeries, LabelMap, load_dixon, read_labels, write_image
from .modelfile import Model
from .outputs import atomic_dir
from .scores import ScoreParameters, scores_as_dicts, texture_scores, write_scores_csv


@dataclass
class CaseInputs:
    ff: str | None = None
    water: str | None = None
    fat: str | None = None
    segmentation: str | None = None
    ff_unit: str = "auto"


@dataclass
class CaseOptions:
    target_class: str | None = None
    device: str = "auto"
    batch_size: int = 16
    params: ScoreParameters = field(default_factory=ScoreParameters)
    report: bool = True
    compress: bool = False  # gzip the heatmap NRRD (smaller, ~3x slower to write)
    precision: str = "auto"  # auto, fp32 or bf16 (MDTextureLib.precision); what ran is in the summary


@dataclass
class CaseResult:
    series: DixonSeries
    result: VolumeResult
    labels: LabelMap | None
    scores: list | None
    summary: dict


def analyse_case(inputs: CaseInputs, model: Model, options: CaseOptions = CaseOptions(),
                 progress=None) -> CaseResult:
    """Read the inputs, classify, and score the muscles when a segmentation is given. Writes nothing."""
    series = load_dixon(inputs.ff, inputs.water, inputs.fat, ff_unit=inputs.ff_unit)
    labels = read_labels(inputs.segmentation, series.grid) if inputs.segmentation else None
    result = classify_volume(series, model, device=options.device, target_class=options.target_class,
                             batch_size=options.batch_size, progress=progress, precision=options.precision)
    scores = None
    summary = result.summary()
    summary["inputs"] = {k: (os.path.basename(v) if isinstance(v, str) else v) for k, v in asdict(inputs).items()}
    if labels is not None:
        scores = texture_scores(result.heatmap, labels.labels, labels.names, series.ff, series.grid.spacing,
                                options.params)
        summary["warnings"] += labels.warnings
        summary["texture_scores"] = scores_as_dicts(scores)
    summary["texture_score_parameters"] = asdict(options.params)
    summary["geometry"] = {"size": list(series.grid.size), "spacing_mm": list(series.grid.spacing),
                           "origin_mm_lps": list(series.grid.origin), "direction": list(series.grid.direction)}
    return CaseResult(series=series, result=result, labels=labels, scores=scores, summary=summary)


def write_case(case: CaseResult, out: str | os.PathLike, options: CaseOptions = CaseOptions(),
               title: str = "") -> Path:
    """Write the case's outputs into ``out`` all-or-nothing; returns ``out``."""
    out = Path(out)
    with atomic_dir(out) as tmp:
        write_image(case.result.heatmap, case.series.grid, tmp / "heatmap.nrrd", compress=options.compress)
        if case.scores is not None:
            write_scores_csv(case.scores, tmp / "texture_scores.csv", options.params)
        if options.report:
            from .report import write_report
            write_report(tmp / "report.png", case.series.ff, case.result.heatmap, case.summary,
                         case.series.grid.spacing, case.scores, title=title,
                         labels=case.labels.labels if case.labels else None,
                         label_names=case.labels.names if case.labels else None)
        (tmp / "prediction.json").write_text(json.dumps(case.summary, indent=2) + "\n")
    return out
