"""Writing a prepared corpus: everything written to ``out`` is written here.

Every prepared corpus therefore has the same files:

    out/manifest.jsonl                     every kept utterance
    out/fold_<k>/<name>_{train,[valid,]test}_fold_<k>.jsonl
    out/label_map.json                     raw label -> class (merges written down)
    out/corpus.json                        options, protocol, counts, provenance
    out/README.md                          the same for people
    out/prepare_failures.tsv               only when clips were left out
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import (
    CORPUS_FILE,
    FAILURES_FILE,
    LABEL_MAP_FILE,
    MANIFEST_FILE,
    README_FILE,
    SPLIT_ORDER,
    Collected,
    Failure,
    PreparedCorpus,
)
from mmemo.data.manifest import Utterance, write_manifest

if TYPE_CHECKING:  # base.py's adapters call the writer: the type only, no import at run time
    from mmemo.data.corpora.base import Adapter

log = logging.getLogger(__name__)


def _mmemo_version() -> str:
    try:
        from importlib.metadata import version

        return version("mmemo")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def start_output(out: Path, corpus: str, root: Path) -> None:
    """Make ``out`` ready: empty, or an earlier ``prepare`` of the same corpus (whose folds are replaced).

    A folder holding folds that mmemo did not write is refused rather than
    mixed with new folds (stale ``fold_<k>`` folders would be read as folds).
    """
    if out == root:
        raise FileExistsError(f"--out must differ from --root ({root}); the raw corpus is never written to")
    if root in out.parents and corpus == "emobox":
        raise FileExistsError(f"--out {out} is inside the EmoBox folder {root}; choose a folder outside it")
    marker = out / CORPUS_FILE
    previous = None
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = None
    ours = isinstance(previous, dict) and previous.get("prepared_by") == "mmemo"
    old_folds = [p for p in out.glob("fold_*") if p.is_dir()] if out.is_dir() else []
    if (old_folds or (out / MANIFEST_FILE).exists()) and not ours:
        raise FileExistsError(f"{out} already holds folds or a manifest that `mmemo data prepare` did not "
                              "write; choose an empty folder")
    if ours and previous.get("corpus") != corpus:
        raise FileExistsError(f"{out} holds a prepared {previous.get('corpus')!r} corpus; choose another "
                              f"folder for {corpus!r} or delete it")
    for folder in old_folds:
        shutil.rmtree(folder)
    for name in (MANIFEST_FILE, FAILURES_FILE):
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(marker, {"prepared_by": "mmemo", "corpus": corpus, "status": "incomplete"})


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def command_line(name: str, root: Path, out: Path, options: Mapping[str, Any],
                 declared: Sequence[Option]) -> str:
    parts = [f"mmemo data prepare {name} --root {root} --out {out}"]
    for option in declared:
        value = options.get(option.name)
        if value is None:
            continue
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{option.flag} {shown}")
    return " ".join(parts)


def _check_plan(name: str, collected: Collected) -> None:
    """Guard against adapter bugs: unique keys, folds covering only known keys, disjoint splits."""
    keys = [u.key for u in collected.utterances]
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    if dupes:
        raise RuntimeError(f"{name}: duplicate keys {dupes[:5]}")
    known = set(keys)
    for k, fold in enumerate(collected.plan.folds, start=1):
        seen: dict[str, str] = {}
        for split, members in fold.items():
            if split not in SPLIT_ORDER:
                raise RuntimeError(f"{name}: fold {k} has an unknown split {split!r}")
            for u in members:
                if u.key not in known or u.key in seen:
                    raise RuntimeError(f"{name}: fold {k}: key {u.key!r} unknown or in two splits")
                seen[u.key] = split
        if collected.plan.speaker_independent:
            test = {u.speaker for u in fold.get("test", []) if u.speaker}
            shared = {u.speaker for s in ("train", "valid") for u in fold.get(s, [])} & test
            if shared:
                raise RuntimeError(f"{name}: fold {k} is meant to be speaker-independent but shares {shared}")
    for u in collected.utterances:
        if u.emo not in collected.label_map:
            raise RuntimeError(f"{name}: label {u.emo!r} of {u.key!r} is not in the label map")
        if not Path(u.wav).is_absolute() and ".." in Path(u.wav).parts:
            raise RuntimeError(f"{name}: wav path {u.wav!r} climbs out of the output folder")


def _class_counts(utterances: Iterable[Utterance], label_map: Mapping[str, str | None]) -> Counter:
    return Counter(label_map[u.emo] for u in utterances if label_map.get(u.emo) is not None)


def write_failures(out: Path, failures: Sequence[Failure]) -> Path | None:
    path = out / FAILURES_FILE
    if not failures:
        path.unlink(missing_ok=True)
        return None
    with path.open("w", encoding="utf-8") as handle:
        handle.write("key\tsplit\tfile\treason\treferenced_at\n")
        for f in failures:
            cells = [f.key, f.split, f.file, f.reason, f.source]
            handle.write("\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells) + "\n")
    return path


def write_outputs(adapter: Adapter, root: Path, out: Path, options: dict[str, Any],
                  collected: Collected) -> PreparedCorpus:
    """Write manifest, folds, label map, corpus.json, README.md and the failure list."""
    _check_plan(adapter.name, collected)
    utterances = sorted(collected.utterances, key=lambda u: u.key)
    label_map = collected.label_map
    classes = sorted({c for c in label_map.values() if c is not None})
    files: dict[str, Any] = {"manifest": write_manifest(utterances, out / MANIFEST_FILE), "folds": []}
    fold_counts: list[dict[str, dict[str, int]]] = []
    for k, fold in enumerate(collected.plan.folds, start=1):
        splits: dict[str, dict[str, int]] = {}
        for split in SPLIT_ORDER:
            if split not in fold:
                continue
            members = sorted(fold[split], key=lambda u: u.key)
            path = out / f"fold_{k}" / f"{adapter.name}_{split}_fold_{k}.jsonl"
            files["folds"].append(write_manifest(members, path))
            counts = _class_counts(members, label_map)
            splits[split] = {c: counts.get(c, 0) for c in classes}
        fold_counts.append(splits)
    files["label_map"] = out / LABEL_MAP_FILE
    _write_json(files["label_map"], dict(sorted(label_map.items())))
    failures_path = write_failures(out, collected.failures)
    if failures_path:
        files["failures"] = failures_path
        log.warning("%s: %d clip(s) left out, listed in %s", adapter.name, len(collected.failures),
                    failures_path)

    counts = _class_counts(utterances, label_map)
    raw = Counter(u.emo for u in utterances)
    speakers = sorted({u.speaker for u in utterances if u.speaker})
    per_speaker = Counter(u.speaker for u in utterances if u.speaker)
    plan = collected.plan
    summary = PreparedCorpus(
        name=adapter.name, root=root, out=out, options=dict(options), classes=classes,
        total=len(utterances), class_counts={c: counts.get(c, 0) for c in classes},
        raw_counts=dict(sorted(raw.items())), fold_counts=fold_counts, speakers=speakers,
        speaker_independent=plan.speaker_independent, protocol=plan.description, files=files,
        failures=list(collected.failures), notes=list(collected.notes),
    )
    files["readme"] = out / README_FILE
    files["corpus_json"] = out / CORPUS_FILE
    command = command_line(adapter.name, root, out, options, adapter.options)
    meta = {
        "prepared_by": "mmemo",
        "status": "complete",
        "mmemo_version": _mmemo_version(),
        "prepared_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "corpus": adapter.name,
        "title": adapter.title,
        "root": str(root),
        "command": command,
        "options": dict(options),
        "audio": collected.audio,
        "classes": classes,
        "label_map": dict(sorted(label_map.items())),
        "protocol": {"scheme": plan.scheme, "folds": len(plan.folds), "description": plan.description,
                     "test_speakers": plan.test_groups},
        "speaker_independent": plan.speaker_independent,
        "speaker_independent_reason": plan.reason,
        "counts": {
            "total": len(utterances),
            "per_class": summary.class_counts,
            "per_raw_label": summary.raw_counts,
            "speakers": len(speakers),
            "per_speaker": dict(sorted(per_speaker.items())),
            "folds": {str(k): splits for k, splits in enumerate(fold_counts, start=1)},
        },
        "speakers": speakers,
        "failures": len(collected.failures),
        "notes": list(collected.notes),
        **collected.extra,
    }
    (out / README_FILE).write_text(render_readme(adapter, summary, meta), encoding="utf-8")
    _write_json(out / CORPUS_FILE, meta)
    log.debug("%s", summary.render())
    return summary


def render_readme(adapter: Adapter, summary: PreparedCorpus, meta: Mapping[str, Any]) -> str:
    """A README for the prepared folder: provenance, protocol, classes, notes."""
    lines = [
        f"# {adapter.title} (prepared by mmemo)", "",
        f"Prepared from `{summary.root}` with mmemo {meta['mmemo_version']} on {meta['prepared_at']}:", "",
        "```bash", str(meta["command"]), "```", "",
        f"Obtain the corpus from {adapter.obtain}. Licence: {adapter.licence}", "",
        "## Files", "",
        "- `manifest.jsonl`: every utterance (mmemo/EmoBox jsonl fields: key, wav, emo, speaker, text, ...)",
        "- `fold_<k>/`: the folds (train/test, and valid only where the corpus has an official dev split)",
        "- `label_map.json`: raw label -> class; every merge is written there",
        "- `corpus.json`: options, protocol and counts (machine-readable)",
        f"- audio: {meta['audio']}",
        "",
        "Use it with `mmemo train data=manifest data.root=<this folder> data.fold=1` "
        "(`mmemo data check <this folder>` validates it first).", "",
        "## Protocol", "",
        summary.protocol, "",
        ("Folds are **speaker-independent**: " if summary.speaker_independent else
         "Folds are **not speaker-independent**: ") + str(meta["speaker_independent_reason"]) + ".", "",
        "Validation: " + ("the official dev split (`*_valid_fold_<k>.jsonl`)." if any(
            "valid" in f for f in summary.fold_counts) else
            "none written; mmemo carves it from whole training speakers (`data.valid_fraction`)."), "",
        "## Classes", "",
        "| class | utterances |", "|---|---|",
        *[f"| {c} | {summary.class_counts[c]} |" for c in summary.classes],
        f"| total | {summary.total} |", "",
        "Label map: " + ", ".join(f"`{k}` → `{v}`" for k, v in sorted(meta["label_map"].items())), "",
        "## Folds", "",
        "| fold | " + " | ".join(SPLIT_ORDER) + " |", "|---|---|---|---|",
    ]
    for k, splits in enumerate(summary.fold_counts, start=1):
        cells = [str(sum(splits[s].values())) if s in splits else "-" for s in SPLIT_ORDER]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("")
    if summary.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in summary.notes], ""]
    if summary.failures:
        lines += ["## Left out", "",
                  f"{len(summary.failures)} clip(s) could not be used and are listed in "
                  f"`{FAILURES_FILE}` (key, split, file, reason, where it was referenced).", ""]
    return "\n".join(lines)
