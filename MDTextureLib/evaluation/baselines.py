"""The non-deep rows of Table 1 (Cai et al. §3.5) and the ResNet18-GAP + SVM row, with scikit-learn/scikit-image.

Every method sees the same images: the *key frames* of each scan (axial slices showing the soleus), on the model
window (fixed pixel size, so a patch or a co-occurrence distance is the same number of millimetres on every scan).
ROIs are the soleus, lateral and medial gastrocnemius labels (the paper's manually drawn ROIs).

- **MFF (kNN)**: one number per image, the mean fat fraction of the soleus (as in §4.2).
- **STP** (statistical texture patterns, after Kammoun et al.): a 16-bin normalised FF histogram of the ROI plus
  grey-level co-occurrence features (``skimage.feature.graycomatrix`` / ``graycoprops``: contrast, dissimilarity,
  homogeneity, energy, correlation, ASM at distances 1, 2, 4 px averaged over 0°, 45°, 90°, 135°) of the ROI, FF
  quantised to 32 levels; pixel pairs that leave the ROI are dropped. Classified with kNN and with an RBF-SVM.
- **K-Means** (after Coates et al. 2011): 18×18 patches centred in the ROI (≥ half of the patch inside), each
  brightness/contrast normalised, ZCA-whitened with statistics of the training fold, assigned to the nearest of K
  centroids learnt by K-Means on training patches; an image is the normalised histogram of its patches'
  centroids; RBF-SVM. K defaults to 256 rather than the paper's 900: an image here has of the order of 100-200
  patches, and with K ≫ that number most histogram bins of an image are empty (the histogram is then a near-binary
  code that the RBF kernel cannot compare); ``k`` is a parameter.
- **ResNet18-GAP (SVM)**: the 512 GAP outputs of a ResNet18 trunk (ImageNet weights from a local file when given,
  else torchvision's seeded random initialisation, stated in the row name) for the same normalised 3-slice stacks
  the networks see; RBF-SVM.

Hyper-parameters are searched with ``GridSearchCV`` on the training fold only, with subject-grouped inner folds
(``GroupKFold``): slices of one subject never sit on both sides of an inner split either.
"""

from __future__ import annotations

import numpy as np
import torch

from .settings import KMEANS_K

HIST_BINS = 16
GLCM_LEVELS = 32
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
PATCH = 18
PATCH_STRIDE = 8
MAX_PATCHES_PER_IMAGE = 200
KMEANS_TRAIN_PATCHES = 20000

KNN_GRID = {"clf__n_neighbors": [1, 3, 5, 9, 15, 25]}
SVM_GRID = {"clf__C": [0.1, 1.0, 10.0, 100.0], "clf__gamma": ["scale", 0.01, 0.1]}


# ------------------------------------------------------------------------------------------------------ features
def mff_feature(ff: np.ndarray, labels: np.ndarray, soleus: int = 5) -> np.ndarray:
    """(n_images, 1): mean FF of the soleus on each image (``ff``, ``labels`` are (n, S, S)); NaN without soleus."""
    out = np.full((ff.shape[0], 1), np.nan)
    for k in range(ff.shape[0]):
        m = labels[k] == soleus
        if m.any():
            out[k, 0] = float(ff[k][m].mean())
    return out


