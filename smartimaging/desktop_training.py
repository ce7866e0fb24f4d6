"""The Model section of the desktop modules whose classifier trains from a worklist (MammoRadiomics, BoneScanBSTBI,
BreastLVI):
the Model selector (the demo classifier and the models trained in the open worklist's cohort, with the chosen
model's card), Train and Evaluate on that cohort in a worker process of their own (the station's jobs
`cohort-train` / `cohort-evaluate`: progress, Cancel, nothing left behind by a cancel), the evaluation's table and
its ROC curve; DCESynthesis (`dce.worklist_training`): the demo Pix2Pix fine-tuned on the cohort, evaluated beside
the demo generator, one held-out slice instead of the ROC curve. The station's version is `web.training_panel`.

GUI-free (tested on slicer-core): `TrainingSession`, the section's logic over the module's `WorklistSession`. The Qt
section (`TrainingSection`) only shows it, with Qt, CTK and Slicer APIs as Slicer 5.12's own code uses them:
- ctk.ctkCollapsibleButton and its `collapsed` (Modules/Scripted/Endoscopy/Endoscopy.py), qt.QFormLayout addRow,
  qt.QHBoxLayout addWidget, the buttons' `enabled` (CropVolumeSequence.py), qt.QPushButton (DICOM.py), qt.QLabel
  with `wordWrap` (DICOMLib/DICOMBrowser.py), as desktop_sections;
- qt.QComboBox clear / addItems / `currentIndex` (ExtensionWizard/ExtensionWizardLib/CreateComponentDialog.py), its
  "currentIndexChanged(int)" signal (Base/Python/slicer/util.py), blockSignals (DICOM.py); qt.QLineEdit `text`
  (DICOMLib/DICOMSendDialog.py);
- qt.QProgressBar and its `value` (DICOMLib/DICOMSendDialog.py), through desktop.WidgetSteps (a qt.QTimer polls the
  step; errors in dialogs, a cancel in the status bar);
- qt.QTableWidget setColumnCount / setHorizontalHeaderLabels / clearContents / setRowCount / insertRow / setItem,
  horizontalHeader().setSectionResizeMode with qt.QHeaderView.ResizeToContents and Stretch, qt.QTableWidgetItem
  with setFlags / flags and qt.Qt.ItemIsEditable (DICOMLib/DICOMBrowser.py);
- qt.QPixmap(path) shown by QLabel.setPixmap (Docs/developer_guide/script_repository/plots.md), scaled to a qt.QSize
  (ExtensionWizard.py) with qt.Qt.KeepAspectRatio (DataProbe.py) and Qt.SmoothTransformation
  (Base/QTGUI/qSlicerExtensionsLocalWidget.cxx's pixmap.scaled), emptied with qt.QPixmap() (DataProbe.py);
- slicer.util.tryWithErrorDisplay (Base/Python/slicer/util.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cohort_training import (
    CANCELLED,
    GENERATORS,
    METHODS,
    TRAINABLE,
    card_attribute,
    card_summary,
    model_card_path,
    model_choices,
)
from .dce.worklist_training import TRAIN_HELP as DCE_TRAIN_HELP
from .errors import CancelledError, InputError, SmartImagingError
from .lvi.worklist_training import choice_arguments, choices
from .models.registry import check_model_name
from .reading import Job, Step
from .worker import WorkerProcess

EVALUATION_CANCELLED = "Cancelled: the previous evaluation was kept"
TABLE_COLUMNS = ("Measure", "Value")
ROC_PIXELS = 360  # the ROC curve's size in the panel


@dataclass
class Outcome:
    """What a Train or Evaluate step shows: a sentence, the evaluation's [measure, value] rows and its ROC curve."""
    headline: str
    rows: list[list[str]] = field(default_factory=list)
    roc: Path | None = None


