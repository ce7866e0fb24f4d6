"""Evaluation helpers: AUC with DeLong 95 % CI, Youden cutoff, SEN/SPE/ACC/PPV/NPV with counts and Wilson CIs, Dice.

Conventions: labels are 0/1 (1 = positive, e.g. metastasis), scores are "higher = more positive".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve


def _midranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_auc_variance(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong variance (fast algorithm of Sun & Xu, 2014)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    positives, negatives = scores[labels], scores[~labels]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        raise ValueError("AUC needs at least one positive and one negative case")
    tx, ty = _midranks(positives), _midranks(negatives)
    tz = _midranks(np.concatenate([positives, negatives]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1.0 - (tz[m:] - ty) / m
    s01 = np.var(v01, ddof=1) if m > 1 else 0.0
    s10 = np.var(v10, ddof=1) if n > 1 else 0.0
    return float(auc), float(s01 / m + s10 / n)


@dataclass
class AUCResult:
    auc: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int

    def as_text(self) -> str:
        return f"{self.auc:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}; {self.n_positive}+/{self.n_negative}-)"


def auc_with_ci(labels, scores, level: float = 0.95) -> AUCResult:
    """ROC AUC with a DeLong confidence interval (logit-free, clipped to [0, 1])."""
    labels = np.asarray(labels).astype(int)
    auc, variance = delong_auc_variance(labels, scores)
    z = stats.norm.ppf(0.5 + level / 2)
    half = z * np.sqrt(max(variance, 0.0))
    return AUCResult(auc, max(0.0, auc - half), min(1.0, auc + half), int(labels.sum()), int((1 - labels).sum()))


def youden_cutoff(labels, scores) -> float:
    """Score threshold maximising sensitivity + specificity - 1 (predict positive when score >= cutoff)."""
    fpr, tpr, thresholds = roc_curve(np.asarray(labels).astype(int), np.asarray(scores, dtype=float))
    finite = np.isfinite(thresholds)
    best = np.argmax((tpr - fpr)[finite])
    return float(thresholds[finite][best])


def wilson_interval(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (NaNs when total is 0)."""
    if total == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / total
    denominator = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denominator
    half = z * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass
class Proportion:
    numerator: int
    denominator: int
    ci_low: float
    ci_high: float

    @property
    def value(self) -> float:
        return self.numerator / self.denominator if self.denominator else float("nan")

    def as_text(self) -> str:
        if not self.denominator:
            return "n/a (0/0)"
        return (f"{100 * self.value:.2f}% ({self.numerator}/{self.denominator}; "
                f"95% CI {100 * self.ci_low:.1f}-{100 * self.ci_high:.1f})")


def _proportion(numerator: int, denominator: int) -> Proportion:
    return Proportion(int(numerator), int(denominator), *wilson_interval(int(numerator), int(denominator)))


@dataclass
class BinaryMetrics:
    sensitivity: Proportion
    specificity: Proportion
    accuracy: Proportion
    ppv: Proportion
    npv: Proportion
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict:
        result = {}
        for name in ("sensitivity", "specificity", "accuracy", "ppv", "npv"):
            p = getattr(self, name)
            result[name] = {**asdict(p), "value": p.value}
        result.update(tp=self.tp, fp=self.fp, tn=self.tn, fn=self.fn)
        return result


