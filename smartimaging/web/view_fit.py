"""Fitting the station's slice views to their volumes once the page has sized them: a layout's new views are made
at a default size and get the browser's size a moment later (in one or more steps); a fit before that keeps the
default size's field of view. Views of the side-by-side layouts also keep their image clear of the slice slider
along their bottom edge, which hid a breast MRI's lower thorax in a view as wide as the image."""

from __future__ import annotations

import time

import vtk

SIZING_S = 10.0  # resizes this soon after a fit are the page sizing the views: each one fits them again
SLIDER_PX = 32  # the rows that trame-slicer's slice slider covers at the bottom of a view


class FitWhenSized:
    """`fit(views, clear_of_slider)` fits the views now and again at each resize of theirs in the next SIZING_S
    seconds."""

    def __init__(self):
        self._fitted: dict[str, tuple[float, bool]] = {}  # view tag -> when `fit` last fitted it, clear_of_slider

    def fit(self, views, clear_of_slider: bool = False) -> None:
        for view in views:
            tag = view.get_singleton_tag()
            if tag not in self._fitted:
                # trame-slicer's SliceView resizes its slice node on this event too (it observed it first).
                view.interactor().AddObserver(vtk.vtkCommand.WindowResizeEvent,
                                              lambda *_args, view=view: self._resized(view))
            self._fitted[tag] = (time.monotonic(), clear_of_slider)
            _fit(view, clear_of_slider)

    def _resized(self, view) -> None:
        fitted_at, clear_of_slider = self._fitted[view.get_singleton_tag()]
        if time.monotonic() - fitted_at < SIZING_S:
            _fit(view, clear_of_slider)


def _fit(view, clear_of_slider: bool) -> None:
    """The whole background volume in the view; with `clear_of_slider`, also SLIDER_PX rows free below it (and
    above, as the image stays centred): the field of view grows until the volume's height fits in the view's height
    less twice SLIDER_PX. Slicer 5.12: vtkMRMLSliceNode GetDimensions, GetFieldOfView, SetFieldOfView and
    GetSliceToRAS; vtkMRMLVolumeNode.GetRASBounds."""
    view.fit_view_to_content()
    node = view.get_view_node()
    volume_id = view.get_background_volume_id()
    height = node.GetDimensions()[1]
    if not clear_of_slider or volume_id is None or height <= 4 * SLIDER_PX:
        return
    bounds = [0.0] * 6
    node.GetScene().GetNodeByID(volume_id).GetRASBounds(bounds)
    to_ras = node.GetSliceToRAS()
    volume_height = sum(abs(to_ras.GetElement(axis, 1)) * (bounds[2 * axis + 1] - bounds[2 * axis])
                        for axis in range(3))  # the volume's extent along the view's vertical axis, mm
    x, y, z = node.GetFieldOfView()
    needed = volume_height * height / (height - 2 * SLIDER_PX)
    if needed > y:
        node.SetFieldOfView(x * needed / y, needed, z)
