"""The Grad-CAM heat map's colour legend, opacity and switch for the desktop module (BreastLVI), GUI-free over MRML:
Slicer's colour legend of the heat-map volume (vtkMRMLColorLegendDisplayNode, Slicer >= 5.0: drawn from the volume's
own colour table over its display window, so it matches the views as the station's colour bar does) and the
foreground opacity the station's slider sets."""

from __future__ import annotations

from .reading import HEAT_MAP_SHOWN_FROM

DEFAULT_OPACITY_PERCENT = 40  # the anatomy stays visible under the map (station and desktop)
LEGEND_TITLE = f"Grad-CAM\n(below {HEAT_MAP_SHOWN_FROM:g}:\ntransparent)"
LEGEND_LABELS = 6  # 0, 0.2, ... 1.0


def show_heat_legend(heat_map_node, shown: bool = True):
    """The heat map's colour legend (made once, then reused), titled and labelled for the reader, shown or hidden
    with the map; returns the legend display node. Slicer 5.12: vtkSlicerColorLogic.GetColorLegendDisplayNode and
    AddDefaultColorLegendDisplayNode (static), vtkMRMLColorLegendDisplayNode.SetTitleText, SetLabelFormat,
    SetNumberOfLabels."""
    import slicer

    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(heat_map_node)
    if legend is None:
        legend = slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(heat_map_node)
    legend.SetTitleText(LEGEND_TITLE)
    legend.SetLabelFormat("%.1f")
    legend.SetNumberOfLabels(LEGEND_LABELS)
    legend.SetVisibility(shown)
    return legend


def foreground_opacity(shown: bool, opacity_percent: float) -> float:
    """The slice views' foreground opacity for the switch and the slider (0 when the map is hidden)."""
    return max(0.0, min(100.0, float(opacity_percent))) / 100.0 if shown else 0.0
