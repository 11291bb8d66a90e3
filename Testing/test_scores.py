"""Texture score (Eq. 5) on hand-built cases whose answer is known, and the muscle-name alias table."""

import csv

import numpy as np
import pytest

from MDTextureLib.scores import ScoreParameters, canonical_muscle, texture_scores, write_scores_csv


@pytest.mark.parametrize("name, muscle", [
    ("TA", "TA"), ("tibialis anterior", "TA"), ("Tib Ant", "TA"), ("TibialisAnterior_R", "TA"),
    ("EDL", "EDL"), ("extensor digitorum longus", "EDL"), ("ext dig long", "EDL"),
    ("Per", "Per"), ("peroneus longus", "Per"), ("Peroneus brevis", "Per"), ("fibularis longus", "Per"),
    ("peroneals", "Per"), ("TP", "TP"), ("tibialis posterior", "TP"), ("tib post left", "TP"),
    ("Sol", "Sol"), ("Soleus", "Sol"), ("m. soleus", "Sol"), ("SOLEUS_L", "Sol"),
    ("LG", "LG"), ("lateral gastrocnemius", "LG"), ("Gastrocnemius lateralis", "LG"), ("gastroc lat", "LG"),
    ("gastrocnemius lateral head", "LG"), ("MG", "MG"), ("medial gastrocnemius", "MG"), ("Gastroc_Med", "MG"),
    ("Segment_1", None), ("tibia", None), ("gastrocnemius", None), ("", None),
])
def test_alias_table(name, muscle):
    assert canonical_muscle(name) == muscle


def _case():
    """10 slices of 20×20 px at 1×1 mm, 4 mm thick.

    TA (label 1): a 5×5 = 25 mm² square on slices 0-9; on slices 0-3 all of it is hot, on slice 4 two of 25
    voxels (8 % < 10 %), on slice 5 three voxels (12 % ≥ 10 %). → m = 10, n = 5, s = 0.5.
    Sol (label 5): 3×3 = 9 mm² on slices 0-4 (< 10 mm²: not present), 4×4 = 16 mm² on slices 5-9, never hot.
    → m = 5, n = 0, s = 0.0.  TP is absent → no score.  Label 9 named "tibia" → scored under its own name.
    """
    z, y, x = 10, 20, 20
    labels = np.zeros((z, y, x), np.uint8)
    heat = np.zeros((z, y, x), np.float32)
    ff = np.zeros((z, y, x), np.float32)
    labels[:, 2:7, 2:7] = 1
    heat[0:4, 2:7, 2:7] = 0.9
    heat[4, 2, 2:4] = 0.6
    heat[5, 2, 2:5] = 0.5  # exactly at threshold counts as highlighted
    heat[6, 2:7, 2:7] = 0.49  # just below threshold
    labels[0:5, 10:13, 10:13] = 5
    labels[5:10, 10:14, 10:14] = 5
    labels[:, 16:20, 16:20] = 9
    heat[:, 16:20, 16:20] = 1.0
    ff[labels == 1] = 0.10
    ff[labels == 5] = 0.40
    return heat, labels, {1: "TA", 5: "soleus", 9: "tibia"}, ff


def test_hand_built_case():
    heat, labels, names, ff = _case()
    rows = {r.muscle: r for r in texture_scores(heat, labels, names, ff, (1.0, 1.0, 4.0))}
    assert list(rows)[:7] == ["TA", "EDL", "Per", "TP", "Sol", "LG", "MG"]
    ta, sol, tp = rows["TA"], rows["Sol"], rows["TP"]
    assert (ta.slices_present, ta.slices_highlighted, ta.texture_score) == (10, 5, 0.5)
    assert (sol.slices_present, sol.slices_highlighted, sol.texture_score) == (5, 0, 0.0)
    assert (tp.slices_present, tp.slices_highlighted, tp.texture_score, tp.mean_ff) == (0, 0, None, None)
    assert ta.mean_ff == pytest.approx(10.0) and sol.mean_ff == pytest.approx(40.0)
    assert ta.volume_ml == pytest.approx(25 * 10 * 4 / 1000)
    assert sol.volume_ml == pytest.approx((9 * 5 + 16 * 5) * 4 / 1000)
    assert ta.label_value == 1 and sol.label_value == 5 and tp.label_value == 4
    assert rows["tibia"].texture_score == 1.0 and rows["tibia"].label_value == 9


def test_parameters_change_the_answer_as_they_should():
    heat, labels, names, ff = _case()
    lower = {r.muscle: r for r in texture_scores(heat, labels, names, ff, (1.0, 1.0, 4.0),
                                                 ScoreParameters(threshold=0.45))}
    assert lower["TA"].slices_highlighted == 6  # slice 6 (0.49) now counts
    strict = {r.muscle: r for r in texture_scores(heat, labels, names, ff, (1.0, 1.0, 4.0),
                                                  ScoreParameters(min_overlap=0.2))}
    assert strict["TA"].slices_highlighted == 4  # slice 5 (12 %) no longer counts
    small = {r.muscle: r for r in texture_scores(heat, labels, names, ff, (1.0, 1.0, 4.0),
                                                 ScoreParameters(min_area_mm2=5.0))}
    assert small["Sol"].slices_present == 10
    # pixel area enters through the spacing: at 0.5×0.5 mm the 25-px TA square is 6.25 mm² < 10 mm²
    tiny = {r.muscle: r for r in texture_scores(heat, labels, names, ff, (0.5, 0.5, 4.0))}
    assert tiny["TA"].slices_present == 0 and tiny["TA"].texture_score is None


def test_segments_of_one_muscle_are_scored_together():
    heat, labels, _, ff = _case()
    labels[labels == 5] = 0
    labels[:, 2:7, 2:4] = 3  # left part of the square: "peroneus longus"
    labels[:, 2:7, 4:7] = 4  # right part: "peroneus brevis"
    rows = {r.muscle: r for r in texture_scores(heat, labels, {3: "peroneus longus", 4: "Peroneus brevis"},
                                                ff, (1.0, 1.0, 4.0))}
    assert rows["Per"].slices_present == 10 and rows["Per"].slices_highlighted == 5
    assert rows["Per"].label_value == 3  # canonical value of Per


def test_invalid_parameters_and_shapes():
    with pytest.raises(ValueError, match="threshold"):
        ScoreParameters(threshold=1.5)
    with pytest.raises(ValueError, match="min_overlap"):
        ScoreParameters(min_overlap=0)
    with pytest.raises(ValueError, match="share one grid"):
        texture_scores(np.zeros((2, 3, 3)), np.zeros((2, 3, 4), int), {}, np.zeros((2, 3, 3)), (1, 1, 1))


def test_csv_carries_columns_and_parameters(tmp_path):
    heat, labels, names, ff = _case()
    params = ScoreParameters(threshold=0.5, min_overlap=0.1, min_area_mm2=10.0)
    rows = texture_scores(heat, labels, names, ff, (1.0, 1.0, 4.0), params)
    write_scores_csv(rows, tmp_path / "s.csv", params)
    table = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert list(table[0])[:7] == ["muscle", "label_value", "slices_present", "slices_highlighted",
                                  "texture_score", "mean_ff", "volume_ml"]
    by = {r["muscle"]: r for r in table}
    assert by["TA"]["texture_score"] == "0.5000" and by["TP"]["texture_score"] == ""
    assert by["TA"]["threshold"] == "0.5" and by["TA"]["min_area_mm2"] == "10.0"
