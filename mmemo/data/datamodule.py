"""One fold of an EmoBox-layout corpus, validated up front: folds, labels, transcripts and audio.

All checking happens in :meth:`EmotionDataModule.setup`, before any training:
manifests, labels, audio paths, transcripts and every clip's audio. A run
therefore fails in its first seconds on bad input, never after hours of
training, and ``data.on_bad_audio=skip`` writes what it skipped to the run's
output folder. The data module knows nothing about encoders or heads: a recipe that
serves cached features turns audio decoding off (``decode_audio=False``), reads clips with
:meth:`EmotionDataModule.load_wave`, reports the ones its encoder could not use to
:meth:`EmotionDataModule.exclude` and wraps the datasets (:meth:`EmotionDataModule.map_datasets`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mmemo.data import provenance
from mmemo.data.audio import (
    SILENCE_DBFS,
    AudioError,
    UnusableAudioError,
    check_seconds,
    clip_identity,
    load_audio,
    silence_peak,
)
from mmemo.data.audio_scan import scan_audio
from mmemo.data.datasets import EmotionDataset, Example, collate
from mmemo.data.folds import Splits, audio_root_of, corpus_info, read_fold
from mmemo.data.labels import LabelMap
from mmemo.data.leakage import check_duplicate_audio
from mmemo.data.manifest import Issue, IssueCollector, Source, Utterance, resolve_audio_paths, resolve_video_paths
from mmemo.data.sampling import LengthBucketSampler
from mmemo.data.targets import Dimension, attach_targets, check_task, resolve_dimensions, uses_dimensions
from mmemo.errors import InvalidInput, MediaError

log = logging.getLogger(__name__)
BAD_AUDIO_POLICIES = ("error", "skip")


class EmotionDataModule(L.LightningDataModule):
    """One fold of an EmoBox-layout corpus, validated up front."""

    def __init__(
        self,
        root: str,
        fold: int = 1,
        *,
        name: str | None = None,
        audio_root: str | None = None,
        label_map: dict | str | None = None,
        classes: list[str] | None = None,
        valid_fraction: float = 0.2,
        valid_from: str = "speakers",
        split_seed: int = 0,
        allow_speaker_overlap: bool | None = None,
        max_seconds: float | None = 30.0,
        crop: str = "start",
        silence_dbfs: float | None = SILENCE_DBFS,
        on_bad_audio: str = "error",
        missing_text: str = "error",
        text_source: str = "manifest",
        asr: dict | None = None,
        audio_memory_gb: float = 2.0,
        batch_size: int = 32,
        eval_batch_size: int | None = 64,
        num_workers: int = 0,
        bucket_by_length: bool = True,
        use_audio: bool = True,
        use_text: bool = True,
        decode_audio: bool = True,
        use_video: bool = False,
        decode_video: bool = True,
        video: dict | None = None,
        output_dir: str | None = None,
        seed: int = 0,
        task: str = "categorical",
        dimensions: dict | list | None = None,
        missing_dimensions: str = "error",
    ):
        super().__init__()
        if on_bad_audio not in BAD_AUDIO_POLICIES:
            raise InvalidInput(f"data.on_bad_audio must be one of {BAD_AUDIO_POLICIES}, got {on_bad_audio!r}")
        self.root = Path(root)
        self.fold = int(fold)
        self.name = name or self.root.name
        self.audio_root = audio_root_of(self.root, audio_root)
        self.label_map_spec = label_map
        self.classes_spec = list(classes) if classes else None
        self.valid_fraction = valid_fraction
        self.valid_from = valid_from
        self.split_seed = split_seed
        self.allow_speaker_overlap = allow_speaker_overlap
        self.max_seconds = check_seconds(max_seconds, "data.max_seconds")
        self.crop = crop
        silence_peak(silence_dbfs)  # refuses a non-finite or positive level now, not per clip
        self.silence_dbfs = silence_dbfs
        self.on_bad_audio = on_bad_audio
        if missing_text not in ("error", "allow"):
            raise InvalidInput(f"data.missing_text must be 'error' or 'allow', got {missing_text!r}")
        self.missing_text = missing_text
        if text_source not in ("manifest", "asr"):
            raise InvalidInput(f"data.text_source must be 'manifest' or 'asr', got {text_source!r}")
        self.text_source = text_source
        from mmemo.data.asr import ASR_DEFAULTS

        unknown = set(asr or {}) - set(ASR_DEFAULTS)
        if unknown:
            raise InvalidInput(f"unknown data.asr options {sorted(unknown)}; known: {sorted(ASR_DEFAULTS)}")
        self.asr = {**ASR_DEFAULTS, **(asr or {})}
        self.asr_report = None
        self.audio_memory_bytes = int(audio_memory_gb * 2**30)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.bucket_by_length = bucket_by_length
        self.use_audio = use_audio
        self.use_text = use_text
        self.output_dir = Path(output_dir) if output_dir else None
        self.decode_audio = decode_audio
        from mmemo.video.track import VideoOptions

        self.video = VideoOptions.from_config(video)  # how a clip's video becomes a face track
        self.use_video = use_video
        self.decode_video = decode_video
        self.seed = seed
        self.task = check_task(task)
        self.dimensions_spec = dimensions
        if missing_dimensions not in ("error", "allow"):
            raise InvalidInput(f"data.missing_dimensions must be 'error' or 'allow', got {missing_dimensions!r}")
        self.missing_dimensions = missing_dimensions
        #: The dimensions learnt (names and declared scales), for dimensional and multi-task runs.
        self.dimensions: list[Dimension] = []
        self.label_map: LabelMap | None = None
        self.datasets: dict[str, EmotionDataset] = {}
        self.skipped: list[tuple[str, str, str, str]] = []  # split, key, file, reason
        self.fingerprint = ""
        self.splits: Splits | None = None
        self.files: list[tuple[str, Utterance]] = []  # (split, utterance) of every labelled utterance used
        self._is_set_up = False

    # -- preparation -----------------------------------------------------------------
    def prepare_data(self) -> None:
        """Nothing to download: corpora are prepared beforehand (``mmemo data prepare``)."""

    def setup(self, stage: str | None = None) -> None:
        if self._is_set_up:
            return
        self.prepare_data()
        overlap = None if self.allow_speaker_overlap is None else ("warn" if self.allow_speaker_overlap else "error")
        problems = IssueCollector()  # every stage adds what it finds; all are reported together
        splits = read_fold(self.root, self.fold, valid_fraction=self.valid_fraction,
                           valid_from=self.valid_from, seed=self.split_seed, speaker_overlap=overlap,
                           collect=problems)
        label_map_spec = self.label_map_spec
        if label_map_spec is None and (self.root / "label_map.json").is_file():
            label_map_spec = self.root / "label_map.json"
        self.label_map = LabelMap.build(label_map_spec, self.classes_spec,
                                        observed=[u.emo for u in splits.train])
        labelled: dict[str, tuple[list[Utterance], list[int]]] = {}
        for split, utterances in splits.items():
            kept, targets, dropped = self.label_map.apply(utterances, problems,
                                                          keep_dropped=self.task == "dimensional")
            if dropped:
                log.info("%s: dropped %d utterances by the label map (%s)", split,
                         sum(dropped.values()), dict(dropped))
            labelled[split] = (kept, targets)
        everything = [u for us, _ in labelled.values() for u in us]
        if self.use_audio or (self.use_text and self.text_source == "asr"):
            resolve_audio_paths(everything, self.audio_root, problems)
        if self.use_video:
            resolve_video_paths(everything, self.audio_root, problems)
        if self.use_text and self.text_source == "asr" and not problems:
            labelled = self._asr_transcripts(labelled)
        if self.use_text and self.missing_text == "error":
            self._check_transcripts(labelled, problems)
        if problems:
            if self.use_audio and self.on_bad_audio == "error":  # bad audio of the good lines, same pass
                self._check_audio([u for u in everything if u.audio_path is not None], problems)
            problems.raise_if_any()
        for split, (kept, _) in labelled.items():
            if not kept:
                raise InvalidInput(f"the {split} split of fold {self.fold} is empty after the label map "
                                   f"({splits.files.get(split, 'carved from train')})")
        if self.use_audio:
            duplicates = check_duplicate_audio({split: us for split, (us, _) in labelled.items()})
            duplicates.raise_errors()
        self.files = [(split, u) for split, (us, _) in labelled.items() for u in us]
        self.splits = splits
        self.fingerprint = provenance.fingerprint(splits, self.label_map)
        examples = {split: [Example(u, t) for u, t in zip(*pair)] for split, pair in labelled.items()}
        if uses_dimensions(self.task):
            self.dimensions = resolve_dimensions(self.dimensions_spec, corpus_info(self.root).get("dimensions"),
                                                 self.name)
        attach_targets(examples, self.task, self.dimensions, self.label_map.classes,
                       required=self.missing_dimensions == "error")
        decoding = self.use_audio and self.decode_audio
        if decoding:
            examples = self._scan_audio(examples)
        faces = self.load_faces if self.use_video and self.decode_video else None
        self.datasets = {split: EmotionDataset(ex, load_audio=self.load_wave, with_audio=decoding, load_faces=faces)
                         for split, ex in examples.items()}
        if faces is not None:
            self._probe_videos()
        self._log_summary(splits)
        self._is_set_up = True

    def _asr_transcripts(self, labelled: dict) -> dict:
        """Replace every transcript by Whisper's (cached per model); log the WER against the manifest's."""
        from mmemo.data.asr import score_asr, transcribe_utterances, with_asr_text

        everything = [u for utterances, _ in labelled.values() for u in utterances]
        texts, report = transcribe_utterances(everything, **self.asr)
        score_asr(everything, texts, report)
        self.asr_report = report
        replaced = {split: (with_asr_text(utterances, texts), targets)
                    for split, (utterances, targets) in labelled.items()}
        if report.wer:
            log.info("ASR (%s): WER %.2f%% on %d utterances with reference transcripts (%d transcribed, %d cached)",
                     report.model, 100 * report.wer["wer"], report.wer["utterances"], report.transcribed,
                     report.reused)
        if self.output_dir:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "asr.json").write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return replaced

    def _check_transcripts(self, labelled, problems: IssueCollector) -> None:
        issues = [
            Issue(u.source or Source("<memory>", 0), f"missing transcript ('text') for key {u.key!r}")
            for utterances, _ in labelled.values() for u in utterances if not (u.text or "").strip()
        ]
        problems.add(issues, hint="The text branch needs a transcript for every utterance: add 'text' to the "
                                     "manifest, run speech-only (model/text=none), or set data.missing_text=allow "
                                     "to treat those utterances' text as missing (the fusion head then uses the "
                                     "other modalities).")

    def _check_audio(self, utterances: list[Utterance], problems: IssueCollector) -> None:
        """Decode each clip once (kept nowhere) and add the unusable ones to ``problems``."""
        for u in tqdm(utterances, desc="checking audio", unit="clip", leave=False):
            try:
                self.load_wave(u)
            except AudioError as error:
                problems.add([Issue(u.source or Source("<memory>", 0), f"bad audio: {error}")],
                             hint="Fix or remove the unusable clips, or set data.on_bad_audio=skip.")

    def load_wave(self, utterance: Utterance) -> np.ndarray:
        """The clip as training sees it: its segment, cropped to ``max_seconds``, mono 16 kHz."""
        return self._load_clip(utterance).wave

    def clip_identity(self, utterance: Utterance) -> str:
        """What identifies the clip :meth:`load_wave` gives: the file, its segment and the cropping."""
        return clip_identity(utterance.audio_path, utterance.start, utterance.end, self.max_seconds, self.crop)

    def load_faces(self, utterance: Utterance):
        """The clip's face track (:mod:`mmemo.video`): its ``video`` between start and end, sampled at
        ``video.fps``; a line without video is one masked step (the modality is missing)."""
        from mmemo.video.track import empty_track, face_track

        if utterance.video_path is None:
            return empty_track(self.video)
        start, end = utterance.video_window
        return face_track(utterance.video_path, self.video, start=start, end=end, key=utterance.key)

    def video_identity(self, utterance: Utterance) -> str:
        """What identifies the face track :meth:`load_faces` gives (file, window, video options)."""
        from mmemo.video.track import track_identity

        if utterance.video_path is None:
            return "video:none"
        return track_identity(utterance.video_path, *utterance.video_window, self.video)

    def _load_clip(self, utterance: Utterance):
        return load_audio(utterance.audio_path, key=utterance.key, start=utterance.start, end=utterance.end,
                          max_seconds=self.max_seconds, crop=self.crop, silence_dbfs=self.silence_dbfs)

    def _scan_audio(self, examples: dict[str, list[Example]]) -> dict[str, list[Example]]:
        """Decode every clip once (:func:`~mmemo.data.audio_scan.scan_audio`), then apply the bad-audio policy."""
        kept, bad = scan_audio(examples, self._load_clip, self.audio_memory_bytes, self.skipped,
                               max_seconds=self.max_seconds, crop=self.crop)
        self._handle_bad_audio(bad)
        for split, split_examples in kept.items():
            if not split_examples:
                raise InvalidInput(f"no usable audio left in the {split} split of fold {self.fold}")
        return kept

    def _probe_videos(self) -> None:
        """Open each video and decode its first frame, so a corrupt file fails (or is skipped) now, not mid-epoch."""
        from mmemo.video.decode import VideoError, read_video

        failed = {}
        for u in (e.utterance for d in self.datasets.values() for e in d.examples if e.utterance.video_path):
            try:
                start, end = u.video_window
                read_video(u.video_path, start=start, end=end, fps=self.video.fps, max_seconds=1.0, key=u.key)
            except VideoError as error:
                failed[u.key] = error
        self.exclude(failed)

    def _handle_bad_audio(self, bad: list[MediaError]) -> None:
        """Apply data.on_bad_audio to the clips that failed (self.skipped already lists them)."""
        if bad and self.on_bad_audio == "error":
            raise UnusableAudioError(bad, "Fix or remove them, or set data.on_bad_audio=skip to train without "
                                          "them (the skipped keys are written to the run folder).")
        if bad:
            report = self._write_skip_report()
            log.warning("skipped %d unusable clip(s); keys and reasons in %s", len(bad), report)

    # -- what a recipe may do after setup ------------------------------------------------
    def exclude(self, failed: dict[str, MediaError]) -> None:
        """Clips something else found unusable (a feature cache's encoder): the bad-audio policy applies."""
        if not failed:
            return
        for split, dataset in self.datasets.items():
            for example in dataset.examples:
                if example.utterance.key in failed:
                    self.skipped.append((split, example.utterance.key, str(example.utterance.audio_path),
                                         failed[example.utterance.key].reason))
        self._handle_bad_audio(list(failed.values()))
        for split, dataset in self.datasets.items():
            dataset.examples = [e for e in dataset.examples if e.utterance.key not in failed]
            if not dataset.examples:
                raise InvalidInput(f"no usable audio left in the {split} split of fold {self.fold}")

    def map_datasets(self, wrap: Callable[[str, Dataset], Dataset]) -> None:
        """Replace each split's dataset by ``wrap(split, dataset)`` (which keeps ``.examples``)."""
        self.datasets = {split: wrap(split, dataset) for split, dataset in self.datasets.items()}

    def _write_skip_report(self) -> Path:
        folder = self.output_dir or Path.cwd()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "skipped_audio.tsv"
        with path.open("w", encoding="utf-8") as handle:
            handle.write("split\tkey\tfile\treason\n")
            for row in self.skipped:
                handle.write("\t".join(field.replace("\t", " ").replace("\n", " ") for field in row) + "\n")
        return path

    # -- provenance ------------------------------------------------------------------------
    def provenance(self) -> dict:
        """Which files this fold used (``meta.data`` of metrics.json; :mod:`mmemo.data.provenance`)."""
        return provenance.summary(self.splits, self.label_map, self.files, self.audio_root, self.use_audio)

    def write_file_list(self, folder: str | Path) -> Path:
        """``data_files.tsv``: split, key, audio file, segment and content SHA-1 of every utterance used."""
        return provenance.write_file_list(self.files, folder)

    def _log_summary(self, splits: Splits) -> None:
        assert self.label_map is not None
        for split, dataset in self.datasets.items():
            counts = Counter(self.label_map.classes[e.label] if e.label >= 0 else "(no class)"
                             for e in dataset.examples)
            speakers = {e.utterance.speaker for e in dataset.examples}
            log.info("fold %d %s: %d utterances, %d speakers, %s", self.fold, split, len(dataset),
                     len(speakers), dict(sorted(counts.items())))
        log.info("validation: %s", splits.valid_origin)

    # -- loaders ---------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        assert self.label_map is not None, "call setup() first"
        return self.label_map.classes

    def _progress(self) -> tuple[int, int]:
        """(epoch, training batches already done in it) from the trainer; (0, 0) without one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.datasets[split]
        size = self.batch_size if train else self.eval_batch_size
        common = dict(collate_fn=collate, num_workers=self.num_workers,
                      persistent_workers=self.num_workers > 0)
        distributed = LengthBucketSampler._world()[0] > 1  # DDP: this sampler shards (no padded duplicates)
        if (self.bucket_by_length and self.use_audio) or distributed or not train:
            sampler = LengthBucketSampler([e.seconds for e in dataset.examples], size, shuffle=train, seed=self.seed,
                                          bucket=self.bucket_by_length and self.use_audio,
                                          progress=self._progress if train else None)
            return DataLoader(dataset, batch_sampler=sampler, **common)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=size, shuffle=train, generator=generator, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
