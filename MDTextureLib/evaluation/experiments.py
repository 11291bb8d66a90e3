"""The experiments of Cai et al. on a cohort (normally the phantom), and the localisation evaluation the paper
could not do. Each ``run_*`` function writes ``NAME.md``, ``NAME.json`` and ``NAME*.png`` into a folder.

Protocol shared by every experiment:

- subject-level stratified 4-fold cross-validation from :func:`MDTextureLib.cohort.subject_folds` (seed
  ``fold_seed``), the same folds for every method;
- one network per (variant, fold), trained on the training subjects with the project's training loop
  (:func:`MDTextureLib.training.loop.train`, the paper's §3.2/§3.4 protocol, iteration budget ``iterations``), or
  loaded from ``--models`` (``VARIANT_foldK.json``, the names ``mdtexture crossval --keep-models`` writes);
- classification images are the *key frames* (slices showing the soleus) of the held-out scans; scan-level
  accuracy (the verdict of the whole volume) is reported next to it;
- heatmaps are the map of the scan's true class.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import CLASSES, MUSCLE_LABELS, MUSCLES
from ..errors import InputError
from ..modelfile import Model, load_model
from ..scores import ScoreParameters, texture_scores
from . import baselines, distances, embedding, localisation, maps, randomisation
from .data import ROI_MUSCLES, CohortData, resample_labels
from .settings import EXPERIMENTS, LOCALISATION_VARIANTS, Settings  # noqa: F401 (re-exported)

#: Paper Table 1 (test accuracy %, 4-fold CV: mean, max, min). The caption says "testing error" but the values
#: and the text (§4.1) are accuracies.
PAPER_TABLE1 = {
    "MFF (kNN)": (48.6, 55.4, 39.6), "STP (kNN)": (50.1, 57.4, 45.0), "K-Means (SVM)": (53.2, 58.4, 47.3),
    "STP (SVM)": (54.9, 61.8, 45.6), "VGG16-FC7 (SVM)": (80.6, 86.7, 54.7), "ResNet18-GAP (SVM)": (83.7, 93.2, 76.5),
    "VGG16": (84.1, 91.2, 76.5), "ResNet50": (88.6, 91.6, 83.5), "ResNet34": (89.2, 93.9, 84.6),
    "ResNet18": (90.7, 94.2, 86.1),
}
#: Paper Table 2 (test accuracy %, Fold-1..4 and mean).
PAPER_TABLE2 = {
    "resnet28": (88.7, 94.5, 87.8, 75.6, 86.6), "icam28": (88.4, 90.3, 90.3, 77.9, 86.7),
    "resnet14": (83.2, 94.5, 88.4, 80.8, 86.7), "icam14": (93.3, 96.8, 93.4, 84.6, 91.7),
}
#: Paper Table 3 class means (texture scores, TA..MG).
PAPER_TABLE3_MEANS = {
    "DMD": (0.222, 0.216, 0.303, 0.175, 0.642, 0.728, 0.496),
    "CMD": (0.074, 0.151, 0.591, 0.316, 0.499, 0.183, 0.226),
}
#: Paper §4.2: neurons (of 512) that separate DMD from CMD better than the soleus MFF.
PAPER_NEURONS = {"l2": 91, "chi2": 118, "of": 512}

VARIANT_LABELS = {"resnet7": "ResNet18 (CAM, 7²)", "icam14": "ICAM-14²", "icam28": "ICAM-28²",
                  "resnet14": "ResNet-14²", "resnet28": "ResNet-28²"}
TABLE1_DEEP = ("resnet7", "icam14", "icam28")
TABLE2_VARIANTS = ("resnet28", "icam28", "resnet14", "icam14")
RANDOMISATION_VARIANTS = ("icam28", "resnet7")
SPECIFIC_MARGIN = 0.10  # involved-fraction difference from which a muscle counts as class-specific


# ------------------------------------------------------------------------------------------------- utilities
def jsonable(obj):
    """numpy / torch / Path / NaN → plain JSON (NaN and inf become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return round(v, 6) if math.isfinite(v) else None
    if isinstance(obj, Path):
        return obj.name
    if isinstance(obj, ScoreParameters):
        return asdict(obj)
    return obj


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(jsonable(obj), indent=1) + "\n")


def md_table(header: list, rows: list) -> str:
    out = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def pct(v) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def num(v, digits: int = 3) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def summary(values) -> dict:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": float("nan"), "max": float("nan"), "min": float("nan"), "sd": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "max": float(v.max()), "min": float(v.min()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cohort_label(data_path) -> str:
    """'phantom' when the cohort was written by the MDTexture phantom generator, else 'cohort'."""
    p = Path(data_path)
    meta = (p if p.is_dir() else p.parent) / "cohort.json"
    try:
        if "phantom" in json.loads(meta.read_text()).get("generator", "").lower():
            return "phantom"
    except (OSError, ValueError, AttributeError):
        pass
    return "cohort"


