"""How the reader sees an image, GUI-free, for the desktop modules and the reading station alike: window/level
presets per modality and a mammogram's hanging (`presentation`, shared with the command line's reports), invert and
reset on a vtkMRMLScalarVolumeDisplayNode; the caption and edge letters of each view (ANT / POST with the
patient's sides, laterality and view of a mammogram hung as radiologists hang it, R/L/A/P and the sequence of an
MRI view); a header of what the file records, without patient identifiers.

Slicer 5.12 APIs used (Libs/MRML/Core): vtkMRMLScalarVolumeDisplayNode SetAutoWindowLevel, SetWindowLevel,
GetWindow, GetLevel, SetInvertDisplayScalarRange, GetInvertDisplayScalarRange; vtkMRMLSliceNode
HasSliceOrientationPreset, GetSliceOrientationPreset, AddSliceOrientationPreset, SetOrientation, GetSliceToRAS;
vtkMRMLInteractionNode AdjustWindowLevel (left-drag adjusts the window/level through vtkMRMLWindowLevelWidget);
vtkMRMLScalarBarDisplayableManager SetAdjustForegroundWindowLevelEnabled, SetAdjustBackgroundWindowLevelEnabled.
Captions are drawn with VTK's vtkCornerAnnotation.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from .presentation import MAMMO_VIEWS, UNKNOWN, Preset, ViewCaption, mammo_caption
from .presentation import chest_wall_side as chest_wall_side  # the GUIs' callers read these here too
from .presentation import mammo_laterality_view as mammo_laterality_view
from .presentation import presets as presets
from .presentation import sensible_window as sensible_window

SOURCE_FILE = "SmartImaging.SourceFile"  # volume node attribute: the file (or DICOM folder) the volume was read from
MODALITY = {"BoneScanBSTBI": "NM", "MammoRadiomics": "MG", "BreastLVI": "MR", "DCESynthesis": "MR"}
MIRRORED_AXIAL = "SmartImaging mirrored axial"  # the axial orientation seen from the other side (hanging)
# DICOM keywords shown in the header panel (what the file records about the acquisition; nothing about the patient)
HEADER_TAGS = (("Study date", "StudyDate"), ("Modality", "Modality"), ("Manufacturer", "Manufacturer"),
               ("Model", "ManufacturerModelName"), ("Body part", "BodyPartExamined"),
               ("Series", "SeriesDescription"), ("Laterality", "ImageLaterality"), ("Laterality", "Laterality"),
               ("View", "ViewPosition"))
WITHHELD = "withheld (may identify the patient)"  # a shown header value that holds a patient identifier
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
EDGE_LETTERS = (("R", "L"), ("A", "P"), ("S", "I"))  # RAS axis -> letter of its + and - direction
UPPER_RIGHT, EDGE_POSITIONS = 3, {4: "bottom", 5: "right", 6: "left", 7: "top"}  # vtkCornerAnnotation positions
CAPTION_COLOR = (1.0, 0.55, 0.0)


# ---- window / level ---------------------------------------------------------------------------------------------

def apply_preset(display_node, preset: Preset) -> None:
    """Set a scalar volume display node to a preset (window/level and invert)."""
    if preset.window is None:
        display_node.SetAutoWindowLevel(True)
    else:
        display_node.SetAutoWindowLevel(False)
        display_node.SetWindowLevel(preset.window, preset.level)
    display_node.SetInvertDisplayScalarRange(preset.invert)


def drag_adjusts_background_only(scalar_bar_manager) -> None:
    """Left-drag window/level of a slice view acts on the background image, never on an overlay (a Grad-CAM map in
    the foreground): Slicer's vtkMRMLWindowLevelWidget adjusts the foreground wherever a visible foreground covers
    the pointer (vtkMRMLSliceLogic::GetEditableLayerAtWorldPosition) unless the view's
    vtkMRMLScalarBarDisplayableManager has SetAdjustForegroundWindowLevelEnabled(false) (Slicer 5.12,
    Libs/MRML/DisplayableManager)."""
    if scalar_bar_manager is not None:
        scalar_bar_manager.SetAdjustBackgroundWindowLevelEnabled(True)
        scalar_bar_manager.SetAdjustForegroundWindowLevelEnabled(False)


def window_level_text(display_node) -> str:
    """The display node's window and level as the reader reads them, e.g. "W 90 · L 45 · inverted"."""
    inverted = " · inverted" if display_node.GetInvertDisplayScalarRange() else ""
    window, level = display_node.GetWindow(), display_node.GetLevel()
    return f"W {_number(window)} · L {_number(level)}{inverted}"


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


