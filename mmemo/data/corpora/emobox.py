"""An EmoBox ``data/<dataset>/`` folder, validated and copied byte for byte (``wav`` paths aside, see below).

mmemo reads EmoBox folders directly (``data.root=<EmoBox>/data/<dataset>``);
``prepare emobox`` is for keeping a checked copy next to other prepared
corpora, with a ``corpus.json`` that records where the audio lives. The ``wav``
paths (``downloads/<dataset>/...``) are relative to the EmoBox checkout, which
``--audio-root`` names (used as ``data.audio_root``). Speakers come from the
``spk=`` tags of ``data.seg.wrd.stm``, as mmemo's fold reader does.

Audio kept elsewhere is found too: under ``--audio-root`` a path is tried as
written, then without its leading components one at a time (``downloads/``,
``ravdess/``, ``audio/`` ...), each with any audio suffix (a FLAC copy). How
many components to drop is decided once, from the first file found, and
applied to every path. Only when a file is found under another path is a line
rewritten: its ``wav`` becomes that path (relative to the audio root) and
EmoBox's own path is kept as ``emobox_wav``; keys, labels, folds and all other
fields stay as EmoBox has them. Files not found are listed in
``prepare_failures.tsv``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex
from mmemo.data.corpora.options import Option, resolve_options
from mmemo.data.corpora.records import (
    CORPUS_FILE,
    LABEL_MAP_FILE,
    README_FILE,
    SPLIT_ORDER,
    Failure,
    PreparedCorpus,
)
from mmemo.data.corpora.writing import (
    _mmemo_version,
    _write_json,
    command_line,
    start_output,
    write_failures,
)
from mmemo.data.folds import available_folds, fold_files, read_stm_speakers
from mmemo.data.labels import load_label_map_file
from mmemo.data.manifest import (
    Issue,
    ManifestError,
    Source,
    Utterance,
    raise_if_issues,
    read_manifest,
)
from mmemo.errors import InvalidInput, MissingInput

STM_FILE = "data.seg.wrd.stm"
_FOLD_FILE = re.compile(r"^(?P<name>.+)_(?:train|valid|test)_fold_(?P<k>\d+)\.jsonl$")


class AudioPaths:
    """EmoBox's ``wav`` paths matched to the files under an audio root that holds them under a *tail*.

    A relative path is tried as written, then with its leading components
    dropped one at a time, each time with any audio suffix; the number dropped
    is found once, from the first path that matches, and used for all.
    """

    def __init__(self, audio_root: Path, wavs: Iterable[str]):
        self.root = audio_root
        self.index = AudioIndex()
        self.dropped = 0
        self.dropped_prefix = ""
        for wav in wavs:
            parts = self._parts(wav)
            for drop in range(len(parts or ())):
                if self.index.find(self.root.joinpath(*parts[drop:])) is not None:
                    self.dropped, self.dropped_prefix = drop, "/".join(parts[:drop])
                    break
            else:
                continue
            break

    @staticmethod
    def _parts(wav: str) -> tuple[str, ...] | None:
        """The components of a relative path that stays under the root, else None."""
        path = PurePosixPath(wav)
        if path.is_absolute() or Path(wav).is_absolute() or ".." in path.parts or not path.parts:
            return None
        return path.parts

    def resolve(self, wav: str) -> Path | None:
        """The audio file for ``wav`` (absolute paths: the same folder and stem), or None."""
        if Path(wav).is_absolute():
            return self.index.find(wav)
        parts = self._parts(wav)
        if parts is None or len(parts) <= self.dropped:
            return None
        return self.index.find(self.root.joinpath(*parts[self.dropped:]))

    def written(self, wav: str, found: Path) -> str | None:
        """The manifest path for ``found`` when it differs from EmoBox's ``wav``, else None."""
        if Path(wav).is_absolute():
            return None if Path(wav) == found else str(found)
        if self.root / wav == found:
            return None
        return found.relative_to(self.root).as_posix()


#: Fields a corpus's file names give that EmoBox's lines lack: dataset -> (wav path -> fields).
def derived_fields(dataset: str, wav: str) -> dict[str, str]:
    if dataset == "ravdess":
        from mmemo.data.corpora.ravdess import transcript_of

        text = transcript_of(wav)
        return {"text": text} if text else {}
    return {}