# ------------------------------------------------------------------------------------------------- context
class Context:
    """Cohort, folds, trained networks and their test-set outputs, shared by the experiments of one run."""

    def __init__(self, data, settings: Settings, models_dir=None, store_dir=None, log=None):
        self.data_path = Path(data)
        self.settings = settings
        self.models_dir = Path(models_dir) if models_dir else None
        self.store_dir = Path(store_dir) if store_dir else None
        self._log = log
        self._cohort: CohortData | None = None
        self._models: dict = {}
        self._predictions: dict = {}
        self.provenance: dict = {"models": {}, "warnings": []}
        self.label = cohort_label(self.data_path)
        if self.models_dir is not None and not self.models_dir.is_dir():
            raise InputError(f"models folder not found: {self.models_dir}")

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)
        elif not self.settings.quiet:
            print(f"[evaluate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    @property
    def cohort(self) -> CohortData:
        if self._cohort is None:
            s = self.settings
            t0 = time.perf_counter()
            self._cohort = CohortData.from_path(self.data_path, n_folds=s.n_folds, seed=s.fold_seed,
                                                pixel_mm=s.pixel_mm, size_px=s.size_px)
            c = self._cohort
            self.log(f"cohort: {len(c)} scans of {len(set(c.subjects))} subjects, {len(c.dataset)} slices on a "
                     f"{s.size_px}-px window at {s.pixel_mm} mm, {c.n_folds} subject-level folds "
                     f"({time.perf_counter() - t0:.0f} s to read)")
            self._check_crossval_folds()
        return self._cohort

    def describe(self) -> dict:
        c = self.cohort
        return {
            "data": self.data_path.name, "kind": self.label, "scans": len(c), "subjects": len(set(c.subjects)),
            "slices": len(c.dataset),
            "scans_per_class": {cl: int((c.classes == k).sum()) for k, cl in enumerate(CLASSES)},
            "folds": [{"fold": k + 1, "test_subjects": sorted(set(c.subjects[te].tolist())),
                       "n_train_scans": int(len(tr)), "n_test_scans": int(len(te))}
                      for k, (tr, te) in enumerate(c.folds)],
        }

    def _check_crossval_folds(self) -> None:
        """When --models comes from `mdtexture crossval`, its folds must be ours (else test subjects leak).

        Reads every ``crossval*.json`` in the models folder (models of several crossval runs merged into one folder
        bring their reports along under distinct names) and ``crossval.json`` beside it.
        """
        if self.models_dir is None:
            return
        candidates = sorted(self.models_dir.glob("crossval*.json")) + [self.models_dir.parent / "crossval.json"]
        c = self._cohort
        for candidate in candidates:
            if not candidate.is_file():
                continue
            try:
                results = json.loads(candidate.read_text()).get("results", {})
            except ValueError:
                continue
            for variant, r in results.items():
                for f in r.get("folds", []):
                    k = int(f["fold"]) - 1
                    if k >= c.n_folds or set(f.get("test_subjects", [])) != set(c.subjects[c.folds[k][1]]):
                        raise InputError(f"the models in {self.models_dir} were cross-validated on other folds "
                                         f"than this run's ({candidate.name}, {variant} fold {k + 1}); use the "
                                         "same cohort, --folds and fold seed")

    def model(self, variant: str, fold: int) -> Model:
        """The network of ``variant`` for fold ``fold`` (0-based): loaded from --models, else trained now."""
        key = (variant, fold)
        if key in self._models:
            return self._models[key]
        c = self.cohort
        model = None
        if self.models_dir is not None:
            per_fold = self.models_dir / f"{variant}_fold{fold + 1}.json"
            single = self.models_dir / f"{variant}.json"
            if per_fold.is_file():
                model = load_model(per_fold)
                self.provenance["models"][f"{variant}_fold{fold + 1}"] = {
                    "source": per_fold.name, "sha256": model.sha256, "training": _training_note(model)}
            elif single.is_file():
                model = load_model(single)
                note = (f"{single.name} is used for every fold: valid only if it was trained on subjects outside "
                        "this cohort (e.g. another phantom seed)")
                if note not in self.provenance["warnings"]:
                    self.provenance["warnings"].append(note)
                    self.log("warning: " + note)
                self.provenance["models"][f"{variant}_fold{fold + 1}"] = {
                    "source": single.name, "sha256": model.sha256, "training": _training_note(model)}
        if model is not None:
            if abs(model.pixel_mm - c.pixel_mm) > 1e-6 or model.size_px != c.size_px:
                raise InputError(f"model {model.name} expects a {model.size_px}-px window at {model.pixel_mm} mm; "
                                 f"this run uses {c.size_px} px at {c.pixel_mm} mm (drop --quick or retrain)")
        else:
            model = self._train(variant, fold)
        model.net.eval()
        self._models[key] = model
        return model

    def _train(self, variant: str, fold: int) -> Model:
        from ..training.loop import TrainConfig, save_trained, train

        s = self.settings
        c = self.cohort
        steps = learning_rate_steps(s)
        config = TrainConfig(variant=variant, iterations=s.iterations, lr_steps=steps, batch_size=s.batch_size,
                             seed=s.seed + fold, pixel_mm=c.pixel_mm, size_px=c.size_px,
                             normalisation=c.normalisation, imagenet=s.imagenet, name=f"{variant}-fold{fold + 1}",
                             precision=s.precision)
        train_idx = c.folds[fold][0]
        t0 = time.perf_counter()
        self.log(f"training {variant} fold {fold + 1}/{c.n_folds}: {len(train_idx)} scans, {s.iterations} iterations")
        result = train(c.dataset.subset(train_idx), config, progress=not s.quiet)
        wall = time.perf_counter() - t0
        self.log(f"  {variant} fold {fold + 1}: {wall:.0f} s, final running training accuracy "
                 f"{result.log['final_running_accuracy']:.2f}")
        if self.store_dir is not None:
            stem = self.store_dir / f"{variant}_fold{fold + 1}"
            if s.quick:  # weights + card only: the training-curve figure costs more than a quick training
                from ..modelfile import save_model

                save_model(result.model, stem)
            else:
                save_trained(result, stem)
        self.provenance["models"][f"{variant}_fold{fold + 1}"] = {
            "source": "trained in this run", "iterations": s.iterations, "wall_s": round(wall, 1),
            "final_running_training_accuracy": result.log["final_running_accuracy"],
            "training": _training_note(result.model)}
        return result.model

    def predictions(self, variant: str, fold: int) -> dict:
        """{scan index: (slice logits (Z, 3) numpy, class maps (Z, 3, h, w) torch)} for the fold's test scans."""
        key = (variant, fold)
        if key not in self._predictions:
            net = self.model(variant, fold).net
            c = self.cohort
            out = {}
            for i in c.folds[fold][1]:
                logits, class_maps = maps.icam_maps(net, c.stacks(int(i)))
                out[int(i)] = (logits.numpy(), class_maps)
            self._predictions[key] = out
        return self._predictions[key]


#: Learning rate from scratch (no ImageNet file): the paper's 1e-4 fine-tunes pretrained weights and barely moves
#: a randomly initialised network in a few hundred iterations; 1e-3 (then 1e-4 for the last 20 %) is what the
#: project's own from-scratch models use.
SCRATCH_LR = (1e-3, 1e-4)


def learning_rate_steps(s: Settings) -> tuple:
    """The schedule of the fold networks: --lr-steps if given; the paper's (scaled) with ImageNet weights; else
    :data:`SCRATCH_LR` with the same 80 % step."""
    from ..training.loop import PAPER_STEP_FRACTION, default_lr_steps, parse_lr_steps

    if s.lr_steps:
        return parse_lr_steps(s.lr_steps, s.iterations)
    if s.imagenet:
        return default_lr_steps(s.iterations)
    step = int(round(PAPER_STEP_FRACTION * s.iterations))
    if step <= 0 or step >= s.iterations:
        return ((0, SCRATCH_LR[0]),)
    return ((0, SCRATCH_LR[0]), (step, SCRATCH_LR[1]))


def _training_note(model: Model) -> dict | None:
    t = model.card.get("training") or {}
    if not t:
        return None
    return {k: t.get(k) for k in ("iterations", "batch_size", "initialisation", "seconds_per_iteration",
                                  "final_running_accuracy", "epochs_seen")}


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _header(ctx: Context, title: str) -> list[str]:
    s = ctx.settings
    kind = "Phantom (synthetic) results" if ctx.label == "phantom" else "Results"
    lines = [f"# {title}", "",
             f"**{kind}** on `{ctx.data_path.name}`" + (" — not clinical data." if ctx.label == "phantom" else "."),
             ]
    c = ctx.cohort
    lines.append(f"{len(c)} scans of {len(set(c.subjects))} subjects "
                 f"({', '.join(f'{cl} {int((c.classes == k).sum())}' for k, cl in enumerate(CLASSES))} scans), "
                 f"{c.n_folds}-fold subject-level CV (fold seed {s.fold_seed}); networks: {s.iterations} iterations "
                 f"of batch {s.batch_size} per fold (learning rate "
                 + ", ".join(f"{lr:g} from {it}" for it, lr in learning_rate_steps(s)) + ") unless loaded from --models"
                 + (" (**--quick profile: numbers are a smoke test, not results**)" if s.quick else "") + ".")
    lines.append("")
    return lines


def _deep_accuracy(ctx: Context, variant: str) -> list[dict]:
    """Per fold: key-frame slice accuracy, all-slice accuracy, scan accuracy of ``variant``."""
    c = ctx.cohort
    out = []
    for k in range(c.n_folds):
        pred = ctx.predictions(variant, k)
        kf_hits = kf_n = all_hits = all_n = scan_hits = 0
        for i, (logits, _) in pred.items():
            truth = int(c.classes[i])
            slice_pred = logits.argmax(axis=1)
            frames = c.keyframes(i)
            kf_hits += int((slice_pred[frames] == truth).sum())
            kf_n += len(frames)
            all_hits += int((slice_pred == truth).sum())
            all_n += len(slice_pred)
            scan_hits += int(int(_softmax(logits).mean(axis=0).argmax()) == truth)
        out.append({"fold": k + 1, "keyframe_accuracy": kf_hits / max(kf_n, 1), "n_keyframes": kf_n,
                    "slice_accuracy": all_hits / max(all_n, 1), "n_slices": all_n,
                    "scan_accuracy": scan_hits / max(len(pred), 1), "n_scans": len(pred)})
    return out


# ------------------------------------------------------------------------------------------------- Table 1
def _keyframe_index(c: CohortData):
    rows = [(i, int(z)) for i in range(len(c)) for z in c.keyframes(i)]
    if not rows:
        raise InputError("no slice of the cohort shows the soleus: nothing to classify")
    scan_of = np.array([r[0] for r in rows])
    return rows, scan_of


def classical_features(ctx: Context) -> dict:
    """Per key frame: MFF, STP, patches (for K-Means) and GAP features, with the scan index of every row."""
    c = ctx.cohort
    s = ctx.settings
    rows, scan_of = _keyframe_index(c)
    roi_values = [MUSCLE_LABELS[m] for m in ROI_MUSCLES]
    rng = np.random.default_rng(s.seed)
    mff, stp, patches, gap = [], [], [], []
    from ..network import ICAMNet

    torch.manual_seed(s.seed)
    gap_net = ICAMNet("resnet7")
    gap_init = f"torchvision random initialisation (seed {s.seed}; no ImageNet file given)"
    if s.imagenet:
        from ..modelfile import load_imagenet_file
        from ..network import load_imagenet_trunk

        load_imagenet_trunk(gap_net, load_imagenet_file(s.imagenet))
        gap_init = f"ImageNet weights from {Path(s.imagenet).name}"
    gap_net.eval()
    for i in range(len(c)):
        frames = c.keyframes(i)
        if len(frames) == 0:
            continue
        ff = c.slices(i)[frames].numpy()
        lab = c.labels_model(i)[frames]
        roi = np.isin(lab, roi_values)
        mff.append(baselines.mff_feature(ff, lab, MUSCLE_LABELS["Sol"]))
        stp.append(baselines.stp_features(ff, roi))
        patches += [baselines.image_patches(ff[k], roi[k], rng) for k in range(len(frames))]
        gap.append(baselines.gap_features(gap_net, c.stacks(i)[frames]))
    return {"scan_of": scan_of, "rows": rows, "mff": np.concatenate(mff), "stp": np.concatenate(stp),
            "patches": patches, "gap": np.concatenate(gap), "gap_init": gap_init}


def run_table1(ctx: Context, out: Path) -> dict:
    """Table 1: classical baselines, ResNet18-GAP + SVM, and the trained networks, on the same folds."""
    c = ctx.cohort
    s = ctx.settings
    t0 = time.perf_counter()
    feats = classical_features(ctx)
    ctx.log(f"table1: features of {len(feats['rows'])} key frames in {time.perf_counter() - t0:.0f} s")
    scan_of = feats["scan_of"]
    y = c.classes[scan_of]
    groups = c.subjects[scan_of]
    gap_name = "ResNet18-GAP (SVM)" + ("" if s.imagenet else " [random-init trunk]")
    methods = [("MFF (kNN)", "mff", "knn"), ("STP (kNN)", "stp", "knn"), ("K-Means (SVM)", "bop", "svm"),
               ("STP (SVM)", "stp", "svm"), (gap_name, "gap", "svm")]
    results = {name: {"folds": [], "paper": PAPER_TABLE1.get(name.split(" [")[0])} for name, _, _ in methods}
    for k, (tr, te) in enumerate(c.folds):
        tr_rows = np.isin(scan_of, tr)
        te_rows = np.isin(scan_of, te)
        bop = baselines.BagOfPatches(k=s.kmeans_k, seed=s.seed + k).fit(
            [p for p, keep in zip(feats["patches"], tr_rows) if keep])
        hist = bop.transform(feats["patches"])
        matrices = {"mff": feats["mff"], "stp": feats["stp"], "bop": hist, "gap": feats["gap"]}
        for name, feat, clf in methods:
            x = matrices[feat]
            pred, chosen = baselines.fit_predict(clf, x[tr_rows], y[tr_rows], groups[tr_rows], x[te_rows])
            truth = y[te_rows]
            scans = scan_of[te_rows]
            scan_hits = [baselines.vote(pred[scans == i]) == c.classes[i] for i in np.unique(scans)]
            results[name]["folds"].append({
                "fold": k + 1, "keyframe_accuracy": float((pred == truth).mean()), "n_keyframes": int(te_rows.sum()),
                "scan_accuracy": float(np.mean(scan_hits)), "n_scans": len(scan_hits), "chosen": chosen})
        ctx.log(f"table1: fold {k + 1} classical rows done ({time.perf_counter() - t0:.0f} s)")
    for variant in TABLE1_DEEP:
        name = {"resnet7": "ResNet18"}.get(variant, VARIANT_LABELS[variant])
        results[name] = {"folds": _deep_accuracy(ctx, variant), "variant": variant,
                         "paper": PAPER_TABLE1.get(name)}
    for r in results.values():
        r["keyframe"] = summary([f["keyframe_accuracy"] for f in r["folds"]])
        r["scan"] = summary([f["scan_accuracy"] for f in r["folds"]])
    header = ["Method"] + [f"Fold-{k + 1}" for k in range(c.n_folds)] + ["Mean", "Max", "Min", "scan-level mean",
                                                                         "paper mean / max / min"]
    rows = []
    for name, r in results.items():
        paper = r["paper"]
        rows.append([name] + [pct(f["keyframe_accuracy"]) for f in r["folds"]]
                    + [pct(r["keyframe"]["mean"]), pct(r["keyframe"]["max"]), pct(r["keyframe"]["min"]),
                       pct(r["scan"]["mean"]), " / ".join(f"{v:.1f}" for v in paper) if paper else "—"])
    lines = _header(ctx, "Table 1 — classification accuracy (%)")
    lines += [
        "Test accuracy on the key frames (slices showing the soleus) of held-out subjects; scan-level = verdict of "
        "the whole volume (classical methods: majority vote of the key frames; networks: arg-max of the mean slice "
        "probability, as `mdtexture classify`). Hyper-parameters of kNN/SVM searched by GridSearchCV with "
        "subject-grouped inner folds on the training fold only.", "",
        md_table(header, rows), "",
        f"ResNet18-GAP trunk: {feats['gap_init']}. K-Means dictionary: K = {s.kmeans_k} (paper 900; see "
        "`baselines.py` for why fewer), 18×18 patches. VGG16, VGG16-FC7, ResNet34 and ResNet50 rows of the paper "
        "were not run (CPU budget). 'ResNet18' is our resnet7 variant (full ResNet18 + GAP + fc) trained with the "
        f"project's training loop for {s.iterations} iterations per fold (paper: 5,000, ImageNet-initialised).", ""]
    best = max(results, key=lambda n: -1 if not np.isfinite(results[n]["keyframe"]["mean"])
               else results[n]["keyframe"]["mean"])
    lines.append(f"Best mean key-frame accuracy: **{best}** ({pct(results[best]['keyframe']['mean'])} %).")
    (out / "table1.md").write_text("\n".join(lines) + "\n")
    write_json(out / "table1.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "results": results,
                                     "gap_trunk": feats["gap_init"], "models": ctx.provenance["models"]})
    _bar_chart(out / "table1.png", results, "Table 1 (phantom)" if ctx.label == "phantom" else "Table 1")
    return results