class CohortChoices:
    """What the Model and the Proposal network sections share over a module's worklist (`WorklistSession`): the
    cards the selector lists for the lesion kind (`refresh` / `update`), the chosen one (`select`: the flow's
    `card_attribute`, which its compute or Segment uses), its card as lines, and a job's step (`reading.Step`, the
    job in a worker process of its own, `cancel`). A subclass lists the cards (`_choices`) and summarises one."""

    card_attribute = ""  # the flow's attribute the chosen card goes to
    noun, list_name = "model", "Model"

    def __init__(self, worklist):
        self.worklist, self.flow = worklist, worklist.flow
        self.kind: str | None = getattr(self.flow, "kind", None)  # the lesion kind the list is for (mammography)
        self.choices: list[tuple[str, Path, bool]] = []  # (title, card, is the demo)
        self.step: Step | None = None
        self._listed: tuple | None = None  # (worklist folder, kind) the list was made for
        self.not_remembered = ""  # why the worklist could not remember the card chosen last
        self.refresh(self.kind)

    @property
    def module(self) -> str:
        return self.flow.module

    @property
    def out_folder(self) -> Path | None:
        """The open worklist's folder in its cohort (`<cohort>/smartimaging/<Module>`), or None."""
        reading = self.worklist.reading
        return reading.worklist.out if reading is not None else None

    def _choices(self, kind: str | None) -> list[tuple[str, Path, bool]]:
        raise NotImplementedError

    def _summary(self, card: Path) -> list[list[str]]:
        raise NotImplementedError

    def refresh(self, kind: str | None = None) -> None:
        """List the demo card and the cohort's cards of the lesion `kind`. Another worklist or kind: the card the
        reader chose for it last (`Worklist.chosen_card`, in any window), else the demo; the same: the chosen one
        stays while it is listed, else the demo is chosen."""
        self.kind = kind
        self.choices = self._choices(kind)
        listed, self._listed = self._listed, (self.out_folder, kind)
        reading = self.worklist.reading
        if listed != self._listed and reading is not None:
            setattr(self.flow, self.card_attribute, reading.worklist.chosen_card(self.card_attribute, kind,
                                                                                 self.choices))
        elif getattr(self.flow, self.card_attribute) is not None and self.chosen == 0:
            setattr(self.flow, self.card_attribute, None)

    def update(self, kind: str | None = None) -> bool:
        """Refresh the list when the worklist or the lesion kind changed since it was made; whether it did."""
        if self._listed == (self.out_folder, kind):
            return False
        self.refresh(kind)
        return True

    @property
    def titles(self) -> list[str]:
        return [title for title, _, _ in self.choices]

    @property
    def chosen(self) -> int:
        """The index of the chosen card in `choices` (0: the demo)."""
        card = getattr(self.flow, self.card_attribute)
        return next((index for index, (_, path, demo) in enumerate(self.choices)
                     if card is not None and not demo and path == Path(card)), 0)

    def select(self, index: int) -> None:
        """Choose the card the module's flow uses."""
        if not 0 <= index < len(self.choices):
            raise InputError(f"No {self.noun} number {index} in the {self.list_name} list ({len(self.choices)} "
                             f"{self.noun}s)")
        _, card, demo = self.choices[index]
        setattr(self.flow, self.card_attribute, None if demo else card)
        reading = self.worklist.reading  # the worklist reopens with it
        self.not_remembered = "" if reading is None else reading.worklist.remember_card(
            self.card_attribute, self.kind, None if demo else card)

    def card_lines(self) -> list[str]:
        """The chosen card as "what: value" lines."""
        try:
            rows = self._summary(self.choices[self.chosen][1])
        except SmartImagingError as exc:
            rows = [["Card", str(exc)]]
        return [f"{what}: {value}" for what, value in rows] + ([f"Note: {self.not_remembered}"]
                                                               if self.not_remembered else [])

    def cancel(self) -> bool:
        """Stop the running job; False when none runs."""
        return self.step is not None and self.step.cancel()

    def start_worker(self, job: Job) -> WorkerProcess:
        """A job in a process of its own (the flow's warm worker stays free for the reader's Segment and compute)."""
        return WorkerProcess(job.name, job.arguments, python=self.flow.python)


