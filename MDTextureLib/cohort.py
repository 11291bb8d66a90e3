"""Reading a phantom (or any compatible) cohort folder, and subject-level cross-validation folds.

A cohort folder holds ``cohort.csv`` (one row per scan: subject, scan, class, folder, and optionally age and
severity) and one sub-folder per scan with ``ff.nrrd``. The phantom adds ``water.nrrd``, ``fat.nrrd``,
``muscles.nrrd``, ``muscles.seg.nrrd``, ``involvement.nrrd`` and ``truth.json``; real data need only the FF image
(and muscles for texture scores), so those are optional here and ``None`` when absent.
Training, evaluation and the phantom's statistics all read cohorts through here, and all split them with
:func:`subject_folds`, so no subject's scans ever sit on both sides of a split.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import CLASSES
from .errors import InputError

REQUIRED_COLUMNS = ("subject", "scan", "class", "folder")
OPTIONAL_NUMBERS = ("age", "severity")  # blank or absent → NaN (real cohorts rarely have a severity)
REQUIRED_FILES = ("ff",)
SCAN_FILES = {
    "water": "water.nrrd", "fat": "fat.nrrd", "ff": "ff.nrrd", "muscles": "muscles.nrrd",
    "segmentation": "muscles.seg.nrrd", "involvement": "involvement.nrrd", "truth": "truth.json",
}


@dataclass(frozen=True)
class ScanRecord:
    subject: str
    scan: int
    class_name: str
    age: float
    severity: float
    folder: Path
    water: Path | None
    fat: Path | None
    ff: Path
    muscles: Path | None
    segmentation: Path | None
    involvement: Path | None
    truth: Path | None
    subtype: str = ""
    pattern_family: str = ""   # the phantom's pattern family (empty for cohorts without one)
    extra: dict = field(default_factory=dict, compare=False)   # every other cohort.csv column, as text

    @property
    def label(self) -> int:
        """Index of the class in CLASSES (the network's output order)."""
        return CLASSES.index(self.class_name)


def read_cohort(path) -> list:
    """Records of every scan in a cohort folder (or its cohort.csv), in file order; checks that files exist."""
    path = Path(path)
    csv_path = path if path.suffix == ".csv" else path / "cohort.csv"
    if not csv_path.is_file():
        raise InputError(f"no cohort found at {path}: {csv_path.name} is missing "
                         "(create one with: mdtexture phantom --out DIR --subjects N --seed S)")
    root = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{csv_path} is not a cohort table: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise InputError(f"{csv_path} lists no scans")
    records, seen = [], set()
    for n, row in enumerate(rows, start=2):
        where = f"{csv_path.name} line {n}"
        cls = row["class"].strip()
        if cls not in CLASSES:
            raise InputError(f"{where}: unknown class {cls!r}; expected one of {', '.join(CLASSES)}")
        try:
            scan = int(row["scan"])
            age, sev = (float(row.get(c) or "nan") for c in OPTIONAL_NUMBERS)
        except ValueError:
            raise InputError(f"{where}: scan, age and severity must be numbers") from None
        subject = row["subject"].strip()
        if not subject:
            raise InputError(f"{where}: empty subject")
        if (subject, scan) in seen:
            raise InputError(f"{where}: subject {subject} scan {scan} is listed twice")
        seen.add((subject, scan))
        folder = (root / row["folder"].strip()).resolve()
        if not folder.is_dir():
            raise InputError(f"{where}: scan folder {row['folder']!r} does not exist")
        files = {k: (folder / v if (folder / v).is_file() else None) for k, v in SCAN_FILES.items()}
        absent = [SCAN_FILES[k] for k in REQUIRED_FILES if files[k] is None]
        if absent:
            raise InputError(f"{where}: {row['folder']} lacks {', '.join(absent)}")
        extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS and k not in ("subtype", "pattern_family")}
        records.append(ScanRecord(subject, scan, cls, age, sev, folder, subtype=row.get("subtype", "") or "",
                                  pattern_family=(row.get("pattern_family") or "").strip(), extra=extra, **files))
    for subject in {r.subject for r in records}:
        if len({r.class_name for r in records if r.subject == subject}) > 1:
            raise InputError(f"subject {subject} has scans of different classes")
    return records


def subject_folds(records, n_folds: int = 4, seed: int = 0) -> list:
    """(train indices, test indices) per fold: split by subject, stratified by class (StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    records = list(records)
    subjects = sorted({r.subject for r in records})
    if n_folds < 2:
        raise InputError(f"n_folds must be at least 2, got {n_folds}")
    if len(subjects) < n_folds:
        raise InputError(f"{len(subjects)} subject(s) cannot be split into {n_folds} folds")
    y = np.array([CLASSES.index(r.class_name) for r in records])
    groups = np.array([subjects.index(r.subject) for r in records])
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    try:
        return [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros(len(records)), y, groups)]
    except ValueError as exc:  # e.g. a class with fewer subjects than folds
        raise InputError(f"cannot split {len(subjects)} subjects into {n_folds} folds: {exc}") from None
