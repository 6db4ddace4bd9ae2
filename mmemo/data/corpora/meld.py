"""MELD from ``MELD.Raw/``: the official train/dev/test CSVs and their MP4 clips.

Each CSV row names a clip ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4`` in its
split's folder (or a converted copy under the same name, ``dia0_utt0.wav`` /
``.flac`` / ...). Clips are converted once with ffmpeg to 16 kHz mono 16-bit WAV
under ``out/wav/{split}/`` (a rerun reuses finished files, so an interrupted
conversion resumes). Clips that are missing (MELD has a few) or that ffmpeg
cannot read are reported and listed in ``prepare_failures.tsv``.

The CSVs are not consistently encoded: some hold Windows-1252 bytes, others
UTF-8 that was once mis-decoded (``\\x92`` or ``â€™`` for ``’``). Text is
decoded robustly and repaired to proper Unicode. The original MP4 clip (it shows the
speaker) is each utterance's ``video``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, audio_length, find_entry, read_text
from mmemo.data.corpora.fold_rule import FoldPlan
from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import Collected, Failure, line_issue
from mmemo.data.manifest import Issue, Source, Utterance, raise_if_issues
from mmemo.errors import InvalidInput, MissingDependency

EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = ("negative", "neutral", "positive")
COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime")
#: split -> (CSV file name, clip folder name), as in the official archive.
SPLITS = {
    "train": ("train_sent_emo.csv", "train_splits"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
_FOLD_SPLIT = {"train": "train", "dev": "valid", "test": "test"}
_CLIP_DIRS = tuple(folder for _, folder in SPLITS.values())


def fix_text(text: str) -> str:
    """Repair MELD's mis-encoded text to NFC Unicode (``Itâ€™s`` / ``It\\x92s`` -> ``It’s``)."""
    if any(ord(ch) > 127 for ch in text):
        for wrong in ("cp1252", "latin-1"):
            try:
                repaired = text.encode(wrong).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            if repaired != text:
                text = repaired
                break
        chars = []
        for ch in text:
            if 0x80 <= ord(ch) <= 0x9F:  # C1 controls are Windows-1252 bytes read as Latin-1
                try:
                    ch = bytes([ord(ch)]).decode("cp1252")
                except UnicodeDecodeError:
                    ch = ""
            chars.append(ch)
        text = "".join(chars)
    return unicodedata.normalize("NFC", text).strip()


@dataclass
class _Row:
    split: str
    dialogue: int
    utterance: int
    fields: dict[str, str]
    source: Source


