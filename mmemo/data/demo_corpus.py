"""The built-in demo corpus as a data module: synthesised under its root on first use (``data=demo``)."""

from __future__ import annotations

import logging

from mmemo.data.datamodule import EmotionDataModule

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
