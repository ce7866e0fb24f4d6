"""The station's heat-map controls (BreastLVI's Grad-CAM): a colour bar that matches the views, a switch and an
opacity slider; the map is drawn only over the image it was computed on."""

from __future__ import annotations

import numpy as np
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from ..heat_legend import DEFAULT_OPACITY_PERCENT as DEFAULT_OPACITY  # the desktop module's default too
from ..reading import HEAT_MAP_SHOWN_FROM, heat_map_colours

BAR_STOPS = np.linspace(HEAT_MAP_SHOWN_FROM, 1.0, 9)


class HeatMapPanel:
    """Binds the heat-map controls to the views that show the flow's overlay."""

    def __init__(self, station):
        self.station = station
        self.views: list = []  # the slice views that show the overlay now
        state = station.state
        state.si_heat_bar, state.si_heat_shown, state.si_heat_opacity = [], True, DEFAULT_OPACITY
        state.change("si_heat_shown", "si_heat_opacity")(self._apply)

    def build(self) -> None:
        with html.Div(v_if=("si_heat_bar.length",), id="si-heat", classes="mt-2"):
            html.Div("Grad-CAM: where the network looked for this prediction (not a lesion outline)",
                     classes="text-body-2")
            with html.Div(classes="d-flex align-center ga-2"):
                v3.VSwitch(v_model=("si_heat_shown",), label="Show", density="compact", hide_details=True,
                           color="primary", id="si-heat-shown")
                v3.VSlider(v_model=("si_heat_opacity",), min=0, max=100, step=5, density="compact", hide_details=True,
                           label="Opacity", disabled=("!si_heat_shown",), id="si-heat-opacity")
                html.Span("{{ si_heat_opacity }} %", classes="text-caption", style="min-width: 40px;")
            html.Div(id="si-heat-bar", style=("'height: 12px; border-radius: 2px; background: linear-gradient(to "
                                              "right, ' + si_heat_bar.join(', ') + ')'",))
            with html.Div(classes="d-flex text-caption", style="justify-content: space-between;"):
                html.Span(f"{HEAT_MAP_SHOWN_FROM:g}: weakest shown (below: transparent)")
                html.Span("1.0: strongest")

    def show(self, flow, views: list) -> None:
        """The overlay of `flow` (or none) is on `views`: the colour bar and the opacity follow it."""
        self.views = views
        overlay = flow.overlay
        self.station.state.si_heat_bar = heat_map_colours(overlay, BAR_STOPS) if overlay is not None and views else []
        self._apply()

    def _apply(self, **_kwargs) -> None:
        state = self.station.state
        opacity = state.si_heat_opacity / 100 if state.si_heat_shown else 0.0
        for view in self.views:
            view.set_foreground_opacity(opacity)
