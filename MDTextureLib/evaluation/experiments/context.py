"""The run's context: cohort, folds, fold networks (loaded or trained) and their test-set outputs; the
markdown header every experiment starts with; the networks' accuracy per fold."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ...calibration import softmax
from ...constants import CLASSES
from ...errors import InputError
from ...modelfile import Model, load_model
from .. import maps
from ..data import CohortData, record_text
from ..settings import Settings
from .common import cohort_label


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
            "data": self.data_path.name, "kind": self.label, "body_cues": self.body_cues(),
            "scans": len(c), "subjects": len(set(c.subjects)),
            "slices": len(c.dataset),
            "scans_per_class": {cl: int((c.classes == k).sum()) for k, cl in enumerate(CLASSES)},
            "folds": [{"fold": k + 1, "test_subjects": sorted(set(c.subjects[te].tolist())),
                       "n_train_scans": int(len(tr)), "n_test_scans": int(len(te))}
                      for k, (tr, te) in enumerate(c.folds)],
        }

    def body_cues(self) -> str:
        """Which phantom the cohort is (cohort.csv ``body_cues``: ``texture``, ``realistic``; "unknown" when the
        column is absent; values joined when the cohort mixes them)."""
        values = sorted({record_text(r, "body_cues", "unknown") for r in self.cohort.records})
        return "+".join(values)

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
                results = json.loads(candidate.read_text(encoding="utf-8")).get("results", {})
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
        return self._model_for(variant, fold, self.cohort.folds[fold][0], f"{variant}_fold{fold + 1}",
                               shared_ok=True)

    def _model_for(self, variant: str, fold: int, train_idx, stem: str, shared_ok: bool) -> Model:
        """The network ``stem`` (trained on ``train_idx``): from --models (``STEM.json``, or with ``shared_ok`` the
        one ``VARIANT.json`` for every fold), else trained now; cached."""
        if stem in self._models:
            return self._models[stem]
        c = self.cohort
        model = None
        if self.models_dir is not None:
            per_fold = self.models_dir / f"{stem}.json"
            single = self.models_dir / f"{variant}.json"
            if per_fold.is_file():
                model = load_model(per_fold)
                self.provenance["models"][stem] = {
                    "source": per_fold.name, "sha256": model.sha256, "training": _training_note(model)}
            elif shared_ok and single.is_file():
                model = load_model(single)
                note = (f"{single.name} is used for every fold: valid only if it was trained on subjects outside "
                        "this cohort (e.g. another phantom seed)")
                if note not in self.provenance["warnings"]:
                    self.provenance["warnings"].append(note)
                    self.log("warning: " + note)
                self.provenance["models"][stem] = {
                    "source": single.name, "sha256": model.sha256, "training": _training_note(model)}
        if model is not None:
            if abs(model.pixel_mm - c.pixel_mm) > 1e-6 or model.size_px != c.size_px:
                raise InputError(f"model {model.name} expects a {model.size_px}-px window at {model.pixel_mm} mm; "
                                 f"this run uses {c.size_px} px at {c.pixel_mm} mm (drop --quick or retrain)")
        else:
            model = self._train(variant, fold, train_idx, stem)
        model.net.eval()
        self._models[stem] = model
        return model

    def family_model(self, variant: str, fold: int, family: str) -> Model:
        """The network of ``variant`` trained on fold ``fold``'s training subjects minus every subject with a scan of
        pattern family ``family`` (stored as ``VARIANT_foldK_without-FAMILY``)."""
        c = self.cohort
        held = {c.subjects[i] for i in range(len(c)) if c.pattern_family(i) == family}
        train_idx = np.array([i for i in c.folds[fold][0] if c.subjects[i] not in held], dtype=int)
        return self._model_for(variant, fold, train_idx, f"{variant}_fold{fold + 1}_without-{family}",
                               shared_ok=False)

    def _train(self, variant: str, fold: int, train_idx, stem: str) -> Model:
        from ...training.loop import TrainConfig, save_trained, train

        s = self.settings
        c = self.cohort
        steps = learning_rate_steps(s)
        config = TrainConfig(variant=variant, iterations=s.iterations, lr_steps=steps, batch_size=s.batch_size,
                             seed=s.seed + fold, pixel_mm=c.pixel_mm, size_px=c.size_px,
                             normalisation=c.normalisation, imagenet=s.imagenet, name=stem.replace("_", "-"),
                             precision=s.precision)
        t0 = time.perf_counter()
        fit_idx, calib_idx = self._calibration_split(np.asarray(train_idx, dtype=int), config.seed, stem)
        self.log(f"training {stem} ({c.n_folds} folds): {len(fit_idx)} scans (+ {len(calib_idx)} to calibrate), "
                 f"{s.iterations} iterations")
        result = train(c.dataset.subset(fit_idx), config, progress=not s.quiet)
        if len(calib_idx):
            from ...training.calibrate import calibrate_model

            calibrate_model(result.model, c.dataset.subset(fit_idx), c.dataset.subset(calib_idx),
                            precision=config.precision)
        wall = time.perf_counter() - t0
        self.log(f"  {stem}: {wall:.0f} s, final running training accuracy "
                 f"{result.log['final_running_accuracy']:.2f}")
        if self.store_dir is not None:
            path = self.store_dir / stem
            if s.quick:  # weights + card only: the training-curve figure costs more than a quick training
                from ...modelfile import save_model

                save_model(result.model, path)
            else:
                save_trained(result, path)
        self.provenance["models"][stem] = {
            "source": "trained in this run", "iterations": s.iterations, "wall_s": round(wall, 1),
            "train_subjects": sorted(set(c.subjects[fit_idx].tolist())),
            "calibration_subjects": sorted(set(c.subjects[calib_idx].tolist())),
            "final_running_training_accuracy": result.log["final_running_accuracy"],
            "training": _training_note(result.model)}
        return result.model

    def _calibration_split(self, train_idx: np.ndarray, seed: int, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """(scans to train on, scans to calibrate on): ``calibration_share`` of the training subjects held out, as
        ``mdtexture train`` does; none when the share is 0 or the subjects are too few (noted)."""
        share = self.settings.calibration_share
        none = (train_idx, train_idx[:0])
        if not share:
            return none
        from ...training.calibrate import calibration_split
        try:
            fit, calib = calibration_split([self.cohort.items[i] for i in train_idx], share, seed)
        except InputError as e:
            self._note(f"{stem}: not calibrated ({e})")
            return none
        return train_idx[np.asarray(fit, dtype=int)], train_idx[np.asarray(calib, dtype=int)]

    def _note(self, note: str) -> None:
        if note not in self.provenance["warnings"]:
            self.provenance["warnings"].append(note)
            self.log("warning: " + note)

    def predictions(self, variant: str, fold: int) -> dict:
        """{scan index: (slice logits (Z, 3) numpy, class maps (Z, 3, h, w) torch)} for the fold's test scans."""
        key = (variant, fold)
        if key not in self._predictions:
            net = self.model(variant, fold).net
            self._predictions[key] = {int(i): self.scan_outputs(net, int(i)) for i in self.cohort.folds[fold][1]}
        return self._predictions[key]

    def scan_outputs(self, net, i: int) -> tuple:
        """(slice logits (Z, 3) numpy, class maps (Z, 3, h, w) torch) of ``net`` on scan ``i`` (with the body mask
        when the network pools over the leg)."""
        c = self.cohort
        masks = c.body_model(i) if maps.uses_mask(net) else None
        logits, class_maps = maps.icam_maps(net, c.stacks(i), masks=masks)
        return logits.numpy(), class_maps