def rewrite_wavs(source: Path, target: Path, new_wavs: dict[str, str], dataset: str = "") -> int:
    """Copy a jsonl file, replacing the ``wav`` of the lines in ``new_wavs`` (EmoBox's kept as ``emobox_wav``)
    and adding fields the corpus's file names give (:func:`derived_fields`, e.g. RAVDESS's statement).

    Every other line is copied byte for byte; returns how many lines were rewritten.
    """
    if not new_wavs and not derived_fields(dataset, "03-01-01-01-01-01-01.wav"):
        shutil.copyfile(source, target)
        return 0
    rewritten = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        for raw in reader:
            body = raw.rstrip(b"\r\n")
            try:
                row = json.loads(body.decode("utf-8-sig"))
            except (UnicodeDecodeError, ValueError):
                row = None
            wav = row.get("wav") if isinstance(row, dict) else None
            added = {k: v for k, v in derived_fields(dataset, wav).items() if k not in row} if isinstance(wav, str) \
                else {}
            if not isinstance(wav, str) or (wav not in new_wavs and not added):
                writer.write(raw)
                continue
            line: dict[str, Any] = {}
            for name, value in row.items():
                line[name] = new_wavs.get(wav, wav) if name == "wav" else value
                if name == "wav" and wav in new_wavs:
                    line["emobox_wav"] = wav
            line.update(added)
            writer.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + raw[len(body):])
            rewritten += wav in new_wavs
    return rewritten


