"""Segment names → the seven calf muscles (TA, EDL, Per, TP, Sol, LG, MG).

Names arrive as people and tools write them: abbreviations ("Tib Ant", "MG"), English, Latin with or without
"musculus" and "caput" ("M. gastrocnemius caput mediale"), parenthesised abbreviations ("Extensor digitorum longus
(EDL)"), DICOM / SNOMED CT code meanings ("Structure of tibialis anterior muscle", "Lateral head of gastrocnemius
muscle"), German, French, Spanish and Italian common names, Chinese and Japanese names, with side markers ("_R",
"left"). Matching is on the *set* of meaningful words after folding case and accents ("Gastrocnémien latéral" →
{gastrocnemius, lateral}), so word order does not matter and a name with one word too many or too few matches
nothing rather than the wrong muscle ("gastrocnemius" alone, "extensor hallucis longus", "peroneus tertius" and
"flexor digitorum longus" match nothing). The folding is for lookup only: the name shown and written is the name given.
"""

from __future__ import annotations

import re
import unicodedata

# Words (after folding) replaced by one spelling before matching: abbreviations, Latin inflections, other languages.
_WORD_EXPANSIONS = {
    # English / Latin abbreviations and inflections
    "tib": "tibialis", "ant": "anterior", "post": "posterior", "lat": "lateral", "med": "medial",
    "gastroc": "gastrocnemius", "gastrocn": "gastrocnemius", "gas": "gastrocnemius", "gast": "gastrocnemius",
    "gastrocnemii": "gastrocnemius", "ext": "extensor", "dig": "digitorum", "long": "longus", "brev": "brevis",
    "per": "peroneus", "peron": "peroneus", "peronei": "peroneus", "peroneal": "peroneus", "peroneals": "peroneus",
    "peroneous": "peroneus", "fibularis": "peroneus", "fibular": "peroneus", "fibulares": "peroneus",
    "fibulars": "peroneus", "lateralis": "lateral", "laterale": "lateral", "medialis": "medial", "mediale": "medial",
    "anterius": "anterior", "posterius": "posterior", "tibial": "tibialis",
    # German
    "vorderer": "anterior", "hinterer": "posterior", "langer": "longus", "kurzer": "brevis",
    "lateraler": "lateral", "medialer": "medial", "schienbeinmuskel": "tibialis", "wadenbeinmuskel": "peroneus",
    "zehenstrecker": "extensordigitorum", "schollenmuskel": "soleus", "zwillingswadenmuskel": "gastrocnemius",
    # French (accents folded)
    "jambier": "tibialis", "anterieur": "anterior", "posterieur": "posterior", "court": "brevis",
    "extenseur": "extensor", "orteils": "digitorum", "fibulaire": "peroneus", "fibulaires": "peroneus",
    "peronier": "peroneus", "peroniers": "peroneus", "lateraux": "lateral", "soleaire": "soleus",
    "gastrocnemien": "gastrocnemius", "jumeau": "gastrocnemius", "externe": "lateral", "interne": "medial",
    # Spanish / Italian
    "anteriore": "anterior", "posteriore": "posterior", "tibiale": "tibialis", "soleo": "soleus",
    "gastrocnemio": "gastrocnemius", "gemelo": "gastrocnemius", "gemello": "gastrocnemius", "peroneo": "peroneus",
    "externo": "lateral", "interno": "medial", "largo": "longus", "corto": "brevis", "lungo": "longus",
    "breve": "brevis", "estensore": "extensor", "dedos": "digitorum", "dita": "digitorum", "toes": "digitorum",
}
# Words that say nothing about which muscle it is (side, "muscle", terminology boiler-plate).
_NOISE_WORDS = {
    "m", "mm", "mu", "mus", "musc", "muscle", "muscles", "musculus", "musculi", "muskel", "muscolo", "musculo",
    "left", "right", "l", "r", "lt", "rt", "links", "rechts", "gauche", "droit", "droite", "izquierdo", "derecho",
    "sinistro", "destro", "sin", "dex", "bilateral",
    "head", "heads", "caput", "kopf", "chef", "capo", "cabeza", "belly", "venter",
    "the", "and", "of", "der", "des", "de", "du", "la", "le", "los", "las", "el", "del", "dello", "delle", "dei", "di",
    "y", "et", "und", "e", "commun",
    "structure", "entire", "body", "part", "region", "calf", "leg", "lower", "seg", "segment", "label", "roi", "mask",
}

