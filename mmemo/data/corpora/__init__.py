"""``mmemo data prepare``: read a corpus from its original layout, write an mmemo/EmoBox folder.

>>> from mmemo.data.corpora import prepare_corpus
>>> summary = prepare_corpus("iemocap", "/data/IEMOCAP_full_release", "/data/iemocap", subset="four_class")
>>> print(summary.render())

One module per corpus holds its adapter; the shared pieces are
:mod:`~mmemo.data.corpora.base` (adapter records and errors),
:mod:`~mmemo.data.corpora.options`, :mod:`~mmemo.data.corpora.fold_rule` (the
EmoBox fold rule), :mod:`~mmemo.data.corpora.files` (raw-file helpers) and
:mod:`~mmemo.data.corpora.writing` (the files written).
"""

from __future__ import annotations

import os
from typing import Any

from mmemo.data.corpora import cremad, emobox, emodb, esd, iemocap, meld, ravdess
from mmemo.data.corpora.base import Adapter, CorpusLayoutError, Failure, PreparedCorpus
from mmemo.data.corpora.fold_rule import plan_folds
from mmemo.data.corpora.options import Option

CORPORA: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (iemocap.ADAPTER, meld.ADAPTER, ravdess.ADAPTER, cremad.ADAPTER, emodb.ADAPTER,
                    esd.ADAPTER, emobox.ADAPTER)
}


def available_corpora() -> list[str]:
    """Names accepted by :func:`prepare_corpus` (and ``mmemo data prepare``)."""
    return sorted(CORPORA)


def get_adapter(name: str) -> Adapter:
    """The adapter for ``name``; an unknown name lists the known ones."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in CORPORA:
        return CORPORA[key]
    raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(available_corpora())}")


def prepare_corpus(name: str, root: str | os.PathLike, out: str | os.PathLike, **options: Any) -> PreparedCorpus:
    """Read corpus ``name`` from ``root`` (its original layout) and write the mmemo folder ``out``.

    Options are the adapter's (see ``CORPORA[name].options``); values may be
    strings as typed on the command line. Returns a summary with counts per
    class, split and fold, the speakers and the paths written.
    """
    return get_adapter(name).prepare(root, out, **options)


__all__ = ["CORPORA", "Adapter", "CorpusLayoutError", "Failure", "Option", "PreparedCorpus", "available_corpora",
           "get_adapter", "plan_folds", "prepare_corpus"]
