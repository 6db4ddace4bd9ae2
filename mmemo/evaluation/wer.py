"""Word error rate, for checking that a loaded Whisper checkpoint still transcribes well.

``wer = (substitutions + deletions + insertions) / reference words``, summed over the
corpus (not averaged per sentence), from a word-level Levenshtein alignment of each
reference/hypothesis pair.

With ``normalize=True`` both sides first go through openai-whisper's
``EnglishTextNormalizer`` (lower case, punctuation and hyphens removed, "Mr." ->
"mister", "can't" -> "can not", spelled-out numbers -> digits, British -> American
spelling), the normaliser Whisper's own English WERs are reported with. Without it,
words are whitespace-separated tokens compared exactly (case and punctuation count).

Among alignments with the fewest errors, one with the most substitutions (fewest
insertions + deletions) is kept, as sclite and Kaldi do: the total is the same either
way, only its split into S/D/I depends on this choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mmemo.errors import InvalidInput


def _normalizer() -> Callable[[str], str]:
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def align_words(reference: Sequence[str], hypothesis: Sequence[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimum-edit word alignment."""
    # Each cell: (errors, insertions + deletions, substitutions, deletions, insertions).
    previous = [(j, j, 0, 0, j) for j in range(len(hypothesis) + 1)]
    for i, ref_word in enumerate(reference, start=1):
        current = [(i, i, 0, i, 0)]
        for j, hyp_word in enumerate(hypothesis, start=1):
            diagonal = previous[j - 1]
            if ref_word == hyp_word:
                best = diagonal
            else:
                best = (diagonal[0] + 1, diagonal[1], diagonal[2] + 1, diagonal[3], diagonal[4])
            up, left = previous[j], current[j - 1]
            deletion = (up[0] + 1, up[1] + 1, up[2], up[3] + 1, up[4])
            insertion = (left[0] + 1, left[1] + 1, left[2], left[3], left[4] + 1)
            current.append(min(best, deletion, insertion, key=lambda cell: cell[:2]))
        previous = current
    _, _, substitutions, deletions, insertions = previous[-1]
    return substitutions, deletions, insertions


def word_error_rate(references: list[str], hypotheses: list[str], normalize: bool = True) -> dict:
    """Corpus WER with its S/D/I counts: ``{wer, substitutions, deletions, insertions, words}``.

    With no reference words at all, ``wer`` is 0.0 when nothing was inserted, else ``inf``.
    """
    if len(references) != len(hypotheses):
        raise InvalidInput(f"{len(references)} references but {len(hypotheses)} hypotheses")
    clean = _normalizer() if normalize else (lambda text: text)
    totals = {"substitutions": 0, "deletions": 0, "insertions": 0, "words": 0}
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref_words, hyp_words = clean(reference).split(), clean(hypothesis).split()
        substitutions, deletions, insertions = align_words(ref_words, hyp_words)
        totals["substitutions"] += substitutions
        totals["deletions"] += deletions
        totals["insertions"] += insertions
        totals["words"] += len(ref_words)
    errors = totals["substitutions"] + totals["deletions"] + totals["insertions"]
    if totals["words"]:
        wer = errors / totals["words"]
    else:
        wer = 0.0 if errors == 0 else float("inf")
    return {"wer": wer, **totals}
