"""Evaluation helpers checked against scikit-learn, scipy and direct definitions."""

import warnings

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve

from smartimaging.evaluation import (
    auc_with_ci,
    binary_metrics,
    delong_auc_variance,
    dice,
    mean_sd,
    plot_roc,
    roc_figure,
    wilson_interval,
    youden_cutoff,
)


@pytest.fixture()
def scored():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    scores = labels * 0.8 + rng.normal(0, 0.7, 120)
    scores[:10] = np.round(scores[:10], 1)  # ties
    return labels, scores


def _delong_direct(labels, scores):
    """O(m·n) structural components (DeLong 1988) with the 1/2 rule for ties."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg)


def test_auc_and_delong_variance_match_definitions(scored):
    labels, scores = scored
    auc, variance = delong_auc_variance(labels, scores)
    direct_auc, direct_variance = _delong_direct(labels, scores)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auc == pytest.approx(direct_auc, abs=1e-12)
    assert variance == pytest.approx(direct_variance, rel=1e-9)


def test_auc_ci_contains_auc_and_narrows_with_more_cases(scored):
    labels, scores = scored
    small = auc_with_ci(labels[:40], scores[:40])
    large = auc_with_ci(labels, scores)
    assert large.ci_low < large.auc < large.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low)
    assert large.n_positive + large.n_negative == 120


def test_youden_cutoff_maximises_sensitivity_plus_specificity(scored):
    labels, scores = scored
    cutoff = youden_cutoff(labels, scores)
    best = max(np.mean(scores[labels == 1] >= t) + np.mean(scores[labels == 0] < t) for t in np.unique(scores))
    chosen = np.mean(scores[labels == 1] >= cutoff) + np.mean(scores[labels == 0] < cutoff)
    assert chosen == pytest.approx(best)
    assert cutoff in set(roc_curve(labels, scores)[2])


def test_binary_metrics_counts_reproduce_paper_style_table():
    # 54 positives with 50 detected, 69 negatives with 59 correctly negative (the paper's counts)
    labels = np.r_[np.ones(54), np.zeros(69)]
    predictions = np.r_[np.ones(50), np.zeros(4), np.zeros(59), np.ones(10)]
    m = binary_metrics(labels, predictions)
    assert (m.tp, m.fn, m.tn, m.fp) == (50, 4, 59, 10)
    assert m.sensitivity.value == pytest.approx(0.9259, abs=1e-4)
    assert m.specificity.value == pytest.approx(0.8551, abs=1e-4)
    assert m.accuracy.value == pytest.approx(0.8862, abs=1e-4)
    assert m.ppv.value == pytest.approx(0.8333, abs=1e-4)
    assert m.npv.value == pytest.approx(0.9365, abs=1e-4)
    assert m.sensitivity.as_text().startswith("92.59% (50/54")


def test_wilson_interval_matches_scipy():
    for k, n in [(50, 54), (0, 10), (10, 10), (7, 30)]:
        expected = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_dice_and_mean_sd():
    a = np.zeros((10, 10), bool)
    b = a.copy()
    a[2:6, 2:6] = True
    b[4:8, 4:8] = True
    assert dice(a, b) == pytest.approx(2 * 4 / 32)
    assert dice(a, a) == 1.0
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    assert mean_sd([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))


def test_roc_plot_is_written(tmp_path, scored):
    labels, scores = scored
    plot_roc({"test": (labels, scores)}, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("title", ["mass-u4: held-out test cases (phantoms: demo numbers)",
                                   "lvi-u4-seed3-with-a-long-name: held-out test cases (phantoms: demo numbers)",
                                   "A" * 100 + ": held-out test cases (phantoms: demo numbers)",
                                   "ROC"])
def test_a_long_roc_title_is_wrapped_inside_the_figure(scored, title):
    """The title and the legend (the model's name) are drawn whole: every character (the phantom label too; a word
    wider than the plot is broken by characters) and inside the figure, with no tight_layout warning."""
    import matplotlib.pyplot as plt

    labels, scores = scored
    name = title.split(":")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = roc_figure({name: (labels, scores)}, title)
    try:
        fig.canvas.draw()
        drawn = fig.axes[0].title
        assert "".join(drawn.get_text().split()) == "".join(title.split())
        box = drawn.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
        assert (len(drawn.get_text().splitlines()) > 1) == (title != "ROC")
        legend = fig.axes[0].get_legend()
        assert "".join(legend.get_texts()[0].get_text().split()).startswith("".join(name.split()) + "(AUC")
        box = legend.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width
    finally:
        plt.close(fig)
