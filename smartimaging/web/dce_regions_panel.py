"""The station's enhancing-region controls (DCESynthesis with a real DCE): the regions that enhance on the real DCE
(`dce.lesion_contrast`), outlined on the synthetic and the real DCE views by `dce.scene.show_regions`; a legend that
names each outline as the table numbers it, a switch, and a "Go to" button per region that brings the linked views
to its centre slice."""

from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from ..dce.flow import DCEFlow
from .editor_panel import bring_into_view

MODULE = DCEFlow.module
FAINT_RATIO = 0.5  # dce.lesion_contrast.FAINT_RATIO (a test keeps them equal; that module and dce.scene, which
# imports torch, load once a synthesis is made)


class DCERegionsPanel:
    """Binds the legend, the switch and the Go-to buttons to the DCE flow's regions; `views` maps the flow's view
    names (dce.scene.VIEWS) to the station's view tags."""

    def __init__(self, station, views: dict[str, str]):
        self.station, self.views = station, views
        state = station.state
        state.si_dce_regions, state.si_dce_regions_shown = [], True
        state.change("si_dce_regions_shown")(lambda **_kwargs: self.show(self.station.flow))

    def build(self) -> None:
        with html.Div(v_if=(f"si_module === '{MODULE}' && si_dce_regions.length",), id="si-dce-regions",
                      classes="mt-2"):
            html.Div("Regions that enhance on the real DCE, outlined on the synthetic and the real DCE views",
                     classes="text-body-2")
            v3.VSwitch(v_model=("si_dce_regions_shown",), label="Show outlines", density="compact",
                       hide_details=True, color="primary", id="si-dce-regions-shown")
            with html.Div(v_for=("region in si_dce_regions",), key=("region.number",),
                          classes="d-flex align-center ga-2 text-body-2 si-dce-region"):
                html.Span(style=("'display: inline-block; width: 14px; height: 14px; border-radius: 2px; "
                                 "border: 2px solid ' + region.colour",), classes="si-dce-region-swatch")
                html.Span("{{ region.name }}", classes=("region.faint ? 'text-warning' : ''",))
                html.Span("slices {{ region.slices[0] }}–{{ region.slices[1] }}"
                          "{{ region.ratio === null ? '' : ', ratio ' + region.ratio.toFixed(2) }}",
                          classes="text-caption")
                v3.VBtn("Go to", size="x-small", variant="tonal", click=(self.go_to, "[region.number]"),
                        classes="si-dce-region-go")
            html.Div("Ratio: contrast to the surroundings on the synthetic DCE / on the real DCE; below "
                     f"{FAINT_RATIO:g} an enhancing region is faint on the synthetic DCE: read it on the real DCE.",
                     classes="text-caption")

    def show(self, flow) -> None:
        """The DCE flow's regions on its views while its module is shown and the switch is on; the legend."""
        dce = self.station.flows[MODULE]
        regions = dce.regions
        state = self.station.state
        if regions is not None:
            from ..dce import scene as dce_scene

            dce_scene.show_regions(self.station.slicer_app.scene, regions,
                                   [self.views[view] for view in dce_scene.REGION_VIEWS],
                                   shown=flow is dce and state.si_dce_regions_shown)
            state.si_dce_regions = dce_scene.region_legend(regions) if flow is dce else []
        else:
            state.si_dce_regions = []

    def go_to(self, number: int) -> None:
        """The T1, synthetic and real DCE views through region `number`'s centre (panned only when it is off view)."""
        dce = self.station.flows[MODULE]
        if dce.regions is None or dce.primary is None:
            return
        from ..dce import scene as dce_scene

        ras = dce_scene.region_centre_ras(dce.regions, dce.primary, int(number))
        tags = {self.views[view] for view in ("DCE-T1", *dce_scene.REGION_VIEWS)}
        for view in self.station.slicer_app.view_manager.get_slice_views():
            if view.get_singleton_tag() in tags:
                bring_into_view(view.get_view_node(), ras)
