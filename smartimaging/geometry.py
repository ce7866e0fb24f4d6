"""The one place where ITK's LPS meets Slicer's RAS.

SimpleITK images carry LPS origin/direction; Slicer volume nodes and segmentations use an IJK-to-RAS matrix.
Both helpers are exact (no resampling): RAS = diag(-1, -1, 1) · LPS.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])  # its own inverse


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """4×4 IJK-to-RAS matrix of a SimpleITK image."""
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_FROM_RAS @ np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    matrix[:3, 3] = LPS_FROM_RAS @ np.array(image.GetOrigin())
    return matrix


def set_image_geometry_from_ijk_to_ras(image: sitk.Image, ijk_to_ras: np.ndarray) -> None:
    """Set a SimpleITK image's spacing, origin and direction from an IJK-to-RAS matrix."""
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    direction_ras = ijk_to_ras[:3, :3] / spacing
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (LPS_FROM_RAS @ direction_ras).ravel()))
    image.SetOrigin(tuple(float(o) for o in LPS_FROM_RAS @ ijk_to_ras[:3, 3]))


def lps_point_from_ras(point_ras) -> tuple[float, float, float]:
    """A physical point from Slicer's RAS to ITK's LPS (the same map converts back)."""
    return tuple(float(v) for v in LPS_FROM_RAS @ np.asarray(point_ras, float))


def ras_point_from_lps(point_lps) -> tuple[float, float, float]:
    """A physical point from ITK's LPS to Slicer's RAS."""
    return lps_point_from_ras(point_lps)
