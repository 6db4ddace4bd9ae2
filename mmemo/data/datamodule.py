"""From fold files to batches: ``{audio, audio_mask, text, label, key, speaker}``.

All checking happens in :meth:`EmotionDataModule.setup`, before any training:
manifests, labels, audio paths, transcripts and every clip's audio. A run
therefore fails in its first seconds on bad input, never after hours of
training, and ``data.on_bad_audio=skip`` writes what it skipped to the run's
output folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from mmemo.data.audio import (
    SILENCE_DBFS,
    AudioError,
    UnusableAudioError,
    check_seconds,
    load_audio,
    silence_peak,
)
from mmemo.data.folds import Splits, audio_root_of, read_fold
from mmemo.data.labels import LabelMap
from mmemo.data.leakage import check_duplicate_audio
from mmemo.data.manifest import Issue, IssueCollector, Source, Utterance, resolve_audio_paths

log = logging.getLogger(__name__)
BAD_AUDIO_POLICIES = ("error", "skip")


@dataclass
class Example:
    utterance: Utterance
    label: int
    wave: np.ndarray | None = None  # decoded audio, kept when it fits the memory budget
    seconds: float = 0.0
    features: dict[str, str] = field(default_factory=dict)  # modality -> item id in its feature store


class EmotionDataset(Dataset):
    """Examples of one split; audio comes from memory or is decoded on access, features from stores."""

    def __init__(self, examples: list[Example], *, load_audio_fn=None, stores: dict | None = None,
                 pooled: bool = False, frame_stride: dict[str, int] | None = None):
        self.examples = examples
        self._load = load_audio_fn
        self._stores = stores or {}
        self._pooled = pooled
        self._stride = {m: int(s) for m, s in (frame_stride or {}).items() if m in self._stores and int(s) > 1}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        item = {
            "key": example.utterance.key,
            "speaker": example.utterance.speaker or "",
            "text": example.utterance.text or "",
            "label": example.label,
        }
        if self._load is not None:
            item["audio"] = example.wave if example.wave is not None else self._load(example.utterance)
        for modality, store in self._stores.items():
            item_id = example.features[modality]
            if self._pooled:
                item[f"{modality}_features"] = store.get_moments(item_id)
                item[f"{modality}_features_moments"] = True
            elif modality in self._stride:
                item[f"{modality}_features"] = store.get_windows(item_id, self._stride[modality])
                item[f"{modality}_features_stride"] = self._stride[modality]
            else:
                item[f"{modality}_features"] = store.get(item_id)
        return item


def _pad_first_axis(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [T_i, ...] arrays into [B, T_max, ...] with a [B, T_max] validity mask (filled in numpy: one copy)."""
    lengths = np.array([a.shape[0] for a in arrays])
    out = np.zeros((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), dtype=np.float32)
    for row, array in enumerate(arrays):
        out[row, : lengths[row]] = array
    mask = np.arange(out.shape[1])[None] < lengths[:, None]
    return torch.from_numpy(out), torch.from_numpy(mask)