# ---- header -----------------------------------------------------------------------------------------------------

def _dicom_file(source: Path) -> Path | None:
    """The DICOM file to read the header from: the file, or the first DICOM file of a series folder."""
    from .limits import is_dicom

    if source.is_dir():
        return next((p for p in sorted(source.iterdir()) if p.is_file() and is_dicom(p)), None)
    return source if source.is_file() and is_dicom(source) else None


@lru_cache(maxsize=32)
def _read_header(source: str, _mtime: float) -> dict:
    import pydicom

    path = _dicom_file(Path(source))
    if path is None:
        return {"format": Path(source).suffix.lstrip(".").upper() or "folder"}
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    fields = {"format": "DICOM", "photometric": str(ds.get("PhotometricInterpretation", ""))}
    identifies = patient_identifiers(ds)
    for _, keyword in HEADER_TAGS:
        value = " ".join(str(ds.get(keyword, "") or "").split())  # line breaks and tabs as spaces
        if value:
            fields[keyword] = WITHHELD if identifies(value) else value
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing:
        fields["pixel_mm"] = [float(s) for s in spacing[:2]]
    orientation = ds.get("PatientOrientation") or []
    orientation = [str(v).upper() for v in ([orientation] if isinstance(orientation, str) else orientation)]
    if len(orientation) == 1 and orientation[0] in MAMMO_VIEWS:  # CBIS-DDSM keeps the view there
        fields.setdefault("ViewPosition", orientation[0])
    try:
        centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if centre is not None and width is not None:
            first = [float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v) for v in (centre, width)]
            if first[1] > 0:
                fields["window"] = first
    except (TypeError, ValueError):
        pass
    if str(ds.get("Modality", "")).upper() == "NM":
        from .bonescan.views import _dicom_view_names

        fields["nm_views"] = _dicom_view_names(ds, int(ds.get("NumberOfFrames", 1) or 1))
    return fields


def patient_identifiers(ds):
    """A test of whether a text names the patient of a DICOM dataset: a component of PatientName or
    OtherPatientNames of 2 letters or more (as a word; one of 4 letters or more anywhere, "JANESMITH"), PatientID
    or an OtherPatientIDs (as a word; 4 characters or more anywhere; its run of 4 digits or more, "998877" of
    "MRN998877"), or the birth date in any common written form (19500101, 01011950, 1950-01-01, 01/01/1950, 1.1.50,
    1 Jan 1950, January 1, 1950). Free text such as SeriesDescription can hold any of them: a shown value that
    does is withheld (WITHHELD), whatever its tag; tags that name the patient are never read."""
    def values(keyword) -> list[str]:
        value = ds.get(keyword)
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        return [str(item).strip() for item in items if item not in (None, "") and str(item).strip()]

    names = {part.lower() for keyword in ("PatientName", "OtherPatientNames") for name in values(keyword)
             for part in re.split(r"[\^\s,=]+", name) if len(re.sub(r"[^A-Za-z]", "", part)) >= 2}
    ids = {value.lower() for keyword in ("PatientID", "OtherPatientIDs") for value in values(keyword)}
    ids |= {digits for key in ids for digits in re.findall(r"\d{4,}", key)}  # 998877 of MRN998877
    birth = next((d for d in values("PatientBirthDate") if re.fullmatch(r"\d{8}", d)), None)
    year, month, day = (int(birth[:4]), int(birth[4:6]), int(birth[6:])) if birth else (0, 0, 0)

    def is_birth(a: int, b: int, c: int) -> bool:  # day-month-year, month-day-year or year-month-day
        return any(y in (year, year % 100) and (m, d) == (month, day) for y, m, d in ((c, b, a), (c, a, b),
                                                                                        (a, b, c)))

    def identifies(text: str) -> bool:
        lower = text.lower()
        words = set(re.findall(r"[a-z0-9]+", lower))
        if any(name in words or (len(name) >= 4 and name in lower) for name in names):
            return True
        if any(key in words or key == lower or (len(key) >= 4 and key in lower) for key in ids):
            return True
        if not birth:
            return False
        compact = re.sub(r"[-./ ]", "", text)
        if any(form in compact for form in (birth, birth[6:] + birth[4:6] + birth[:4], birth[4:] + birth[:4])) or any(
                is_birth(*map(int, found)) for found in re.findall(r"(\d{1,4})[-./ ](\d{1,2})[-./ ](\d{1,4})", text)):
            return True
        for found in re.finditer(r"(\d{1,2})?\s*([a-z]{3})[a-z]*\.?\s*(\d{1,2})?,?\s+(\d{2,4})", lower):
            if found[2] in MONTHS and (found[1] or found[3]):
                if is_birth(int(found[1] or found[3]), MONTHS.index(found[2]) + 1, int(found[4])):
                    return True
        return False

    return identifies


