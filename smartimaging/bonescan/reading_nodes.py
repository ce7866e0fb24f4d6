"""The bone-scan lesion review and follow-up for the desktop module, GUI-free over a vtkMRMLScene (the station's
panel reads the same `lesions.review` and `followup` code):

- `lesion_rows` / `view_lines` / `exclude_text`: the result's numbered lesions per view as table rows, the counts per
  view, and the rejected lesions as the module's "Exclude lesions" text;
- `FollowUp`: the earlier studies the reader adds (checked as `bonescan trend` checks them), with `current_point` (the
  study on screen) and `table_point` (an earlier result table of the scene);
- `trend_chart`: the trend across studies as a plot chart node (BSTBI per study; x in days when every date is known,
  else the study number), the desktop's counterpart of `followup.trend_svg`.
"""

from __future__ import annotations

from datetime import date

from ..errors import InputError
from ..mrml import place_in_same_study
from .followup import (
    StudyPoint,
    check_comparable,
    parse_result,
    parse_study_date,
    reader_text,
    record_facts,
    trend,
)

LESION_COLUMNS = ("Accepted", "#", "View", "Site", "Position", "Area", "Uptake", "Other view")
CURRENT_LABEL = "this study (current)"
TREND_COLUMNS = ("Study", "Days since the first study", "BSTBI", "Label")


def lesion_rows(record: dict) -> list[dict]:
    """One row per lesion of a result record, view by view as `review` lists them: {"id", "accepted", "cells"
    (texts under LESION_COLUMNS[1:])}."""
    from .lesions import review  # SciPy: installed with the module's packages, after its widget is built

    return [{"id": lesion["id"], "accepted": not lesion["rejected"],
             "cells": [f"#{lesion['id']}", group["title"], lesion["site"], lesion["position"], lesion["area"],
                       lesion["uptake"], lesion["match"]]}
            for group in review(record)["views"] for lesion in group["lesions"]]


def view_lines(record: dict) -> list[str]:
    """Per view, e.g. "Anterior view: 5 of 6 lesions accepted", then the counts line of `review`."""
    from .lesions import review

    listed = review(record)
    lines = [f"{group['title'][:1].upper()}{group['title'][1:]}: "
             f"{sum(not lesion['rejected'] for lesion in group['lesions'])} of {len(group['lesions'])} lesions "
             "accepted" for group in listed["views"]]
    return [*lines, listed["counts"]] if listed["counts"] else lines


def exclude_text(exclude: list[int]) -> str:
    """Rejected lesion numbers as the module's "Exclude lesions" field holds them ("2, 5")."""
    return ", ".join(str(number) for number in sorted(exclude))


def current_point(flow, label: str = CURRENT_LABEL) -> StudyPoint | None:
    """The study on screen as a trend point (its BSTBI, study date, acquisition), or None without a current result;
    `label`: what the trend calls it (its volume's name once it is an earlier study of another case)."""
    record = flow.result_record if not flow.result_is_stale else None
    if record is None or flow.primary is None:
        return None
    try:
        when = parse_study_date(flow.study_date)
    except InputError:
        when = None  # a malformed date in the file: the study is placed as the reader orders it
    facts = record_facts({**record, "acquisition": {**flow.acquisition, "views": len(record["views"])}})
    return StudyPoint(label, record["bstbi"]["mean"], when, *facts)


def table_point(table_node) -> StudyPoint:
    """An earlier BSTBI result table of the scene as a trend point (checked as a result.json is)."""
    from .scene import RESULT

    text = table_node.GetAttribute(RESULT)
    if not text:
        raise InputError(f"{table_node.GetName()} is not a BSTBI result table (Compute BSTBI makes one)")
    return parse_result(text, table_node.GetName())