class MeldAdapter(Adapter):
    name = "meld"
    title = "MELD"
    obtain = ("https://affective-meld.github.io/ (MELD.Raw.tar.gz from "
              "https://web.eecs.umich.edu/~mihalcea/downloads/MELD.Raw.tar.gz; extract it and the "
              "train/dev/test archives inside it)")
    licence = "GPL-3.0 (the MELD repository); the clips come from the TV series Friends."
    layout = """MELD.Raw/
  train/train_sent_emo.csv       (or train_sent_emo.csv; found anywhere below the root)
  dev_sent_emo.csv
  test_sent_emo.csv
  train/train_splits/dia{D}_utt{U}.mp4
  dev_splits_complete/dia{D}_utt{U}.mp4
  output_repeated_splits_test/dia{D}_utt{U}.mp4"""
    options = (
        Option("label", "emotion", ("emotion", "sentiment"),
               "emotion: 7 classes; sentiment: negative/neutral/positive"),
        Option("jobs", max(1, min(4, os.cpu_count() or 1)), (), "parallel ffmpeg conversions", kind=int),
    )

    def locate(self, root: Path) -> Path:
        if not any((root / name).exists() for name in ("dev_sent_emo.csv", "train", "dev_splits_complete")) \
                and (root / "MELD.Raw").is_dir():
            root = root / "MELD.Raw"
        missing = []
        for csv_name, folder in SPLITS.values():
            if find_entry(root, csv_name, want_dir=False, skip=_CLIP_DIRS) is None:
                missing.append(f"{csv_name} (anywhere below {root})")
            if find_entry(root, folder, want_dir=True, skip=_CLIP_DIRS) is None:
                missing.append(f"{folder}/ (anywhere below {root})")
        if missing:
            raise self.layout_error(
                root, missing, "MELD.Raw.tar.gz contains train.tar.gz, dev.tar.gz and test.tar.gz; "
                               "extract those too (tar -xzf train.tar.gz etc.).")
        return root

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        if options["jobs"] < 1:
            raise InvalidInput("option 'jobs' must be at least 1")
        rows: list[_Row] = []
        issues: list[Issue] = []
        clip_dirs: dict[str, Path] = {}
        for split, (csv_name, folder) in SPLITS.items():
            csv_path = find_entry(root, csv_name, want_dir=False, skip=_CLIP_DIRS)
            clip_dir = find_entry(root, folder, want_dir=True, skip=_CLIP_DIRS)
            assert csv_path is not None and clip_dir is not None  # locate() checked
            clip_dirs[split] = clip_dir
            split_rows, split_issues = self._read_csv(csv_path, split)
            rows += split_rows
            issues += split_issues
        raise_if_issues(issues, hint="MELD CSV columns: " + ",".join(COLUMNS))

        label_field = "Emotion" if options["label"] == "emotion" else "Sentiment"
        other_field = "Sentiment" if label_field == "Emotion" else "Emotion"
        failures: list[Failure] = []
        jobs = []
        index = AudioIndex()
        for row in rows:
            stem = f"dia{row.dialogue}_utt{row.utterance}"
            key = f"{stem}-{row.split}"
            named = clip_dirs[row.split] / f"{stem}.mp4"
            clip = index.find(named)   # the MP4, or a converted copy under the same name
            if clip is None:
                failures.append(Failure(key, str(named), "clip not found", str(row.source), row.split))
                continue
            jobs.append((row, key, clip, Path("wav") / row.split / f"{stem}.wav"))

        converted = _convert_all([(clip, out / target) for _, _, clip, target in jobs], options["jobs"])
        utterances: list[Utterance] = []
        stats = {"converted": 0, "reused": 0, "failed": 0}
        for (row, key, clip, target), (status, detail) in zip(jobs, converted, strict=True):
            if status == "failed":
                stats["failed"] += 1
                failures.append(Failure(key, str(clip), detail, str(row.source), row.split))
                continue
            stats[status] += 1
            fields = row.fields
            utterances.append(Utterance(
                key=key, wav=target.as_posix(), emo=fields[label_field].lower(), dataset=self.name,
                length=float(detail), speaker=fields["Speaker"], lang="en",
                video=str(clip) if clip.suffix.lower() == ".mp4" else None,  # the original clip holds the face
                text=fields["Utterance"], source=row.source,
                extra={
                    other_field.lower(): fields[other_field].lower(), "split": row.split,
                    "dialogue_id": row.dialogue, "utterance_id": row.utterance,
                    "season": fields["Season"], "episode": fields["Episode"],
                    "clip_start": fields["StartTime"], "clip_end": fields["EndTime"],
                },
            ))
        names = EMOTIONS if options["label"] == "emotion" else SENTIMENTS
        label_map: dict[str, str | None] = {name: name for name in names}
        fold = {_FOLD_SPLIT[s]: [u for u in utterances if u.extra["split"] == s] for s in SPLITS}
        shared = ({u.speaker for u in fold["test"]}
                  & {u.speaker for s in ("train", "valid") for u in fold[s]})
        reason = ("MELD's official train/dev/test split is kept as the standard protocol; its speakers are "
                  f"characters of Friends, and {len(shared)} of them speak both in test and in train/dev "
                  "(in the full corpus, the six main characters speak in every split)")
        plan = FoldPlan([fold], "official", "MELD's official split: one fold with train, valid (= dev) "
                        "and test", False, reason)
        notes = [f"audio: {stats['converted']} clip(s) converted, {stats['reused']} reused from an earlier run, "
                 f"{stats['failed']} failed"]
        notes += filter(None, [index.note()])
        return Collected(utterances, label_map, plan,
                         audio="16 kHz mono 16-bit WAV converted with ffmpeg, under wav/{train,dev,test}/ "
                               "(paths relative to this folder)",
                         failures=failures, notes=notes,
                         extra={"audio_conversion": stats,
                                "speaker_overlap": sorted(shared)})

    def _read_csv(self, path: Path, split: str) -> tuple[list[_Row], list[Issue]]:
        text, _ = read_text(path, fallbacks=("cp1252", "latin-1"))
        reader = csv.reader(io.StringIO(text, newline=""))
        issues: list[Issue] = []
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            return [], [line_issue(path, 1, "empty CSV (no header)")]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            return [], [line_issue(path, 1, f"missing column(s) {missing}; header is {header}")]
        index = {name: header.index(name) for name in COLUMNS}
        rows: list[_Row] = []
        seen: dict[tuple[int, int], int] = {}
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                issues.append(line_issue(path, line, f"expected {len(header)} fields, found {len(record)}"))
                continue
            # repair before stripping: a Windows-1252 "…" read as Latin-1 is U+0085, which strip() eats
            fields = {name: fix_text(record[i]) for name, i in index.items()}
            problems = []
            try:
                dialogue, utterance = int(fields["Dialogue_ID"]), int(fields["Utterance_ID"])
            except ValueError:
                problems.append(f"Dialogue_ID/Utterance_ID must be integers, got "
                                f"{fields['Dialogue_ID']!r}/{fields['Utterance_ID']!r}")
                dialogue = utterance = -1
            if fields["Emotion"].lower() not in EMOTIONS:
                problems.append(f"unknown Emotion {fields['Emotion']!r} (known: {', '.join(EMOTIONS)})")
            if fields["Sentiment"].lower() not in SENTIMENTS:
                problems.append(f"unknown Sentiment {fields['Sentiment']!r} (known: {', '.join(SENTIMENTS)})")
            if not fields["Speaker"]:
                problems.append("empty Speaker")
            if problems:
                issues.extend(line_issue(path, line, p) for p in problems)
                continue
            if (dialogue, utterance) in seen:
                issues.append(line_issue(path, line, f"dia{dialogue}_utt{utterance} already at line "
                                                     f"{seen[(dialogue, utterance)]}"))
                continue
            seen[(dialogue, utterance)] = line
            rows.append(_Row(split, dialogue, utterance, fields, Source(str(path), line)))
        return rows, issues