def read_header(source) -> dict:
    """What the file (or the first file of a DICOM folder) records about the image, never about the patient:
    `format`, the DICOM fields of HEADER_TAGS by keyword, `pixel_mm` (rows, columns), `window` (centre, width) and
    an NM file's view per frame (`nm_views`, None where unrecorded). {} when there is no source."""
    if not source or not Path(source).exists():
        return {}
    try:
        return dict(_read_header(str(source), Path(source).stat().st_mtime))
    except Exception:  # a damaged header: the image was read, its header just shows nothing
        return {"format": "DICOM (header unreadable)"}


def source_of(volume_node) -> str | None:
    """The file a volume was read from: the flow's record, or (desktop) the volume's storage node."""
    source = volume_node.GetAttribute(SOURCE_FILE)
    if source:
        return source
    storage = volume_node.GetStorageNode()
    return storage.GetFileName() if storage is not None else None


def header_rows(volume_node, header: dict | None = None) -> list[tuple[str, str]]:
    """The header panel: (label, value) rows of the study date, modality, view, manufacturer and pixel size as the
    file records them, and the grid; no names, IDs or birth dates."""
    header = read_header(source_of(volume_node)) if header is None else header
    rows = []
    for label, keyword in HEADER_TAGS:
        value = header.get(keyword)
        if value and label not in dict(rows):
            if keyword == "StudyDate" and re.fullmatch(r"\d{8}", value):
                value = f"{value[:4]}-{value[4:6]}-{value[6:]}"
            rows.append((label, value))
    if header.get("nm_views"):
        rows.append(("View", ", ".join(v or "not recorded" for v in header["nm_views"])))
    spacing = volume_node.GetSpacing()
    if header.get("pixel_mm"):
        rows.append(("Pixel size", "{:.4g} × {:.4g} mm".format(*header["pixel_mm"])))
    elif header.get("format") in ("PNG", "JPG", "JPEG", "PGM", "TIF", "TIFF") or header.get("format") == "DICOM":
        rows.append(("Pixel size", f"not recorded in the file (read as {spacing[0]:.4g} mm)"))
    else:
        rows.append(("Voxel size", " × ".join(f"{s:.4g}" for s in spacing) + " mm"))
    dims = volume_node.GetImageData().GetDimensions() if volume_node.GetImageData() is not None else (0, 0, 0)
    rows.append(("Grid", " × ".join(str(d) for d in (dims if dims[2] > 1 else dims[:2]))))
    rows.append(("Format", header.get("format", UNKNOWN)))
    return rows


# ---- captions ---------------------------------------------------------------------------------------------------

def bone_scan_captions(frames: int, recorded: list[str | None] | None) -> list[ViewCaption]:
    """One caption per frame shown: ANT / POST with the patient's sides (anterior: the patient's right on the left;
    posterior: on the right) where the file records the view, "view not recorded" otherwise."""
    captions = []
    for frame in range(frames):
        name = (recorded or [None] * frames)[frame] if recorded and frame < len(recorded) else None
        if name == "anterior":
            caption = ViewCaption("ANT", edges={"left": "R", "right": "L"})
        elif name == "posterior":
            caption = ViewCaption("POST", edges={"left": "L", "right": "R"})
        else:
            caption = ViewCaption("View not recorded (ANT or POST unknown)", edges={})
        if frames == 1:
            caption.note = "one view only: the file holds no second view"
        captions.append(caption)
    return captions


def mr_caption(sequence: str, name: str) -> ViewCaption:
    """An MRI view: the sequence shown (a DCE phase when its name says which) and R/L/A/P from the view."""
    phase = re.search(r"(?:phase|ph|dce)[ _-]?(\d+)", name, re.IGNORECASE)
    if sequence == "DCE":
        sequence = f"DCE phase {phase[1]}" if phase else "DCE (phase not recorded)"
    return ViewCaption(sequence, edges=None)


