"""The station's downloads after a result: the case report (HTML, printable to PDF), the result table (CSV), the
DICOM SEG and SR (`exports.export_dicom`), and all DICOM objects in one zip (with the image as a derived series when
it was not read from DICOM, the synthetic DCE series for DCESynthesis), for PACS.

A file is made when the reader clicks, from the module's current result, in the session's own folder, sent to the
page through trame's websocket, where `utils.download` saves it (as trame-slicer's "Download scene" does), and
removed from the folder at once: no earlier file is ever sent, and none stays behind. The buttons show only beside
a current result; each click carries the token of the result the page shows, so a result that changed or went stale
meanwhile (a new case, an edit, another compute) is refused rather than sent under the old one's name.
"""

from __future__ import annotations

import itertools
import shutil
import zipfile
from pathlib import Path

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from ..case_report import export_csv, export_report
from ..errors import SmartImagingError
from ..exports import export_dicom

TRIGGER = "si_download"


def _dicom_object(kind: str):
    """The export of one DICOM object of `export_dicom` ("seg", "sr")."""
    def export(flow, folder: Path) -> Path:
        path = export_dicom(flow, folder / "dicom")[kind]
        return path.rename(folder / f"{flow.module}_{path.name}")
    return export


def export_dicom_zip(flow, folder: Path) -> Path:
    """Every DICOM object of the result (`export_dicom`: SEG, SR, a derived or synthetic series) in one zip."""
    dicom = folder / "dicom"
    export_dicom(flow, dicom)
    path = folder / f"{flow.module}_dicom.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(dicom.rglob("*")):
            if item.is_file() and not item.name.startswith("."):
                archive.write(item, item.relative_to(dicom).as_posix())
    return path


KINDS = {  # kind -> button, MIME type, export, when the button shows (a page expression)
    "report": ("Report (HTML)", "text/html", export_report, "true"),
    "csv": ("Result table (CSV)", "text/csv", export_csv, "true"),
    "seg": ("DICOM SEG", "application/dicom", _dicom_object("seg"), "si_needs_segment[si_module]"),
    "sr": ("DICOM SR", "application/dicom", _dicom_object("sr"), "true"),
    "zip": ("All DICOM (zip)", "application/zip", export_dicom_zip, "true")}


class DownloadsPanel:
    """Binds the Downloads section to the station's flows; its files go to `folder` (the session's scratch)."""

    def __init__(self, station, folder: Path):
        self.station, self.folder = station, folder
        self._tokens = itertools.count(1)
        self._shown: dict[str, tuple[object, int]] = {}  # module -> (result on the page, its token)
        state = station.state
        state.si_download_token = {module: 0 for module in station.flows}
        state.si_download_error = {module: "" for module in station.flows}
        station.server.trigger(TRIGGER)(self.download)

    def build(self) -> None:
        with html.Div(v_if=("si_headline[si_module] && !si_stale[si_module] && si_download_token[si_module]",),
                      id="si-downloads", classes="mt-3"):
            html.Div("Downloads (this result)", classes="text-subtitle-2 mb-1")
            with html.Div(classes="d-flex flex-wrap ga-2"):
                for kind, (label, _, _, shown) in KINDS.items():
                    v3.VBtn(label, id=f"si-download-{kind}", size="small", variant="tonal", v_if=(shown,),
                            prepend_icon="mdi-download", disabled=("si_busy",),
                            click=f"trigger('{TRIGGER}', ['{kind}', si_module, si_download_token[si_module]])"
                                  ".then((file) => file && utils.download(file.name, file.content, file.type))")
            v3.VAlert(v_if=("si_download_error[si_module]",), text=("si_download_error[si_module]",),
                      type="error", variant="tonal", density="compact", classes="mt-1", id="si-download-error")

    def publish(self, flow) -> None:
        """A new token whenever the module's result on the page changes (none: 0, no buttons)."""
        module, result = flow.module, flow.result
        shown = self._shown.get(module)
        if result is None or flow.result_is_stale:
            self._shown.pop(module, None)
            token = 0
        elif shown is not None and shown[0] is result:
            token = shown[1]
        else:
            token = next(self._tokens)
            self._shown[module] = (result, token)
        state = self.station.state
        if state.si_download_token[module] != token:
            state.si_download_token = {**state.si_download_token, module: token}
            state.si_download_error = {**state.si_download_error, module: ""}

    def download(self, kind: str, module: str, token: int) -> dict | None:
        """The file of `kind` made from `module`'s current result ({"name", "type", "content"}); None, with the
        reason on the page, when the result is not the one the page showed or cannot be exported."""
        state = self.station.state
        try:
            flow = self.station.flows[module]
            shown = self._shown.get(module)
            if shown is None or shown[1] != token or shown[0] is not flow.result or flow.result_is_stale:
                raise SmartImagingError("This result is no longer the current one (a new case, an edit or another "
                                        "compute since): nothing was downloaded; download again from the result "
                                        "shown now")
            folder = self.folder / module
            _, mime, export, _ = KINDS[kind]
            try:
                path = export(flow, folder)
                content = path.read_bytes()
            finally:  # sent, not kept: a DICOM object holds the source's patient module
                shutil.rmtree(folder, ignore_errors=True)
        except (SmartImagingError, OSError, KeyError) as exc:
            with state:
                state.si_download_error = {**state.si_download_error, module: f"Download refused: {exc}"}
            return None
        with state:
            state.si_download_error = {**state.si_download_error, module: ""}
        return {"name": path.name, "type": mime, "content": content}