def binary_metrics(labels, predictions) -> BinaryMetrics:
    """SEN, SPE, ACC, PPV, NPV with counts and Wilson 95 % CIs from 0/1 labels and 0/1 predictions."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(predictions).astype(bool)
    tp, fp = int(np.sum(y & p)), int(np.sum(~y & p))
    tn, fn = int(np.sum(~y & ~p)), int(np.sum(y & ~p))
    return BinaryMetrics(
        sensitivity=_proportion(tp, tp + fn),
        specificity=_proportion(tn, tn + fp),
        accuracy=_proportion(tp + tn, tp + tn + fp + fn),
        ppv=_proportion(tp, tp + fp),
        npv=_proportion(tn, tn + fn),
        tp=tp, fp=fp, tn=tn, fn=fn,
    )


def dice(a: np.ndarray, b: np.ndarray, empty_value: float = 1.0) -> float:
    """Dice overlap of two binary masks; `empty_value` when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = a.sum() + b.sum()
    if total == 0:
        return empty_value
    return float(2.0 * np.logical_and(a, b).sum() / total)


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (sd 0 for one value, NaNs for none)."""
    values = np.asarray(list(values), dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC"):
    """A ROC plot (a matplotlib Figure, Agg); `curves` maps a label to (labels, scores). A title or legend
    label wider than the plot is wrapped at spaces (a word wider than the plot by characters), so that it is always
    drawn whole."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(np.asarray(labels).astype(int), np.asarray(scores, dtype=float))
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(loc="lower right", fontsize=8)
    _wrap_texts(ax, title)
    fig.tight_layout()
    return fig


def _wrap_texts(ax, title: str) -> None:
    """The axes' title and legend labels, broken at spaces into lines no wider than the axes, and a word wider than
    the axes by characters (measured with the figure's renderer; tight_layout then only widens the axes, so the
    title and legend stay inside the figure)."""
    renderer = ax.figure.canvas.get_renderer()
    width = ax.get_window_extent(renderer).width

    def title_fits(text: str) -> bool:
        ax.set_title(text)
        return ax.title.get_window_extent(renderer).width <= width

    ax.set_title(_wrapped(title, title_fits))
    legend = ax.get_legend()
    labels = legend.get_texts()
    frame = legend.get_window_extent(renderer).width - max(t.get_window_extent(renderer).width for t in labels)
    for label in labels:
        def label_fits(text: str, label=label) -> bool:
            label.set_text(text)
            return label.get_window_extent(renderer).width <= width - frame

        label.set_text(_wrapped(label.get_text(), label_fits))


def _wrapped(text: str, fits) -> str:
    """`text` broken at spaces into lines for which `fits(line)` holds; a word that does not fit alone is broken
    by characters."""
    lines, current = [], ""
    for word in text.split(" "):
        if current and fits(f"{current} {word}"):
            current = f"{current} {word}"
            continue
        if current:
            lines.append(current)
        current = word
        if not fits(word):
            current = ""
            for char in word:
                if current and not fits(current + char):
                    lines.append(current)
                    current = ""
                current += char
    return "\n".join([*lines, current])


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str = "ROC") -> None:
    """Write a ROC plot PNG (`roc_figure`)."""
    import matplotlib.pyplot as plt

    fig = roc_figure(curves, title)
    fig.savefig(path)
    plt.close(fig)


def mean_ci(values, level: float = 0.95) -> dict:
    """Mean, sample SD and the t-based confidence interval of the mean (n, too)."""
    values = np.asarray(values, dtype=float)
    mean, sd = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * sd / np.sqrt(len(values))) if len(values) > 1 \
        else float("nan")
    return {"mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half, "n": int(len(values))}


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float, window: int = 7) -> float:
    """Mean structural similarity of two 2D images: Wang et al. 2004 with a uniform 7×7 window, K1 0.01, K2 0.03 and
    sample covariances, the definition of scikit-image's `structural_similarity` (checked against it in tests)."""
    from scipy.ndimage import uniform_filter

    x, y = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    n = window * window
    correction = n / (n - 1)
    mean_x, mean_y = uniform_filter(x, window), uniform_filter(y, window)
    var_x = correction * (uniform_filter(x * x, window) - mean_x**2)
    var_y = correction * (uniform_filter(y * y, window) - mean_y**2)
    cov = correction * (uniform_filter(x * y, window) - mean_x * mean_y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    crop = (window - 1) // 2
    return float(index[crop:-crop, crop:-crop].mean())


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB (infinite for identical images)."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(test, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))
