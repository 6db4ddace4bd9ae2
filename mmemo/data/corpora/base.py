"""The corpus adapter contract: what every ``mmemo data prepare <corpus>`` implements.

An adapter only *reads* a corpus in its original layout and returns a
:class:`~mmemo.data.corpora.records.Collected` (utterances, label map, fold plan, failures);
everything written to ``out`` is written by :mod:`mmemo.data.corpora.writing`. Options live in
:mod:`mmemo.data.corpora.options`, the EmoBox fold rule in :mod:`mmemo.data.corpora.fold_rule`,
the records and file names in :mod:`mmemo.data.corpora.records` and the raw-file helpers in
:mod:`mmemo.data.corpora.files`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmemo.data.corpora.options import Option, resolve_options
from mmemo.data.corpora.records import Collected, CorpusLayoutError, PreparedCorpus
from mmemo.data.corpora.writing import start_output, write_outputs

# --------------------------------------------------------------------------- adapters


class Adapter:
    """One corpus: where to get it, its raw layout, its options, and how to read it.

    Subclasses set the class attributes and implement :meth:`locate` (find the
    corpus under the root the user gave, or raise :class:`CorpusLayoutError`)
    and :meth:`collect`. :meth:`prepare` is the same for all but EmoBox folders.
    """

    name: str = ""
    title: str = ""
    obtain: str = ""
    licence: str = ""
    layout: str = ""
    options: tuple[Option, ...] = ()

    def locate(self, root: Path) -> Path:
        raise NotImplementedError

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        raise NotImplementedError

    def layout_error(self, root: Path, missing: Sequence[str], hint: str = "") -> CorpusLayoutError:
        return CorpusLayoutError(self.title, root, missing, self.obtain, hint)

    def prepare(self, root: str | os.PathLike, out: str | os.PathLike, **given: Any) -> PreparedCorpus:
        options = resolve_options(self.name, self.options, given)
        root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))
        if not root.is_dir():
            raise self.layout_error(root, [f"{root} (no such directory)"])
        corpus_root = self.locate(root)
        start_output(out, self.name, corpus_root)
        collected = self.collect(corpus_root, out, options)
        return write_outputs(self, corpus_root, out, options, collected)
