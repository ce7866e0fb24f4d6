"""The Proposal network section of the desktop modules whose Segment runs a U-Net (MammoRadiomics, BreastLVI,
BoneScanBSTBI): the network Segment uses (the module's demo U-Net, or one fine-tuned on the open worklist's cohort,
with the chosen network's card), and "Fine-tune on this cohort": the station's worker job `finetune-segmenter` on the
worklist's done cases, from the chosen network, in a worker process of its own (progress, Cancel: no model folder
left), then Dice before → after on the held-out corrected cases, and the new network is chosen unless its Dice fell.
A phantom cohort (its marker file) is labelled phantom by the job itself. The station's version is
`web.proposal_panel`.

GUI-free (tested on slicer-core): `ProposalSession`, the section's logic over the module's `WorklistSession`. The Qt
section (`ProposalSection`) only shows it, with Qt, CTK and Slicer APIs as Slicer 5.12's own code uses them:
- ctk.ctkCollapsibleButton and its `collapsed` (Modules/Scripted/Endoscopy/Endoscopy.py), qt.QFormLayout addRow,
  qt.QHBoxLayout addWidget, the buttons' `enabled` (CropVolumeSequence.py), qt.QPushButton (DICOM.py), qt.QLabel
  with `wordWrap` (DICOMLib/DICOMBrowser.py), as desktop_sections;
- qt.QComboBox clear / addItems / `currentIndex` (ExtensionWizard/ExtensionWizardLib/CreateComponentDialog.py), its
  "currentIndexChanged(int)" signal (Base/Python/slicer/util.py), blockSignals (DICOM.py); qt.QLineEdit `text`
  (DICOMLib/DICOMSendDialog.py);
- qt.QSpinBox (Base/Python/slicer/parameterNodeWrapper/guiCreation.py), its setRange and `value`
  (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py);
- qt.QProgressBar and its `value` (DICOMLib/DICOMSendDialog.py), through desktop.WidgetSteps (a qt.QTimer polls the
  step; errors in dialogs, a cancel in the status bar);
- slicer.util.tryWithErrorDisplay (Base/Python/slicer/util.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .desktop_training import CohortChoices
from .errors import CancelledError, InputError
from .finetune import FINETUNE_EPOCHS
from .proposal_networks import (
    MAX_EPOCHS,
    TASKS,
    check_finetune_data,
    finetune_outcome,
    next_name,
    phantom_manifest,
    proposal_card_path,
    proposal_choices,
    proposal_summary,
)
from .reading import Job, Step

CANCELLED = "Cancelled: no network was written"
PHANTOM_TEXT = "Synthetic phantoms (the cohort's marker file): the new card labels its Dice as phantom numbers."


class ProposalSession(CohortChoices):
    """The Proposal network section's logic: the U-Nets the selector lists for the lesion kind (the chosen one is
    the flow's `segmenter_card`, which its Segment uses) and the Fine-tune step on the open worklist's cohort."""

    card_attribute = "segmenter_card"
    noun, list_name = "network", "Proposal network"

    def __init__(self, worklist):
        if worklist.flow.module not in TASKS:
            raise InputError(f"{worklist.flow.module} has no proposal network to fine-tune")
        self.name = ""  # the new network's name the section proposes (a free one, `next_name`)
        super().__init__(worklist)

    def _choices(self, kind):
        return proposal_choices(self.module, self.out_folder, kind, self.flow.models_dir)

    def _summary(self, card):
        return proposal_summary(card)

    @property
    def phantom(self) -> bool:
        """Whether the open worklist's cohort holds synthetic phantoms (its marker file): Fine-tune's card labels
        its Dice as phantom numbers."""
        return self.out_folder is not None and phantom_manifest(self.worklist.reading.worklist.manifest_path)

    def refresh(self, kind: str | None = None) -> None:
        """As CohortChoices.refresh; another worklist or kind proposes a free name."""
        if self._listed != (self.out_folder, kind):
            self.name = next_name(self.module, self.out_folder, kind)
        super().refresh(kind)

    # ---- Fine-tune ----

    def finetune(self, name: str, epochs: int = FINETUNE_EPOCHS, progress=None) -> Step:
        """The Fine-tune step: the chosen network trained `epochs` epochs on the worklist's done cases into the
        cohort's `models/_proposal/<name>`. Refused before a worker starts: no worklist, a name that is not free, too
        few done cases (with the minimum). Its value: the lines saying Dice before → after on the held-out cases; the
        new network is then chosen, unless its Dice fell (the lines say so)."""
        if self.step is not None and not self.step.over:
            raise InputError("Wait until the running fine-tuning is over (or cancel it)")
        out = self.out_folder
        if out is None:
            raise InputError("Open the cohort's worklist first (the Worklist section): Fine-tune learns from its "
                             "saved cases")
        if not 1 <= epochs <= MAX_EPOCHS:
            raise InputError(f"Epochs {epochs}: give a whole number from 1 to {MAX_EPOCHS} (default "
                             f"{FINETUNE_EPOCHS})")
        target = proposal_card_path(out, name).parent
        if target.exists():
            raise InputError(f"This cohort already has a proposal network named {name}; choose another name")
        manifest = self.worklist.reading.worklist.manifest_path
        check_finetune_data(self.module, manifest, self.kind)
        start = self.choices[self.chosen][1]
        arguments = ["--task", TASKS[self.module], "--manifest", str(manifest), "--from-card", str(start),
                     "--output-dir", str(target), "--name", name, "--epochs", str(epochs), "--device",
                     self.flow.device]
        self.step = Step(self, self._finetune(target, arguments), progress)
        return self.step

    def _finetune(self, target: Path, arguments: list[str]):
        """The step's generator: a job that does not end with a result (cancelled, failed, abandoned) leaves no
        model folder (its name was free when it started)."""
        finished = False
        try:
            event = yield Job("finetune-segmenter", arguments)
            finished = True
        except CancelledError:
            raise CancelledError(CANCELLED) from None
        finally:
            if not finished:
                shutil.rmtree(target, ignore_errors=True)
        chosen, rows = finetune_outcome(TASKS[self.module], event)
        self.refresh(self.kind)
        listed = [index for index, (_, card, _) in enumerate(self.choices) if card == Path(event["card"])]
        if chosen and listed:  # chosen as the reader chooses: the worklist reopens with it
            self.select(listed[0])
        self.name = next_name(self.module, self.out_folder, self.kind)
        return [f"{what}: {value}" for what, value in rows]


# ---- the Qt section -----------------------------------------------------------------------------------------------

class ProposalSection:
    """The "Proposal network" section of a module's panel, under its Worklist (and Model) sections (`worklist`, a
    WorklistSection): the network selector and the chosen network's card, the new network's name, epochs, whether
    the cohort is phantoms, Fine-tune / Cancel with a progress bar, and Dice before → after. The module calls
    `update(kind)` whenever its parameter node changes (the lesion kind its selector holds; a worklist opened) and
    `abandon()` when it goes."""

    def __init__(self, layout, worklist):
        import qt

        from .desktop import WidgetSteps
        from .desktop_sections import _label, _section

        self.session = ProposalSession(worklist.session)
        self.section, form = _section(layout, "Proposal network")
        self.section.collapsed = True  # as the Worklist section
        self.network = qt.QComboBox()
        form.addRow("Network that Segment uses", self.network)
        self.card = _label("")
        form.addRow(self.card)
        form.addRow(_label("Fine-tune adapts the chosen network to the open worklist's cases saved as done (their "
                           "corrected ROIs) and measures Dice before and after on its held-out cases."))
        self.name = qt.QLineEdit()
        form.addRow("New network's name", self.name)
        self.epochs = qt.QSpinBox()
        self.epochs.setRange(1, MAX_EPOCHS)
        self.epochs.value = FINETUNE_EPOCHS
        form.addRow("Epochs", self.epochs)
        self.phantom = _label("")
        form.addRow(self.phantom)
        buttons = qt.QHBoxLayout()
        self.buttons = {}
        for text, callback in (("Fine-tune on this cohort", self._finetune), ("Cancel", self._cancel)):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, callback=callback: callback())
            buttons.addWidget(button)
            self.buttons[text] = button
        form.addRow(buttons)
        self.progress_bar = qt.QProgressBar()
        form.addRow(self.progress_bar)
        self.message = _label("")
        form.addRow(self.message)
        self.steps = WidgetSteps(self.progress_bar, self._done, self._over)
        self._finished = False  # the last step succeeded: its Dice lines stay
        self.network.connect("currentIndexChanged(int)", self._chosen)
        self._show_networks()
        self._enable()

    def update(self, kind: str | None = None) -> None:
        """The module's parameter node changed: the list follows the worklist and the lesion kind."""
        if self.session.update(kind):
            self._show_networks()
        self._enable()

    def abandon(self) -> None:
        """Stop a running fine-tuning without a word (the module goes away); it leaves no model folder."""
        self.steps.abandon()

    # ---- the section's actions ----

    def _chosen(self, index: int) -> None:
        if index >= 0:
            self.session.select(index)
            self.card.text = "\n".join(self.session.card_lines())

    def _finetune(self) -> None:
        """Start the step (a refusal in an error dialog)."""
        import slicer

        with slicer.util.tryWithErrorDisplay("Failed to start the fine-tuning.", waitCursor=True):
            step = self.session.finetune(self.name.text.strip(), self.epochs.value, self._progress)
            self._finished = False
            self.message.text = ""
            self.steps.start(step)
        self._enable()

    def _cancel(self) -> None:
        self.message.text = "Cancelling..."
        self.steps.cancel()

    def _progress(self, fraction: float, message: str) -> None:
        self.steps.progress(fraction, message)
        self.message.text = message

    # ---- showing ----

    def _done(self, lines: list[str]) -> None:
        self._finished = True
        self._show_networks()
        self.message.text = "\n".join(lines)

    def _show_networks(self) -> None:
        blocked = self.network.blockSignals(True)  # filling the list is not the reader's choice
        try:
            self.network.clear()
            self.network.addItems(self.session.titles)
            self.network.currentIndex = self.session.chosen
        finally:
            self.network.blockSignals(blocked)
        self.card.text = "\n".join(self.session.card_lines())
        self.name.text = self.session.name
        self.phantom.text = (PHANTOM_TEXT if self.session.phantom else "")

    def _over(self) -> None:
        """The step is over: a failed or cancelled one leaves no progress message (its dialog or status message
        says what happened)."""
        if not self._finished:
            self.message.text = ""
        self._enable()

    def _enable(self) -> None:
        busy = self.steps.busy
        self.buttons["Fine-tune on this cohort"].enabled = not busy and self.session.out_folder is not None
        self.buttons["Cancel"].enabled = busy
        self.network.enabled = not busy  # Segment's network does not change under a fine-tuning started from it