class EmoboxAdapter(Adapter):
    name = "emobox"
    title = "an EmoBox data folder"
    obtain = ("https://github.com/emo-box/EmoBox (data/<dataset>/ holds the fold files; the audio of each "
              "corpus is obtained from its own source into downloads/<dataset>/)")
    licence = "EmoBox's metadata is MIT-licensed; each corpus keeps its own licence."
    layout = """<EmoBox>/data/<dataset>/
  fold_<k>/<dataset>_{train,test}_fold_<k>.jsonl   (MELD also has _valid_)
  label_map.json
  data.seg.wrd.stm                                 (speakers as spk= tags)
  <dataset>.jsonl                                  (optional, copied)"""
    options = (
        Option("audio_root", None, (), "where the audio is: the EmoBox checkout (downloads/<dataset>/...), or "
                                       "a folder holding the files under a tail of EmoBox's paths, with any "
                                       "audio suffix (then those lines' wav is rewritten); recorded in "
                                       "corpus.json"),
    )

    def locate(self, root: Path) -> Path:
        missing = []
        if not available_folds(root):
            missing.append(f"{root}/fold_1/ (fold_<k>/<dataset>_{{train,test}}_fold_<k>.jsonl)")
        if not (root / LABEL_MAP_FILE).is_file():
            missing.append(f"{root / LABEL_MAP_FILE}")
        if missing:
            raise self.layout_error(root, missing, "--root must be one dataset folder, e.g. <EmoBox>/data/iemocap.")
        return root

    def prepare(self, root: str | os.PathLike, out: str | os.PathLike, **given: Any) -> PreparedCorpus:
        options = resolve_options(self.name, self.options, given)
        root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))
        if not root.is_dir():
            raise self.layout_error(root, [f"{root} (no such directory)"])
        self.locate(root)
        audio_root = Path(os.path.abspath(options["audio_root"])) if options["audio_root"] else None
        if audio_root is not None:
            options["audio_root"] = str(audio_root)
            if not audio_root.is_dir():
                raise MissingInput(f"--audio-root {audio_root} is not a directory")

        folds = available_folds(root)
        files = {k: fold_files(root, k) for k in folds}
        names = {_FOLD_FILE.match(p.name).group("name") for fs in files.values() for p in fs.values()}
        if len(names) != 1:
            raise InvalidInput(f"{root}: fold files use several dataset names {sorted(names)}")
        dataset = names.pop()
        label_map = load_label_map_file(root / LABEL_MAP_FILE)
        classes = sorted({v for v in label_map.values() if v is not None})
        stm = root / STM_FILE
        stm_speakers = read_stm_speakers(stm) if stm.is_file() else {}

        issues: list[Issue] = []
        parts: dict[int, dict[str, list[Utterance]]] = {}
        for k, by_split in files.items():
            parts[k] = {}
            for split, path in by_split.items():
                try:
                    parts[k][split] = read_manifest(path)
                except ManifestError as error:
                    issues.extend(error.issues)
                    parts[k][split] = []
        for k, by_split in parts.items():
            seen: dict[str, str] = {}
            for split, utterances in by_split.items():
                for u in utterances:
                    if u.emo not in label_map and u.emo not in classes:
                        issues.append(Issue(u.source or Source(str(files[k][split]), 0),
                                            f"label {u.emo!r} is not in {LABEL_MAP_FILE} ({sorted(label_map)})"))
                    if u.key in seen and seen[u.key] != split:
                        issues.append(Issue(u.source or Source(str(files[k][split]), 0),
                                            f"key {u.key!r} is in both {seen[u.key]} and {split} of fold {k}"))
                    seen[u.key] = split
                    if u.speaker is None:
                        u.speaker = stm_speakers.get(u.key)
        raise_if_issues(issues, hint=f"{root} is not a valid EmoBox folder.")

        paths: AudioPaths | None = None
        found: dict[str, Path | None] = {}
        new_wavs: dict[str, str] = {}   # EmoBox's wav -> the path written, where the file is elsewhere
        if audio_root is not None:
            wavs = list(dict.fromkeys(u.wav for k in folds for us in parts[k].values() for u in us))
            paths = AudioPaths(audio_root, wavs)
            for wav in wavs:
                found[wav] = paths.resolve(wav)
                written = paths.written(wav, found[wav]) if found[wav] is not None else None
                if written is not None:
                    new_wavs[wav] = written

        start_output(out, self.name, root)
        copied = []
        rewritten = 0
        for k, by_split in files.items():
            for path in by_split.values():
                target = out / f"fold_{k}" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                rewritten += rewrite_wavs(path, target, new_wavs, dataset)
                copied.append(target)
        extras = {}
        for name in (LABEL_MAP_FILE, STM_FILE, f"{dataset}.jsonl", "corpus.cfg"):
            if (root / name).is_file():
                if name.endswith(".jsonl"):
                    rewrite_wavs(root / name, out / name, new_wavs, dataset)
                else:
                    shutil.copyfile(root / name, out / name)
                extras[name] = out / name

        def mapped(u: Utterance) -> str | None:
            return label_map[u.emo] if u.emo in label_map else u.emo

        everything: dict[str, Utterance] = {}
        fold_counts: list[dict[str, dict[str, int]]] = []
        no_speaker = 0
        overlaps: list[str] = []
        failures: list[Failure] = []
        for k in folds:
            splits: dict[str, dict[str, int]] = {}
            for split in SPLIT_ORDER:
                if split not in parts[k]:
                    continue
                counts = Counter(mapped(u) for u in parts[k][split])
                splits[split] = {c: counts.get(c, 0) for c in classes}
                for u in parts[k][split]:
                    if u.key not in everything and paths is not None and found[u.wav] is None:
                        tail = PurePosixPath(u.wav).parts[paths.dropped:] if not Path(u.wav).is_absolute() else ()
                        looked = (audio_root.joinpath(*tail) if tail else Path(u.wav)).with_suffix(".*")
                        failures.append(Failure(u.key, u.wav, f"audio file not found (looked for {looked}); "
                                                "the fold files still name it", str(u.source or ""), split))
                    everything.setdefault(u.key, u)
            fold_counts.append(splits)
            test = {u.speaker for u in parts[k]["test"] if u.speaker}
            shared = {u.speaker for s in ("train", "valid") for u in parts[k].get(s, []) if u.speaker} & test
            no_speaker += sum(u.speaker is None for us in parts[k].values() for u in us)
            if shared:
                overlaps.append(f"fold {k}: {len(shared)} of {len(test)} test speakers also train/valid")
        independent = not overlaps and no_speaker == 0
        if no_speaker:
            reason = f"{no_speaker} fold line(s) have no speaker (no spk= tag in {STM_FILE})"
        elif overlaps:
            reason = "; ".join(overlaps[:5]) + " (EmoBox's protocol for this corpus)"
        else:
            reason = "no speaker is in both the training and the test split of any fold"
        counts = Counter(mapped(u) for u in everything.values())
        raw = Counter(u.emo for u in everything.values())
        speakers = sorted({u.speaker for u in everything.values() if u.speaker})
        notes = []
        if derived_fields(dataset, "03-01-01-01-01-01-01.wav"):
            notes.append(f"EmoBox's {dataset} lines have no transcript; 'text' was added from each file's name "
                         "(the statement it speaks), so a text branch can run as a control")
        if dataset == "iemocap":
            notes.append("EmoBox's stm tags each IEMOCAP utterance with its dialog's prefix (Ses01F also for "
                         "Ses01F_impro01_M000), not its actual speaker; the session folds are still "
                         "speaker-independent. `mmemo data prepare iemocap` writes the actual speaker")
        audio_missing = None
        audio_paths = None
        failures_path = write_failures(out, failures)
        if paths is not None:
            audio_missing = len(failures)
            suffixes = Counter(f.suffix.lower() for f in found.values() if f is not None)
            audio_paths = {"found": sum(f is not None for f in found.values()), "rewritten": len(new_wavs),
                           "dropped_prefix_components": paths.dropped, "dropped_prefix": paths.dropped_prefix,
                           "suffixes": dict(sorted(suffixes.items()))}
            if new_wavs:
                old, new = next(iter(new_wavs.items()))
                audio_paths["example"] = {"emobox_wav": old, "wav": new}
                notes.append(f"{len(new_wavs)} audio file(s) are under other paths than EmoBox's (e.g. {old} is "
                             f"{new} under {audio_root}); their lines' wav was rewritten to that path and "
                             "EmoBox's is kept as emobox_wav")
            if audio_missing:
                notes.append(f"{audio_missing} of {len(everything)} audio files are not under {audio_root} yet "
                             f"(listed in {failures_path.name if failures_path else ''})")
            duplicates = paths.index.note()
            if duplicates:
                notes.append(duplicates)
        if new_wavs:
            audio = (f"wav paths of the files found under the audio root {audio_root} (EmoBox's own path kept "
                     "as emobox_wav where it differs)")
        else:
            audio = (f"wav paths as written by EmoBox (relative to the EmoBox checkout); audio root: "
                     f"{audio_root if audio_root else 'not given (pass --audio-root, then use data.audio_root)'}")

        summary = PreparedCorpus(
            name=dataset, root=root, out=out, options=dict(options), classes=classes, total=len(everything),
            class_counts={c: counts.get(c, 0) for c in classes}, raw_counts=dict(sorted(raw.items())),
            fold_counts=fold_counts, speakers=speakers, speaker_independent=independent,
            protocol=f"EmoBox's {len(folds)} fold(s) for {dataset}, copied unchanged"
                     + (" (but for the wav paths of the audio found elsewhere)" if new_wavs else ""),
            files={"folds": copied, **{k: v for k, v in extras.items()},
                   "label_map": out / LABEL_MAP_FILE, "corpus_json": out / CORPUS_FILE,
                   "readme": out / README_FILE, "manifest": extras.get(f"{dataset}.jsonl"),
                   **({"failures": failures_path} if failures_path else {})},
            notes=notes,
        )
        command = command_line(self.name, root, out, options, self.options)
        meta = {
            "prepared_by": "mmemo", "status": "complete", "mmemo_version": _mmemo_version(),
            "prepared_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "corpus": self.name, "dataset": dataset, "title": f"EmoBox {dataset}", "root": str(root),
            "command": command, "options": dict(options),
            "audio_root": str(audio_root) if audio_root else None, "audio": audio,
            "audio_missing": audio_missing, "audio_paths": audio_paths, "rewritten_lines": rewritten,
            "classes": classes, "label_map": label_map,
            "protocol": {"scheme": "emobox", "folds": len(folds), "description": summary.protocol},
            "speaker_independent": independent, "speaker_independent_reason": reason,
            "counts": {"total": len(everything), "per_class": summary.class_counts,
                       "per_raw_label": summary.raw_counts, "speakers": len(speakers),
                       "folds": {str(k): s for k, s in zip(folds, fold_counts, strict=True)}},
            "speakers": speakers, "notes": notes,
        }
        (out / README_FILE).write_text(self._readme(summary, meta), encoding="utf-8")
        _write_json(out / CORPUS_FILE, meta)
        return summary

    @staticmethod
    def _readme(summary: PreparedCorpus, meta: dict[str, Any]) -> str:
        root = meta["audio_root"] or "<EmoBox checkout>"
        lines = [
            f"# EmoBox {meta['dataset']} (copied by mmemo)", "",
            f"Copied unchanged from `{summary.root}` with mmemo {meta['mmemo_version']} on {meta['prepared_at']}:",
            "", "```bash", meta["command"], "```", "",
            ("The fold files, `label_map.json` and `data.seg.wrd.stm` are byte-for-byte copies. Their `wav` "
             f"paths are relative to the EmoBox checkout; train with `data.audio_root={root}`:"
             if not meta["rewritten_lines"] else
             "The fold files, `label_map.json` and `data.seg.wrd.stm` are byte-for-byte copies, except the "
             f"`wav` of {meta['rewritten_lines']} fold line(s): the audio was found under other paths, which "
             "are written there (EmoBox's path kept as `emobox_wav`). They are relative to the audio root; "
             f"train with `data.audio_root={root}` (or none: corpus.json records it):"), "",
            "```bash", f"mmemo train data=manifest data.root={summary.out} data.audio_root={root} data.fold=1",
            "```", "",
            f"Audio: {meta['audio']}.", "",
            "## Protocol", "", summary.protocol + ".", "",
            ("Folds are **speaker-independent**: " if summary.speaker_independent else
             "Folds are **not speaker-independent**: ") + meta["speaker_independent_reason"] + ".", "",
            "## Classes (after label_map.json)", "", "| class | utterances |", "|---|---|",
            *[f"| {c} | {n} |" for c, n in summary.class_counts.items()], f"| total | {summary.total} |", "",
            "| fold | " + " | ".join(SPLIT_ORDER) + " |", "|---|---|---|---|",
            *[f"| {k} | " + " | ".join(str(sum(s[x].values())) if x in s else "-" for x in SPLIT_ORDER) + " |"
              for k, s in enumerate(summary.fold_counts, start=1)], "",
        ]
        if summary.notes:
            lines += ["## Notes", "", *[f"- {n}" for n in summary.notes], ""]
        return "\n".join(lines)


ADAPTER = EmoboxAdapter()