def collate(items: list[dict]) -> dict:
    """Pad audio (and cached features) to the longest item and build masks; text stays raw strings."""
    batch = {
        "key": [item["key"] for item in items],
        "speaker": [item["speaker"] for item in items],
        "text": [item["text"] for item in items],
        "label": torch.tensor([item["label"] for item in items], dtype=torch.long),
    }
    if "audio" in items[0]:
        batch["audio"], batch["audio_mask"] = _pad_first_axis([item["audio"] for item in items])
    for name in [k for k in items[0] if k.endswith("_features")]:
        batch[name], batch[f"{name}_mask"] = _pad_first_axis([item[name] for item in items])
        if f"{name}_stride" in items[0]:
            batch[f"{name}_stride"] = items[0][f"{name}_stride"]
        if f"{name}_moments" in items[0]:
            batch[f"{name}_moments"] = True
    return batch


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length clips, so little compute is spent on padding.

    Indices are sorted by length inside shuffled windows of ``bucket_batches``
    batches, then the batches themselves are shuffled; reseeded every epoch.

    The order is a pure function of (seed, epoch): with ``progress`` (the trainer's
    ``(epoch, batches done in it)``) a run resumed mid-epoch continues with the very
    batches the uninterrupted run would have seen. Under DDP each process takes every
    world-th batch; training pads with repeated batches (equal step counts), evaluation
    does not, so no sample is counted twice in the metrics.
    """

    def __init__(self, lengths: Sequence[float], batch_size: int, *, shuffle: bool, seed: int,
                 bucket_batches: int = 50, bucket: bool = True,
                 progress: Callable[[], tuple[int, int]] | None = None):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.bucket = bucket
        self.progress = progress
        self.epoch = 0  # used when no trainer reports progress

    @staticmethod
    def _world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def __len__(self) -> int:
        batches = (len(self.lengths) + self.batch_size - 1) // self.batch_size
        world, rank = self._world()
        if self.shuffle:
            return -(-batches // world)
        return len(range(rank, batches, world))

    def batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` (all processes), in order."""
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + epoch)
        if self.shuffle:
            rng.shuffle(order)
        ordered: list[int] = order
        if self.bucket:
            window = self.batch_size * self.bucket_batches
            ordered = []
            for begin in range(0, len(order), window):
                ordered += sorted(order[begin: begin + window], key=lambda i: self.lengths[i])
        batches = [ordered[i: i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        if self.shuffle and self.bucket:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, done = self.progress() if self.progress else (self.epoch, 0)
        self.epoch = epoch + 1
        batches = self.batches(epoch)
        world, rank = self._world()
        if world > 1:
            if self.shuffle and len(batches) % world:
                batches = batches + batches[: world - len(batches) % world]
            batches = batches[rank::world]
        yield from batches[done if self.shuffle else 0:]


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
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        bucket_by_length: bool = True,
        use_audio: bool = True,
        use_text: bool = True,
        output_dir: str | None = None,
        seed: int = 0,
        synthesize_if_missing: bool = False,
        synth: dict | None = None,
    ):
        super().__init__()
        if on_bad_audio not in BAD_AUDIO_POLICIES:
            raise ValueError(f"data.on_bad_audio must be one of {BAD_AUDIO_POLICIES}, got {on_bad_audio!r}")
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
            raise ValueError(f"data.missing_text must be 'error' or 'allow', got {missing_text!r}")
        self.missing_text = missing_text
        if text_source not in ("manifest", "asr"):
            raise ValueError(f"data.text_source must be 'manifest' or 'asr', got {text_source!r}")
        self.text_source = text_source
        from mmemo.data.asr import ASR_DEFAULTS

        unknown = set(asr or {}) - set(ASR_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown data.asr options {sorted(unknown)}; known: {sorted(ASR_DEFAULTS)}")
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
        self.seed = seed
        self.synthesize_if_missing = synthesize_if_missing
        self.synth = dict(synth or {})
        self.label_map: LabelMap | None = None
        self.datasets: dict[str, EmotionDataset] = {}
        self.skipped: list[tuple[str, str, str, str]] = []  # split, key, file, reason
        self.fingerprint = ""
        self.splits: Splits | None = None
        self.files: list[tuple[str, Utterance]] = []  # (split, utterance) of every labelled utterance used
        self.feature_sources: dict = {}
        self.feature_pooled = False
        self.feature_stride: dict[str, int] = {}
        self.feature_batch_size = 16
        self.feature_device = "cpu"
        self._is_set_up = False

    def use_features(self, sources: dict, *, batch_size: int = 16, device: str = "cpu", pooled: bool = False,
                     frame_stride: dict[str, int] | None = None) -> None:
        """Serve these modalities from frozen-feature stores (encoding what they lack in setup).

        ``pooled=True`` serves each utterance's mean and mean of squares over frames
        (``FeatureStore.get_moments``), for heads that pool first anyway (see
        ``FusionHead.needs_frames``).
        ``frame_stride`` ({modality: n}) serves frames already averaged in windows
        of n, for heads that downsample first (``cross_attention``'s ``frame_stride``).
        """
        if self._is_set_up:
            raise RuntimeError("use_features() must be called before setup()")
        self.feature_sources = dict(sources)
        self.feature_pooled = pooled
        self.feature_stride = dict(frame_stride or {})
        self.feature_batch_size = batch_size
        self.feature_device = device

    # -- preparation -----------------------------------------------------------------
    def prepare_data(self) -> None:
        """Create the built-in demo corpus on first use (only for ``data=demo``)."""
        if self.synthesize_if_missing and not (self.root / f"fold_{self.fold}").is_dir():
            from mmemo.data.synthetic import synthesize_corpus

            log.info("demo corpus not found at %s; synthesising it (one-off)", self.root)
            synthesize_corpus(self.root, **self.synth)

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
            kept, targets, dropped = self.label_map.apply(utterances, problems)
            if dropped:
                log.info("%s: dropped %d utterances by the label map (%s)", split,
                         sum(dropped.values()), dict(dropped))
            labelled[split] = (kept, targets)
        everything = [u for us, _ in labelled.values() for u in us]
        if self.use_audio or (self.use_text and self.text_source == "asr"):
            resolve_audio_paths(everything, self.audio_root, problems)
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
                raise ValueError(f"the {split} split of fold {self.fold} is empty after the label map "
                                 f"({splits.files.get(split, 'carved from train')})")
        if self.use_audio:
            duplicates = check_duplicate_audio({split: us for split, (us, _) in labelled.items()})
            duplicates.raise_errors()
        self.files = [(split, u) for split, (us, _) in labelled.items() for u in us]
        self.splits = splits
        self.fingerprint = self._fingerprint(splits)
        examples = {split: [Example(u, t) for u, t in zip(*pair)] for split, pair in labelled.items()}
        if self.feature_sources:
            examples = self._attach_features(examples)
        raw_audio = self.use_audio and "speech" not in self.feature_sources
        if raw_audio:
            examples = self._scan_audio(examples)
        loader = self._load_wave if raw_audio else None
        stores = {m: source.store for m, source in self.feature_sources.items()}
        self.datasets = {split: EmotionDataset(ex, load_audio_fn=loader, stores=stores, pooled=self.feature_pooled,
                                               frame_stride=self.feature_stride)
                         for split, ex in examples.items()}
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
                self._load_wave(u)
            except AudioError as error:
                problems.add([Issue(u.source or Source("<memory>", 0), f"bad audio: {error}")],
                             hint="Fix or remove the unusable clips, or set data.on_bad_audio=skip.")

    def _load_wave(self, utterance: Utterance) -> np.ndarray:
        return self._load_clip(utterance).wave

    def _load_clip(self, utterance: Utterance):
        return load_audio(utterance.audio_path, key=utterance.key, start=utterance.start, end=utterance.end,
                          max_seconds=self.max_seconds, crop=self.crop, silence_dbfs=self.silence_dbfs)

    def _scan_audio(self, examples: dict[str, list[Example]]) -> dict[str, list[Example]]:
        """Decode every clip once: reject or skip bad ones, and keep waves in memory if they fit."""
        total = sum(len(v) for v in examples.values())
        budget = self.audio_memory_bytes
        stats: Counter = Counter()
        bad: list[AudioError] = []
        kept_examples: dict[str, list[Example]] = {}
        progress = tqdm(total=total, desc="checking audio", unit="clip", leave=False)
        for split, split_examples in examples.items():
            kept_examples[split] = []
            for example in split_examples:
                u = example.utterance
                progress.update()
                try:
                    clip = self._load_clip(u)
                except AudioError as error:
                    bad.append(error)
                    self.skipped.append((split, u.key, str(u.audio_path), error.reason))
                    continue
                stats["cropped"] += clip.cropped
                stats["resampled"] += clip.source_rate != 16_000
                stats["downmixed"] += clip.source_channels > 1
                example.seconds = clip.seconds
                if budget >= clip.wave.nbytes:
                    example.wave = clip.wave
                    budget -= clip.wave.nbytes
                kept_examples[split].append(example)
        progress.close()
        self._handle_bad_audio(bad)
        if stats["cropped"]:
            log.info("cropped %d clip(s) longer than data.max_seconds=%s (policy: %s)",
                     stats["cropped"], self.max_seconds, self.crop)
        if stats["resampled"] or stats["downmixed"]:
            log.info("resampled %d clip(s) to 16 kHz and downmixed %d multi-channel clip(s)",
                     stats["resampled"], stats["downmixed"])
        for split, split_examples in kept_examples.items():
            if not split_examples:
                raise ValueError(f"no usable audio left in the {split} split of fold {self.fold}")
        return kept_examples

    def _handle_bad_audio(self, bad: list[AudioError]) -> None:
        """Apply data.on_bad_audio to the clips that failed (self.skipped already lists them)."""
        if bad and self.on_bad_audio == "error":
            raise UnusableAudioError(bad, "Fix or remove them, or set data.on_bad_audio=skip to train without "
                                          "them (the skipped keys are written to the run folder).")
        if bad:
            report = self._write_skip_report()
            log.warning("skipped %d unusable clip(s); keys and reasons in %s", len(bad), report)

    def _attach_features(self, examples: dict[str, list[Example]]) -> dict[str, list[Example]]:
        """Give every example its feature item ids, encoding whatever the stores lack.

        Extraction finishes (and is saved) before bad clips are acted on, so an
        error leaves every good clip's features cached for the next run.
        """
        from mmemo.features.extract import Job, extract
        from mmemo.features.store import audio_item_id, text_item_id

        everything = [e for split_examples in examples.values() for e in split_examples]
        failed: dict[str, AudioError] = {}
        for modality, source in self.feature_sources.items():
            jobs = []
            for example in everything:
                u = example.utterance
                if modality == "speech":
                    item = audio_item_id(u.audio_path, u.start, u.end, self.max_seconds, self.crop)
                    length = u.length or u.audio_path.stat().st_size

                    def load(u=u):
                        return self._load_wave(u)
                    jobs.append(Job(item, length, load, key=u.key, where=str(u.audio_path)))
                else:
                    item = text_item_id(u.text or "")
                    jobs.append(Job(item, len(u.text or ""), lambda text=u.text or "": text, key=u.key))
                example.features[modality] = item
            for failure in extract(source, jobs, batch_size=self.feature_batch_size, device=self.feature_device,
                                   desc=f"caching {source.encoder.name} features"):
                failed.setdefault(failure["key"], AudioError(failure["file"], failure["reason"], failure["key"]))
        kept: dict[str, list[Example]] = {}
        for split, split_examples in examples.items():
            kept[split] = []
            for example in split_examples:
                if example.utterance.key in failed:
                    self.skipped.append((split, example.utterance.key, str(example.utterance.audio_path),
                                         failed[example.utterance.key].reason))
                    continue
                if "speech" in self.feature_sources:
                    source = self.feature_sources["speech"]
                    frames = source.store.get(example.features["speech"]).shape[0]
                    example.seconds = frames / source.frame_rate if source.frame_rate else (example.utterance.length or 0)
                kept[split].append(example)
        self._handle_bad_audio(list(failed.values()))
        return kept

    def _write_skip_report(self) -> Path:
        folder = self.output_dir or Path.cwd()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "skipped_audio.tsv"
        with path.open("w", encoding="utf-8") as handle:
            handle.write("split\tkey\tfile\treason\n")
            for row in self.skipped:
                handle.write("\t".join(field.replace("\t", " ").replace("\n", " ") for field in row) + "\n")
        return path

    def provenance(self) -> dict:
        """Which files this fold used, as hashes a table can be traced to (``meta.data`` of metrics.json).

        ``manifest_sha256``: the split files' bytes and the label map; ``audio_sha256``: every
        utterance's key, split, segment and its audio file's content digest (the digests the
        duplicate-audio check computed, so this costs nothing more). The list itself is
        written next to the results by :meth:`write_file_list`.
        """
        manifest = hashlib.sha256()
        for split in sorted(self.splits.files):
            manifest.update(split.encode() + b"\0" + self.splits.files[split].read_bytes())
        manifest.update(repr(self.label_map.to_dict()).encode())
        audio = hashlib.sha256()
        for split, u, digest in self._file_rows():
            audio.update(f"{split}\t{u.key}\t{u.start}\t{u.end}\t{digest}\n".encode())
        return {"manifest_sha256": manifest.hexdigest(), "audio_sha256": audio.hexdigest() if self.use_audio else None,
                "utterances": len(self.files), "files": {s: str(f) for s, f in sorted(self.splits.files.items())},
                "audio_root": str(Path(self.audio_root).resolve())}

    def _file_rows(self):
        from mmemo.data.leakage import audio_digest

        for split, u in sorted(self.files, key=lambda row: (row[0], row[1].key)):
            yield split, u, audio_digest(u.audio_path) if u.audio_path is not None else ""

    def write_file_list(self, folder: str | Path) -> Path:
        """``data_files.tsv``: split, key, audio file, segment and content SHA-1 of every utterance used."""
        path = Path(folder) / "data_files.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            handle.write("split\tkey\taudio\tstart\tend\tsha1\n")
            for split, u, digest in self._file_rows():
                handle.write(f"{split}\t{u.key}\t{u.audio_path or ''}\t{'' if u.start is None else u.start}\t"
                             f"{'' if u.end is None else u.end}\t{digest}\n")
        return path

    def _fingerprint(self, splits: Splits) -> str:
        """A hash of the fold files and label map, recorded with every run's metrics."""
        digest = hashlib.sha256()
        for split in sorted(splits.files):
            digest.update(split.encode())
            digest.update(splits.files[split].read_bytes())
        digest.update(repr(self.label_map.to_dict()).encode())
        digest.update(splits.valid_origin.encode())
        return digest.hexdigest()[:16]

    def _log_summary(self, splits: Splits) -> None:
        assert self.label_map is not None
        for split, dataset in self.datasets.items():
            counts = Counter(self.label_map.classes[e.label] for e in dataset.examples)
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
