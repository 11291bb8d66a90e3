"""A classified scene's results as one folder (all or nothing, under ``outputs``' rule) and as CSV text.

The folder holds what the scene holds, with the FF volume's exact geometry: ``heatmap_<class>.nrrd`` for each class
(and ``fat_map_<class>.nrrd`` when the fat attribution was computed),
``probabilities.csv`` (per slice), ``texture_scores.csv`` (the command line's format, when scores were computed),
``muscles.seg.nrrd`` (the segmentation as drawn) and ``summary.json`` (verdict, probabilities, model, parameters).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict

import numpy as np

from ..constants import CLASSES
from ..errors import InputError
from ..io import write_image
from ..outputs import atomic_dir, describe_os_error
from ..scores import write_scores_csv
from .tables import rows_from_table
from .volumes import array_of_volume, grid_of_volume


def scores_csv_text(rows, params) -> str:
    """The texture-score table as ``mdtexture classify`` writes texture_scores.csv (rows, or {leg side: rows})."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mdtexture-csv-") as folder:
        path = os.path.join(folder, "texture_scores.csv")
        write_scores_csv(rows, path, params)
        with open(path, encoding="utf-8") as fh:
            return fh.read()


def probabilities_csv_text(table_node) -> str:
    table = table_node.GetTable()
    out = io.StringIO()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    out.write(",".join(names) + "\n")
    for r in range(table.GetNumberOfRows()):
        cells = [table.GetValue(r, c).ToString() for c in range(table.GetNumberOfColumns())]
        out.write(",".join(cells) + "\n")
    return out.getvalue()


def slice_probabilities(table_node) -> np.ndarray:
    """(Z, 3) per-slice probabilities back from the probability table (columns slice, DMD, CMD, normal)."""
    table = table_node.GetTable()
    index = {table.GetColumnName(c): c for c in range(table.GetNumberOfColumns())}
    return np.array([[table.GetValue(r, index[c]).ToDouble() for c in CLASSES]
                     for r in range(table.GetNumberOfRows())], dtype=float).reshape(-1, len(CLASSES))


#: The browser app's export has no --overwrite: an earlier export stays, the user picks another name.
EXPORT_REPLACE_HINT = "export under a new name (an earlier export is never replaced from the page)"


def write_result_folder(p, out, overwrite: bool = False, leg_rows: dict | None = None,
                        replace_hint: str = EXPORT_REPLACE_HINT) -> str:
    """Write the scene's results for the parameter node ``p`` into the new folder ``out``; returns its path."""
    if p.ff is None or not p.verdict:
        raise InputError("nothing to export yet: classify first")
    grid = grid_of_volume(p.ff)
    with atomic_dir(out, "serve export", overwrite=overwrite, replace_hint=replace_hint) as tmp:
        try:
            for c in CLASSES:
                heat = p.heatmap(c)
                if heat is not None:
                    write_image(array_of_volume(heat, "heatmap"), grid, tmp / f"heatmap_{c}.nrrd")
                fat = p.fatHeatmap(c)
                if fat is not None:
                    write_image(array_of_volume(fat, "fat attribution"), grid, tmp / f"fat_map_{c}.nrrd")
            if p.probabilityTable is not None:
                (tmp / "probabilities.csv").write_text(probabilities_csv_text(p.probabilityTable), encoding="utf-8")
            if p.scoreTable is not None:
                rows = leg_rows or rows_from_table(p.scoreTable)
                (tmp / "texture_scores.csv").write_text(scores_csv_text(rows, p.scoreParameters()), encoding="utf-8")
            if p.segmentation is not None:
                _write_segmentation(p.segmentation, tmp / "muscles.seg.nrrd")
            summary = {"verdict": p.verdict, "probabilities": p.probabilityDict(), "heatmap_class": p.viewClass,
                       "fat_map": any(p.fatHeatmap(c) is not None for c in CLASSES),
                       "model": {"name": p.modelName, "sha256": p.modelSha256}, "precision": p.precisionUsed,
                       "texture_score_parameters": asdict(p.scoreParameters()), "ff": p.ff.GetName()}
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {out}: {describe_os_error(exc)}") from None
    return str(out)


def _write_segmentation(node, path) -> None:
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(1)
    ok = storage.WriteData(node)
    if not ok:
        raise InputError(f"could not write the segmentation to {os.path.basename(str(path))}")
