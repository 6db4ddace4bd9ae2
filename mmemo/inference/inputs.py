"""What ``mmemo predict`` reads: audio files, folders of audio (recursively), and jsonl manifests.

Problems with one input (a bad manifest line, a missing file) become an
:class:`InputItem` carrying the error, so they are reported per item and the
rest of the batch still runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmemo.data.audio import MEDIA_SUFFIXES  # picked up when a folder is given
from mmemo.data.folds import audio_root_of, corpus_root_of
from mmemo.data.manifest import iter_manifest, resolve_audio_path

MANIFEST_EXTENSIONS = (".jsonl",)


@dataclass
class InputItem:
    """One clip to predict: an id, a file (maybe a ``[start, end)`` segment of it), an optional transcript."""

    audio_id: str
    path: Path | None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    error: str | None = None  # set when the input itself is unusable (before any decoding)
    video: Path | None = None  # a manifest line's video (else the file itself, if it has a video stream)
    video_start: float | None = None
    video_end: float | None = None


def collect_inputs(paths: list[str | Path], audio_root: str | Path | None = None) -> list[InputItem]:
    """Expand files, folders and manifests into items, in the order given.

    Ids: a manifest line's ``key``; otherwise the file path as given (folders: the folder
    joined with the file's path inside it). Relative ``wav`` paths of a manifest follow the
    rule training uses (:func:`~mmemo.data.folds.audio_root_of`): ``audio_root`` if given,
    else the corpus's recorded audio root, else the corpus root (a fold file's corpus is the
    folder above ``fold_<k>/``), and may not climb out of it. A path that does not exist is
    an error item, not an exception.
    """
    items: list[InputItem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                items.append(InputItem(str(raw), None, error=f"{path}: folder holds no audio files "
                                                               f"({', '.join(MEDIA_SUFFIXES)})"))
            items += [InputItem(str(p), p) for p in found]
        elif path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
            items += manifest_items(path, audio_root)
        elif path.is_file():
            items.append(InputItem(str(raw), path))
        else:
            items.append(InputItem(str(raw), None, error=f"{path}: no such file or folder"))
    seen: dict[str, int] = {}
    for item in items:  # ids name embedding files and database rows: keep them unique
        count = seen.get(item.audio_id, 0)
        seen[item.audio_id] = count + 1
        if count:
            item.audio_id = f"{item.audio_id}#{count + 1}"
    return items


def manifest_items(path: Path, audio_root: str | Path | None = None) -> list[InputItem]:
    """A manifest's lines as items; a malformed line becomes an error item named ``file:line``."""
    try:
        root = audio_root_of(corpus_root_of(path), audio_root)
    except ValueError as error:  # an unreadable corpus.json
        return [InputItem(str(path), None, error=str(error))]
    items = []
    for utterance, issues in iter_manifest(path):
        if utterance is None or issues:
            for issue in issues:
                items.append(InputItem(str(issue.source), None, error=str(issue)))
            continue
        audio, problem = resolve_audio_path(utterance.wav, root)
        video = None
        if utterance.video and problem is None:
            video, problem = resolve_audio_path(utterance.video, root)
            problem = problem and problem.replace("audio", "video", 1)
        error = None if problem is None else f"{utterance.where()}: {problem} (key {utterance.key!r})"
        items.append(InputItem(utterance.key, audio, utterance.start, utterance.end, utterance.text, error,
                               video, utterance.video_start, utterance.video_end))
    if not items:
        items.append(InputItem(str(path), None, error=f"{path}: manifest has no utterances"))
    return items
