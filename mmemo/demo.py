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

import numpy as np

from mmemo.config import compose
from mmemo.data.folds import available_folds

log = logging.getLogger(__name__)

#: (row label, Hydra overrides). Neural rows share experiment=demo.
VARIANTS = (
    ("classical: MFCC stats + SVM", ["experiment=classical_baseline"]),
    ("speech only: spectral", ["experiment=demo", "model/text=none"]),
    ("text only: MiniLM (frozen)", ["experiment=demo", "model/speech=none"]),
    ("speech + text: concat fusion", ["experiment=demo"]),
)
METRICS = ("UA", "WA", "macro_F1")


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = 100 * np.asarray(values)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise(results: dict[str, list[dict]]) -> list[dict]:
    """One row per variant: mean and std (over folds) of each metric, in percent."""
    rows = []
    for label, runs in results.items():
        row = {"model": label, "folds": len(runs)}
        for metric in METRICS:
            row[metric], row[f"{metric}_std"] = _mean_std([run["test"][metric] for run in runs])
        rows.append(row)
    return rows


def accuracy_by_cue(results: dict[str, list[dict]], corpus: Path) -> dict[str, dict[str, float]]:
    """Test accuracy (%) of each variant on the utterances whose label only speech, only text or both carry.

    This is the demo corpus's design check: a unimodal model should fail on the
    other modality's share, and fusion should handle all three.
    """
    from mmemo.data.manifest import read_manifest

    cue = {u.key: u.extra.get("cue") for u in read_manifest(corpus / "manifest.jsonl")}
    table = {}
    for label, runs in results.items():
        hits: dict[str, list[bool]] = {}
        for run in runs:
            with open(Path(run["meta"]["output_dir"]) / "predictions.csv", newline="") as handle:
                for row in csv.DictReader(handle):
                    hits.setdefault(cue.get(row["key"]) or "?", []).append(row["label"] == row["prediction"])
        table[label] = {c: 100 * float(np.mean(v)) for c, v in sorted(hits.items())}
    return table


def render_cue_table(table: dict[str, dict[str, float]]) -> str:
    cues = sorted({c for row in table.values() for c in row})
    lines = ["Test accuracy by which modality carries the label (%, pooled over folds)", "",
             "| model | " + " | ".join(f"cue={c}" for c in cues) + " |", "|---|" + "---|" * len(cues)]
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{row.get(c, float('nan')):.1f}" for c in cues) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(rows: list[dict], folds: list[int]) -> str:
    lines = [f"Demo corpus, speaker-independent folds {folds}: test mean ± std over folds (%)", "",
             "| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for row in rows:
        cells = [f"{row[m]:.1f} ± {row[m + '_std']:.1f}" for m in METRICS]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_rows(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(METRICS)
    x = np.arange(len(rows))
    for i, metric in enumerate(METRICS):
        axis.bar(x + i * width, [r[metric] for r in rows], width, yerr=[r[metric + "_std"] for r in rows],
                 capsize=3, label=metric)
    axis.axhline(100 / 4, color="grey", linestyle=":", label="chance (4 classes)")
    axis.set_xticks(x + width * (len(METRICS) - 1) / 2, [r["model"].replace(": ", ":\n") for r in rows], fontsize=8)
    axis.set_ylabel("test %")
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_table(rows: list[dict], folds: list[int], folder: Path, cues: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / "demo.md"
    markdown.write_text(render_markdown(rows, folds) + ("\n" + cues if cues else ""), encoding="utf-8")
    table = folder / "demo.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    return [markdown, table, plot_rows(rows, folder / "demo.png")]


def run_demo(folds: list[int] | str = "all", output_dir: str | None = None, results_dir: str | None = None,
             extra_overrides: list[str] | None = None) -> list[dict]:
    """Run every variant on every requested fold; print and write the comparison table."""
    from mmemo.training.run import train

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
            results[label].append(train(cfg))
            log.info("demo: %s, fold %d: test UA %.1f%%", label, fold, 100 * results[label][-1]["test"]["UA"])
    rows = summarise(results)
    cues = render_cue_table(accuracy_by_cue(results, datamodule_root))
    written = write_table(rows, fold_list, out, cues)
    if results_dir:
        for path in written:
            Path(results_dir).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(results_dir) / path.name)
    print("\n" + render_markdown(rows, fold_list) + "\n" + cues)
    print(f"runs and table: {out}  ({(time.time() - started) / 60:.1f} min)")
    return rows
