"""Explicit label maps: raw corpus labels to class names, in a fixed class order.

Merges such as IEMOCAP's ``exc -> hap`` are always written down (in config or in
a ``label_map.json``), never implied. A raw label mapped to ``null`` is dropped
on purpose; a raw label the map does not know is an error naming file and line.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mmemo.data.manifest import Issue, IssueCollector, Source, Utterance, report
from mmemo.errors import InvalidInput, MissingInput
from mmemo.textfiles import load_json


class LabelMap:
    """Maps raw labels to class indices.

    ``classes`` fixes the class order (and so the logits' order). When it is not
    given, it is the sorted set of the map's target names, or, with no map, the
    sorted set of labels seen in the training split.
    """

    def __init__(self, classes: Sequence[str], mapping: Mapping[str, str | None] | None = None):
        if not classes:
            raise InvalidInput("a label map needs at least one class")
        if len(set(classes)) != len(classes):
            raise InvalidInput(f"duplicate class names in {list(classes)}")
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self.mapping: dict[str, str | None] = {str(k): v for k, v in (mapping or {}).items()}
        unknown_targets = sorted(
            {v for v in self.mapping.values() if v is not None and v not in self.classes}
        )
        if unknown_targets:
            raise InvalidInput(
                f"label map targets {unknown_targets} are not among the classes {list(self.classes)}"
            )
        self._index = {name: i for i, name in enumerate(self.classes)}

    @classmethod
    def build(
        cls,
        mapping: Mapping[str, str | None] | str | os.PathLike | None = None,
        classes: Sequence[str] | None = None,
        observed: Iterable[str] = (),
    ) -> LabelMap:
        """Build from config values: a dict, a path to a JSON file, or nothing."""
        if isinstance(mapping, (str, os.PathLike)):
            mapping = load_label_map_file(mapping)
        mapping = dict(mapping or {})
        if not classes:
            targets = {v for v in mapping.values() if v is not None}
            if not targets:
                targets = {mapping.get(label, label) for label in observed} - {None}
            classes = sorted(targets)
        return cls(list(classes), mapping)

    def __len__(self) -> int:
        return len(self.classes)

    def target(self, raw: str) -> str | None:
        """The class name for a raw label, ``None`` when it is deliberately dropped.

        Raises KeyError for a label neither in the map nor a class name.
        """
        if raw in self.mapping:
            return self.mapping[raw]
        if raw in self._index:
            return raw
        raise KeyError(raw)

    def index(self, class_name: str) -> int:
        return self._index[class_name]

    def apply(self, utterances: Iterable[Utterance], collect: IssueCollector | None = None,
              keep_dropped: bool = False) -> tuple[list[Utterance], list[int], Counter]:
        """Return kept utterances, their class indices and a count of dropped raw labels.

        Every unknown label is reported with its file and line in one error. ``keep_dropped``
        (dimensional runs, which need no class) keeps deliberately dropped labels with class -1.
        """
        kept: list[Utterance] = []
        targets: list[int] = []
        dropped: Counter = Counter()
        issues: list[Issue] = []
        for utterance in utterances:
            try:
                name = self.target(utterance.emo)
            except KeyError:
                issues.append(Issue(
                    utterance.source or Source("<memory>", 0),
                    f"unknown label {utterance.emo!r} (key {utterance.key!r}); "
                    f"known: {self.describe()}",
                ))
                continue
            if name is None:
                dropped[utterance.emo] += 1
                if keep_dropped:
                    kept.append(utterance)
                    targets.append(-1)
                continue
            kept.append(utterance)
            targets.append(self._index[name])
        report(issues, collect, hint="Add the label to data.label_map (map it to a class, "
                                     "or to null to drop it on purpose).")
        return kept, targets, dropped

    def describe(self) -> str:
        merges = {k: v for k, v in self.mapping.items() if k != v}
        text = f"classes {list(self.classes)}"
        if merges:
            text += f", map {merges}"
        return text

    def to_dict(self) -> dict:
        return {"classes": list(self.classes), "mapping": dict(self.mapping)}


def load_label_map_file(path: str | os.PathLike) -> dict[str, str | None]:
    """Read an EmoBox-style ``label_map.json`` (``{"exc": "Happy", ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"label map not found: {path}")
    data = load_json(path)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()
    ):
        raise InvalidInput(f"{path}: a label map must be a JSON object of label -> class name or null")
    return data
