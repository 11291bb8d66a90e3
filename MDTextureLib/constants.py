"""Vocabulary shared by every part of MDTexture: class order, muscle names and label values.

These are contracts: files, model cards, tables and the Slicer module all rely on them, so change them only
together with a model-card version bump.
"""

#: Classes in the order of the network's outputs, everywhere.
CLASSES = ("DMD", "CMD", "normal")

#: The seven calf muscles scored by the paper (Table 3), in canonical order.
MUSCLES = ("TA", "EDL", "Per", "TP", "Sol", "LG", "MG")

#: Label value of each muscle in a labelmap (TA=1 ... MG=7).
MUSCLE_LABELS = {name: value for value, name in enumerate(MUSCLES, start=1)}

#: Full anatomical names, for tables and tooltips.
MUSCLE_FULL_NAMES = {
    "TA": "tibialis anterior",
    "EDL": "extensor digitorum longus",
    "Per": "peroneus (fibularis) longus and brevis",
    "TP": "tibialis posterior",
    "Sol": "soleus",
    "LG": "lateral gastrocnemius",
    "MG": "medial gastrocnemius",
}

#: Display colours (RGB in 0..1) per muscle, used by the phantom's .seg.nrrd and the Slicer module.
MUSCLE_COLORS = {
    "TA": (0.90, 0.30, 0.25),
    "EDL": (0.95, 0.65, 0.20),
    "Per": (0.95, 0.90, 0.30),
    "TP": (0.45, 0.80, 0.35),
    "Sol": (0.30, 0.70, 0.90),
    "LG": (0.55, 0.40, 0.85),
    "MG": (0.90, 0.45, 0.75),
}

#: Network variants (names of Table 2) → feature stages, finest first; the map lives at the first stage's
#: resolution. Defined here, not in ``network``, so the command line can list them without importing torch.
VARIANTS = {
    "icam14": ("layer3", "layer4"),
    "icam28": ("layer2", "layer3"),
    "resnet7": ("layer4",),
    "resnet14": ("layer3",),
    "resnet28": ("layer2",),
    "icam14-leg": ("layer3", "layer4"),
    "icam28-leg": ("layer2", "layer3"),
    "icam56": ("layer1", "layer2"),
    "icam56-leg": ("layer1", "layer2"),
    "resnet28-leg": ("layer2",),
}

#: Variants whose pooling is restricted to the leg (the body mask at the map's resolution) and whose input is 0
#: outside the body; each has the parameters of its paper variant (same names and shapes), so weights alone cannot
#: tell them apart: the model card's ``variant`` (and ``map.pooling`` = "leg") does.
LEG_VARIANTS = {"icam14-leg": "icam14", "icam28-leg": "icam28", "icam56-leg": "icam56", "resnet28-leg": "resnet28"}


def pooling_of(variant: str) -> str:
    """'leg' for a leg-pooled variant, 'image' (global average pooling over the window) for the paper's."""
    return "leg" if variant in LEG_VARIANTS else "image"

#: The model window of new models (written into every model card; the card, not this, rules at inference).
DEFAULT_PIXEL_MM = 0.8  # 224 px × 0.8 mm = 179 mm: an adult calf (≤ 125 mm) with margin
DEFAULT_SIZE_PX = 224

#: How a heatmap is scaled to [0, 1] inside the leg (``inference``): ``slice`` (default) divides each axial slice by
#: its own maximum inside the leg, as the paper's per-image maps are read (a slice whose evidence is weaker than the
#: volume's strongest still shows where in that slice it lies, and Eq. 5 counts slices); ``volume`` divides by the
#: maximum inside the leg over the whole volume (the rule before issue 12, kept so evaluation can compare).
HEATMAP_NORMALISATIONS = ("slice", "volume")
DEFAULT_HEATMAP_NORMALISATION = "slice"

#: Disease severity bands of the phantom (cohort.csv ``severity``, 0-1), named by the leg's mean excess FF they give
#: on the texture cohort (``phantom.disease``: 0.62 · severity^1.6): below 0.15 the excess is under 3 %, within the
#: spread of healthy Dixon FF; 0.4 gives about +14 %. ``evaluate-model`` reports accuracy per band.
SEVERITY_BANDS = ((0.15, "slight (severity < 0.15, leg FF +3 % or less)"),
                  (0.40, "moderate (0.15-0.40, +3 to +14 %)"),
                  (float("inf"), "marked (>= 0.40, more than +14 %)"))

#: What a reader of the fat map (``attribution.py``) is told wherever it is shown: prediction.json, the CLI help,
#: the Slicer module, the browser app. Measured by ``mdtexture evaluate localisation`` (README, *Experiments*).
FAT_MAP_CAVEAT = ("on the project's phantoms, inside the muscles this map found the diseased tissue no better than "
                  "the fat-fraction image with a random sign per pixel, and its signs there were a coin flip: read it "
                  "as the fat the network is sensitive to, not as a map of the disease")

#: What a texture score is, in a few words (the report's score panel), and the measured caveat that goes with every
#: texture-score table (prediction.json, the Slicer table and measurement, the browser app). Measured by ``mdtexture
#: evaluate table3`` (README, *Experiments*): the issue behind it found clinicians would read the scores as extent.
TEXTURE_SCORE_MEANING = "where the network found its evidence for the class, not how much of the muscle is diseased"
TEXTURE_SCORE_CAVEAT = ("texture scores show " + TEXTURE_SCORE_MEANING + ": on the project's phantoms they ranked "
                        "the muscles of a scan by their true involvement only weakly, while the muscles' mean FF "
                        "tracked it closely")
#: The same caveat as a sentence of its own (capitalised, full stop), where it stands alone (table, page).
TEXTURE_SCORE_CAVEAT_SENTENCE = TEXTURE_SCORE_CAVEAT[0].upper() + TEXTURE_SCORE_CAVEAT[1:] + "."
