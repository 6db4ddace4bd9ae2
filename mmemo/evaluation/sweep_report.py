"""A Hydra callback that turns a finished multirun into a table, a bar chart and a W&B summary.

Configured in an experiment (``hydra.callbacks.report``); after the last job it
reads every ``metrics.json`` under the sweep folder, groups runs by two config
keys (e.g. ``model.fusion.name`` × ``modalities``), and writes
``<results_dir>/<stem>.{md,tex,csv,png}`` with mean ± std over folds × seeds.
Jobs reused from an earlier run of the same command count like fresh ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mmemo.errors import MissingInput
from mmemo.evaluation.breakdown import pooled_by_field, render_breakdown
from mmemo.evaluation.metric_names import is_percent, metric_label
from mmemo.evaluation.plots import bar_chart
from mmemo.evaluation.tables import (
    Table,
    build_table,
    load_runs,
    run_key,
    to_markdown,
    write_table,
)

log = logging.getLogger(__name__)


def fused_gains(table: Table, unimodal: Sequence[str], fused: str, metric: str = "UA") -> list[str]:
    """Lines comparing each row's fused cell with the best unimodal cell of the whole table."""
    candidates = [(table.cells[(r, c)].mean_std(metric)[0], r, c) for r in table.rows for c in unimodal
                  if (r, c) in table.cells]
    if not candidates or not any((r, fused) in table.cells for r in table.rows):
        return []
    best, best_row, best_column = max(candidates)
    digits = 2 if is_percent(metric) else 3
    lines = [f"Best unimodal {metric_label(metric)}: {best:.{digits}f} ({best_row}, {best_column} only)."]
    for row in table.rows:
        if (row, fused) in table.cells:
            mean = table.cells[(row, fused)].mean_std(metric)[0]
            lines.append(f"- {row}: {fused} {mean:.{digits}f} ({mean - best:+.{digits}f} over the best unimodal)")
    return lines


def modality_set(column: str) -> set[str]:
    """``speech+video`` -> {speech, video}; ``both`` is speech + text, ``all`` the three."""
    return {"both": {"speech", "text"}, "all": {"speech", "text", "video"}}.get(column, set(column.split("+")))


def subset_gains(table: Table, columns: Sequence[str], metric: str = "UA") -> list[str]:
    """Per row, each of ``columns`` against the row's best cell over strict subsets of its modalities."""
    lines = []
    for column in columns:
        for row in table.rows:
            if (row, column) not in table.cells:
                continue
            mean = table.cells[(row, column)].mean_std(metric)[0]
            subsets = [(table.cells[(row, c)].mean_std(metric)[0], c) for c in table.columns
                       if (row, c) in table.cells and modality_set(c) < modality_set(column)]
            if subsets:
                best, which = max(subsets)
                lines.append(f"- {row}: {column} {mean:.2f} vs best subset {which} {best:.2f} ({mean - best:+.2f})")
    return [f"{metric_label(metric)} of each head's {', '.join(columns)} against its best smaller "
            "modality subset:", *lines] if lines else []


class SweepReport(Callback):
    def __init__(self, results_dir: str, stem: str, rows: str, columns: str,
                 metrics: Sequence[str] = ("UA", "WA", "macro_F1"), title: str = "",
                 row_order: Sequence[str] | None = None, column_order: Sequence[str] | None = None,
                 unimodal_columns: Sequence[str] = (), fused_column: str | None = None, chance: float | None = None,
                 gain_columns: Sequence[str] = ()):
        self.results_dir = Path(results_dir)
        self.stem = stem
        self.rows, self.columns = rows, columns
        self.metrics = list(metrics)
        self.title = title
        self.row_order, self.column_order = row_order, column_order
        self.unimodal_columns, self.fused_column = list(unimodal_columns), fused_column
        self.chance = chance
        #: Columns (modality subsets) compared with each row's best cell among the other columns
        #: that are subsets of it (e.g. "all" against the best two-modality cell of the same head).
        self.gain_columns = list(gain_columns)
        self.breakdown = ""

    def build(self, sweep_dir: Path) -> Table:
        runs = load_runs([sweep_dir])
        if not runs:
            raise MissingInput(f"no finished runs (metrics.json) under {sweep_dir}")
        table = self._table(runs)
        pooled = pooled_by_field(runs, lambda run: run_key(run, self.rows), lambda run: run_key(run, self.columns))
        self.breakdown = render_breakdown(pooled, table.rows, table.columns)
        return table

    def _table(self, runs) -> Table:
        return build_table(runs, row=lambda run: run_key(run, self.rows),
                           column=lambda run: run_key(run, self.columns), metrics=self.metrics,
                           title=self.title, row_order=self.row_order, column_order=self.column_order)

    def write(self, table: Table) -> list[Path]:
        written = write_table(table, self.results_dir, self.stem)
        headline = self.metrics[0]  # the gains and the chart are on the table's first metric
        gains = fused_gains(table, self.unimodal_columns, self.fused_column, headline) if self.fused_column else []
        gains += subset_gains(table, self.gain_columns, headline)
        markdown = to_markdown(table) + ("\n" + "\n".join(gains) + "\n" if gains else "") + \
            ("\n" + self.breakdown if self.breakdown else "")
        written[0].write_text(markdown, encoding="utf-8")
        series = {column: [table.cells[(r, column)].mean_std(headline) if (r, column) in table.cells else (0.0, 0.0)
                           for r in table.rows] for column in table.columns}
        percent = is_percent(headline)
        written.append(bar_chart(table.rows, series, self.results_dir / f"{self.stem}.png",
                                 ylabel=f"test {metric_label(headline)}{' %' if percent else ''}",
                                 chance=self.chance, title=self.title, top=100 if percent else 1))
        print("\n" + markdown)
        return written

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table = self.build(sweep_dir)
        written = self.write(table)
        log.info("sweep report: %s", ", ".join(str(p) for p in written))
        self._log_to_wandb(config, table, written)

    def _log_to_wandb(self, config: DictConfig, table: Table, written: list[Path]) -> None:
        """One extra W&B run in the sweep's group holding the summary table and chart."""
        wandb_cfg = (config.get("logger") or {}).get("wandb")
        mode = os.environ.get("WANDB_MODE") or (wandb_cfg.get("mode") if wandb_cfg else None)
        if not wandb_cfg or mode in (None, "disabled"):
            return
        import wandb

        run = wandb.init(project=wandb_cfg.get("project"), entity=wandb_cfg.get("entity"),
                         group=wandb_cfg.get("group"), name=f"{self.stem}-summary", job_type="summary",
                         dir=str(Path(config.hydra.sweep.dir)), mode="offline" if mode == "dryrun" else mode,
                         reinit=True)
        rows = []
        for (row, column), cell in sorted(table.cells.items()):
            rows.append([row, column, *(round(cell.mean_std(m)[0], 2) for m in self.metrics),
                         *(round(cell.mean_std(m)[1], 2) for m in self.metrics), len(cell.pairs)])
        columns = [self.rows, self.columns, *self.metrics, *(f"{m}_std" for m in self.metrics), "runs"]
        run.log({"summary": wandb.Table(columns=columns, data=rows),
                 "summary_chart": wandb.Image(str(written[-1]))})
        run.finish()

