"""Plain names of pyradiomics features, for every reader-facing text (station, desktop, command-line reports):
"original_shape2D_Perimeter" reads "Perimeter (mm)", with the pyradiomics name kept where a reader can look it up
(hover, a CSV). No import beyond the standard library: the command line's reports use it as the GUIs do.
"""

from __future__ import annotations

import re

FEATURE_CLASSES = {"shape2D": "Shape", "firstorder": "Intensity", "glcm": "Texture: co-occurrence",
                   "glrlm": "Texture: run length", "glszm": "Texture: zone size",
                   "gldm": "Texture: grey-level dependence", "ngtdm": "Texture: neighbourhood tone difference"}
PLAIN_NAMES = {  # pyradiomics feature -> plain name (2D shape in mm as the image's pixel size gives it)
    "Perimeter": "Perimeter (mm)", "MeshSurface": "Area, outline (mm²)", "PixelSurface": "Area, pixels (mm²)",
    "PerimeterSurfaceRatio": "Perimeter / area (1/mm)", "MaximumDiameter": "Largest diameter (mm)",
    "MajorAxisLength": "Long axis (mm)", "MinorAxisLength": "Short axis (mm)",
    "Elongation": "Elongation (short / long axis)", "Sphericity": "Roundness",
    "10Percentile": "10th percentile", "90Percentile": "90th percentile", "Mean": "Mean", "Median": "Median",
    "Minimum": "Minimum", "Maximum": "Maximum", "Range": "Range (max − min)",
    "InterquartileRange": "Interquartile range", "MeanAbsoluteDeviation": "Mean absolute deviation",
    "RobustMeanAbsoluteDeviation": "Mean absolute deviation, 10–90th percentile",
    "RootMeanSquared": "Root mean square", "Variance": "Variance", "Skewness": "Skewness (asymmetry)",
    "Kurtosis": "Kurtosis (peakedness)", "Energy": "Energy (sum of squares)",
    "TotalEnergy": "Total energy (sum of squares × pixel area)", "Entropy": "Entropy (randomness)",
    "Uniformity": "Uniformity"}
FEATURE_NAME = re.compile(r"^(original|wavelet-[A-Z]+|log-sigma-[\d-]+mm-[23]D|square|squareroot|logarithm|"
                          r"exponential|gradient|lbp-[23]D(?:-[a-z0-9]+)?)_([A-Za-z0-9]+)_([A-Za-z0-9]+)$")


# ---- names ----------------------------------------------------------------------------------------------------------

def is_feature_name(name: str) -> bool:
    """Whether a name is a pyradiomics feature name (image type _ class _ feature)."""
    return FEATURE_NAME.match(name) is not None


def plain_feature_name(name: str) -> str:
    """A pyradiomics name in words, e.g. original_shape2D_Perimeter -> "Perimeter (mm)",
    original_glcm_ClusterProminence -> "Cluster prominence (texture: co-occurrence)"; other names as given."""
    match = FEATURE_NAME.match(name)
    if match is None:
        return name
    image_type, feature_class, feature = match.groups()
    words = PLAIN_NAMES.get(feature) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", feature).capitalize()
    if feature_class == "firstorder":
        words = f"Intensity {words[0].lower()}{words[1:]}"
    elif feature_class != "shape2D":
        words = f"{words} ({FEATURE_CLASSES.get(feature_class, feature_class).lower()})"
    return words if image_type == "original" else f"{words}, {image_type} image"


FEATURE_IN_TEXT = re.compile(FEATURE_NAME.pattern[1:-1] + r"\b")


def plain_domain(domain: dict | None) -> dict | None:
    """A domain check (`result_nodes.domain_check`) as the reader is shown it: the pyradiomics names in its reasons
    and text in plain words (several separated by ";", as plain names may hold a comma), the reasons as recorded in
    "raw" (the hover text of each; "" where nothing was renamed)."""
    if not domain:
        return domain
    reasons = [str(reason) for reason in domain.get("reasons") or []]
    shown = [_plain_names(reason) for reason in reasons]
    return {**domain, "reasons": shown, "text": _plain_names(str(domain.get("text", ""))),
            "raw": [raw if raw != text else "" for raw, text in zip(reasons, shown, strict=True)]}


def _plain_names(text: str) -> str:
    names = [match.group(0) for match in FEATURE_IN_TEXT.finditer(text)]
    for first, second in zip(names, names[1:], strict=False):
        text = text.replace(f"{first}, {second}", f"{first}; {second}", 1)
    return FEATURE_IN_TEXT.sub(lambda match: plain_feature_name(match.group(0)), text)


def shown_rows(rows: list[list[str]]) -> tuple[list[list[str]], list[str]]:
    """The result rows a reader is shown, and the hover text of each row's first cell: the raw feature rows (shown
    in the explanations with their plain names) are left out; "Contribution: <pyradiomics name>" reads
    "Contribution: <plain name>" with the pyradiomics name on hover."""
    shown, titles = [], []
    for row in rows:
        name = str(row[0])
        if is_feature_name(name):
            continue
        if name.startswith("Contribution: ") and is_feature_name(name[len("Contribution: "):]):
            feature = name[len("Contribution: "):]
            shown.append([f"Contribution: {plain_feature_name(feature)}", *row[1:]])
            titles.append(feature)
        else:
            shown.append(list(row))
            titles.append("")
    return shown, titles
