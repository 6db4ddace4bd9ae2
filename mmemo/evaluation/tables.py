"""Tables from finished runs: mean ± std over folds × seeds, with gaps flagged, never hidden.

A run is a folder with a ``metrics.json`` (neural, classical and ``mmemo eval``
runs all write one). Runs are grouped into cells by a row key and a column key
(e.g. fusion head × modalities, or model × dataset); each cell averages its
runs' test metrics over folds and seeds. When a cell lacks some of the folds or
seeds that other cells of the table have, it is marked with ``†`` and the
missing (fold, seed) pairs are listed under the table, so a mean over four
folds is never silently presented as a mean over five.

**Cited rows.** Published results can sit in the same table (``cited=``, ``mmemo table
--cited FILE.csv``): a CSV with ``row, column`` and metric columns in percent (``UA, WA,
macro_F1``) plus ``source``; lines starting with ``#`` hold the full citation. Every row of
the table then says where it comes from: *this study* (with its runs) or *cited* (the source),
so a reader never mistakes a copied number for a reproduced one.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmemo.errors import InvalidInput
from mmemo.evaluation.metric_names import METRIC_LABELS, is_percent, metric_label
from mmemo.evaluation.report import read_metrics


@dataclass
class Run:
    """One finished run: its folder, test metrics and metadata (config, fold, seed, dataset)."""

    folder: Path
    test: dict
    meta: dict

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    @property
    def fold(self):
        return self.meta.get("fold")

    @property
    def seed(self):
        return self.meta.get("seed")

    @property
    def dataset(self) -> str:
        return str(self.meta.get("dataset", "?"))


def load_runs(roots: Iterable[str | Path]) -> list[Run]:
    """Every run folder (one with metrics.json) under the given folders, sorted by path."""
    runs = []
    for root in roots:
        for path in sorted(Path(root).rglob("metrics.json")):
            data = read_metrics(path.parent)
            if data.get("test"):
                runs.append(Run(path.parent, data["test"], data.get("meta", {})))
    return runs


@dataclass
class Cell:
    values: dict[str, list[float]]
    pairs: set[tuple] = field(default_factory=set)
    missing: list[tuple] = field(default_factory=list)

    def mean_std(self, metric: str) -> tuple[float, float]:
        values = self.values.get(metric, [])
        if not values:
            return math.nan, math.nan
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        scale = 100 if is_percent(metric) else 1
        return scale * mean, scale * std


@dataclass
class Cited:
    """A published result: metric -> value in percent, and where it was published."""

    values: dict[str, float]
    source: str


@dataclass
class Table:
    """rows × columns of cells; each cell holds the metrics of its runs (or a cited result)."""

    title: str
    rows: list[str]
    columns: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str], Cell]
    cited: dict[tuple[str, str], Cited] = field(default_factory=dict)
    citations: list[str] = field(default_factory=list)

    def source(self, row: str) -> str:
        """``this study (n runs)`` or ``cited: <source>`` for a row."""
        ours = [cell for (r, _), cell in self.cells.items() if r == row]
        if ours:
            return f"this study ({sum(len(cell.pairs) for cell in ours)} runs)"
        sources = sorted({c.source for (r, _), c in self.cited.items() if r == row})
        return "cited: " + "; ".join(sources)

    @property
    def flagged(self) -> list[tuple[str, str, list[tuple]]]:
        return [(r, c, cell.missing) for (r, c), cell in self.cells.items() if cell.missing]


def load_cited(path: str | Path) -> tuple[dict[tuple[str, str], Cited], list[str]]:
    """Published results from a CSV (module docstring), and its ``#`` citation lines."""
    from mmemo.textfiles import read_text

    path = Path(path)
    lines = read_text(path, max_bytes=1 << 20).splitlines()
    citations = [line.lstrip("#").strip() for line in lines if line.startswith("#") and line.lstrip("#").strip()]
    reader = csv.DictReader(line for line in lines if line.strip() and not line.startswith("#"))
    cited: dict[tuple[str, str], Cited] = {}
    for number, entry in enumerate(reader, start=2 + len(citations)):
        if not entry.get("row") or not entry.get("source"):
            raise InvalidInput(f"{path}:{number}: a cited row needs 'row' and 'source'")
        values = {}
        for metric in METRIC_LABELS:
            text = (entry.get(metric) or "").strip()
            if text:
                try:
                    values[metric] = float(text)
                except ValueError:
                    raise InvalidInput(f"{path}:{number}: {metric} must be a number in percent, got {text!r}") from None
                if not 0 <= values[metric] <= 100:
                    raise InvalidInput(f"{path}:{number}: {metric} {text} is not a percentage")
        cited[(entry["row"], entry.get("column") or "")] = Cited(values, entry["source"])
    return cited, citations