class FollowUp:
    """The earlier studies of a follow-up, in the order the reader adds them."""

    def __init__(self):
        self.earlier: list[StudyPoint] = []

    def add(self, point: StudyPoint, current: StudyPoint | None = None) -> None:
        """Add an earlier study after checking it against the others and the current study (same study twice,
        other acquisition, dated after the current one: refused with the reason)."""
        check_comparable([*self.earlier, point, *([current] if current else [])], current_last=current is not None)
        self.earlier.append(point)

    def remove(self, index: int) -> None:
        if 0 <= index < len(self.earlier):
            self.earlier.pop(index)

    def lines(self) -> list[str]:
        """The earlier studies as the station lists them: "1. label · date · BSTBI 0.123", then what the reader
        changed ("· 2 lesions rejected by the reader")."""
        lines = []
        for index, point in enumerate(self.earlier, start=1):
            reader = reader_text(point.rejected, point.reader_segmentation)
            when = point.study_date.isoformat() if point.study_date else "date unknown"
            lines.append(f"{index}. {point.label} · {when} · BSTBI {point.bstbi:.3f}" + (f" · {reader}" if reader
                                                                                        else ""))
        return lines

    def trend(self, current: StudyPoint | None) -> dict:
        """`followup.trend` of the earlier studies and the current one."""
        if current is None:
            raise InputError("Compute BSTBI of this study first: the trend ends at the current study")
        return trend([*self.earlier, current], current_last=True)


def trend_rows(result: dict) -> list[list]:
    """Rows under TREND_COLUMNS: study number, days since the first study (None when a date is unknown), BSTBI and
    the study's label (outside the training data and what the reader changed said)."""
    dates = [date.fromisoformat(s["study_date"]) if s["study_date"] else None for s in result["studies"]]
    return [[index, (when - dates[0]).days if all(dates) else None, study["bstbi"],
             study["label"] + (" (outside the models' training data)" if study["outside_training_data"] else "")
             + (f" ({study['reader']})" if study["reader"] else "")]
            for index, (study, when) in enumerate(zip(result["studies"], dates, strict=True), start=1)]


def trend_chart(scene, result: dict, chart=None, source_node=None):
    """The trend as a plot chart node with one series over a table node (TREND_COLUMNS): x in days since the first
    study when every date is known and they differ, else the study number. `chart`: a chart made earlier, updated
    in place; `source_node`: the study's volume, whose study the nodes join. Slicer 5.12 (Docs/developer_guide/
    script_repository/plots.md): vtkMRMLPlotSeriesNode.SetAndObserveTableNodeID, SetXColumnName, SetYColumnName,
    SetPlotType; vtkMRMLPlotChartNode.AddAndObservePlotSeriesNodeID, SetXAxisTitle, SetYAxisTitle."""
    import vtk

    rows = trend_rows(result)
    in_days = all(row[1] is not None for row in rows) and rows[-1][1] > 0
    if chart is None:
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "BSTBI trend")
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", "BSTBI")
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", "BSTBI trend table")
        series.SetAndObserveTableNodeID(table.GetID())
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        if source_node is not None:
            for node in (chart, series, table):
                place_in_same_study(scene, node, source_node)
    series = chart.GetNthPlotSeriesNode(0)
    table = series.GetTableNode()
    columns = []
    for index, name in enumerate(TREND_COLUMNS):
        column = vtk.vtkStringArray() if name == "Label" else vtk.vtkDoubleArray()
        column.SetName(name)
        for row in rows:
            value = row[index]
            column.InsertNextValue(value if name == "Label" else float("nan") if value is None else float(value))
        columns.append(column)
    table.RemoveAllColumns()
    for column in columns:
        table.AddColumn(column)
    series.SetXColumnName(TREND_COLUMNS[1] if in_days else TREND_COLUMNS[0])
    series.SetYColumnName("BSTBI")
    series.SetLabelColumnName("Label")
    series.SetPlotType(series.PlotTypeScatter)
    series.SetMarkerStyle(series.MarkerStyleCircle)
    series.SetColor(0.78, 0.16, 0.16)  # the station's trend colour (#c62828)
    chart.SetTitle("BSTBI across studies" if in_days else "BSTBI across studies (a study date is unknown)")
    chart.SetXAxisTitle(TREND_COLUMNS[1] if in_days else "Study (in the order given)")
    chart.SetYAxisTitle("BSTBI")
    chart.SetLegendVisibility(False)
    return chart