class TrainingSession(CohortChoices):
    """The Model section's logic: the classifiers (`model_choices`; the chosen one is the flow's `classifier_card`,
    which its compute or Segment uses; DCESynthesis: the generators, its `generator_card`) and the Train / Evaluate
    steps on the open worklist's cohort."""

    @property
    def card_attribute(self) -> str:
        return card_attribute(self.module)

    def __init__(self, worklist):
        if worklist.flow.module not in TRAINABLE:
            raise InputError(f"{worklist.flow.module} has no classifier that trains from a worklist")
        super().__init__(worklist)
        self.name = f"{self.kind or 'site'}-cohort-1"  # the model name the section proposes

    def _choices(self, kind):
        return model_choices(self.module, self.out_folder, kind, self.flow.models_dir)

    def _summary(self, card):
        return card_summary(card)

    # ---- Train and Evaluate ----

    def train(self, name: str, method: str = "preset", progress=None, network: str | None = None) -> Step:
        """The Train step: the module's classifier trained on the worklist's done cases into its cohort's models
        folder (`method`: mammography's preset or search; `network`: BreastLVI's network x sequence, a value of
        `lvi.worklist_training.choices`, default the first); its value, an Outcome saying what it was trained on."""
        out = self._ready(name)
        if method not in METHODS:
            raise InputError(f"Training method {method!r}: choose {' or '.join(METHODS)}")
        arguments = ["--output-dir", str(out), "--module", self.module, "--name", name]
        if self.module == "MammoRadiomics":
            arguments += ["--method", method, *(["--kind", self.kind] if self.kind else [])]
        elif self.module == "BreastLVI":
            arguments += choice_arguments(network or choices()[0][0])
        return self._start(self._train(name, arguments), progress)

    def evaluate(self, name: str, progress=None) -> Step:
        """The Evaluate step: the cohort's model `name` on the worklist's held-out test cases; its value, an Outcome
        with the paper's table (AUC with its CI, SEN/SPE/ACC with counts, the training estimate, Dice) and the ROC."""
        out = self._ready(name)
        return self._start(self._evaluate(name, out, ["--output-dir", str(out), "--module", self.module,
                                                      "--name", name]), progress)

    def _ready(self, name: str) -> Path:
        if self.step is not None and not self.step.over:
            raise InputError("Wait until the running Train or Evaluate is over (or cancel it)")
        out = self.out_folder
        if out is None:
            raise InputError("Open the cohort's worklist first (the Worklist section): Train and Evaluate use its "
                             "saved cases")
        check_model_name(name)
        return out

    def _start(self, generator, progress) -> Step:
        self.step = Step(self, generator, progress)
        return self.step

    def _train(self, name: str, arguments: list[str]):
        try:
            event = yield Job("cohort-train", arguments)
        except CancelledError:
            raise CancelledError(CANCELLED) from None
        self.refresh(self.kind)
        trained_on = dict(card_summary(event["card"]))["Trained on"]
        return Outcome(f"Model {name} trained on {trained_on}. Choose it in the Model list to compute with it; "
                       "Evaluate measures it on the held-out test cases.")

    def _evaluate(self, name: str, out: Path, arguments: list[str]):
        try:
            event = yield Job("cohort-evaluate", arguments)
        except CancelledError:
            raise CancelledError(EVALUATION_CANCELLED) from None
        report = event["evaluation"]
        self.refresh(self.kind)  # the card now records the test metrics
        return Outcome(f"Model {name} on the cohort's {report['cases']} held-out test cases:",
                       [[str(what), str(value)] for what, value in report["table"]],
                       model_card_path(out, self.module, name).parent / "evaluation" / report.get("figure",
                                                                                                  "roc.png"))


# ---- the Qt section -----------------------------------------------------------------------------------------------

