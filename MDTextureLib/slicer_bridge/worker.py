"""The classification run by the Slicer module in a separate process (``python worker.py JOB_FOLDER``).

Run as a script by path, not as ``-m``, so that importing it does not import the Slicer side of the package: this
process needs numpy, SimpleITK and torch only. It reads ``job.json`` and ``ff.nrrd`` from the job folder, prints
``MDTEXTURE-PROGRESS done total`` lines, and writes ``result.npz`` (with ``fat_heatmaps`` beside ``heatmaps`` when
the job asks for the fat attribution) + ``result.json`` (moved into place only when
complete). A user mistake ends it with exit status 2 and one ``MDTEXTURE-ERROR message`` line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PROGRESS = "MDTEXTURE-PROGRESS"
ERROR = "MDTEXTURE-ERROR"
RESULT_ARRAYS = "result.npz"
RESULT_FIELDS = "result.json"


def leg_facts(result) -> tuple:
    """([{side, side_from, verdict, probabilities, target_class}] per leg, uint8 (z, y, x) map of which leg owns each
    voxel: 0 none, n the n-th leg) of an engine ``VolumeResult``; the map is None with fewer than two legs."""
    from MDTextureLib.constants import CLASSES
    import numpy as np

    legs = [{"side": leg.side, "side_from": leg.side_source, "verdict": leg.verdict, "target_class": leg.target_class,
             "probabilities": {c: round(float(x), 6) for c, x in zip(CLASSES, leg.probabilities)}}
            for leg in result.legs]
    if len(result.legs) < 2:
        return legs, None
    owner = np.zeros(result.grid.shape_zyx, np.uint8)
    for number, leg in enumerate(result.legs, start=1):
        region = result.leg_region(leg)
        owner[region if region is not None else slice(None)] = number
    return legs, owner


def run(folder: Path) -> int:
    import numpy as np

    from MDTextureLib.constants import CLASSES
    from MDTextureLib.errors import InputError
    from MDTextureLib.io import load_dixon
    from MDTextureLib.modelcard import read_card

    spec = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    try:
        read_card(spec["model"])  # a missing card is said before torch is imported (seconds)
        series = load_dixon(ff=folder / spec["ff"], water=folder / spec["water"] if spec.get("water") else None,
                            fat=folder / spec["fat"] if spec.get("fat") else None, ff_unit="fraction")
        from MDTextureLib.inference import classify_volume
        from MDTextureLib.modelfile import load_model

        model = load_model(spec["model"])

        def progress(done, total):
            print(f"{PROGRESS} {done} {total}", flush=True)

        result = classify_volume(series, model, device=spec.get("device") or "auto",
                                 precision=spec.get("precision") or "auto",
                                 target_class=spec.get("target_class"), batch_size=int(spec.get("batch_size", 16)),
                                 progress=progress, fat_map=bool(spec.get("fat_map")))
        heatmaps = np.stack([result.heatmap_for(c) for c in CLASSES]).astype(np.float32)
        extra = {}
        if result.fat_maps is not None:  # the fat attribution beside the ICAM, on the same grid
            extra["fat_heatmaps"] = np.stack([result.fat_heatmap_for(c) for c in CLASSES]).astype(np.float32)
    except InputError as exc:
        print(f"{ERROR} {exc}", flush=True)
        return 2
    partial = folder / "result.partial.npz"
    legs, leg_owner = leg_facts(result)
    if leg_owner is not None:
        extra["leg_owner"] = leg_owner
    np.savez(partial, probabilities=result.probabilities, slice_probabilities=result.slice_probabilities,
             heatmaps=heatmaps, **extra)
    fields = {"verdict": result.verdict, "target_class": result.target_class, "model_name": result.model_name,
              "model_sha256": result.model_sha256, "warnings": list(result.warnings), "classes": list(CLASSES),
              "legs": legs, "precision": result.precision}
    (folder / "result.partial.json").write_text(json.dumps(fields))
    os.replace(folder / "result.partial.json", folder / RESULT_FIELDS)
    os.replace(partial, folder / RESULT_ARRAYS)  # last: its presence means the result is whole
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the folder holding MDTextureLib
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # messages carry "≠", "…"; the job reads UTF-8
    sys.exit(run(Path(sys.argv[1])))
