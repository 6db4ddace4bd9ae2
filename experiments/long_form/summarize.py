"""Mean ± std over folds of the long-form study (results/fold_*.json from run.py), as a table and a plot.

    python experiments/long_form/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
METRICS = (("UA", "segment UA"), ("WA", "WA"), ("macro_F1", "macro-F1"), ("EDER", "EDER"), ("DER", "DER"))


def main() -> None:
    runs = [json.loads(p.read_text()) for p in sorted((HERE / "results").glob("fold_*.json"))]
    if not runs:
        raise SystemExit(f"no results/fold_*.json under {HERE}: run run.py first")
    names = list(dict.fromkeys(name for r in runs for name in r["rows"]))
    print(f"{len(runs)} folds; recordings of {np.mean([r['recording']['seconds'] for r in runs]):.0f} s on average "
          f"({sum(r['recording']['utterances'] for r in runs)} utterances in all); Whisper WER on the reference "
          f"segments {100 * np.mean([r['reference_transcript_wer_of_whisper'] for r in runs]):.1f} "
          f"± {100 * np.std([r['reference_transcript_wer_of_whisper'] for r in runs]):.1f} %")
    print("| scoring | " + " | ".join(label + " %" for _, label in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    summary = {}
    for name in names:
        cells = []
        for key, _ in METRICS:
            values = [r["rows"][name][key] for r in runs if key in r["rows"].get(name, {})]
            if values:
                summary.setdefault(name, {})[key] = (float(np.mean(values)), float(np.std(values)))
                cells.append(f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}")
            else:
                cells.append("–")
        print(f"| {name} | " + " | ".join(cells) + " |")
    (HERE / "results" / "summary.json").write_text(json.dumps({"folds": len(runs), "rows": summary}, indent=1) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4.2))
    for k, name in enumerate(names):
        values = [100 * r["rows"][name]["UA"] for r in runs if name in r["rows"]]
        axis.bar(k, np.mean(values), yerr=np.std(values), capsize=4, color=f"C{k}")
        axis.scatter([k] * len(values), values, color="black", s=10, zorder=3)
    axis.axhline(25, color="grey", linestyle=":", label="chance (4 classes)")
    axis.set_xticks(range(len(names)), [n.replace(" + ", "\n+ ").replace(" (the pipeline)", "\n(pipeline)")
                                        .replace(", margins", ",\nmargins").replace(", no text", ",\nno text")
                                        for n in names], fontsize=8)
    axis.set_ylabel("segment UA % (mean ± std, dots: folds)")
    axis.set_title(f"The same speech + text checkpoint, {len(names)} ways to reach its segments and text")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(HERE / "results" / "long_form_ua.png", dpi=120)
    print(f"wrote {HERE / 'results' / 'long_form_ua.png'}")


if __name__ == "__main__":
    main()