class TrainingSection:
    """The "Model" section of a module's panel, under its Worklist section (`worklist`, a WorklistSection): the
    Model selector and the chosen model's card, the model name (and mammography's method), Train / Evaluate /
    Cancel with a progress bar, the evaluation's table and ROC curve. The module calls `update(kind)` whenever its
    parameter node changes (the lesion kind its selector holds; a worklist opened) and `abandon()` when it goes."""

    def __init__(self, layout, worklist):
        import qt

        from .desktop import WidgetSteps
        from .desktop_sections import _label, _section

        self.session = TrainingSession(worklist.session)
        self.section, form = _section(layout, "Model")
        self.section.collapsed = True  # as the Worklist section
        self.model = qt.QComboBox()
        form.addRow("Model", self.model)
        self.card = _label("")
        form.addRow(self.card)
        form.addRow(_label(DCE_TRAIN_HELP if self.session.module in GENERATORS else (
            "Train fits a classifier on the open worklist's cases saved as done (train and val splits); Evaluate "
            "measures the named model on its held-out test cases.")))
        self.name = qt.QLineEdit()
        self.name.text = self.session.name
        form.addRow("Model name", self.name)
        self.method = self.network = None
        if self.session.module == "MammoRadiomics":
            self.method = qt.QComboBox()
            self.method.addItems(list(METHODS.values()))
            form.addRow("Method", self.method)
        elif self.session.module == "BreastLVI":
            self.network = qt.QComboBox()
            self.network.addItems([title for _, title in choices()])
            form.addRow("Network", self.network)
        buttons = qt.QHBoxLayout()
        self.buttons = {}
        for text, callback in (("Train", self._train), ("Evaluate", self._evaluate), ("Cancel", self._cancel)):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, callback=callback: callback())
            buttons.addWidget(button)
            self.buttons[text] = button
        form.addRow(buttons)
        self.progress_bar = qt.QProgressBar()
        form.addRow(self.progress_bar)
        self.message = _label("")
        form.addRow(self.message)
        self.table = qt.QTableWidget()
        self.table.setColumnCount(len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.horizontalHeader().setSectionResizeMode(0, qt.QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, qt.QHeaderView.Stretch)
        form.addRow(self.table)
        self.roc = qt.QLabel()
        form.addRow(self.roc)
        self.steps = WidgetSteps(self.progress_bar, self._done, self._over)
        self._outcome: Outcome | None = None  # of the last step, once it succeeded
        self.model.connect("currentIndexChanged(int)", self._chosen)
        self._show_models()
        self._enable()

    def update(self, kind: str | None = None) -> None:
        """The module's parameter node changed: the list follows the worklist and the lesion kind."""
        if self.session.update(kind):
            self._show_models()
        self._enable()

    def abandon(self) -> None:
        """Stop a running job without a word (the module goes away)."""
        self.steps.abandon()

    # ---- the section's actions ----

    def _chosen(self, index: int) -> None:
        if index >= 0:
            self.session.select(index)
            self.card.text = "\n".join(self.session.card_lines())

    def _train(self) -> None:
        method = list(METHODS)[self.method.currentIndex] if self.method is not None else "preset"
        network = choices()[self.network.currentIndex][0] if self.network is not None else None
        self._start(lambda: self.session.train(self.name.text.strip(), method, self._progress, network))

    def _evaluate(self) -> None:
        self._start(lambda: self.session.evaluate(self.name.text.strip(), self._progress))

    def _cancel(self) -> None:
        self.message.text = "Cancelling..."
        self.steps.cancel()

    def _start(self, make_step) -> None:
        """Start a step (a refusal in an error dialog); the previous evaluation leaves the section."""
        import qt
        import slicer

        from .desktop_sections import _fill_read_only

        with slicer.util.tryWithErrorDisplay("Failed to start.", waitCursor=True):
            step = make_step()
            self._outcome = None
            _fill_read_only(self.table, [])
            self.roc.setPixmap(qt.QPixmap())  # as DataProbe.py empties its image
            self.steps.start(step)
        self._enable()

    def _progress(self, fraction: float, message: str) -> None:
        self.steps.progress(fraction, message)
        self.message.text = message

    # ---- showing ----

    def _done(self, outcome: Outcome) -> None:
        import qt

        from .desktop_sections import _fill_read_only

        self._outcome = outcome
        self._show_models()
        self.message.text = outcome.headline
        if outcome.roc is None:
            return
        _fill_read_only(self.table, outcome.rows)
        pixmap = qt.QPixmap(str(outcome.roc))
        self.roc.setPixmap(pixmap.scaled(qt.QSize(ROC_PIXELS, ROC_PIXELS), qt.Qt.KeepAspectRatio,
                                         qt.Qt.SmoothTransformation))

    def _show_models(self) -> None:
        blocked = self.model.blockSignals(True)  # filling the list is not the reader's choice
        try:
            self.model.clear()
            self.model.addItems(self.session.titles)
            self.model.currentIndex = self.session.chosen
        finally:
            self.model.blockSignals(blocked)
        self.card.text = "\n".join(self.session.card_lines())

    def _over(self) -> None:
        """The step is over: a failed or cancelled one leaves no progress message (its dialog or status message
        says what happened)."""
        if self._outcome is None:
            self.message.text = ""
        self._enable()

    def _enable(self) -> None:
        busy = self.steps.busy
        ready = not busy and self.session.out_folder is not None
        self.buttons["Train"].enabled = self.buttons["Evaluate"].enabled = ready
        self.buttons["Cancel"].enabled = busy
