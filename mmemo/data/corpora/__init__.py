"""``mmemo data prepare``: read a corpus from its original layout, write an mmemo/EmoBox folder.

>>> from mmemo.data.corpora import prepare_corpus
>>> summary = prepare_corpus("iemocap", "/data/IEMOCAP_full_release", "/data/iemocap", subset="four_class")
>>> print(summary.render())

One module per corpus holds its adapter (a module-level ``ADAPTER``), found by
:func:`adapters` with no list to edit; the shared pieces are
:mod:`~mmemo.data.corpora.base` (adapter records and errors),
:mod:`~mmemo.data.corpora.options`, :mod:`~mmemo.data.corpora.fold_rule` (the
EmoBox fold rule), :mod:`~mmemo.data.corpora.files` (raw-file helpers) and
:mod:`~mmemo.data.corpora.writing` (the files written).
"""

from __future__ import annotations

import os
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.records import CorpusLayoutError, Failure, PreparedCorpus
from mmemo.errors import InvalidInput

#: Modules of this package that are shared pieces, not corpora.
SHARED_MODULES = ("base", "files", "fold_rule", "options", "records", "writing")


def adapters() -> dict[str, Adapter]:
    """Every corpus adapter: the ``ADAPTER`` of each module of this package, by name."""
    from mmemo.discovery import import_submodules

    found = {}
    for module in import_submodules(__name__, skip=SHARED_MODULES):
        adapter = getattr(module, "ADAPTER", None)
        if isinstance(adapter, Adapter):
            if adapter.name in found:
                raise InvalidInput(f"two corpus adapters are named {adapter.name!r}")
            found[adapter.name] = adapter
    return found


def available_corpora() -> list[str]:
    """Names accepted by :func:`prepare_corpus` (and ``mmemo data prepare``)."""
    return sorted(adapters())


def get_adapter(name: str) -> Adapter:
    """The adapter for ``name``; an unknown name lists the known ones."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    found = adapters()
    if key in found:
        return found[key]
    raise InvalidInput(f"unknown corpus {name!r}; known corpora: {', '.join(available_corpora())}")


def prepare_corpus(name: str, root: str | os.PathLike, out: str | os.PathLike, **options: Any) -> PreparedCorpus:
    """Read corpus ``name`` from ``root`` (its original layout) and write the mmemo folder ``out``.

    Options are the adapter's (see ``get_adapter(name).options``); values may be
    strings as typed on the command line. Returns a summary with counts per
    class, split and fold, the speakers and the paths written.
    """
    return get_adapter(name).prepare(root, out, **options)


__all__ = ["Adapter", "CorpusLayoutError", "Failure", "PreparedCorpus", "adapters", "available_corpora", "get_adapter",
           "prepare_corpus"]
