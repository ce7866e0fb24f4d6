"""Segment definitions with DICOM terminology (SNOMED CT codes) shared by the CLI, MRML adapters and .seg.nrrd files.

The codes also live in Resources/Terminology/SmartImaging.term.json for Slicer's terminology selector; a test keeps
the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from .resources import resource_dir

TERMINOLOGY_CONTEXT = "SmartImaging oncologic imaging"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
TERMINOLOGY_FILE = resource_dir("Terminology") / "SmartImaging.term.json"


@dataclass(frozen=True)
class Code:
    scheme: str
    value: str
    meaning: str

    def tag(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


@dataclass(frozen=True)
class SegmentSpec:
    segment_id: str
    name: str
    label: int
    color: tuple[float, float, float]
    category: Code
    type: Code

    def terminology_entry(self) -> str:
        """Slicer's terminology entry string (context~category~type~modifier~anatomic context~region~modifier)."""
        return f"{TERMINOLOGY_CONTEXT}~{self.category.tag()}~{self.type.tag()}~^^~{ANATOMIC_CONTEXT}~^^~^^"


ALTERED = Code("SCT", "49755003", "Morphologically Altered Structure")
ANATOMICAL = Code("SCT", "123037004", "Anatomical Structure")

BONE_METASTASIS = SegmentSpec("bone_metastasis", "Bone metastasis", 1, (0.90, 0.16, 0.16), ALTERED,
                              Code("SCT", "94222008", "Secondary malignant neoplasm of bone"))
URINARY_BLADDER = SegmentSpec("urinary_bladder", "Urinary bladder", 2, (0.95, 0.85, 0.20), ANATOMICAL,
                              Code("SCT", "89837001", "Urinary bladder"))
BONESCAN_SEGMENTS = (BONE_METASTASIS, URINARY_BLADDER)

BREAST_MASS = SegmentSpec("breast_mass", "Breast mass", 1, (0.95, 0.45, 0.15), ALTERED, Code("SCT", "4147007", "Mass"))
BREAST_CALCIFICATION = SegmentSpec("breast_calcification", "Breast calcification", 1, (0.2, 0.8, 0.95), ALTERED,
                                   Code("SCT", "18115005", "Pathologic calcification"))
MAMMO_SEGMENTS = {"mass": BREAST_MASS, "calcification": BREAST_CALCIFICATION}
