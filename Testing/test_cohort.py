"""Tests of the cohort reader, subject-level folds and the cohort statistics command."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from MDTextureLib.cohort import ScanRecord, read_cohort, subject_folds
from MDTextureLib.constants import CLASSES
from MDTextureLib.errors import InputError
from MDTextureLib.cli import main as mdtexture_main
from MDTextureLib.phantom.stats import auc, knn_cv


def _records(n_subjects=24, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_subjects):
        cls = CLASSES[i % 3]
        for j in range(1, 1 + int(rng.integers(1, 3))):
            p = Path(f"/nonexistent/S{i}_{j}")
            recs.append(ScanRecord(f"S{i:03d}", j, cls, 10.0, 0.5, p, *(p / f for f in "abcdefg")))
    return recs


def test_folds_split_by_subject_and_stratify():
    recs = _records()
    folds = subject_folds(recs, n_folds=4, seed=0)
    assert len(folds) == 4
    seen = np.zeros(len(recs), int)
    for train, test in folds:
        assert not {recs[i].subject for i in train} & {recs[i].subject for i in test}
        assert set(train) | set(test) == set(range(len(recs)))
        assert {recs[i].class_name for i in test} == set(CLASSES)      # every class in every test fold
        seen[test] += 1
    assert (seen == 1).all()
    assert [t.tolist() for _, t in folds] == [t.tolist() for _, t in subject_folds(recs, 4, 0)]
    with pytest.raises(InputError):
        subject_folds(recs[:3], n_folds=4)


def test_knn_on_mean_ff_known_by_construction():
    recs = _records()
    y = np.array([CLASSES.index(r.class_name) for r in recs])
    separable = knn_cv(recs, y * 20.0 + 1.0, k=3)
    assert separable["accuracy_pooled"] == 1.0
    identical = knn_cv(recs, np.zeros(len(recs)), k=3)
    assert identical["accuracy_pooled"] < 0.6
    assert auc([2, 3], [0, 1]) == 1.0 and auc([1, 1], [1, 1]) == 0.5


def _fake_cohort(root: Path, rows):
    root.mkdir()
    with open(root / "cohort.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_read_cohort_errors(tmp_path):
    with pytest.raises(InputError, match="cohort.csv is missing"):
        read_cohort(tmp_path)
    row = {"subject": "S1", "scan": "1", "class": "DMD", "age": "9", "severity": "0.3", "folder": "S1_1"}
    with pytest.raises(InputError, match="does not exist"):
        read_cohort(_fake_cohort(tmp_path / "a", [row]))
    with pytest.raises(InputError, match="unknown class"):
        read_cohort(_fake_cohort(tmp_path / "b", [dict(row, **{"class": "BMD"})]))
    with pytest.raises(InputError, match="missing column"):
        read_cohort(_fake_cohort(tmp_path / "c", [{"subject": "S1", "scan": "1"}]))
    c = _fake_cohort(tmp_path / "d", [row])
    (c / "S1_1").mkdir()
    (c / "S1_1" / "water.nrrd").write_bytes(b"")
    with pytest.raises(InputError, match="lacks ff.nrrd"):
        read_cohort(c)


def test_a_real_cohort_needs_only_ff_and_class(tmp_path):
    """Real data have no involvement masks, truth or severity: only subject, scan, class, folder and ff.nrrd."""
    c = _fake_cohort(tmp_path / "real", [{"subject": "P7", "scan": "1", "class": "CMD", "folder": "P7_1"}])
    (c / "P7_1").mkdir()
    (c / "P7_1" / "ff.nrrd").write_bytes(b"")
    (rec,) = read_cohort(c)
    assert rec.ff.name == "ff.nrrd" and rec.truth is None and rec.involvement is None and rec.muscles is None
    assert np.isnan(rec.age) and np.isnan(rec.severity) and rec.class_name == "CMD"


def test_phantom_and_stats_commands(tmp_path, capsys):
    out = tmp_path / "cohort"
    rc = mdtexture_main(["phantom", "--out", str(out), "--subjects", "8", "--seed", "3", "--slices", "4",
                           "--matrix", "144", "--pixel-mm", "1.5", "--workers", "1", "--quiet",
                           "--preview", str(tmp_path / "p.png")])
    assert rc == 0 and (tmp_path / "p.png").stat().st_size > 10_000
    recs = read_cohort(out)
    assert {r.class_name for r in recs} == set(CLASSES)
    assert len({r.subject for r in recs}) == 8 and 8 <= len(recs) <= 16
    rc = mdtexture_main(["cohort-stats", "--data", str(out), "--out", str(tmp_path / "stats"), "--k", "3"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "DMD" in text and "48.6" in text
    stats = json.loads((tmp_path / "stats" / "cohort_stats.json").read_text())
    assert stats["scans"] == len(recs)
    normal = stats["mean_ff_percent_by_class"]["normal"]
    assert 2.0 < normal["min"] and normal["max"] < 8.0
    assert 0.0 <= stats["mff_knn"]["accuracy_mean_over_folds"] <= 1.0
    # bad input: one-line message, exit 2
    assert mdtexture_main(["phantom", "--out", str(out), "--subjects", "2", "--quiet"]) == 2
    assert mdtexture_main(["cohort-stats", "--data", str(tmp_path / "nothing")]) == 2
    assert mdtexture_main(["phantom", "--out", str(tmp_path / "x"), "--subjects", "2", "--matrix", "64",
                             "--pixel-mm", "1.0", "--quiet"]) == 2
    assert not (tmp_path / "x").exists()