def stp_feature(ff: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """STP vector of one image: 16-bin ROI histogram + 6 GLCM properties × 3 distances (angle-averaged)."""
    from skimage.feature import graycomatrix, graycoprops

    values = np.clip(ff[roi], 0, 1)
    hist, _ = np.histogram(values, bins=HIST_BINS, range=(0.0, 1.0))
    hist = hist / max(hist.sum(), 1)
    # Level 0 marks "outside the ROI"; FF 0..1 maps onto levels 1..GLCM_LEVELS.
    q = np.zeros(ff.shape, dtype=np.uint8)
    q[roi] = 1 + np.minimum((np.clip(ff[roi], 0, 1) * GLCM_LEVELS).astype(int), GLCM_LEVELS - 1)
    ys, xs = np.nonzero(roi)
    pad = max(GLCM_DISTANCES)
    box = q[max(ys.min() - pad, 0):ys.max() + pad + 1, max(xs.min() - pad, 0):xs.max() + pad + 1]
    glcm = graycomatrix(box, distances=list(GLCM_DISTANCES), angles=list(GLCM_ANGLES),
                        levels=GLCM_LEVELS + 1, symmetric=True, normed=False)
    glcm = glcm[1:, 1:].astype(np.float64)  # drop pairs with a pixel outside the ROI
    sums = glcm.sum(axis=(0, 1), keepdims=True)
    glcm = np.divide(glcm, sums, out=np.zeros_like(glcm), where=sums > 0)
    props = []
    for p in GLCM_PROPS:
        v = graycoprops(glcm, p)  # (n_distances, n_angles)
        props.append(np.nan_to_num(v, nan=0.0).mean(axis=1))
    return np.concatenate([hist, np.concatenate(props)])


def stp_features(ff: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """(n_images, 34) STP features of (n, S, S) images and ROIs."""
    return np.stack([stp_feature(ff[k], roi[k]) for k in range(ff.shape[0])])


def image_patches(ff: np.ndarray, roi: np.ndarray, rng: np.random.Generator, size: int = PATCH,
                  stride: int = PATCH_STRIDE, max_patches: int = MAX_PATCHES_PER_IMAGE) -> np.ndarray:
    """Brightness/contrast-normalised ``size``² patches (n, size²) whose centre is in the ROI and which lie at
    least half inside it; at most ``max_patches`` (a seeded random subset)."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(ff, (size, size))[::stride, ::stride]
    inside = sliding_window_view(roi.astype(np.float32), (size, size))[::stride, ::stride].mean(axis=(2, 3))
    h = size // 2
    centre_in = roi[h::stride, h::stride][:inside.shape[0], :inside.shape[1]]
    keep = np.argwhere((inside >= 0.5) & centre_in)
    if keep.shape[0] > max_patches:
        keep = keep[rng.choice(keep.shape[0], max_patches, replace=False)]
    if keep.shape[0] == 0:
        return np.zeros((0, size * size), dtype=np.float32)
    patches = windows[keep[:, 0], keep[:, 1]].reshape(keep.shape[0], -1).astype(np.float64)
    patches -= patches.mean(axis=1, keepdims=True)
    patches /= np.sqrt(patches.var(axis=1, keepdims=True) + 0.01)  # FF units: 0.01 = (0.1 FF)²
    return patches.astype(np.float32)


class BagOfPatches:
    """ZCA whitening + K-Means dictionary fitted on training patches; images → normalised centroid histograms."""

    def __init__(self, k: int = KMEANS_K, seed: int = 0, zca_eps: float = 0.1,
                 train_patches: int = KMEANS_TRAIN_PATCHES):
        self.k, self.seed, self.zca_eps, self.train_patches = int(k), int(seed), float(zca_eps), int(train_patches)

    def fit(self, patch_sets: list) -> "BagOfPatches":
        from sklearn.cluster import MiniBatchKMeans

        rng = np.random.default_rng(self.seed)
        data = np.concatenate([p for p in patch_sets if len(p)]).astype(np.float64)
        if data.shape[0] > self.train_patches:
            data = data[rng.choice(data.shape[0], self.train_patches, replace=False)]
        self.mean_ = data.mean(axis=0)
        cov = np.cov(data - self.mean_, rowvar=False)
        eigval, eigvec = np.linalg.eigh(cov)
        self.whiten_ = (eigvec / np.sqrt(np.clip(eigval, 0, None) + self.zca_eps)) @ eigvec.T
        k = min(self.k, data.shape[0])
        self.kmeans_ = MiniBatchKMeans(n_clusters=k, random_state=self.seed, batch_size=2048, n_init=3,
                                       max_iter=100).fit(self._whiten(data))
        return self

    def _whiten(self, patches: np.ndarray) -> np.ndarray:
        return (np.asarray(patches, dtype=np.float64) - self.mean_) @ self.whiten_

    def transform(self, patch_sets: list) -> np.ndarray:
        k = self.kmeans_.n_clusters
        out = np.zeros((len(patch_sets), k))
        for i, p in enumerate(patch_sets):
            if len(p):
                counts = np.bincount(self.kmeans_.predict(self._whiten(p)), minlength=k)
                out[i] = counts / counts.sum()
        return out


def gap_features(net, stacks: torch.Tensor, batch_size: int = 16) -> np.ndarray:
    """(n, C) global-average-pooled outputs of the network's last feature stage."""
    net = net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, stacks.shape[0], batch_size):
            feats = net.features(stacks[start:start + batch_size])
            out.append(feats[-1].mean(dim=(2, 3)).float())
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------------------------------- classifiers
def make_search(kind: str, groups: np.ndarray, n_train: int):
    """A GridSearchCV over a scaler + kNN or RBF-SVM pipeline, with subject-grouped inner folds."""
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    n_groups = len(set(groups.tolist()))
    n_splits = min(3, n_groups)
    if kind == "knn":
        pipe = Pipeline([("scale", StandardScaler()), ("clf", KNeighborsClassifier())])
        smallest_inner_train = n_train - int(np.ceil(n_train / max(n_splits, 1))) if n_splits >= 2 else n_train
        grid = {"clf__n_neighbors": [k for k in KNN_GRID["clf__n_neighbors"] if k <= max(smallest_inner_train, 1)]}
    elif kind == "svm":
        pipe = Pipeline([("scale", StandardScaler()), ("clf", SVC(kernel="rbf"))])
        grid = dict(SVM_GRID)
    else:
        raise ValueError(f"unknown classifier {kind!r}")
    if n_splits < 2:
        return pipe, None  # too few subjects to search: defaults
    return GridSearchCV(pipe, grid, cv=GroupKFold(n_splits=n_splits), scoring="accuracy", n_jobs=1), grid


def fit_predict(kind: str, x_train, y_train, groups_train, x_test) -> tuple[np.ndarray, dict]:
    """Fit with the inner search on the training fold, predict the test images; returns (predictions, chosen)."""
    x_train, x_test = np.asarray(x_train, dtype=np.float64), np.asarray(x_test, dtype=np.float64)
    y_train, groups_train = np.asarray(y_train), np.asarray(groups_train)
    if len(set(y_train.tolist())) < 2:
        only = int(y_train[0])
        return np.full(x_test.shape[0], only), {"note": "one class in training fold"}
    est, grid = make_search(kind, groups_train, x_train.shape[0])
    if grid is None:
        est.fit(x_train, y_train)
        return est.predict(x_test), {"note": "defaults (too few subjects for an inner search)"}
    est.fit(x_train, y_train, groups=groups_train)
    chosen = {k.replace("clf__", ""): v for k, v in est.best_params_.items()}
    chosen["inner_cv_accuracy"] = round(float(est.best_score_), 4)
    return est.predict(x_test), chosen


def vote(predictions: np.ndarray, n_classes: int = 3) -> int:
    """Scan verdict of a classical method: the most frequent image prediction (ties: lowest class index)."""
    return int(np.argmax(np.bincount(np.asarray(predictions, dtype=int), minlength=n_classes)))