def _bar_chart(path: Path, results: dict, title: str) -> None:
    plt = _plt()
    names = list(results)
    means = [100 * results[n]["keyframe"]["mean"] for n in names]
    lo = [100 * (results[n]["keyframe"]["mean"] - results[n]["keyframe"]["min"]) for n in names]
    hi = [100 * (results[n]["keyframe"]["max"] - results[n]["keyframe"]["mean"]) for n in names]
    paper = [results[n]["paper"][0] if results[n].get("paper") else np.nan for n in names]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, means, 0.4, yerr=[lo, hi], capsize=3, label="this run (mean, min-max over folds)")
    ax.bar(x + 0.2, paper, 0.4, color="0.7", label="paper (mean)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.axhline(100 / 3, color="0.5", ls=":", lw=0.8)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- Table 2
def run_table2(ctx: Context, out: Path) -> dict:
    """Table 2: ResNet vs ICAM at the same map size (28², 14²), per fold and mean."""
    c = ctx.cohort
    s = ctx.settings
    results = {}
    for variant in TABLE2_VARIANTS:
        folds = _deep_accuracy(ctx, variant)
        results[variant] = {"folds": folds, "keyframe": summary([f["keyframe_accuracy"] for f in folds]),
                            "scan": summary([f["scan_accuracy"] for f in folds]),
                            "slice": summary([f["slice_accuracy"] for f in folds]),
                            "paper": PAPER_TABLE2[variant]}
    header = ["Map size", "Method"] + [f"Fold-{k + 1}" for k in range(c.n_folds)] + ["Mean", "scan-level mean",
                                                                                      "paper folds → mean"]
    rows = []
    for variant in TABLE2_VARIANTS:
        r = results[variant]
        rows.append([f"{variant[-2:]}×{variant[-2:]}", "ICAM" if variant.startswith("icam") else "ResNet"]
                    + [pct(f["keyframe_accuracy"]) for f in r["folds"]] + [pct(r["keyframe"]["mean"]),
                                                                           pct(r["scan"]["mean"]),
                                                                           " / ".join(f"{v:.1f}" for v in r["paper"])])
    lines = _header(ctx, "Table 2 — ResNet vs ICAM at equal map size, test accuracy (%)")
    lines += ["Key-frame test accuracy per fold. ResNet-28² / ResNet-14² are ResNet18 cut after layer2 / layer3; "
              "ICAM-28² / ICAM-14² add the next stage through the shared linear head (Eq. 1).", "",
              md_table(header, rows), ""]
    for size in ("28", "14"):
        a, b = results[f"icam{size}"]["keyframe"]["mean"], results[f"resnet{size}"]["keyframe"]["mean"]
        if np.isfinite(a) and np.isfinite(b):
            verdict = "beats" if a > b else ("ties with" if a == b else "does **not** beat")
            lines.append(f"- {size}²: ICAM {verdict} ResNet ({pct(a)} vs {pct(b)} %); paper: "
                         f"{PAPER_TABLE2['icam' + size][-1]} vs {PAPER_TABLE2['resnet' + size][-1]} %.")
    (out / "table2.md").write_text("\n".join(lines) + "\n")
    write_json(out / "table2.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "results": results,
                                     "models": ctx.provenance["models"]})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(c.n_folds)
    for j, variant in enumerate(TABLE2_VARIANTS):
        ax.bar(x + (j - 1.5) * 0.2, [100 * f["keyframe_accuracy"] for f in results[variant]["folds"]], 0.2,
               label=VARIANT_LABELS[variant])
    ax.set_xticks(x)
    ax.set_xticklabels([f"Fold-{k + 1}" for k in range(c.n_folds)])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Table 2" + (" (phantom)" if ctx.label == "phantom" else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "table2.png", dpi=110)
    plt.close(fig)
    return results