def edge_letters(slice_node) -> dict[str, str]:
    """The patient directions at the edges of a slice view (from its SliceToRAS): "R", "L", "A", "P", "S", "I";
    an oblique direction gets the letters of its two largest components ("RA")."""
    matrix = slice_node.GetSliceToRAS()

    def letters(column: int, sign: float) -> str:
        vector = [sign * matrix.GetElement(row, column) for row in range(3)]
        order = sorted(range(3), key=lambda axis: -abs(vector[axis]))
        picked = [order[0]] + [axis for axis in order[1:2] if abs(vector[axis]) > 0.3 * abs(vector[order[0]])]
        return "".join(EDGE_LETTERS[axis][0 if vector[axis] > 0 else 1] for axis in picked)

    return {"right": letters(0, 1.0), "left": letters(0, -1.0), "top": letters(1, 1.0), "bottom": letters(1, -1.0)}


def hang(slice_node, mirrored: bool) -> None:
    """Axial orientation, mirrored left-right (seen from the other side) when `mirrored`; the view keeps its
    centre."""
    if mirrored and not slice_node.HasSliceOrientationPreset(MIRRORED_AXIAL):  # asking for it by name logs an error
        import vtk

        axial, flipped = slice_node.GetSliceOrientationPreset("Axial"), vtk.vtkMatrix3x3()
        flipped.DeepCopy(axial)
        for row in range(3):  # screen x and the normal reversed: still a rotation
            flipped.SetElement(row, 0, -axial.GetElement(row, 0))
            flipped.SetElement(row, 2, -axial.GetElement(row, 2))
        slice_node.AddSliceOrientationPreset(MIRRORED_AXIAL, flipped)
    slice_node.SetOrientation(MIRRORED_AXIAL if mirrored else "Axial")


DCE_VIEW_SEQUENCES = {"DCE-T1": "T1 (pre-contrast)", "DCE-Synthetic": "Synthetic DCE (AI)", "DCE-Real": "Real DCE",
                      "DCE-MIP": "Subtraction MIP (synthetic − T1)"}
PRIMARY = "primary"  # view_captions' key of a one-view layout


def volume_captions(module: str, node, sequence: str = "") -> list[ViewCaption]:
    """The captions of one volume of a module: one per frame of a bone scan, else one (`sequence`: what an MRI
    volume is, e.g. "DCE", "T2")."""
    header = read_header(source_of(node))
    name = Path(source_of(node) or node.GetName()).name
    modality = MODALITY.get(module, "")
    if modality == "NM":
        return bone_scan_captions(node.GetImageData().GetDimensions()[2], header.get("nm_views") or None)
    if modality == "MG":
        from slicer.util import arrayFromVolume

        return [mammo_caption(header, name, arrayFromVolume(node)[0])]
    return [mr_caption(sequence, name)]


def view_captions(flow) -> dict:
    """A caption per view of a module's reading flow (`reading.Flow`): keys "frame 0" / "frame 1" for the bone
    scan's frames, the flow's `view_volumes` keys for the side-by-side layout, PRIMARY otherwise."""
    primary = flow.primary
    if primary is None:
        return {}
    if flow.layout == "side-by-side":
        return {view: mr_caption(DCE_VIEW_SEQUENCES.get(view, view), node.GetName())
                for view, node in flow.view_volumes.items() if node is not None}
    captions = volume_captions(flow.module, primary, flow.roles[0])
    if flow.layout == "frames":
        return {f"frame {index}": caption for index, caption in enumerate(captions)}
    return {PRIMARY: captions[0]}


def caption_annotation():
    """A vtkCornerAnnotation styled for captions: bold orange with a shadow, readable on white (a bone scan) and on
    black."""
    import vtk

    annotation = vtk.vtkCornerAnnotation()
    annotation.SetMinimumFontSize(15)
    annotation.SetMaximumFontSize(20)
    annotation.GetTextProperty().SetColor(*CAPTION_COLOR)
    annotation.GetTextProperty().ShadowOn()
    annotation.GetTextProperty().BoldOn()
    return annotation


def draw_caption(annotation, caption: ViewCaption | None, slice_node) -> None:
    """A caption in the upper right corner of a slice view and the patient's directions at its edges (the top
    letter a line below the caption's first, the bottom one two lines up, above a slice slider); nothing for None.
    Corners other than the upper right are left to Slicer's DataProbe, which writes them."""
    annotation.ClearAllTexts()
    if caption is None:
        return
    edges = edge_letters(slice_node) if caption.edges is None else caption.edges
    annotation.SetText(UPPER_RIGHT, "\n".join(part for part in (caption.title, caption.note) if part))
    for position, edge in EDGE_POSITIONS.items():
        letter = edges.get(edge, "")
        annotation.SetText(position, {"top": f"\n{letter}", "bottom": f"{letter}\n\n"}.get(edge, letter))
