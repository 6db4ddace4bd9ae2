"""``mmemo demo``: the main job on the built-in corpus, end to end.

Trains, on every demo fold, a speech-only model (spectral encoder), a
text-only model (frozen MiniLM), their concat fusion and the classical
MFCC + SVM baseline, then prints UA / WA / macro-F1 as mean ± std over folds
and writes the table as markdown and CSV with a bar chart.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from pathlib import Path

from mmemo.config import compose
from mmemo.data.folds import available_folds
from mmemo.evaluation.metric_names import METRIC_LABELS
from mmemo.evaluation.plots import bar_chart
from mmemo.evaluation.tables import Run, build_table, to_markdown, write_table

log = logging.getLogger(__name__)

#: (row label, Hydra overrides). Neural rows share experiment=demo.
VARIANTS = (
    ("classical: MFCC stats + SVM", ["experiment=classical_baseline"]),
    ("speech only: spectral", ["experiment=demo", "model/text=none"]),
    ("text only: MiniLM (frozen)", ["experiment=demo", "model/speech=none"]),
    ("speech + text: concat fusion", ["experiment=demo"]),
)
METRICS = ("UA", "WA", "macro_F1")


def accuracy_by_cue(results: dict[str, list[dict]], corpus: Path) -> dict[str, dict[str, float]]:
    """Test accuracy (%) of each variant on the utterances whose label only speech, only text or both carry.

    This is the demo corpus's design check: a unimodal model should fail on the
    other modality's share, and fusion should handle all three.
    """
    from mmemo.data.manifest import read_manifest
    from mmemo.evaluation.breakdown import accuracy_by_field, field_values

    cues = field_values(read_manifest(corpus / "manifest.jsonl"))
    table = {}
    for label, runs in results.items():
        rows = []
        for run in runs:
            with open(Path(run["meta"]["output_dir"]) / "predictions.csv", newline="") as handle:
                rows += list(csv.DictReader(handle))
        table[label] = {c: 100 * entry["accuracy"] for c, entry in accuracy_by_field(rows, cues).items()}
    return table


def render_cue_table(table: dict[str, dict[str, float]]) -> str:
    cues = sorted({c for row in table.values() for c in row})
    lines = ["Test accuracy by which modality carries the label (%, pooled over folds)", "",
             "| model | " + " | ".join(f"cue={c}" for c in cues) + " |", "|---|" + "---|" * len(cues)]
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{row.get(c, float('nan')):.1f}" for c in cues) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, list[dict]], folder: Path, cues: str) -> tuple[list[Path], str]:
    """The demo table (markdown, LaTeX, CSV), its bar chart, and the markdown text."""
    runs = [Run(Path(r["meta"]["output_dir"]), r["test"], r["meta"] | {"variant": label})
            for label, label_runs in results.items() for r in label_runs]
    table = build_table(runs, row=lambda run: run.meta["variant"], column=lambda run: "demo", metrics=METRICS,
                        title="Demo corpus, speaker-independent folds", row_order=list(results))
    written = write_table(table, folder, "demo")
    markdown = to_markdown(table) + "\n" + cues
    written[0].write_text(markdown, encoding="utf-8")
    series = {METRIC_LABELS[m]: [table.cells[(row, "demo")].mean_std(m) for row in table.rows] for m in METRICS}
    written.append(bar_chart(table.rows, series, folder / "demo.png", chance=100 / 4,
                             title="Demo corpus: test mean ± std over folds"))
    return written, markdown


def run_demo(folds: list[int] | str = "all", output_dir: str | None = None, results_dir: str | None = None,
             extra_overrides: list[str] | None = None) -> dict[str, list[dict]]:
    """Run every variant on every requested fold; print and write the comparison table.

    Returns each variant's list of run results (one per fold).
    """
    from mmemo.recipes import run_config

    started = time.time()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    first = compose("train", ["experiment=demo"], output_dir=None)
    out = Path(output_dir or Path(first.paths.runs_dir) / "demo" / stamp)
    datamodule_root = Path(first.data.root)
    if not (datamodule_root / "fold_1").is_dir():
        from mmemo.data.synthetic import synthesize_corpus

        synthesize_corpus(datamodule_root, **first.data.synth)
    fold_list = available_folds(datamodule_root) if folds == "all" else list(folds)
    results: dict[str, list[dict]] = {label: [] for label, _ in VARIANTS}
    for fold in fold_list:
        for label, overrides in VARIANTS:
            slug = label.split(":")[0].replace(" + ", "_").replace(" ", "_")
            run_dir = out / slug / f"fold_{fold}"
            cfg = compose("train", [*overrides, f"data.fold={fold}", *(extra_overrides or [])],
                          output_dir=str(run_dir))
            log.info("demo: %s, fold %d -> %s", label, fold, run_dir)
            results[label].append(run_config(cfg))
            log.info("demo: %s, fold %d: test UA %.1f%%", label, fold, 100 * results[label][-1]["test"]["UA"])
    cues = render_cue_table(accuracy_by_cue(results, datamodule_root))
    written, markdown = write_results(results, out, cues)
    if results_dir:
        for path in written:
            Path(results_dir).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(results_dir) / path.name)
    print("\n" + markdown)
    print(f"runs and table: {out}  ({(time.time() - started) / 60:.1f} min)")
    return results