def build_table(runs: Sequence[Run], *, row: Callable[[Run], str], column: Callable[[Run], str],
                metrics: Sequence[str] = ("UA", "WA", "macro_F1"), title: str = "",
                row_order: Sequence[str] | None = None, column_order: Sequence[str] | None = None,
                cited: Sequence[str | Path] = ()) -> Table:
    """Group runs into cells; a cell's expected (fold, seed) pairs are those of its column.

    ``cited``: CSV files of published results (:func:`load_cited`) shown in the same table;
    a cited row with an empty column goes in every column of the table.
    """
    cells: dict[tuple[str, str], Cell] = {}
    expected: dict[str, set[tuple]] = {}
    for run in runs:
        key = (row(run), column(run))
        cell = cells.setdefault(key, Cell({m: [] for m in metrics}))
        pair = (run.fold, run.seed)
        if pair in cell.pairs:
            raise InvalidInput(f"two runs for {key} fold {run.fold} seed {run.seed}; the second is {run.folder}")
        cell.pairs.add(pair)
        for metric in metrics:
            if metric not in run.test:
                raise InvalidInput(f"{run.folder}/metrics.json has no test {metric!r} (its task is "
                                   f"{run.test.get('task', 'categorical')}); choose --metrics it has")
            cell.values[metric].append(float(run.test[metric]))
        expected.setdefault(key[1], set()).add(pair)
    for (_r, c), cell in cells.items():
        cell.missing = sorted(expected[c] - cell.pairs, key=str)
    columns = _ordered({c for _, c in cells}, column_order)
    published: dict[tuple[str, str], Cited] = {}
    citations: list[str] = []
    for path in cited:
        found, notes = load_cited(path)
        citations += notes
        for (r, c), entry in found.items():
            for column_name in ([c] if c else columns or [""]):
                published[(r, column_name)] = entry
    columns = _ordered({c for _, c in cells} | {c for _, c in published}, column_order)
    rows = _ordered({r for r, _ in cells}, row_order) + \
        _ordered({r for r, _ in published} - {r for r, _ in cells}, row_order)
    return Table(title, rows, columns, list(metrics), cells, published, citations)


def _ordered(found: set[str], preferred: Sequence[str] | None) -> list[str]:
    preferred = list(preferred or [])
    return [p for p in preferred if p in found] + sorted(found - set(preferred))


def _cell_text(cell: Cell | None, metric: str, latex: bool = False) -> str:
    if cell is None:
        return "–"
    mean, std = cell.mean_std(metric)
    pm = r"$\pm$" if latex else "±"
    dagger = (r"$^\dagger$" if latex else "†") if cell.missing else ""
    digits = 2 if is_percent(metric) else 3
    return f"{mean:.{digits}f} {pm} {std:.{digits}f}{dagger}"


def _headers(table: Table) -> list[str]:
    if len(table.columns) == 1:
        return [metric_label(m) for m in table.metrics]
    return [f"{c} {metric_label(m)}" for c in table.columns for m in table.metrics]


