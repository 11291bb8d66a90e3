"""Texture score (Eq. 5) on hand-built cases whose answer is known, and the muscle-name alias table."""

import csv
import json

import numpy as np
import pytest

from MDTextureLib.scores import (ScoreParameters, canonical_muscle, scores_as_dicts, texture_scores,
                                 write_scores_csv)


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


@pytest.mark.parametrize("name, muscle", [
    # parenthesised abbreviations and Latin with caput
    ("Extensor digitorum longus (EDL)", "EDL"), ("Tibialis anterior (TA)", "TA"), ("MG (medial gastrocnemius)", "MG"),
    ("gastrocnemius caput laterale", "LG"), ("gastrocnemius caput mediale", "MG"),
    ("M. gastrocnemius, caput mediale", "MG"), ("Musculus gastrocnemius caput laterale", "LG"),
    ("Musculus soleus", "Sol"), ("musculus tibialis posterior", "TP"), ("Musculi peronei", "Per"),
    ("Peroneus (fibularis) longus", "Per"), ("Fibularis longus", "Per"), ("fibularis brevis", "Per"),
    # DICOM / SNOMED CT code meanings
    ("Structure of tibialis anterior muscle", "TA"), ("Tibialis anterior muscle structure (body structure)", "TA"),
    ("Lateral head of gastrocnemius muscle", "LG"), ("Structure of medial head of gastrocnemius muscle", "MG"),
    ("Structure of extensor digitorum longus muscle", "EDL"), ("Peroneus longus muscle", "Per"),
    ("Soleus muscle structure", "Sol"), ("Entire tibialis posterior muscle", "TP"),
    # German, French, Spanish, Italian (accents folded for the lookup only)
    ("Vorderer Schienbeinmuskel", "TA"), ("Langer Zehenstrecker", "EDL"), ("Kurzer Wadenbeinmuskel", "Per"),
    ("Schollenmuskel", "Sol"), ("Gastrocnemius medialer Kopf", "MG"),
    ("Gastrocnémien latéral", "LG"), ("gastrocnémien médial", "MG"), ("Jambier antérieur", "TA"),
    ("Tibial postérieur", "TP"), ("Long extenseur des orteils", "EDL"), ("Long fibulaire", "Per"),
    ("Court péronier latéral", "Per"), ("Soléaire", "Sol"), ("Jumeau interne", "MG"),
    ("Gemelo externo", "LG"), ("Sóleo", "Sol"), ("Tibial anterior", "TA"), ("Peroneo largo", "Per"),
    ("Extensor largo de los dedos", "EDL"), ("Gastrocnemio mediale", "MG"), ("Tibiale anteriore", "TA"),
    # Chinese, Japanese
    ("胫骨前肌", "TA"), ("腓肠肌内侧头", "MG"), ("比目鱼肌", "Sol"), ("腓腹筋外側頭", "LG"), ("後脛骨筋", "TP"),
    ("長趾伸筋", "EDL"), ("長腓骨筋", "Per"),
    # side markers, numbering, abbreviations
    ("TA_1", "TA"), ("L_MG", "MG"), ("Soleus (left)", "Sol"), ("Gastrocnemius (lateral head)", "LG"), ("GasMed", "MG"),
])
def test_alias_table_knows_latin_terminology_and_other_languages(name, muscle):
    assert canonical_muscle(name) == muscle


@pytest.mark.parametrize("name", [
    "extensor hallucis longus", "EHL", "flexor digitorum longus", "FDL", "flexor hallucis longus", "peroneus tertius",
    "popliteus", "plantaris", "gastrocnemius", "Gastrocnemius muscle", "tibia", "fibula", "tibial nerve",
    "anterior tibial artery", "subcutaneous fat", "Soleus and gastrocnemius", "TA (EDL)", "TA TP", "lateral",
    "Segment_1", "Segment 3", "label_9", "腓腹筋", "()", "",
])
def test_names_of_no_calf_muscle_or_of_two_match_nothing(name):
    assert canonical_muscle(name) is None


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


