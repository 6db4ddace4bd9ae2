"""The EmoBox fold rule for corpora without official splits, as EmoBox's ``write_folds`` applies it:

- fewer than 4 speakers, or emotions *unbalanced* across speakers (not every
  speaker has the same number of utterances of each class) -> one fold, with
  ``floor(25%)`` of each class as test (speaker-dependent);
- 4-6 speakers -> leave-one-speaker-out;
- more than 6 -> ``n_speakers // 4`` speaker-disjoint folds.

EmoBox draws its test utterances and speaker groups at random; mmemo makes
both deterministic and documented: the stratified test set is, per class, the
``floor(n/4)`` utterances with the smallest SHA-1 of their key; speaker groups
are made by sorting speakers by ``(stratum, id)`` (stratum = gender or
language when the corpus has it) and dealing them round-robin, so folds are
balanced in gender and identical on every machine and Python version.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from mmemo.data.folds import make_speaker_folds
from mmemo.data.manifest import Utterance
from mmemo.errors import InvalidInput

#: ``folds`` choices shared by the corpora that have no official split.
RULE_SCHEMES = ("emobox", "speakers", "loso")
TEST_FRACTION = 0.25


@dataclass
class FoldPlan:
    """Folds as lists of utterances per split, and what kind of protocol they form."""

    folds: list[dict[str, list[Utterance]]]
    scheme: str
    description: str
    speaker_independent: bool
    reason: str = ""
    test_groups: list[list[str]] | None = None


def _sha1(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def class_counts_by_speaker(utterances: Iterable[Utterance], label_of: Callable[[Utterance], str]
                            ) -> dict[str, Counter]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for u in utterances:
        counts[u.speaker or ""][label_of(u)] += 1
    return counts


def is_balanced(utterances: Sequence[Utterance], label_of: Callable[[Utterance], str]) -> bool:
    """EmoBox's test: every speaker has the same number of utterances of every class."""
    counts = class_counts_by_speaker(utterances, label_of)
    classes = sorted({label_of(u) for u in utterances})
    return len({tuple(c[name] for name in classes) for c in counts.values()}) <= 1


def stratified_fold(utterances: Sequence[Utterance], label_of: Callable[[Utterance], str],
                    fraction: float = TEST_FRACTION) -> dict[str, list[Utterance]]:
    """One train/test split: per class, ``floor(fraction * n)`` test utterances (smallest SHA-1 of key)."""
    by_class: dict[str, list[Utterance]] = defaultdict(list)
    for u in utterances:
        by_class[label_of(u)].append(u)
    test_keys: set[str] = set()
    for members in by_class.values():
        ranked = sorted(members, key=lambda u: _sha1(u.key))
        test_keys.update(u.key for u in ranked[: int(len(members) * fraction)])
    return {"train": [u for u in utterances if u.key not in test_keys],
            "test": [u for u in utterances if u.key in test_keys]}


def speaker_groups(speakers: Iterable[str], n_groups: int,
                   strata: Mapping[str, str] | None = None) -> list[list[str]]:
    """Deal speakers into ``n_groups``: sorted by (stratum, id), then round-robin."""
    strata = strata or {}
    order = sorted(set(speakers), key=lambda s: (strata.get(s) or "", s))
    groups: list[list[str]] = [[] for _ in range(n_groups)]
    for index, speaker in enumerate(order):
        groups[index % n_groups].append(speaker)
    return [sorted(g) for g in groups]


def group_plan(utterances: Sequence[Utterance], groups: Sequence[Sequence[str]], scheme: str,
               description: str) -> FoldPlan:
    """Leave-one-group-out folds over speaker groups (speaker-independent by construction)."""
    folds = [{"train": train, "test": test} for train, test in make_speaker_folds(utterances, groups)]
    return FoldPlan(folds, scheme, description, True,
                    "no speaker is in both the training and the test split of any fold",
                    [list(g) for g in groups])


def plan_folds(utterances: Sequence[Utterance], scheme: str, label_of: Callable[[Utterance], str],
               strata: Mapping[str, str] | None = None, strata_name: str = "gender") -> FoldPlan:
    """Folds for a corpus without an official split.

    ``emobox``: the EmoBox rule (see the module docstring). ``speakers``: the
    rule without its balance test, so always speaker-independent (needs 4
    speakers). ``loso``: leave-one-speaker-out.
    """
    missing = [u for u in utterances if not u.speaker]
    if missing:
        raise InvalidInput(f"{len(missing)} utterances have no speaker (first {missing[0].key!r})")
    speakers = sorted({u.speaker for u in utterances if u.speaker})
    n = len(speakers)
    strata_note = f" by ({strata_name}, id)" if strata and any(strata.values()) else " by id"
    if scheme == "loso":
        if n < 2:
            raise InvalidInput(f"leave-one-speaker-out needs at least 2 speakers, found {n}")
        return group_plan(utterances, [[s] for s in speakers], "loso",
                          f"leave-one-speaker-out: {n} folds, one per speaker (sorted by id)")
    if scheme not in ("emobox", "speakers"):
        raise InvalidInput(f"unknown fold scheme {scheme!r}; choose one of {', '.join(RULE_SCHEMES)}")
    if scheme == "emobox" and (n < 4 or not is_balanced(utterances, label_of)):
        why = (f"only {n} speakers" if n < 4 else
               "the number of utterances per class differs between speakers")
        plan = stratified_fold(utterances, label_of)
        return FoldPlan(
            [plan], "emobox",
            f"EmoBox rule: {why}, so one fold with floor(25%) of each class as test "
            "(the utterances with the smallest SHA-1 of their key); speakers are in both splits",
            False,
            f"EmoBox's rule makes a speaker-dependent stratified split when {why}; use "
            "folds=speakers or folds=loso for speaker-independent folds",
        )
    if n < 4:
        raise InvalidInput(f"speaker-independent folds need at least 4 speakers, found {n}; "
                         "use folds=loso or folds=emobox")
    if n <= 6:
        return group_plan(utterances, [[s] for s in speakers], scheme,
                          f"EmoBox rule: {n} speakers (4-6), so leave-one-speaker-out, {n} folds")
    k = n // 4
    groups = speaker_groups(speakers, k, strata)
    return group_plan(utterances, groups, scheme,
                      f"EmoBox rule: {n} speakers (> 6), so {k} speaker-disjoint folds (n // 4); "
                      f"speakers sorted{strata_note} and dealt round-robin into the folds")
