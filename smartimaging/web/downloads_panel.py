"""The station's downloads after a result: the case report (HTML, printable to PDF), the result table (CSV), the
DICOM SEG and SR (`exports.export_dicom`), and all DICOM objects in one zip (with the image as a derived series when
it was not read from DICOM, the synthetic DCE series for DCESynthesis), for PACS.

A file is made when the reader clicks, from the module's current result, in the session's own folder, sent to the
page through trame's websocket, where `utils.download` saves it (as trame-slicer's "Download scene" does), and
removed from the folder at once: no earlier file is ever sent, and none stays behind. The buttons show only beside
a current result; each click carries the token of the result the page shows, so a result that changed or went stale
meanwhile (a new case, an edit, another compute) is refused rather than sent under the old one's name.

The DICOM objects of a result are exported once per token and kept in memory until the result changes: the SEG, the
SR and the zip of one shown result are the same objects (the SR names the SEG that was downloaded). Separate SEG and
SR buttons show only when they stand on their own in PACS (`exports.standalone_dicom`: they reference the images
PACS already holds); an image not read from DICOM, or a synthetic DCE, is referenced as a series written only with
them, so they come together in the zip: a SEG or SR imported without its series would point at nothing.
"""

from __future__ import annotations

import io
import itertools
import shutil
import zipfile
from pathlib import Path

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from ..case_report import export_csv, export_report
from ..errors import SmartImagingError
from ..exports import export_dicom, standalone_dicom

TRIGGER = "si_download"
DICOM_KINDS = ("seg", "sr", "zip")  # made from one export of the result
SEPARATE = "si_download_separate[si_module]"
ZIP_ONLY_NOTE = ("DICOM comes as one zip here: its SR (and SEG) refer to a series written with them (the image, "
                 "not read from DICOM, as a derived series, or the synthetic DCE), so they come together in the zip; "
                 "import its files into PACS together.")


def dicom_files(flow, folder: Path) -> dict[str, tuple[str, bytes]]:
    """{kind: (file name, content)} of one export of the result (`export_dicom` into `folder`): its SEG and SR when
    written, and the zip of every object (SEG, SR, a derived or synthetic series)."""
    dicom = folder / "dicom"
    written = export_dicom(flow, dicom)
    files = {kind: (f"{flow.module}_{written[kind].name}", written[kind].read_bytes()) for kind in ("seg", "sr")
             if kind in written}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(dicom.rglob("*")):
            if item.is_file() and not item.name.startswith("."):
                archive.write(item, item.relative_to(dicom).as_posix())
    files["zip"] = (f"{flow.module}_dicom.zip", buffer.getvalue())
    return files


KINDS = {  # kind -> button, MIME type, export (None: one of dicom_files), when the button shows (a page expression)
    "report": ("Report (HTML)", "text/html", export_report, "true"),
    "csv": ("Result table (CSV)", "text/csv", export_csv, "true"),
    "seg": ("DICOM SEG", "application/dicom", None, f"si_needs_segment[si_module] && {SEPARATE}"),
    "sr": ("DICOM SR", "application/dicom", None, SEPARATE),
    "zip": ("All DICOM (zip)", "application/zip", None, "true")}


class DownloadsPanel:
    """Binds the Downloads section to the station's flows; its files go to `folder` (the session's scratch)."""

    def __init__(self, station, folder: Path):
        self.station, self.folder = station, folder
        self._tokens = itertools.count(1)
        self._shown: dict[str, tuple[object, int]] = {}  # module -> (result on the page, its token)
        self._dicom: dict[str, tuple[int, dict]] = {}  # module -> (token, its `dicom_files`)
        state = station.state
        state.si_download_token = {module: 0 for module in station.flows}
        state.si_download_separate = {module: False for module in station.flows}
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
            html.Div(ZIP_ONLY_NOTE, v_if=(f"!{SEPARATE}",), classes="text-caption mt-1", id="si-download-zip-only")
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
            self._dicom.pop(module, None)
            state.si_download_token = {**state.si_download_token, module: token}
            state.si_download_error = {**state.si_download_error, module: ""}
            state.si_download_separate = {**state.si_download_separate,
                                          module: bool(token) and standalone_dicom(flow)}

    def download(self, kind: str, module: str, token: int) -> dict | None:
        """The file of `kind` made from `module`'s current result ({"name", "type", "content"}); None, with the
        reason on the page, when the result is not the one the page showed or cannot be exported."""
        state = self.station.state
        try:
            known = isinstance(module, str) and module in self.station.flows
            if not (isinstance(kind, str) and kind in KINDS and known):  # not a button of the page: a forged trigger
                module = module if known else state.si_module
                raise SmartImagingError("This download is not one the page offers: nothing was downloaded; use the "
                                        "buttons under the result")
            flow = self.station.flows[module]
            shown = self._shown.get(module)
            if shown is None or shown[1] != token or shown[0] is not flow.result or flow.result_is_stale:
                raise SmartImagingError("This result is no longer the current one (a new case, an edit or another "
                                        "compute since): nothing was downloaded; download again from the result "
                                        "shown now")
            folder = self.folder / module
            _, mime, export, _ = KINDS[kind]
            try:
                if export is not None:
                    path = export(flow, folder)
                    name, content = path.name, path.read_bytes()
                else:  # the SEG, SR and zip of one export per shown result
                    cached = self._dicom.get(module)
                    if cached is None or cached[0] != token:
                        cached = self._dicom[module] = (token, dicom_files(flow, folder))
                    if kind not in cached[1]:
                        raise SmartImagingError(f"This result has no {KINDS[kind][0]}; download the zip")
                    name, content = cached[1][kind]
            finally:  # sent, not kept on disk: a DICOM object holds the source's patient module
                shutil.rmtree(folder, ignore_errors=True)
        except (SmartImagingError, OSError) as exc:
            with state:
                state.si_download_error = {**state.si_download_error, module: f"Download refused: {exc}"}
            return None
        with state:
            state.si_download_error = {**state.si_download_error, module: ""}
        return {"name": name, "type": mime, "content": content}
