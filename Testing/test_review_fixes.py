"""The GUI-free parts of the fixes after radiologist U2's review of the station (2026-12-07): the domain reasons of a
resampled model input, the bone-scan phantom's header and follow-up labels."""

from __future__ import annotations

from smartimaging import domain


def test_resampled_input_geometry_is_named_apart_from_the_images():
    """U2 #15: breast1's LVI reasons gave "slice spacing 2.1 mm" and "slice spacing 1.61 mm" for one case: the first
    is the image's, the second the network's resampled box; each reason now says which."""
    ranges = {"source_slice_spacing_mm": [2.45, 2.55], "slice_spacing_mm": [1.66, 3.34], "pixel_size_mm": [0.5, 0.6]}
    profile = {"source_slice_spacing_mm": 2.1, "slice_spacing_mm": 1.61, "pixel_size_mm": 0.7}
    reasons = domain.check({"ranges": ranges}, profile, "lvi")["reasons"]
    assert reasons == ["slice spacing of the image 2.1 mm (trained on 2.45–2.55 mm)",
                       "pixel size of the model's input grid 0.7 mm (trained on 0.5–0.6 mm)",
                       "slice spacing of the model's input grid 1.61 mm (trained on 1.66–3.34 mm)"]
    plain = domain.check({"ranges": ranges}, {"slice_spacing_mm": 1.61, "pixel_size_mm": 0.55}, "mri")["reasons"]
    assert plain == ["slice spacing 1.61 mm (trained on 1.66–3.34 mm)"]  # no resampling: the image's own


def test_the_pixel_size_field_shows_the_loaded_image_and_keeps_only_the_readers_value():
    """U2 #8, #9: the field showed the last upload's 0.1 over a phantom read at 0.2 mm; a size typed for the NYU PNG
    was not used when the sample was loaded again."""
    from types import SimpleNamespace

    from smartimaging.mammo.images import PIXEL_SIZE_FROM_HEADER, PIXEL_SIZE_GIVEN, PIXEL_SIZE_UNKNOWN
    from smartimaging.web.pixel_field import PixelSizeField

    def mammogram(source, sizes):
        return SimpleNamespace(meta={"pixel_size_source": source, "pixel_size_mm": sizes})

    field = PixelSizeField()
    assert field.reader_value(" 0.1 ") == "0.1"  # typed before any load
    assert field.loaded(mammogram(PIXEL_SIZE_GIVEN, [0.1, 0.1]), by_reader=True) == "0.1"
    assert field.reader_value("0.1") == "0.1"  # shown as the reader's: it stays the reader's for the next file
    assert field.loaded(mammogram(PIXEL_SIZE_GIVEN, [0.2, 0.2]), by_reader=False) == "0.2"  # the phantom's own
    assert field.reader_value("0.2") == ""  # the phantom's size is never carried to another image
    assert field.reader_value("0.07") == "0.07"  # typed over it: the reader's
    field.typed()  # the reader typed the value the field showed: it is the reader's too
    assert field.reader_value("0.2") == "0.2"
    assert field.loaded(mammogram(PIXEL_SIZE_UNKNOWN, [1.0, 1.0]), by_reader=False) == ""  # read as 1 mm: no size
    assert field.loaded(mammogram(PIXEL_SIZE_FROM_HEADER, [0.07, 0.0701]), by_reader=True) == "0.07 × 0.0701"
    assert field.reader_value("0.07 × 0.0701") == ""  # a header's size is the file's, not the reader's


def test_the_bone_scan_phantoms_manufacturer_is_shown_not_withheld(tmp_path):
    """U2 #17: the phantom's "Manufacturer: withheld (may identify the patient)": its patient name "Phantom^BS..."
    made the manufacturer "SmartImaging phantom" look like an identifier."""
    from smartimaging.bonescan.views import write_nm_dicom
    from smartimaging.display import WITHHELD, read_header
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom

    phantom = make_bone_scan_phantom(2)
    write_nm_dicom(tmp_path / "phantom.dcm", phantom.views, phantom.patient_id, phantom.age)
    header = read_header(tmp_path / "phantom.dcm")
    assert header["Manufacturer"] == "SmartImaging phantom" and WITHHELD not in header.values()


def test_the_csv_holds_every_domain_reason_and_none_in_a_model_column():
    """U2 #17: the CSV cut the domain reasons to "and 3 more"; the LVI CSV put them in its "Model" column."""
    from smartimaging.result_csv import csv_rows

    reasons = [f"reason {n}" for n in range(1, 7)]
    domain = {"verdict": "outside", "reasons": reasons,
              "text": "outside the model's training data (reason 1; reason 2; reason 3; and 3 more)"}
    text = domain["text"]
    two = csv_rows(["Quantity", "Value"], [["BSTBI (mean)", "0.146"], ["Domain check", text], ["Lesions", "5"]],
                   domain)
    assert two == [["BSTBI (mean)", "0.146"], ["Domain check", "outside the model's training data"],
                   *(["Domain check reason", r] for r in reasons), ["Lesions", "5"]]
    columns = ["Sequence", "Model", "LVI probability", "Cutoff", "Label", "Model card"]
    comparison = [["Result from the AI's ROI", "LVI probability 0.9"], ["Result from the edited ROI", "LVI 0.8"]]
    lvi = csv_rows(columns, [["DCE", "resnet10-3d", "0.958", "0.717", "LVI positive", "card"],
                             ["Domain check", text, "", "", "", ""], ["VOI", "ROI source", "AI", "", "", ""],
                             *([*row, "", "", "", ""] for row in comparison)], domain, comparison)
    assert lvi[:2] == [["DCE", "resnet10-3d", "0.958", "0.717", "LVI positive", "card"],
                       ["VOI", "ROI source", "AI", "", "", ""]]
    assert lvi[2:] == [[], ["Item", "Text"], ["Domain check", "outside the model's training data"],
                       *(["Domain check reason", r] for r in reasons), *comparison]
    assert not any("more" in cell for row in two + lvi for cell in row)
    inside = [["Rad-score", "0.5"], ["Domain check", "inside the model's training data"]]
    assert csv_rows(["Quantity", "Value"], inside, {"verdict": "inside", "reasons": []}) == inside
