"""Human labels: what a labeller sees for one sample, setting labels, blind labelling, agreement
between labellers, CSV import/export and the report's claims table.

Front ends (the ``ft-hallu label`` command, the Gradio and TUI sample views) call these with a
store handle (``Workspace.handle()``). Labels live in store/labels.py.

Modules: ``samples`` (the sample view, the queue, saving one label; the others build on it),
``blind`` (the seeded blind pass), ``agreement`` (which label counts, counts, Cohen's kappa),
``csv_io`` (export, and import all or nothing) and ``claims_table`` (the report's claims table).
The public names are re-exported here, so ``from engine import labels; labels.set_label(...)``
works.
"""

from __future__ import annotations

from engine.labels.agreement import (
    AGREED,
    NEWEST,
    ChosenLabels,
    PairAgreement,
    choose_labels,
    cohens_kappa,
    contingency,
    label_counts,
    pairwise_agreement,
    sweep_agreement,
)
from engine.labels.blind import (
    BLIND_HIDDEN,
    DEFAULT_BLIND_SEED,
    BlindItem,
    BlindSession,
    blind_order,
    check_seed,
    label_blind,
    next_blind,
    start_blind,
)
from engine.labels.claims_table import claims_section
from engine.labels.csv_io import EXPORT_COLUMNS, ImportResult, export_labels_csv, import_labels_csv
from engine.labels.samples import (
    LABEL_KEYS,
    LABEL_VALUES,
    MAX_LABELLER_LENGTH,
    LabelSample,
    check_labeller,
    default_labeller,
    label_sample,
    labelling_queue,
    require_sweep,
    set_label,
    sweep_labels,
)

__all__ = [
    "AGREED",
    "BLIND_HIDDEN",
    "DEFAULT_BLIND_SEED",
    "EXPORT_COLUMNS",
    "LABEL_KEYS",
    "LABEL_VALUES",
    "MAX_LABELLER_LENGTH",
    "NEWEST",
    "BlindItem",
    "BlindSession",
    "ChosenLabels",
    "ImportResult",
    "LabelSample",
    "PairAgreement",
    "blind_order",
    "check_labeller",
    "check_seed",
    "choose_labels",
    "claims_section",
    "cohens_kappa",
    "contingency",
    "default_labeller",
    "export_labels_csv",
    "import_labels_csv",
    "label_blind",
    "label_counts",
    "label_sample",
    "labelling_queue",
    "next_blind",
    "pairwise_agreement",
    "require_sweep",
    "set_label",
    "start_blind",
    "sweep_agreement",
    "sweep_labels",
]
