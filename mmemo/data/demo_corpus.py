"""The built-in demo corpus as a data module: synthesised under its root on first use (``data=demo``),
and brought up to date in place when it predates the arousal/valence ratings."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mmemo.data.datamodule import EmotionDataModule
from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)


class DemoDataModule(EmotionDataModule):
    """:class:`EmotionDataModule` over the espeak-ng demo corpus, which is written if ``root`` lacks it.

    ``synth``: options of :func:`mmemo.data.synthetic.synthesize_corpus` (seed, speakers,
    utterances per speaker).
    """

    def __init__(self, root: str, fold: int = 1, *, synthesize_if_missing: bool = True, synth: dict | None = None,
                 **options):
        super().__init__(root, fold, **options)
        self.synthesize_if_missing = synthesize_if_missing
        self.synth = dict(synth or {})

    def prepare_data(self) -> None:
        if self.synthesize_if_missing and not (self.root / f"fold_{self.fold}").is_dir():
            from mmemo.data.synthetic import synthesize_corpus

            log.info("demo corpus not found at %s; synthesising it (one-off)", self.root)
            synthesize_corpus(self.root, **self.synth)
        elif (self.root / "corpus.json").is_file():
            annotate_corpus(self.root)  # a corpus from before the ratings (CORPUS_VERSION 1)


def annotate_corpus(root: str | Path) -> bool:
    """Add the ratings to a demo corpus written before they existed (manifest and fold files, in place).

    Re-plans the corpus from the seed and sizes its ``corpus.json`` records and checks each line's
    transcript against the plan before touching anything; ``corpus.json`` is rewritten last, so an
    interrupted run is redone on the next call. Returns whether anything changed.
    """
    from mmemo.data.demo_dimensions import DIMENSIONS, RULES, extras
    from mmemo.data.synthetic import STYLES, plan_corpus

    root = Path(root)
    info_path = root / "corpus.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("dimensions"):
        return False
    plans = {p.key: p for p in plan_corpus(int(info["seed"]), int(info["speakers"]),
                                           int(info["utterances_per_speaker"]), dict(info["cue_shares"]))}
    files = [root / "manifest.jsonl", *sorted(root.glob("fold_*/*.jsonl"))]
    rewritten = {}
    for path in files:
        lines = []
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            line = json.loads(text)
            plan = plans.get(line.get("key"))
            if plan is None or plan.text != line.get("text"):
                raise InvalidInput(f"{path}:{number}: {line.get('key')!r} does not match the demo plan of seed "
                                   f"{info['seed']}; rebuild the corpus (mmemo data demo --overwrite)")
            lines.append(json.dumps(line | extras(plan, STYLES["neutral"])))
        rewritten[path] = "\n".join(lines) + "\n"
    for path, text in rewritten.items():
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    info |= {"dimensions": DIMENSIONS, "dimension_rules": RULES}
    tmp = info_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, info_path)
    log.info("demo corpus %s: added arousal/valence ratings to %d files", root, len(files))
    return True
