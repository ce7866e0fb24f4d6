"""The station's explanations of a result (texts and decisions from `smartimaging.explain`): the warnings among
them (borderline score, disagreeing sequences, lesions faint on the synthetic DCE) under the headline, and every
explanation (what the number is, its cutoff, the model cards) one click away in a dialog; the result table shows
plain feature names with the pyradiomics name on hover."""

from __future__ import annotations

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from ..explain import shown_rows
from ..report import is_score_row

DOUBTFUL = "si_domain[si_module]?.verdict === 'outside'"  # the page greys every score as it greys the headline
GREYED = "text-disabled text-decoration-line-through"


def init_state(state, modules) -> None:
    state.si_explanations = {module: [] for module in modules}  # each result's explanations (explain.explain)
    state.si_row_titles = {module: [] for module in modules}  # hover text of each shown row's first cell
    state.si_row_scores = {module: [] for module in modules}  # whether each shown row is a score (`is_score_row`)
    state.si_explain_open = False


def publish(state, module: str, result, rows: list[list[str]]) -> list[list[str]]:
    """Put a module's result explanations on the page; `rows` as the table shows them (see `explain.shown_rows`),
    the hover text of each first cell in `si_row_titles`, which rows are scores in `si_row_scores`."""
    rows, titles = shown_rows(rows)
    state.si_row_scores = {**state.si_row_scores, module: [is_score_row(row) for row in rows]}
    state.si_explanations = {**state.si_explanations, module: list(result.explanations) if result else []}
    state.si_row_titles = {**state.si_row_titles, module: titles}
    return rows


def build() -> None:
    """Under the headline: the score with its cutoff, the warning explanations as alerts and the "Explain this
    result" button; the dialog."""
    explanations = "si_explanations[si_module]"
    with html.Div(v_if=(f"{explanations}.length",), id="si-explain"):
        html.Div("{{ item.title }}", v_for=(f"item in {explanations}.filter((e) => e.key === 'cutoff')",),
                 key="item.key", classes=(f"'text-body-2' + ({DOUBTFUL} ? ' {GREYED}' : '')",),
                 id="si-cutoff-line")  # the score with its cutoff beside it
        v3.VAlert(v_for=(f"item in {explanations}.filter((e) => e.tone === 'warning' && !e.key.startsWith('card'))",),
                  key="item.key", type="warning", variant="tonal", density="compact", classes="mt-1",
                  title=("item.title",), text=("item.summary",),
                  id=("'si-flag-' + item.key",))
        v3.VBtn("Explain this result", click="si_explain_open = true", variant="tonal", size="small",
                prepend_icon="mdi-information-outline", classes="mt-2", id="si-explain-open")
    with v3.VDialog(v_model=("si_explain_open",), max_width=820, scrollable=True), v3.VCard(id="si-explain-dialog"):
        v3.VCardTitle("About this result")
        with v3.VCardText(style="max-height: 75vh;"):
            with html.Div(v_for=(f"item in {explanations}",), key="item.key", classes="mb-4",
                          id=("'si-explain-' + item.key.replace(' ', '-')",)):
                html.Div("{{ item.title }}", classes=("'text-subtitle-1 font-weight-bold' + "
                                                      "(item.tone === 'warning' ? ' text-warning' : '')",))
                html.P("{{ line }}", v_for=("line in item.text",), classes="text-body-2 mb-1")
                with html.Table(v_if=("item.rows.length",), classes="text-body-2",
                                style="border-collapse: collapse; width: 100%;"):
                    with html.Tr(v_for=("row in item.rows",), style="border-bottom: 1px solid #444;"):
                        html.Td("{{ row[0] }}", title=("row[2]",), classes="pr-3",
                                style="text-decoration: underline dotted;")
                        html.Td("{{ row[1] }}", title=("row[2]",), style="white-space: nowrap;")
        with v3.VCardActions():
            v3.VSpacer()
            v3.VBtn("Close", click="si_explain_open = false", id="si-explain-close")
