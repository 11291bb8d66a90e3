"""Experiments of Cai et al. on the phantom cohort, and a quantitative evaluation of where the heatmaps point.

Modules:

- :mod:`.localisation` — pointing game, energy pointing game, relevance mass / rank accuracy, pixel ROC-AUC
  (pure numpy + scikit-learn).
- :mod:`.distances` — Eq. (3) ℓ² and Eq. (4) χ² between normalised 20-bin histograms; GAP-neuron analysis (§4.2).
- :mod:`.baselines` — the non-deep rows of Table 1 (MFF, STP, K-Means bag of patches, ResNet18-GAP + SVM).
- :mod:`.maps` — ICAM/CAM from our network, Grad-CAM / Grad-CAM++ / LayerCAM through ``pytorch_grad_cam``, a random
  map and the fat-fraction image, all brought onto the native grid the same way.
- :mod:`.randomisation` — cascading model-parameter randomisation (Adebayo et al. 2018).
- :mod:`.embedding` — 24×24 patches at heatmap maxima and their t-SNE embedding (Fig. 6).
- :mod:`.experiments` — one module per experiment: Table 1, Table 2, Fig. 3, Fig. 6, Table 3, localisation,
  randomisation, calibration (ECE), families (leave one pattern family out) (package; `run` in its `__init__`).
- :mod:`.cli` — ``mdtexture evaluate …``.

Everything here runs on phantom (synthetic) data unless a user points it at real data; results are labelled so.
"""
