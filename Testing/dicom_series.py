"""Synthetic DICOM series for tests: one MR slice per file with position, orientation and spacing tags."""

from __future__ import annotations

import SimpleITK as sitk


def write_dicom_series(image: sitk.Image, folder, series_uid: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    for index in range(image.GetDepth()):
        slice_image = sitk.Cast(image[:, :, index], sitk.sitkInt16)
        position = image.TransformIndexToPhysicalPoint((0, 0, index))
        for tag, value in (("0008|0060", "MR"), ("0020|000e", series_uid), ("0020|000d", "1.2.826.0.1.3680043.2.1"),
                           ("0008|0018", f"{series_uid}.{index + 1}"), ("0020|0013", str(index + 1)),
                           ("0020|0032", "\\".join(f"{v:.4f}" for v in position)),
                           ("0020|0037", "\\".join(f"{v:.6f}" for v in direction[0:7:3] + direction[1:8:3])),
                           ("0028|0030", f"{image.GetSpacing()[1]:.4f}\\{image.GetSpacing()[0]:.4f}"),
                           ("0018|0050", f"{image.GetSpacing()[2]:.4f}")):
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-1]}_{index:03d}.dcm"))
        writer.Execute(slice_image)