_ALIASES = {
    "TA": ["ta", "tibialis anterior", "anterior tibialis", "tibialis anticus", "tibant",
           "vorderer schienbeinmuskel", "jambier anterieur", "胫骨前肌", "脛骨前肌", "前脛骨筋"],
    "EDL": ["edl", "extensor digitorum longus", "extensor digitorum", "edl ehl", "long extensor of toes",
            "extensor digitorum longus extensor hallucis longus", "langer zehenstrecker", "extensordigitorum longus",
            "extensordigitorum", "趾长伸肌", "趾長伸肌", "長趾伸筋"],
    "Per": ["per", "pe", "pl", "pb", "peroneus", "peroneus longus", "peroneus brevis", "peroneus longus brevis",
            "peroneus longus peroneus brevis", "peroneus lateral", "longus peroneus lateral", "brevis peroneus lateral",
            "peroneus group", "peroneus compartment",
            "腓骨长肌", "腓骨短肌", "腓骨肌", "腓骨長肌", "長腓骨筋", "短腓骨筋", "腓骨筋"],
    "TP": ["tp", "tibialis posterior", "posterior tibialis", "tibialis posticus", "tibpost",
           "hinterer schienbeinmuskel", "jambier posterieur", "胫骨后肌", "脛骨後肌", "後脛骨筋"],
    "Sol": ["sol", "so", "soleus", "比目鱼肌", "比目魚肌", "ヒラメ筋"],
    "LG": ["lg", "gl", "lateral gastrocnemius", "gastrocnemius lateral", "lgas", "gasl", "glat", "gaslat",
           "腓肠肌外侧头", "腓腸肌外側頭", "腓腹筋外側頭", "腓腹筋 外側頭"],
    "MG": ["mg", "gm", "medial gastrocnemius", "gastrocnemius medial", "mgas", "gasm", "gmed", "gasmed",
           "腓肠肌内侧头", "腓腸肌內側頭", "腓腹筋内側頭", "腓腹筋 内側頭"],
}


def fold(name: str) -> str:
    """Lower case without accents, for lookup only: 'Gastrocnémien Latéral' → 'gastrocnemien lateral'."""
    decomposed = unicodedata.normalize("NFKD", str(name))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _tokens(name: str) -> frozenset:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))  # camelCase → words
    words = re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])", " ", words)  # 'TA1' → 'TA 1'
    words = re.split(r"[\W_]+", fold(words))  # any letters, any script; digits are dropped below
    return frozenset(_WORD_EXPANSIONS.get(w, w) for w in words
                     if w and w not in _NOISE_WORDS and not w.isdigit())


_LOOKUP = {}
for _muscle, _names in _ALIASES.items():
    for _alias in _names + [_muscle]:
        _LOOKUP[_tokens(_alias)] = _muscle


def canonical_muscle(name: str) -> str | None:
    """'Soleus_R' → 'Sol', 'Extensor digitorum longus (EDL)' → 'EDL', 'Lateral head of gastrocnemius muscle' → 'LG';
    None when the name is no calf muscle, or when its parts name different muscles."""
    name = str(name)
    inside = re.findall(r"[(\[{](.*?)[)\]}]", name)
    outside = re.sub(r"[(\[{].*?[)\]}]", " ", name)
    # The whole name first; else the name without brackets and each bracketed part, which must agree.
    whole = _LOOKUP.get(_tokens(name))
    if whole or not inside:
        return whole
    found = {_LOOKUP.get(_tokens(part)) for part in [outside] + inside if _tokens(part)}
    return found.pop() if len(found) == 1 else None