# ------------------------------------------------------------------------------------------------- Figure 3
def run_neurons(ctx: Context, out: Path) -> dict:
    """§4.2 / Fig. 3: GAP neurons of the trained ResNet18 vs the soleus MFF (Eq. 3-4, 20 bins)."""
    c = ctx.cohort
    s = ctx.settings
    per_fold = []
    data = {}
    for k, (_, te) in enumerate(c.folds):
        net = ctx.model("resnet7", k).net
        acts, cls, mff = [], [], []
        for i in te:
            frames = c.keyframes(int(i))
            if len(frames) == 0:
                continue
            acts.append(baselines.gap_features(net, c.stacks(int(i))[frames]))
            cls += [int(c.classes[i])] * len(frames)
            mff.append(baselines.mff_feature(c.slices(int(i))[frames].numpy(), c.labels_model(int(i))[frames])[:, 0])
        acts, cls, mff = np.concatenate(acts), np.array(cls), np.concatenate(mff)
        data[k] = (acts, cls, mff)
        dmd, cmd = CLASSES.index("DMD"), CLASSES.index("CMD")
        if (cls == dmd).any() and (cls == cmd).any():
            a = distances.neuron_analysis(acts, cls, mff, dmd, cmd)
        else:
            a = None
        per_fold.append(a)
    accuracy = [f["keyframe_accuracy"] for f in _deep_accuracy(ctx, "resnet7")]
    valid = [k for k in range(c.n_folds) if per_fold[k] is not None]
    if not valid:
        raise InputError("no fold has both DMD and CMD test images: the neuron analysis needs both")
    chosen = max(valid, key=lambda k: accuracy[k])
    a = per_fold[chosen]
    acts, cls, mff = data[chosen]
    lines = _header(ctx, "Figure 3 / §4.2 — GAP neurons of ResNet18 vs the soleus mean fat fraction")
    lines += [f"Test key frames of fold {chosen + 1} (the fold with the highest ResNet18 test accuracy, "
              f"{pct(accuracy[chosen])} %, as the paper picks its lowest-error fold): "
              f"{a['n_images']['a']} DMD and {a['n_images']['b']} CMD images, {a['n_neurons']} neurons. "
              "Normalised 20-bin histograms on a common range per neuron; a larger distance separates better.", "",
              md_table(["", "ℓ² (Eq. 3)", "χ² (Eq. 4)"],
                       [["soleus MFF", num(a["mff_l2"]), num(a["mff_chi2"])],
                        ["neurons better than MFF", f"{a['n_better_l2']} / {a['n_neurons']}",
                         f"{a['n_better_chi2']} / {a['n_neurons']}"],
                        ["median neuron", num(float(np.median(a["l2"]))), num(float(np.median(a["chi2"])))],
                        ["best neuron", f"{num(float(a['l2'].max()))} (#{a['best_l2'][0]})",
                         f"{num(float(a['chi2'].max()))} (#{a['best_chi2'][0]})"],
                        ["paper: neurons better than MFF", f"{PAPER_NEURONS['l2']} / 512",
                         f"{PAPER_NEURONS['chi2']} / 512"]]), "",
              "All folds (neurons better than MFF, ℓ² / χ²): " + ", ".join(
                  f"fold {k + 1}: {p['n_better_l2']} / {p['n_better_chi2']}" if p else f"fold {k + 1}: —"
                  for k, p in enumerate(per_fold)) + ".", ""]
    (out / "neurons.md").write_text("\n".join(lines) + "\n")
    write_json(out / "neurons.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "fold": chosen + 1,
                                      "fold_accuracy": accuracy, "analysis": a,
                                      "per_fold": [None if p is None else {k: v for k, v in p.items()
                                                                           if k not in ("l2", "chi2")}
                                                   for p in per_fold]})
    _neuron_figure(out / "neurons.png", acts, cls, mff, a, chosen)
    return {"fold": chosen + 1, "n_better_l2": a["n_better_l2"], "n_better_chi2": a["n_better_chi2"],
            "mff_l2": a["mff_l2"], "mff_chi2": a["mff_chi2"]}