def _row_cells(table: Table, row: str, latex: bool = False) -> list[str]:
    out = []
    for c in table.columns:
        for m in table.metrics:
            cited = table.cited.get((row, c))
            if (row, c) not in table.cells and cited is not None:
                out.append(f"{cited.values[m]:.2f}" if m in cited.values else "–")
            else:
                out.append(_cell_text(table.cells.get((row, c)), m, latex))
    return out


def _footnotes(table: Table) -> list[str]:
    notes = []
    for r, c, missing in table.flagged:
        shown = ", ".join(f"fold {f} seed {s}" for f, s in missing)
        notes.append(f"† {r} / {c}: missing {shown}")
    return notes


def _units(metrics: Sequence[str]) -> str:
    """``(%)``, ``(fractions)`` or, for a mixed table, which metrics are which."""
    fractions = [metric_label(m) for m in metrics if not is_percent(m)]
    if not fractions:
        return "(%)"
    if len(fractions) == len(metrics):
        return "(fractions)"
    return f"({', '.join(metric_label(m) for m in metrics if is_percent(m))} in %; the rest as fractions)"


def to_markdown(table: Table) -> str:
    counts = {len(cell.pairs) for cell in table.cells.values()}
    headers = _headers(table) + (["source"] if table.cited else [])
    lines = [f"{table.title}" if table.title else "", "",
             "| | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers)]
    for row in table.rows:
        source = [table.source(row)] if table.cited else []
        lines.append(f"| {row} | " + " | ".join(_row_cells(table, row) + source) + " |")
    lines += ["", f"Test mean ± std {_units(table.metrics)} over folds × seeds; runs per cell: {sorted(counts)}."]
    if table.cited:
        lines += ["Cited rows are copied from their publication (a single published figure, no ± here), "
                  "not reproduced by this study:"] + [f"- {citation}" for citation in table.citations]
    lines += _footnotes(table)
    return "\n".join(line for line in lines if line is not None).strip() + "\n"


def to_latex(table: Table) -> str:
    headers = _headers(table) + (["source"] if table.cited else [])
    lines = [r"\begin{tabular}{l" + "c" * len(headers) + "}", r"\toprule",
             " & " + " & ".join(h.replace("_", r"\_") for h in headers) + r" \\", r"\midrule"]
    for row in table.rows:
        source = [table.source(row).replace("_", r"\_")] if table.cited else []
        lines.append(row.replace("_", r"\_") + " & " + " & ".join(_row_cells(table, row, latex=True) + source) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = _footnotes(table)
    if notes:
        lines += ["% " + note for note in notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "column", "metric", "mean", "std", "runs", "missing", "source"])
    for row in table.rows:
        for column in table.columns:
            cell = table.cells.get((row, column))
            cited = table.cited.get((row, column))
            if cell is None and cited is not None:
                for metric in table.metrics:
                    if metric in cited.values:
                        writer.writerow([row, column, metric, f"{cited.values[metric]:.4f}", "", "", "",
                                         f"cited: {cited.source}"])
                continue
            if cell is None:
                continue
            for metric in table.metrics:
                mean, std = cell.mean_std(metric)
                missing = ";".join(f"fold{f}/seed{s}" for f, s in cell.missing)
                writer.writerow([row, column, metric, f"{mean:.4f}", f"{std:.4f}", len(cell.pairs), missing,
                                 "this study"])
    return buffer.getvalue()


def write_table(table: Table, folder: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>.md``, ``.tex`` and ``.csv`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, render in ((".md", to_markdown), (".tex", to_latex), (".csv", to_csv)):
        path = folder / f"{stem}{suffix}"
        path.write_text(render(table), encoding="utf-8")
        written.append(path)
    return written


def run_key(run: Run, key: str) -> str:
    """A row/column label: ``dataset``, ``fold``, ``seed``, or a dotted config path (``model.fusion.name``)."""
    if key in ("dataset", "fold", "seed"):
        return str(getattr(run, key))
    value = run.config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "none" if value is None else str(value)