#: Learning rate from scratch (no ImageNet file): the paper's 1e-4 fine-tunes pretrained weights and barely moves
#: a randomly initialised network in a few hundred iterations; 1e-3 (then 1e-4 for the last 20 %) is what the
#: project's own from-scratch models use.
SCRATCH_LR = (1e-3, 1e-4)


def learning_rate_steps(s: Settings) -> tuple:
    """The schedule of the fold networks: --lr-steps if given; the paper's (scaled) with ImageNet weights; else
    :data:`SCRATCH_LR` with the same 80 % step."""
    from ...training.loop import PAPER_STEP_FRACTION, default_lr_steps, parse_lr_steps

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


def md_header(ctx: Context, title: str) -> list[str]:
    s = ctx.settings
    kind = "Phantom (synthetic) results" if ctx.label == "phantom" else "Results"
    lines = [f"# {title}", "",
             f"**{kind}** on `{ctx.data_path.name}` (body cues: `{ctx.body_cues()}`)"
             + (" — not clinical data." if ctx.label == "phantom" else "."),
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


def deep_accuracy(ctx: Context, variant: str) -> list[dict]:
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
            scan_hits += int(int(softmax(logits).mean(axis=0).argmax()) == truth)
        out.append({"fold": k + 1, "keyframe_accuracy": kf_hits / max(kf_n, 1), "n_keyframes": kf_n,
                    "slice_accuracy": all_hits / max(all_n, 1), "n_slices": all_n,
                    "scan_accuracy": scan_hits / max(len(pred), 1), "n_scans": len(pred)})
    return out


