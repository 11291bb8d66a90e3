"""Calibration (temperature, ECE) and the unfamiliar-input score: numbers known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from MDTextureLib import calibration as cal


def planted(n: int, temperature: float, seed: int = 0, n_classes: int = 3):
    """Logits z and labels drawn from softmax(z / T): the calibrated temperature is T by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3.0, (n, n_classes))
    p = cal.softmax(z, temperature)
    labels = np.array([rng.choice(n_classes, p=row) for row in p])
    return z, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_temperature_recovers_a_planted_temperature(temperature):
    z, y = planted(20000, temperature)
    assert cal.fit_temperature(z, y) == pytest.approx(temperature, rel=0.05)


def test_grouped_temperature_with_identical_slices_is_the_plain_fit():
    z, y = planted(3000, 2.0, seed=1)
    groups = np.repeat(np.arange(len(z)), 4)
    t_grouped = cal.fit_temperature(np.repeat(z, 4, axis=0), np.repeat(y, 4), groups)
    assert t_grouped == pytest.approx(cal.fit_temperature(z, y), rel=1e-4)
    assert t_grouped == pytest.approx(2.0, rel=0.1)


def test_group_probabilities_are_slice_means_and_labels_must_agree():
    z = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0]])
    p = cal.group_probabilities(z, np.array([7, 7, 3]))
    s = cal.softmax(z)
    np.testing.assert_allclose(p, [s[2], (s[0] + s[1]) / 2])  # group ids in sorted order
    with pytest.raises(ValueError):
        cal.group_labels(np.array([0, 1, 2]), np.array([7, 7, 3]))


def test_temperature_scaling_does_not_change_the_verdict_and_lowers_nll():
    z, y = planted(4000, 3.0, seed=2)  # the raw logits are over-confident by a factor of 3
    t = cal.fit_temperature(z, y)
    s = cal.calibration_summary(z, y, None, t)
    assert s["nll_after"] < s["nll_before"] and s["ece_after"] < s["ece_before"]
    assert (cal.softmax(z, t).argmax(1) == z.argmax(1)).all()


def test_ece_of_calibrated_predictions_is_near_zero():
    z, y = planted(40000, 1.0, seed=3)
    assert cal.expected_calibration_error(cal.softmax(z), y) < 0.01


def test_ece_of_a_known_miscalibration():
    # 100 predictions at confidence 0.9 of which 60 are right (bin 9: |0.6 − 0.9| = 0.3) and 100 at confidence 0.55
    # of which 55 are right (bin 5: 0) → ECE = 0.5 · 0.3 + 0.5 · 0 = 0.15
    p_hi = np.tile([0.9, 0.05, 0.05], (100, 1))
    p_lo = np.tile([0.55, 0.45, 0.0], (100, 1))
    y = np.r_[np.zeros(60), np.ones(40), np.zeros(55), np.ones(45)].astype(int)
    assert cal.expected_calibration_error(np.r_[p_hi, p_lo], y) == pytest.approx(0.15)
    # a confidence of exactly 1 falls in the last bin, not past it
    assert cal.expected_calibration_error(np.array([[1.0, 0, 0]]), np.array([1])) == pytest.approx(1.0)


def test_ledoit_wolf_shrinks_towards_identity_when_samples_are_few():
    rng = np.random.default_rng(4)
    sd = np.sqrt(np.linspace(0.2, 5.0, 50))  # far from the identity target
    few = rng.normal(size=(10, 50)) * sd
    many = rng.normal(size=(20000, 50)) * sd
    cov_few, d_few = cal.ledoit_wolf(few - few.mean(0))
    cov_many, d_many = cal.ledoit_wolf(many - many.mean(0))
    assert d_few > 0.5 > 0.05 > d_many
    assert np.linalg.eigvalsh(cov_few).min() > 0  # invertible although n < p
    np.testing.assert_allclose(np.diag(cov_many), sd ** 2, rtol=0.1)


def test_mahalanobis_of_a_known_gaussian():
    # isotropic unit Gaussian around two class means: the score is the Euclidean distance to the nearest mean
    rng = np.random.default_rng(5)
    means = np.array([[0.0] * 4, [10.0, 0, 0, 0]])
    labels = np.repeat([0, 1], 4000)
    x = means[labels] + rng.normal(size=(8000, 4))
    stats = cal.fit_unfamiliar(x, labels, n_classes=3)
    assert stats["present"].tolist() == [True, True, False]  # class 2 never seen: never the nearest
    probe = np.array([[0.0, 3.0, 0, 0], [10.0, 0, 0, 4.0], [5.0, 0, 0, 0]])
    np.testing.assert_allclose(cal.unfamiliar_scores(probe, stats), [3.0, 4.0, 5.0], rtol=0.05)


def test_far_feature_vector_is_flagged_training_points_are_not():
    rng = np.random.default_rng(6)
    d, per_class = 64, 30  # fewer scans than dimensions, as with the real networks
    centres = rng.normal(0, 3, (3, d))
    labels = np.repeat([0, 1, 2], per_class)
    train = np.abs(centres[labels] + rng.normal(size=(3 * per_class, d)))
    calib_labels = np.repeat([0, 1, 2], 10)
    calib = np.abs(centres[calib_labels] + rng.normal(size=(30, d)))
    stats = cal.fit_unfamiliar(train, labels, 3)
    threshold = cal.unfamiliar_threshold(cal.unfamiliar_scores(calib, stats))
    assert (cal.unfamiliar_scores(train, stats) < threshold).all()
    far = calib[:5] + 0.3 * np.abs(train).mean()  # every feature shifted
    noisy = calib[:5] * rng.uniform(0, 3, (5, d))
    assert (cal.unfamiliar_scores(far, stats) > threshold).all()
    assert (cal.unfamiliar_scores(noisy, stats) > threshold).all()
    assert cal.unfamiliar_threshold(np.arange(101.0), 99) == pytest.approx(99.0)


def test_one_scan_per_class_falls_back_to_the_euclidean_distance():
    x = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    stats = cal.fit_unfamiliar(x, np.array([0, 1, 2]), 3)
    np.testing.assert_allclose(cal.unfamiliar_scores(np.array([[0.0, 1.0], [3.0, 2.0]]), stats), [1.0, 2.0])
