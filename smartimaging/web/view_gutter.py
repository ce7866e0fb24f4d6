"""The controls drawn over each slice view of the reading station: trame-slicer's gutter (its reset-camera button)
and slice slider, without trame-slicer's "Show in 3D" button: the station has no 3D view."""

from __future__ import annotations

from trame.widgets import html
from trame_slicer.app.logic import connect_slice_view_slider_to_state
from trame_slicer.app.ui import Slider, create_vertical_view_gutter_ui


def slice_view_gutter(server, view_id: str, view) -> None:
    """trame-slicer's `create_vertical_slice_view_gutter_ui` less its `create_slice_buttons` (the 3D toggle)."""
    create_vertical_view_gutter_ui(server, view_id, view)
    with html.Div(classes="slice-slider-gutter",
                  style="position: absolute;bottom: 0;left: 0;background-color: transparent;width: 100%;"):
        Slider(classes="slice-slider", typed_state=connect_slice_view_slider_to_state(server, view), theme="dark",
               dense=True)
