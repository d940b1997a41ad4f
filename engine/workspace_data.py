"""The Workspace's data steps: generating QA items over an endpoint, masking the entity (plan, leak
report, apply, undo) and checking datasets. Mixed into engine.workspace.Workspace, the one door."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine import dataset as ds
from engine import generate as gen
from engine import mask as masking
from engine.dataset import DatasetReport, DedupeResult
from engine.errors import UserError
from engine.generate import QaSource
from engine.mask import LeakReport, MaskPlan, MaskResult
from engine.records import (
    MaskRecord,
    MaskUndo,
)
from store import masks as mask_store


class DataStepsMixin:
    """Generating QA items, masking and dataset checks: methods of the Workspace (engine/workspace.py)."""

    # ------------------------------------------------------------ generating QA items

    def generate_qa(
        self,
        config: gen.GenerateConfig,
        source: QaSource | gen.SourceTexts,
        *,
        on_progress: gen.ProgressCallback | None = None,
    ) -> gen.GenerationResult:
        """Read the source (unless already read), chunk it and generate (resuming in the same output folder).

        A caller that must refuse a bad source before the store file exists reads it first
        (``source.read()``) and passes what that gave.
        """
        gen.resolve_api_key(config.endpoint)  # fail before fetching anything
        read = source.read()
        chunks = read.chunks(chunk_chars=config.chunk_chars, overlap_chars=config.chunk_overlap_chars)
        with self.handle() as store:
            return gen.generate(chunks, config, source=read.described, store=store, on_progress=on_progress)

    # ------------------------------------------------------------ masking

    @staticmethod
    def plan_mask(
        path: str | Path,
        *,
        entity: str,
        new_name: str,
        ticker: str | None = None,
        aliases: Sequence[str] = (),
    ) -> MaskPlan:
        """Propose the rules and plan every change in the file (nothing is written)."""
        rules = masking.propose_rules(entity, new_name=new_name, ticker=ticker or None, aliases=list(aliases))
        return masking.plan_file(Path(path).expanduser(), rules)

    @staticmethod
    def mask_leak_report(plan: MaskPlan) -> LeakReport:
        """What the plan's accepted edits would leave: name leaks and identifying names (products,
        people, tickers) learned from the unmasked rows. The CLI's `mask leaks` prints the same report."""
        return masking.plan_leak_report(plan)

    @staticmethod
    def mask_identifying_names(plan: MaskPlan, names: Sequence[str] | None = None, *, seed: int = 0) -> MaskPlan:
        """The plan again with a rule per identifying name (all the report lists, or ``names``),
        each with an invented replacement deterministic from ``seed``."""
        return masking.add_leak_rules(plan, names, seed=seed)

    def recorded_mask_for(self, path: str | Path) -> masking.RecordedMask | None:
        """The done masking that wrote this very file (same sha256), with its rules, or None."""
        with self.handle() as store:
            return masking.recorded_mask_for(store, path)

    def apply_mask(
        self,
        plan: MaskPlan,
        out_path: str | Path,
        *,
        entity: str | None = None,
        new_name: str | None = None,
        overwrite: bool = False,
    ) -> MaskResult:
        """Write the accepted edits to a new file and record the masking (the input is never written)."""
        with self.handle() as store:
            return masking.apply(plan, out_path, store, entity=entity, new_name=new_name, overwrite=overwrite)

    def undo_mask(self, mask_id: int | None = None) -> MaskUndo:
        """Undo a masking; without an id, the latest applied one."""
        with self.handle() as store:
            if mask_id is None:
                done = [m for m in mask_store.list_masks(store) if m.get("status") == "done"]
                if not done:
                    raise UserError("undo: no applied masking to undo")
                mask_id = int(done[0]["id"])
            return MaskUndo(mask_id, masking.undo(store, mask_id))

    def recover_masks(self) -> list[str]:
        """Settle maskings a killed run left 'writing'; one line per masking settled."""
        with self.handle() as store:
            return masking.recover_interrupted(store)

    def masks(self) -> list[MaskRecord]:
        with self.handle() as store:
            rows = mask_store.list_masks(store)
        return [
            MaskRecord(
                id=int(row["id"]),
                status=str(row.get("status") or ""),
                entity=str(row.get("entity") or ""),
                new_name=str(row.get("new_name") or ""),
                source_path=row.get("source_path"),
                output_path=str(row.get("output_path") or ""),
                rows=row.get("rows"),
                edits_applied=row.get("edits_applied"),
                created_at=str(row.get("created_at") or ""),
                leaks=row.get("leaks") or {},
            )
            for row in rows
        ]

    # ------------------------------------------------------------ datasets (engine.dataset)

    @staticmethod
    def check_dataset(path: str | Path, *, eval_fraction: float = 0.1, seed: int = 2024) -> DatasetReport:
        """What ``ft-hallu dataset check`` prints: rows, duplicates, split leakage, lengths, ids."""
        return ds.check(path, eval_fraction=eval_fraction, seed=seed)

    @staticmethod
    def drop_duplicates(path: str | Path, out: str | Path, *, overwrite: bool = False) -> DedupeResult:
        """Write ``path`` without its exact duplicate rows to the NEW file ``out`` (atomic; the
        input is never written)."""
        return ds.write_deduplicated(path, out, overwrite=overwrite)
