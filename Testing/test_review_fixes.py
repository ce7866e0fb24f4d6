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
