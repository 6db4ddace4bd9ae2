"""Finding the pieces a package holds, so that adding one is adding a file.

Fusion heads register themselves when their module is imported (``@register``), corpus
adapters are module-level ``ADAPTER`` objects; :func:`import_submodules` imports every module
of a package once, so a new ``mmemo/fusion/<head>.py`` or ``mmemo/data/corpora/<corpus>.py``
is found with no list to edit (and the contract tests, parametrised over what is found, test
it the day it is added).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def import_submodules(package: str, skip: tuple[str, ...] = ()) -> list[ModuleType]:
    """Import every direct submodule of ``package`` (not sub-packages, not ``skip``), in name order."""
    root = importlib.import_module(package)
    modules = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if info.ispkg or info.name.startswith("_") or info.name in skip:
            continue
        modules.append(importlib.import_module(f"{package}.{info.name}"))
    return modules