def _neuron_figure(path, acts, cls, mff, a, fold) -> None:
    plt = _plt()
    order = [CLASSES.index(x) for x in ("CMD", "DMD", "normal")]  # the paper's row order
    norm = distances.normalised_activation_matrix(acts)
    fig = plt.figure(figsize=(11, 5))
    gs = fig.add_gridspec(3, 2, width_ratios=(2.2, 1))
    for r, k in enumerate(order):
        ax = fig.add_subplot(gs[r, 0])
        rows = norm[cls == k]
        if len(rows):
            ax.imshow(rows, aspect="auto", cmap="bwr", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_ylabel(f"{CLASSES[k]}\n(n={len(rows)})", fontsize=8)
        ax.set_yticks([])
        if r < 2:
            ax.set_xticks([])
    ax.set_xlabel("GAP neuron (normalised activation, −1 … 1)", fontsize=8)
    best = a["best_chi2"][:3]
    for r, (values, title) in enumerate([(acts[:, best[0]], f"neuron #{best[0]}"),
                                         (acts[:, best[1]] if len(best) > 1 else acts[:, best[0]],
                                          f"neuron #{best[1] if len(best) > 1 else best[0]}"),
                                         (mff, "soleus MFF")]):
        ax = fig.add_subplot(gs[r, 1])
        groups = [values[cls == k] for k in range(len(CLASSES))]
        ax.boxplot([g if len(g) else [np.nan] for g in groups], tick_labels=list(CLASSES))
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"GAP neurons of ResNet18, test key frames of fold {fold + 1}: {a['n_better_l2']} (ℓ²) / "
                 f"{a['n_better_chi2']} (χ²) of {a['n_neurons']} neurons beat the soleus MFF", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- Figure 6
def run_tsne(ctx: Context, out: Path, variant: str = "icam28") -> dict:
    """Fig. 6: 24×24 FF patches at the maxima of the true-class map, t-SNE, coloured by class."""
    c = ctx.cohort
    s = ctx.settings
    dmd, cmd = CLASSES.index("DMD"), CLASSES.index("CMD")
    patches, meta = [], []
    for k in range(c.n_folds):
        for i, (_, class_maps) in ctx.predictions(variant, k).items():
            cl = int(c.classes[i])
            if cl not in (dmd, cmd):
                continue
            heat = embedding.upsample_to_window(class_maps[:, cl], c.size_px)
            border = embedding.PATCH_K // 2
            peaks = embedding.heatmap_peaks(heat, border=border,
                                            min_distance=max(2, min(border, c.size_px // 8)))
            if len(peaks) == 0:
                continue
            ff = c.slices(i).numpy()
            lab = c.labels_model(i)
            native = c.native(i)
            inv = resample_labels(native.involvement.astype(np.uint8), c.geometry(i))
            patches.append(embedding.cut_patches(ff, peaks))
            for z, yy, xx in peaks:
                meta.append({"scan": c.name(i), "class": cl, "fold": k + 1, "slice": int(z), "y": int(yy),
                             "x": int(xx), "heat": float(heat[z, yy, xx]), "muscle": int(lab[z, yy, xx]),
                             "involved": bool(inv[z, yy, xx])})
    if not patches:
        raise InputError("no heatmap maxima found on DMD/CMD test scans: nothing to embed")
    patches = np.concatenate(patches)
    rng = np.random.default_rng(s.seed)
    if len(patches) > s.tsne_max_patches:
        keep = np.sort(rng.choice(len(patches), s.tsne_max_patches, replace=False))
        patches, meta = patches[keep], [meta[j] for j in keep]
    labels = np.array([m["class"] for m in meta])
    heat = np.array([m["heat"] for m in meta])
    if len(patches) < 4 or len(set(labels.tolist())) < 2:
        raise InputError(f"{len(patches)} patches of {len(set(labels.tolist()))} class(es): too few for the t-SNE")
    emb = embedding.tsne_embedding(patches, seed=s.seed)
    purity_emb = embedding.knn_purity(emb, labels)
    purity_patch = embedding.knn_purity(patches, labels)
    stats = {}
    for name, cl in (("DMD", dmd), ("CMD", cmd)):
        sel = labels == cl
        muscles = [m["muscle"] for m, keep in zip(meta, sel) if keep]
        counts = {MUSCLES[v - 1] if 1 <= v <= len(MUSCLES) else ("none" if v == 0 else f"label {v}"):
                  int(muscles.count(v)) for v in sorted(set(muscles))}
        stats[name] = {"patches": int(sel.sum()), "purity_embedding": float(purity_emb[sel].mean()),
                       "purity_patch_space": float(purity_patch[sel].mean()),
                       "on_involvement": float(np.mean([m["involved"] for m, keep in zip(meta, sel) if keep])),
                       "muscle_at_maximum": counts}
    rep = {name: embedding.representative(purity_emb, heat, labels, cl) for name, cl in (("DMD", dmd), ("CMD", cmd))}
    lines = _header(ctx, f"Figure 6 — t-SNE of 24×24 patches at the maxima of the {VARIANT_LABELS[variant]} map")
    lines += [f"{len(patches)} patches (≤ 3 maxima ≥ 0.5 of the volume maximum per slice, true-class map, test scans "
              "of all folds, each scan with its fold's network — or the one --models network), cut from the FF image on "
              "the model window.", "",
              md_table(["", "patches", "10-NN class purity (t-SNE)", "10-NN purity (patch space)",
                        "maxima on involved tissue", "muscle at the maximum"],
                       [[n, v["patches"], num(v["purity_embedding"]), num(v["purity_patch_space"]),
                         pct(v["on_involvement"]) + " %",
                         ", ".join(f"{m} {cnt}" for m, cnt in sorted(v["muscle_at_maximum"].items(),
                                                                     key=lambda t: -t[1]))]
                        for n, v in stats.items()]), "",
              "Purity 0.5 is what two well-mixed classes of equal size give; the paper shows the figure without a "
              "number.", ""]
    (out / "tsne.md").write_text("\n".join(lines) + "\n")
    write_json(out / "tsne.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "variant": variant,
                                   "stats": stats, "representative": {k: [meta[j] for j in v] for k, v in rep.items()},
                                   "points": [{**m, "tsne": [float(e[0]), float(e[1])]} for m, e in zip(meta, emb)]})
    plt = _plt()
    fig = plt.figure(figsize=(9, 8))
    gs = fig.add_gridspec(3, 8, height_ratios=(4, 4, 1.3))
    ax = fig.add_subplot(gs[:2, :])
    for name, cl, color in (("DMD", dmd, "tab:red"), ("CMD", cmd, "tab:blue")):
        sel = labels == cl
        ax.scatter(emb[sel, 0], emb[sel, 1], s=6, c=color, alpha=0.6, label=f"{name} ({int(sel.sum())})")
    for name, color in (("DMD", "tab:red"), ("CMD", "tab:blue")):
        for j in rep[name]:
            ax.scatter(emb[j, 0], emb[j, 1], s=60, facecolors="none", edgecolors=color, linewidths=1.5)
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of heatmap-maximum patches ({VARIANT_LABELS[variant]})"
                 + (", phantom" if ctx.label == "phantom" else ""), fontsize=10)
    for col, j in enumerate(rep["DMD"][:4] + rep["CMD"][:4]):
        pa = fig.add_subplot(gs[2, col])
        pa.imshow(patches[j], cmap="gray", vmin=0, vmax=1)
        pa.set_xticks([])
        pa.set_yticks([])
        for sp in pa.spines.values():
            sp.set_edgecolor("tab:red" if labels[j] == dmd else "tab:blue")
            sp.set_linewidth(2)
    fig.tight_layout()
    fig.savefig(out / "tsne.png", dpi=110)
    plt.close(fig)
    return stats


# ------------------------------------------------------------------------------------------------- Table 3
def _scan_scores(ctx: Context, variant: str, fold: int, i: int) -> tuple[dict, dict, dict]:
    """(texture score per muscle, true involved fraction per muscle, measured mean FF per muscle) of scan i."""
    c = ctx.cohort
    _, class_maps = ctx.predictions(variant, fold)[i]
    native = c.native(i)
    heat = maps.to_native(class_maps[:, int(c.classes[i])], c.geometry(i))
    names = {v: m for m, v in MUSCLE_LABELS.items()}
    rows = texture_scores(heat, native.labels, names, native.series.ff, native.series.grid.spacing,
                          ctx.settings.score_params)
    score = {r.muscle: r.texture_score for r in rows if r.muscle in MUSCLES}
    ff = {r.muscle: r.mean_ff for r in rows if r.muscle in MUSCLES}
    truth_m = native.truth.get("muscles", {})
    inv = {m: (truth_m.get(m) or {}).get("involved_fraction") for m in MUSCLES}
    return score, inv, ff


def run_table3(ctx: Context, out: Path, variant: str = "icam28") -> dict:
    """Table 3: texture scores (Eq. 5) of 4 DMD and 4 CMD test scans of fold 1 next to the true involvement; and
    the texture score vs involvement correlation over every test scan of every fold."""
    from scipy import stats as sstats

    c = ctx.cohort
    s = ctx.settings
    te = [int(i) for i in c.folds[0][1]]
    cases = {name: [i for i in te if c.records[i].class_name == name][:s.table3_cases] for name in ("DMD", "CMD")}
    table = {}
    for name, idx in cases.items():
        table[name] = []
        for i in idx:
            score, inv, ff = _scan_scores(ctx, variant, 0, i)
            table[name].append({"scan": c.name(i), "score": score, "involved_fraction": inv, "mean_ff": ff})
    # correlation over all test scans of all folds
    pairs = []
    for k, (_, test) in enumerate(c.folds):
        for i in test:
            score, inv, ff = _scan_scores(ctx, variant, k, int(i))
            for m in MUSCLES:
                if score[m] is not None and inv[m] is not None:
                    pairs.append((c.records[int(i)].class_name, m, score[m], inv[m], ff[m]))

    def rho(sel, a, b):
        if len(sel) < 3:
            return float("nan"), len(sel)
        x, yv = [p[a] for p in sel], [p[b] for p in sel]
        if np.ptp(x) == 0 or np.ptp(yv) == 0:
            return float("nan"), len(sel)
        return float(sstats.spearmanr(x, yv).statistic), len(sel)

    corr = {}
    for group in ("all", "DMD", "CMD", "normal"):
        sel = [p for p in pairs if group == "all" or p[0] == group]
        r_score, n = rho(sel, 2, 3)
        r_ff, _ = rho(sel, 4, 3)
        corr[group] = {"n_pairs": n, "spearman_score_vs_involvement": r_score, "spearman_mff_vs_involvement": r_ff}

    def mean_row(rows, key):
        return [float(np.mean([r[key][m] for r in rows if r[key][m] is not None]))
                if any(r[key][m] is not None for r in rows) else float("nan") for m in MUSCLES]

    lines = _header(ctx, f"Table 3 — muscle texture scores (Eq. 5) of {VARIANT_LABELS[variant]}, fold-1 test scans")
    p = s.score_params
    lines += [f"Heatmap = the true class's map, ReLU, on the native grid, divided by its volume maximum; a slice "
              f"counts as highlighted for a muscle when ≥ {p.min_overlap:.0%} of its voxels are ≥ {p.threshold} "
              f"(muscle present: ≥ {p.min_area_mm2} mm²). Each case: texture score, then the phantom's true "
              "involved fraction of the muscle.", ""]
    header = ["Case"] + list(MUSCLES)
    rows = []
    for name in ("DMD", "CMD"):
        rows.append([f"**{name}**"] + [""] * len(MUSCLES))
        for n, r in enumerate(table[name], start=1):
            rows.append([f"Case No.{n} ({r['scan']}) score"] + [num(r["score"][m]) for m in MUSCLES])
            rows.append(["  true involved fraction"] + [num(r["involved_fraction"][m]) for m in MUSCLES])
        if table[name]:
            rows.append([f"{name} mean score"] + [num(v) for v in mean_row(table[name], "score")])
            rows.append([f"{name} mean true involvement"] + [num(v) for v in mean_row(table[name],
                                                                                     "involved_fraction")])
        rows.append([f"paper {name} mean score"] + [f"{v:.3f}" for v in PAPER_TABLE3_MEANS[name]])
    lines += [md_table(header, rows), "",
              "Texture score vs true per-muscle involved fraction, every test scan of every fold "
              "(Spearman ρ over scan × muscle pairs; the measured mean FF of the muscle is the reference a reader "
              "already has):", "",
              md_table(["scans", "pairs", "ρ(texture score, involvement)", "ρ(muscle mean FF, involvement)"],
                       [[g, v["n_pairs"], num(v["spearman_score_vs_involvement"]),
                         num(v["spearman_mff_vs_involvement"])] for g, v in corr.items()]), ""]
    (out / "table3.md").write_text("\n".join(lines) + "\n")
    write_json(out / "table3.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "variant": variant,
                                     "cases": table, "correlation": corr,
                                     "pairs": [dict(zip(("class", "muscle", "score", "involved_fraction",
                                                         "mean_ff"), p)) for p in pairs]})
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, name in zip(axes, ("DMD", "CMD")):
        if table[name]:
            x = np.arange(len(MUSCLES))
            ax.bar(x - 0.2, mean_row(table[name], "score"), 0.4, label="texture score (mean)")
            ax.bar(x + 0.2, mean_row(table[name], "involved_fraction"), 0.4, label="true involved fraction")
            ax.plot(x, PAPER_TABLE3_MEANS[name], "k.", label="paper score (mean)")
            ax.set_xticks(x)
            ax.set_xticklabels(MUSCLES)
            ax.set_ylim(0, 1)
        ax.set_title(f"{name}, fold-1 test scans", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "table3.png", dpi=110)
    plt.close(fig)
    return {"correlation": corr}


# ------------------------------------------------------------------------------------------------- localisation
def class_specific_muscles(ctx: Context, margin: float = SPECIFIC_MARGIN) -> dict:
    """From the phantom's truth: per class, muscles whose mean involved fraction exceeds the other disease class's
    by ``margin`` (class-specific), and muscles involved in both within ``margin`` (shared)."""
    c = ctx.cohort
    inv = {name: {m: [] for m in MUSCLES} for name in ("DMD", "CMD")}
    for i, r in enumerate(c.records):
        if r.class_name not in inv:
            continue
        truth = json.loads(Path(r.truth).read_text()) if getattr(r, "truth", None) else {}
        for m in MUSCLES:
            v = (truth.get("muscles", {}).get(m) or {}).get("involved_fraction")
            if v is not None:
                inv[r.class_name][m].append(float(v))
    mean = {k: {m: (float(np.mean(v)) if v else float("nan")) for m, v in d.items()} for k, d in inv.items()}
    out = {"mean_involved_fraction": mean, "margin": margin}
    for name, other in (("DMD", "CMD"), ("CMD", "DMD")):
        spec = [m for m in MUSCLES if mean[name][m] - mean[other][m] > margin]
        shared = [m for m in MUSCLES if abs(mean[name][m] - mean[other][m]) <= margin
                  and min(mean[name][m], mean[other][m]) > 0.05]
        out[name] = {"specific": spec, "shared": shared}
    return out


def _specific_share(heat: np.ndarray, inv: np.ndarray, labels: np.ndarray, spec: list, shared: list) -> float:
    """Share of the map's mass on involved tissue of (specific ∪ shared) muscles that lies in the specific ones."""
    if not spec or not shared:
        return float("nan")
    in_spec = inv & np.isin(labels, [MUSCLE_LABELS[m] for m in spec])
    in_shared = inv & np.isin(labels, [MUSCLE_LABELS[m] for m in shared])
    a, b = float(heat[in_spec].sum()), float(heat[in_shared].sum())
    return a / (a + b) if a + b > 0 else float("nan")


def run_localisation(ctx: Context, out: Path) -> dict:
    """Score every heatmap against the phantom's involvement mask on every test scan of every fold."""
    c = ctx.cohort
    s = ctx.settings
    spec = class_specific_muscles(ctx)
    records = []
    area_shares = []  # what a map spread evenly over the involved tissue would give
    examples = {}
    t0 = time.perf_counter()
    for k, (_, te) in enumerate(c.folds):
        for i in (int(i) for i in te):
            cl = int(c.classes[i])
            name = CLASSES[cl]
            native = c.native(i)
            inv = native.involvement
            if not inv.any():
                continue  # nothing to point at (normal scans)
            geometry = c.geometry(i)
            domains = {"muscles": native.muscles, "leg": native.body}
            spacing = float(np.mean(native.series.grid.spacing[:2]))
            tol_px = s.tolerance_mm / spacing
            heatmaps = {}
            grid = max(1, c.size_px // 8)
            heatmaps[("reference", "random")] = maps.to_native(maps.random_maps((inv.shape[0], grid, grid),
                                                                                s.seed * 100003 + i), geometry)
            heatmaps[("reference", "ff")] = np.clip(native.series.ff, 0, 1)
            stacks = c.stacks(i)
            for variant in s.networks:
                net = ctx.model(variant, k).net
                _, class_maps = ctx.predictions(variant, k)[i]
                heatmaps[(variant, "icam")] = maps.to_native(class_maps[:, cl], geometry)
                for m, raw in maps.gradient_maps(net, stacks, cl).items():
                    heatmaps[(variant, m)] = maps.to_native(raw, geometry)
            sp = spec.get(name, {"specific": [], "shared": []})
            area_shares.append({"class": name, "share": _specific_share(np.ones(inv.shape, np.float32), inv,
                                                                          native.labels, sp["specific"],
                                                                          sp["shared"])})
            for (variant, method), heat in heatmaps.items():
                row = {"scan": c.name(i), "index": i, "class": name, "fold": k + 1, "network": variant,
                       "method": method,
                       "specific_share": _specific_share(heat, inv, native.labels, sp["specific"], sp["shared"])}
                for dname, dom in domains.items():
                    row[dname] = localisation.scan_metrics(heat, inv, dom, tol_px)
                records.append(row)
            if name not in examples and k == 0:
                examples[name] = (i, {key: h for key, h in heatmaps.items()
                                      if key[0] == "reference" or key[0] == s.networks[0] or key[1] == "icam"}, native)
        ctx.log(f"localisation: fold {k + 1} done ({time.perf_counter() - t0:.0f} s, {len(records)} rows)")
    if not records:
        raise InputError("no test scan has an involvement mask: nothing to localise")
    metrics = list(localisation.METRICS) + ["pointing_game_tol"]
    keys = []
    for r in records:
        key = (r["network"], r["method"])
        if key not in keys:
            keys.append(key)
    agg = {}
    for key in keys:
        rows = [r for r in records if (r["network"], r["method"]) == key]
        entry = {}
        for group in ("all", "DMD", "CMD"):
            sel = [r for r in rows if group == "all" or r["class"] == group]
            entry[group] = {d: {m: summary([r[d][m] for r in sel]) for m in metrics} for d in ("muscles", "leg")}
            entry[group]["specific_share"] = summary([r["specific_share"] for r in sel])
        agg[f"{key[0]}/{key[1]}"] = entry
    lines = _header(ctx, "Localisation — do the heatmaps point at the involved tissue?")
    lines += ["Every DMD/CMD test scan of every fold (normal scans have no involvement), heatmap of the true class "
              "against the phantom's `involvement` mask (voxels where pathological fat was placed). Pointing games "
              f"per slice (strict, and within {s.tolerance_mm:g} mm), the other metrics on the volume. Domain "
              "'muscles': only labelled muscle voxels are scored (does the map pick the involved part of the "
              "muscles?); domain 'leg': every voxel inside the leg (does it also avoid subcutaneous fat, marrow?). "
              "Gradient methods are computed on the same trained networks at the map stage (the layer whose "
              "resolution the network's own map has). Reference rows: i.i.d. random map on a coarse grid, and the "
              "FF image itself. Mean over scans (n in the JSON).", ""]

    def label(key):
        net, method = key.split("/")
        if net == "reference":
            return maps.METHOD_LABELS[method]
        base = VARIANT_LABELS[net]
        return f"{base} — {'own map' if method == 'icam' else maps.METHOD_LABELS[method]}"

    cols = ["pointing_game", "pointing_game_tol", "energy_pointing_game", "relevance_mass_accuracy",
            "relevance_rank_accuracy", "pixel_auc"]
    for dname in ("muscles", "leg"):
        lines += [f"### Domain: {dname}, all DMD + CMD scans", "",
                  md_table(["Map"] + [localisation.METRIC_LABELS[m] for m in cols],
                           [[label(key)] + [num(agg[key]["all"][dname][m]["mean"]) for m in cols] for key in agg]),
                  ""]
    lines += ["### Per class (domain: muscles)", "",
              md_table(["Map"] + [f"{g} {localisation.METRIC_LABELS[m]}" for g in ("DMD", "CMD")
                                  for m in ("pointing_game", "relevance_mass_accuracy", "pixel_auc")],
                       [[label(key)] + [num(agg[key][g]["muscles"][m]["mean"]) for g in ("DMD", "CMD")
                                        for m in ("pointing_game", "relevance_mass_accuracy", "pixel_auc")]
                        for key in agg]), ""]
    mean_inv = spec["mean_involved_fraction"]
    lines += ["### Shared vs class-specific involvement", "",
              "Mean true involved fraction per muscle over the cohort:", "",
              md_table(["class"] + list(MUSCLES),
                       [[n] + [num(mean_inv[n][m], 2) for m in MUSCLES] for n in ("DMD", "CMD")]), ""]
    for n in ("DMD", "CMD"):
        lines.append(f"- {n}: class-specific muscles (involved fraction > the other class's + {SPECIFIC_MARGIN}): "
                     f"{', '.join(spec[n]['specific']) or 'none'}; shared (within ±{SPECIFIC_MARGIN}, both > 0.05): "
                     f"{', '.join(spec[n]['shared']) or 'none'}.")
    lines += ["", "Share of each map's mass on involved tissue that falls in the class-specific rather than the shared "
              "muscles (higher = prefers the class-specific regions; compare with the FF image, which weighs all "
              "fat alike):", "",
              md_table(["Map", "DMD", "CMD"],
                       [["involved area (a map uniform over the involvement)"]
                        + [num(summary([a["share"] for a in area_shares if a["class"] == g])["mean"])
                           for g in ("DMD", "CMD")]]
                       + [[label(key)] + [num(agg[key][g]["specific_share"]["mean"]) for g in ("DMD", "CMD")]
                          for key in agg]), ""]
    # verdicts written from the numbers
    ff_auc = agg["reference/ff"]["all"]["muscles"]["pixel_auc"]["mean"]
    ff_mass = agg["reference/ff"]["all"]["muscles"]["relevance_mass_accuracy"]["mean"]
    lines.append("Against the FF image (domain muscles, pixel AUC / mass accuracy "
                 f"{num(ff_auc)} / {num(ff_mass)}):")
    for key in agg:
        if key.startswith("reference/"):
            continue
        a = agg[key]["all"]["muscles"]["pixel_auc"]["mean"]
        m = agg[key]["all"]["muscles"]["relevance_mass_accuracy"]["mean"]
        if np.isfinite(a) and np.isfinite(ff_auc):
            better = "better than" if a > ff_auc else "**no better than**"
            lines.append(f"- {label(key)}: AUC {num(a)}, mass {num(m)} — {better} the FF image by AUC.")
    (out / "localisation.md").write_text("\n".join(lines) + "\n")
    write_json(out / "localisation.json", {"cohort": ctx.describe(), "settings": s.as_dict(),
                                           "class_specific": spec, "summary": agg, "scans": records,
                                           "involved_area_specific_share": area_shares,
                                           "models": ctx.provenance["models"]})
    _localisation_figures(out, agg, examples, label, ctx)
    return {"summary": agg}


def _localisation_figures(out: Path, agg: dict, examples: dict, label, ctx: Context) -> None:
    plt = _plt()
    keys = list(agg)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    for ax, metric in zip(axes, ("pointing_game", "relevance_mass_accuracy", "pixel_auc")):
        vals = [agg[k]["all"]["muscles"][metric]["mean"] for k in keys]
        sds = [agg[k]["all"]["muscles"][metric]["sd"] for k in keys]
        colors = ["0.6" if k.startswith("reference/") else ("tab:red" if k.endswith("/icam") else "tab:blue")
                  for k in keys]
        ax.barh(np.arange(len(keys)), vals, xerr=sds, color=colors, capsize=2)
        ax.set_title(localisation.METRIC_LABELS[metric] + " (muscles)", fontsize=9)
        ax.set_xlim(0, 1)
    axes[0].set_yticks(np.arange(len(keys)))
    axes[0].set_yticklabels([label(k) for k in keys], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle("Localisation against the involvement mask" + (" (phantom)" if ctx.label == "phantom" else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "localisation.png", dpi=110)
    plt.close(fig)
    if not examples:
        return
    c = ctx.cohort
    n_panels = 3 + min(3, len(ctx.settings.networks))
    fig, axes = plt.subplots(len(examples), n_panels, figsize=(2.6 * n_panels, 2.8 * len(examples)), squeeze=False)
    for row, (name, (i, heats, native)) in zip(axes, examples.items()):
        frames = c.keyframes(i)
        area = native.involvement.sum(axis=(1, 2))
        z = int(np.argmax(area))
        nets = list(ctx.settings.networks)
        panels = [("FF + involvement", None)] + [(VARIANT_LABELS[v], (v, "icam")) for v in nets[:3]]
        panels += [(f"Grad-CAM ({VARIANT_LABELS[nets[0]]} net)", (nets[0], "gradcam")),
                   ("random map", ("reference", "random"))]
        for ax, (title, key) in zip(row, panels):
            ax.imshow(native.series.ff[z], cmap="gray", vmin=0, vmax=1)
            if key is not None and key in heats:
                ax.imshow(heats[key][z], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.contour(native.involvement[z], levels=[0.5], colors="lime", linewidths=0.6)
            ax.set_title(f"{name} {c.name(i)} z={z}: {title}" if key is None else title, fontsize=7)
            ax.axis("off")
        del frames
    fig.tight_layout()
    fig.savefig(out / "localisation_examples.png", dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- randomisation
def run_randomisation(ctx: Context, out: Path) -> dict:
    """Cascading model-parameter randomisation (Adebayo et al. 2018) on fold-1 networks and test key frames."""
    c = ctx.cohort
    s = ctx.settings
    te = [int(i) for i in c.folds[0][1] if CLASSES[int(c.classes[int(i)])] in ("DMD", "CMD")]
    if not te:
        te = [int(i) for i in c.folds[0][1]]
    picks = [(i, int(z)) for i in te for z in c.keyframes(i)]
    if not picks:
        raise InputError("fold 1 has no test key frames for the randomisation check")
    sel = np.linspace(0, len(picks) - 1, min(s.randomisation_slices, len(picks))).round().astype(int)
    picks = [picks[j] for j in sorted(set(sel.tolist()))]
    stacks = torch.cat([c.stacks(i)[[z]] for i, z in picks])
    classes = np.array([int(c.classes[i]) for i, _ in picks])

    def own(net, x, cl):
        return maps.icam_maps(net, x, cl)[1].numpy()

    def grad(method):
        return lambda net, x, cl: maps.gradient_maps(net, x, cl, (method,))[method].numpy()

    functions = {"icam": own, **{m: grad(m) for m in maps.GRADIENT_METHODS}}
    results = {}
    for variant in [v for v in RANDOMISATION_VARIANTS if v in s.networks] or list(s.networks[:1]):
        net = ctx.model(variant, 0).net
        results[variant] = randomisation.cascading_randomisation(net, stacks, classes, functions,
                                                                 depth=s.randomisation_depth, seed=s.seed + 1000)
    lines = _header(ctx, "Model-parameter randomisation (Adebayo et al. 2018), cascading")
    lines += [f"{len(picks)} test key frames of fold 1 (DMD/CMD scans), map of the true class. After each step the "
              "listed block and every block above it are re-initialised; Spearman ρ between the trained network's "
              "map and the randomised one, per slice, averaged (displayed map = ReLU). A map that explains the model "
              "must decorrelate; ρ staying high means the map shows the image, not the model.", ""]
    for variant, r in results.items():
        header = ["Map"] + r["steps"]
        rows = []
        for m, v in r["methods"].items():
            name = "own map (" + ("ICAM" if variant.startswith("icam") else "CAM") + ")" if m == "icam" \
                else maps.METHOD_LABELS[m]
            rows.append([name + " — ReLU"] + [num(x, 2) for x in v["relu"]])
            rows.append([name + " — signed"] + [num(x, 2) for x in v["signed"]])
        lines += [f"### {VARIANT_LABELS[variant]}", "", md_table(header, rows), ""]
        for m, v in r["methods"].items():
            last = v["relu"][-1]
            if np.isfinite(last):
                lines.append(f"- {maps.METHOD_LABELS[m] if m != 'icam' else 'own map'}: ρ after the full cascade "
                             f"{num(last, 2)} — {'passes (decorrelates)' if last < 0.5 else '**fails** (stays similar)'}"
                             " at the 0.5 line.")
        lines.append("")
    (out / "randomisation.md").write_text("\n".join(lines) + "\n")
    write_json(out / "randomisation.json", {"cohort": ctx.describe(), "settings": s.as_dict(),
                                            "slices": [{"scan": c.name(i), "slice": z} for i, z in picks],
                                            "results": results})
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.6), squeeze=False)
    for ax, (variant, r) in zip(axes[0], results.items()):
        for m, v in r["methods"].items():
            ax.plot(range(len(r["steps"])), v["relu"], marker="o", label=maps.METHOD_LABELS[m])
        ax.set_xticks(range(len(r["steps"])))
        ax.set_xticklabels(r["steps"], rotation=30, fontsize=7)
        ax.set_ylim(-0.5, 1.05)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylabel("Spearman ρ with trained map")
        ax.set_title(VARIANT_LABELS[variant], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "randomisation.png", dpi=110)
    plt.close(fig)
    return results


RUNNERS = {"table1": run_table1, "table2": run_table2, "neurons": run_neurons, "tsne": run_tsne,
           "table3": run_table3, "localisation": run_localisation, "randomisation": run_randomisation}


def run(ctx: Context, experiments, out: Path, subfolders: bool) -> dict:
    """Run ``experiments`` in order into ``out`` (one subfolder each when ``subfolders``); returns timings."""
    timings = {}
    summaries = []
    t_all = time.perf_counter()
    for name in experiments:
        target = out / name if subfolders else out
        target.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        ctx.log(f"{name}: start")
        RUNNERS[name](ctx, target)
        timings[name] = round(time.perf_counter() - t0, 1)
        ctx.log(f"{name}: done in {timings[name]:.0f} s")
        summaries.append((name, target / f"{name}.md"))
    timings["total"] = round(time.perf_counter() - t_all, 1)
    meta = {"experiments": list(experiments), "settings": ctx.settings.as_dict(), "cohort": ctx.describe(),
            "wall_s": timings, "models": ctx.provenance["models"], "warnings": ctx.provenance["warnings"],
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    write_json(out / "run.json", meta)
    if subfolders:
        parts = [p.read_text() for _, p in summaries]
        timing_lines = ["## Wall time", "", md_table(["experiment", "s"], [[k, v] for k, v in timings.items()]), ""]
        (out / "summary.md").write_text("\n\n".join(parts) + "\n" + "\n".join(timing_lines) + "\n")
    return timings
