"""Fitting the station's slice views to their volumes once the page has sized them: a layout's new views are made
at a default size and get the browser's size a moment later (in one or more steps); a fit before that keeps the
default size's field of view, so a wide view showed only the middle rows of the image (the lower thorax of a breast
MRI cut off)."""

from __future__ import annotations

import time

import vtk

SIZING_S = 10.0  # resizes this soon after a fit are the page sizing the views: each one fits them again


class FitWhenSized:
    """`fit(views)` fits the views now and again at each resize of theirs in the next SIZING_S seconds."""

    def __init__(self):
        self._fitted_at: dict[str, float] = {}  # view tag -> when `fit` last fitted it (time.monotonic)

    def fit(self, views) -> None:
        for view in views:
            tag = view.get_singleton_tag()
            if tag not in self._fitted_at:
                # trame-slicer's SliceView resizes its slice node on this event too (it observed it first).
                view.interactor().AddObserver(vtk.vtkCommand.WindowResizeEvent,
                                              lambda *_args, view=view: self._resized(view))
            self._fitted_at[tag] = time.monotonic()
            view.fit_view_to_content()

    def _resized(self, view) -> None:
        if time.monotonic() - self._fitted_at[view.get_singleton_tag()] < SIZING_S:
            view.fit_view_to_content()