def _convert_one(source: Path, target: Path) -> tuple[str, str]:
    """(status, length-or-reason); a finished target from an earlier run is reused."""
    if target.is_file():
        try:
            return "reused", str(audio_length(target))
        except Exception:  # noqa: BLE001 - a broken leftover is converted again
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-vn", "-ac", "1",
               "-ar", "16000", "-c:a", "pcm_s16le", "-f", "wav", str(partial)]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        message = result.stderr.decode(errors="replace").strip().splitlines()
        return "failed", f"ffmpeg could not read it ({message[-1] if message else 'no message'})"
    try:
        length = audio_length(partial)
    except Exception as error:  # noqa: BLE001
        partial.unlink(missing_ok=True)
        return "failed", f"no audio after conversion ({error})"
    os.replace(partial, target)
    return "converted", str(length)


def _convert_all(pairs: list[tuple[Path, Path]], jobs: int) -> list[tuple[str, str]]:
    from tqdm import tqdm

    if pairs and shutil.which("ffmpeg") is None:
        raise MissingDependency("MELD's clips are MP4 and need the ffmpeg command: apt-get install ffmpeg "
                           "(or brew / conda install ffmpeg)")
    results: list[tuple[str, str]] = [("failed", "not converted")] * len(pairs)
    with ThreadPoolExecutor(max_workers=jobs) as pool, \
            tqdm(total=len(pairs), desc="MELD mp4 -> wav", unit="clip", disable=None) as bar:
        futures = {pool.submit(_convert_one, src, dst): i for i, (src, dst) in enumerate(pairs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    return results


ADAPTER = MeldAdapter()
