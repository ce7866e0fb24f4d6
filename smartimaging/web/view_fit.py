"""Fitting the station's slice views to their volumes once the page has sized them: a layout's new views are made
at a default size and get the browser's size a moment later (in one or more steps); a fit before that keeps the
default size's field of view. Every view keeps its whole image clear of the slice slider along its bottom edge
(which hid a breast MRI's lower thorax, a mammogram's lower rows and a bone scan's feet), of the orientation
letters drawn at its edges (`display.draw_caption`: an "A" or a "P" over a four-view cell's image) and of its caption:
the image lies in the free box between them."""

from __future__ import annotations

import time

import vtk

SIZING_S = 10.0  # resizes this soon after a fit are the page sizing the views: each one fits them again
SLIDER_PX = 32  # the rows that trame-slicer's slice slider covers at the bottom of a view
# Rows or columns, from the view's edge, that `display.draw_caption`'s edge letters cover (15 px high glyphs: the top
# letter a line below the caption at 24-39 px, the bottom one two lines up at 46-61 px, the side ones at 5-15 px),
# with a few pixels to spare.
EDGE_PX = {"left": 20, "right": 20, "top": 44, "bottom": 66}
CAPTION_LINE_PX = 20  # the caption's lines in the upper right corner, from 5 px down: kept off the image too


class FitWhenSized:
    """`fit(views)` fits the views now and again at each resize of theirs in the next SIZING_S seconds; `lettered`
    gives the edges of a view that carry an orientation letter ("left", "right", "top", "bottom") and "caption" once
    per line of its caption."""

    def __init__(self, lettered=lambda _view: ()):
        self._lettered = lettered
        self._fitted: dict[str, float] = {}  # view tag -> when `fit` last fitted it
        self.free: dict[str, dict[str, int]] = {}  # view tag -> the pixels its last fit kept free along each edge

    def fit(self, views) -> None:
        for view in views:
            tag = view.get_singleton_tag()
            if tag not in self._fitted:
                # trame-slicer's SliceView resizes its slice node on this event too (it observed it first).
                view.interactor().AddObserver(vtk.vtkCommand.WindowResizeEvent,
                                              lambda *_args, view=view: self._resized(view))
            self._fitted[tag] = time.monotonic()
            self.free[tag] = fit_clear(view, margins(self._lettered(view)))

    def _resized(self, view) -> None:
        """Fit again, on the slice shown (a fit moves to the volume's middle: both bone-scan frame views showed the
        posterior frame after the page sized them)."""
        if time.monotonic() - self._fitted[view.get_singleton_tag()] < SIZING_S:
            offset = view.get_slice_value()
            self.free[view.get_singleton_tag()] = fit_clear(view, margins(self._lettered(view)))
            view.set_slice_value(offset)


def margins(lettered) -> dict[str, int]:
    """Pixels kept free along each edge of a view: the slider's rows at the bottom, the rows or columns of each edge
    letter, and the caption's rows at the top (`lettered` holds "caption" once per line)."""
    free = {edge: EDGE_PX[edge] if edge in lettered else 0 for edge in EDGE_PX}
    free["bottom"] = max(free["bottom"], SLIDER_PX)
    captions = list(lettered).count("caption")
    free["top"] = max(free["top"], CAPTION_LINE_PX * captions + 8 if captions else 0)
    return free


def fit_clear(view, free: dict[str, int]) -> dict[str, int]:
    """The whole background volume in the view, inside the box that `free` (pixels per edge) leaves: the field of
    view grows until the volume fits the box, then the view pans so that the volume is centred in it; returns what
    was kept free (nothing in a view too small to spare it, or without a volume). Slicer 5.12:
    vtkMRMLSliceNode GetDimensions, GetFieldOfView, SetFieldOfView, GetSliceToRAS and JumpSliceByCentering (a point
    on the slice plane: the slice stays); vtkMRMLVolumeNode.GetRASBounds."""
    view.fit_view_to_content()
    node = view.get_view_node()
    volume_id = view.get_background_volume_id()
    width, height = node.GetDimensions()[:2]
    box_width, box_height = width - free["left"] - free["right"], height - free["top"] - free["bottom"]
    if volume_id is None or box_width < width / 2 or box_height < height / 2:  # a view too small to spare them
        return dict.fromkeys(free, 0)
    bounds = [0.0] * 6
    node.GetScene().GetNodeByID(volume_id).GetRASBounds(bounds)
    to_ras = node.GetSliceToRAS()

    def extent(column: int) -> float:  # the volume's extent along the view's horizontal (0) or vertical (1) axis, mm
        return sum(abs(to_ras.GetElement(axis, column)) * (bounds[2 * axis + 1] - bounds[2 * axis])
                   for axis in range(3))

    x, y, z = node.GetFieldOfView()
    grow = max(1.0, extent(0) * width / box_width / x, extent(1) * height / box_height / y)
    node.SetFieldOfView(x * grow, y * grow, z)
    mm_per_px = y * grow / height
    right, up = (free["left"] - free["right"]) / 2 * mm_per_px, (free["bottom"] - free["top"]) / 2 * mm_per_px
    # The view's centre moves opposite to the image: the box's centre lies `right` px right and `up` px above it.
    centre = [to_ras.GetElement(axis, 3) - right * to_ras.GetElement(axis, 0) - up * to_ras.GetElement(axis, 1)
              for axis in range(3)]
    node.JumpSliceByCentering(*centre)
    return free
