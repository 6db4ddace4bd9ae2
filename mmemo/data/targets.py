"""Dimensional values and annotator label distributions of manifest lines, validated like ``emo``.

A corpus declares its dimensions and their scale once (``corpus.json``: ``"dimensions":
{"arousal": [1, 5], "valence": [1, 5]}``, or the data config); a manifest line then carries each
value under the dimension's name (``"arousal": 3.5``). Values are normalised explicitly to
[0, 1] by ``(v - low) / (high - low)``, so corpora on 1-5, 1-7 or -1..1 scales train and score
alike, and a value outside its declared scale is an error naming the file and line (a swapped
scale never trains silently). ``emo_dist`` is the annotators' votes or probabilities per class
(``{"angry": 2, "neutral": 1}``), normalised to a distribution over the label map's classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmemo.data.manifest import Issue, IssueCollector, Utterance
from mmemo.errors import InvalidInput

#: The usual dimensions; any other declared name works the same way.
AVD = ("arousal", "valence", "dominance")
#: What a run learns: classes (``emo``), dimensions, both, or annotators' distributions (``emo_dist``).
TASKS = ("categorical", "dimensional", "multitask", "soft")
#: The validation metric each task selects checkpoints on (``val/${selection:${task}}`` in the configs):
#: UA for classes, the mean CCC over dimensions, their mean for multi-task runs.
SELECTION = {"categorical": "UA", "soft": "UA", "dimensional": "CCC", "multitask": "UA_CCC"}


@dataclass(frozen=True)
class Dimension:
    name: str
    low: float
    high: float

    def normalise(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)

    def denormalise(self, value: float) -> float:
        return self.low + value * (self.high - self.low)


def parse_dimensions(declared: Mapping[str, Sequence[float]] | None, where: str = "dimensions") -> list[Dimension]:
    """``{"arousal": [1, 5], ...}`` -> dimensions, refusing scales that are not ``[low < high]`` numbers."""
    out = []
    for name, scale in (declared or {}).items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"{where}: dimension name {name!r} must be a plain identifier (arousal, valence, ...)")
        ok = (isinstance(scale, (list, tuple)) and len(scale) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scale)
              and scale[0] < scale[1])
        if not ok:
            raise InvalidInput(f"{where}: dimension {name!r} needs its scale as [low, high] with low < high, "
                               f"got {scale!r}")
        out.append(Dimension(name, float(scale[0]), float(scale[1])))
    return out


def check_task(task: str) -> str:
    if task not in TASKS:
        raise InvalidInput(f"task must be one of {list(TASKS)}, got {task!r}")
    return task


def selection_metric(task: str) -> str:
    """The validation metric name a task's checkpoints are chosen on (``CCC`` for ``dimensional``)."""
    return SELECTION[check_task(str(task))]


def uses_dimensions(task: str) -> bool:
    return task in ("dimensional", "multitask")


def resolve_dimensions(spec: Mapping | Sequence[str] | None, declared: Mapping | None, corpus: str) -> list[Dimension]:
    """The dimensions a run learns: ``spec`` as ``{name: [low, high]}`` (scales given here), as a list of
    names (scales from the corpus's ``corpus.json``), or None (every dimension the corpus declares)."""
    declared = dict(declared or {})
    if spec is None:
        if not declared:
            raise InvalidInput(f"{corpus}: a dimensional task needs the corpus's dimensions and scales: its "
                               "corpus.json declares none; set data.dimensions={arousal: [low, high], ...}")
        return parse_dimensions(declared, f"{corpus}/corpus.json dimensions")
    if isinstance(spec, Mapping):
        return parse_dimensions(spec, "data.dimensions")
    names = [str(n) for n in spec]
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise InvalidInput(f"data.dimensions names {unknown} but {corpus}'s corpus.json declares "
                           f"{sorted(declared) or 'no dimensions'}; "
                           "give scales as data.dimensions={name: [low, high]}")
    if not names:
        raise InvalidInput("data.dimensions is an empty list")
    return parse_dimensions({n: declared[n] for n in names}, f"{corpus}/corpus.json dimensions")


def dimensional_targets(utterance: Utterance, dimensions: Sequence[Dimension], *, required: bool = True
                        ) -> tuple[list[float] | None, list[Issue]]:
    """The line's values normalised to [0, 1], in the order of ``dimensions`` (None when absent and
    not ``required``)."""
    issues, values = [], []
    for dim in dimensions:
        raw = utterance.extra.get(dim.name)
        if raw is None:
            if required:
                issues.append(Issue(utterance.source, f"missing dimension {dim.name!r} "
                                                      f"(declared on the scale [{dim.low:g}, {dim.high:g}])"))
            values.append(None)
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            issues.append(Issue(utterance.source, f"dimension {dim.name!r} must be a finite number, got {raw!r}"))
            values.append(None)
            continue
        if not dim.low <= raw <= dim.high:
            issues.append(Issue(utterance.source, f"dimension {dim.name!r} = {raw:g} is outside its declared scale "
                                                  f"[{dim.low:g}, {dim.high:g}]"))
            values.append(None)
            continue
        values.append(dim.normalise(float(raw)))
    if issues or all(v is None for v in values):
        return None, issues
    return values, issues


def label_distribution(utterance: Utterance, classes: Sequence[str], field: str = "emo_dist"
                       ) -> tuple[list[float] | None, list[Issue]]:
    """``emo_dist`` as probabilities over ``classes`` (None when the line has none)."""
    raw = utterance.extra.get(field)
    if raw is None:
        return None, []
    if not isinstance(raw, dict) or not raw:
        return None, [Issue(utterance.source, f"{field!r} must map class names to vote counts or probabilities, "
                                              f"got {raw!r}")]
    issues = []
    unknown = sorted(set(raw) - set(classes))
    if unknown:
        issues.append(Issue(utterance.source, f"{field!r} names {unknown[0]!r}, not a class of the label map "
                                              f"({', '.join(classes)})"))
    bad = [k for k, v in raw.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0]
    if bad:
        issues.append(Issue(utterance.source, f"{field!r}[{bad[0]!r}] must be a finite number >= 0, "
                                              f"got {raw[bad[0]]!r}"))
    if issues:
        return None, issues
    total = float(sum(raw.values()))
    if total <= 0:
        return None, [Issue(utterance.source, f"{field!r} has no votes (all zero)")]
    return [float(raw.get(c, 0.0)) / total for c in classes], []


def attach_targets(examples: Mapping[str, Sequence], task: str, dimensions: Sequence[Dimension],
                   classes: Sequence[str], *, required: bool = True) -> None:
    """Give each example (``.utterance``) the dimensional values and label distribution the task needs
    (``.dimensions``, NaN where a value is missing; ``.distribution``); every problem of every line is
    reported at once, as ``file:line``."""
    problems = IssueCollector()
    for items in examples.values():
        for example in items:
            utterance = example.utterance
            if uses_dimensions(task):
                values, issues = dimensional_targets(utterance, dimensions, required=required)
                if values is None and not issues and task == "dimensional":
                    issues = [Issue(utterance.source, "no value of any dimension "
                                                      f"({', '.join(d.name for d in dimensions)})")]
                problems.add(issues)
                example.dimensions = [math.nan if v is None else v for v in values] if values \
                    else [math.nan] * len(dimensions)
            if task == "soft":
                distribution, issues = label_distribution(utterance, classes)
                if distribution is None and not issues:
                    issues = [Issue(utterance.source, "a soft-label run needs 'emo_dist' (annotators' votes "
                                                      "per class) on every line")]
                problems.add(issues)
                example.distribution = distribution
    problems.raise_if_any()