def test_overlapping_segments_are_each_scored_on_their_own_voxels():
    """Slicer layers (L, z, y, x): Sol in layer 1 covers all of MG in layer 0. Each segment keeps its own voxels, as
    Slicer's Segment Statistics counts them; merging the layers (later segment wins) made MG absent."""
    heat, labels, _, ff = _case()
    layers = np.zeros((2,) + labels.shape, np.uint16)
    layers[0][labels == 1] = 1  # TA: 25 px on 10 slices, 5 slices highlighted
    layers[0][:, 10:14, 10:14] = 2  # MG: 16 px on every slice
    layers[1][:, 9:15, 9:15] = 3  # Sol: 36 px, covering MG
    heat[:, 10:14, 10:12] = 1.0  # half of MG hot on every slice → 8/36 of Sol (22 % ≥ 10 %)
    ff[:, 9:15, 9:15] = 0.3
    ff[:, 10:14, 10:14] = 0.7
    rows = {r.muscle: r for r in texture_scores(heat, layers, {1: "TA", 2: "MG", 3: "Soleus"}, ff, (1.0, 1.0, 4.0))}
    mg, sol, ta = rows["MG"], rows["Sol"], rows["TA"]
    assert (mg.slices_present, mg.slices_highlighted, mg.texture_score) == (10, 10, 1.0)
    assert mg.volume_ml == pytest.approx(16 * 10 * 4 / 1000) and mg.mean_ff == pytest.approx(70.0)
    assert (sol.slices_present, sol.slices_highlighted) == (10, 10)
    assert sol.volume_ml == pytest.approx(36 * 10 * 4 / 1000)
    assert sol.mean_ff == pytest.approx((16 * 70 + 20 * 30) / 36)
    assert (ta.slices_present, ta.slices_highlighted, ta.texture_score) == (10, 5, 0.5)
    assert mg.segments == ("MG",) and sol.segments == ("Soleus",)
    # one layer holding the same labels gives the same rows as the (z, y, x) map
    single = texture_scores(heat, layers[:1], {1: "TA", 2: "MG"}, ff, (1.0, 1.0, 4.0))
    assert single == texture_scores(heat, layers[0], {1: "TA", 2: "MG"}, ff, (1.0, 1.0, 4.0))


def test_two_overlapping_segments_of_one_muscle_count_each_voxel_once():
    heat, labels, _, ff = _case()
    layers = np.zeros((2,) + labels.shape, np.uint16)
    layers[0][:, 2:7, 2:6] = 1  # "peroneus longus": 20 px
    layers[1][:, 2:7, 4:7] = 2  # "peroneus brevis": 15 px, 10 of them shared → union 25 px
    rows = {r.muscle: r for r in texture_scores(heat, layers, {1: "peroneus longus", 2: "Peroneus brevis"}, ff,
                                                (1.0, 1.0, 4.0))}
    assert rows["Per"].volume_ml == pytest.approx(25 * 10 * 4 / 1000)
    assert (rows["Per"].slices_present, rows["Per"].slices_highlighted) == (10, 5)  # as TA's square in _case
    assert rows["Per"].segments == ("peroneus longus", "Peroneus brevis")


def test_invalid_parameters_and_shapes():
    with pytest.raises(ValueError, match="threshold"):
        ScoreParameters(threshold=1.5)
    with pytest.raises(ValueError, match="min_overlap"):
        ScoreParameters(min_overlap=0)
    with pytest.raises(ValueError, match="share one grid"):
        texture_scores(np.zeros((2, 3, 3)), np.zeros((2, 3, 4), int), {}, np.zeros((2, 3, 3)), (1, 1, 1))
    with pytest.raises(ValueError, match="share one grid"):
        texture_scores(np.zeros((2, 3, 3)), np.zeros((1, 2, 3, 4), int), {}, np.zeros((2, 3, 3)), (1, 1, 1))


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


def test_names_are_kept_exactly_in_csv_and_json(tmp_path):
    """Accents and CJK survive: the CSV is UTF-8 (an unmatched segment is listed under its own name), the JSON rows
    name their segments as given and round-trip. Folding accents is for the lookup only."""
    heat, labels, _, ff = _case()
    names = {1: "Gastrocnémien latéral", 5: "比目鱼肌", 9: "股骨"}  # LG, Sol, and "femur" (no calf muscle)
    rows = texture_scores(heat, labels, names, ff, (1.0, 1.0, 4.0))
    by = {r.muscle: r for r in rows}
    assert by["LG"].segments == ("Gastrocnémien latéral",) and by["Sol"].segments == ("比目鱼肌",)
    assert by["股骨"].texture_score == 1.0 and by["股骨"].label_value == 9
    write_scores_csv(rows, tmp_path / "s.csv", ScoreParameters())
    table = {r["muscle"]: r for r in csv.DictReader(open(tmp_path / "s.csv", encoding="utf-8"))}
    assert table["股骨"]["texture_score"] == "1.0000" and table["LG"]["texture_score"] == "0.5000"
    assert json.loads(json.dumps(scores_as_dicts(rows))) == scores_as_dicts(rows)
    assert json.loads(json.dumps(scores_as_dicts(rows)))[5]["segments"] == ["Gastrocnémien latéral"]
