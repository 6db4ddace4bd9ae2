"""Reading checkpoint files as untrusted data: never run code, one clear error per bad file.

A ``.ckpt`` passed to ``mmemo predict``, ``mmemo eval`` or ``mmemo monitor serve`` may come
from anywhere. A pickle can run any code when loaded, so checkpoints are read with
``torch.load(weights_only=True)``, which builds only tensors and plain Python data (mmemo
writes nothing else: configs are stored as plain dicts, random-number states as lists).

Loading does not stop at unpickling: the configs stored in a checkpoint are instantiated
(``_target_``), so they are checked too. An encoder's ``_target_`` must be one of mmemo's
encoder classes and a data config's one of mmemo's data modules; interpolations (``${...}``)
are refused. Random bytes, an empty or text file, a truncated archive, a file that is not an
mmemo checkpoint and weights holding NaN or infinity each raise :class:`CheckpointError`,
whose message names the file and the problem.
"""

from __future__ import annotations

import importlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmemo.errors import UserError

if TYPE_CHECKING:
    import torch

#: Keys every checkpoint mmemo writes carries.
REQUIRED_KEYS = ("state_dict", "hyper_parameters", "mmemo_classes")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(UserError, ValueError):
    """A checkpoint file mmemo refuses to load; ``str()`` is ``file: problem``."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint as plain data, checked for shape and finite weights (no code runs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file (0 bytes), not a checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = _GLOBAL.search(str(error))
        if found is None:  # not a pickle asking for objects: garbage (e.g. "Unsupported operand")
            detail = next((line.strip() for line in str(error).splitlines()
                           if line.strip().startswith(("Unsupported", "Invalid", "invalid"))), "unreadable pickle")
            raise CheckpointError(path, f"not a readable PyTorch checkpoint (truncated, corrupt or another kind "
                                        f"of file: {detail})") from None
        raise CheckpointError(path, f"refused: the file asks to build Python objects ({found.group(1)}) that a "
                                    "checkpoint does not hold; it may try to run code. mmemo loads checkpoints as "
                                    "plain data (tensors, numbers, strings) only") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError,
            AttributeError, TypeError, IndexError, MemoryError, OverflowError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(path, f"not a readable PyTorch checkpoint (truncated, corrupt or another kind of "
                                    f"file: {reason})") from None
    check_contents(checkpoint, path)
    return checkpoint


def check_contents(checkpoint: Any, path: str | Path) -> None:
    """An mmemo checkpoint's shape: the required keys, tensors as weights, finite values."""
    import torch

    if not isinstance(checkpoint, dict):
        raise CheckpointError(path, f"not an mmemo checkpoint (it holds a {type(checkpoint).__name__}, not a dict)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(path, f"not an mmemo EmotionClassifier checkpoint (it lacks {', '.join(missing)}); "
                                    "pass a checkpoint written by mmemo train (runs/.../checkpoints/best.ckpt)")
    state, classes, hparams = checkpoint["state_dict"], checkpoint["mmemo_classes"], checkpoint["hyper_parameters"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(path, "its state_dict is not a mapping of weight names to tensors")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise CheckpointError(path, f"its class list is not a non-empty list of names: {classes!r:.100}")
    if not isinstance(hparams, dict):
        raise CheckpointError(path, "its hyper_parameters are not a mapping")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(path, f"weight {name!r} holds {bad} NaN or infinite value(s) (a diverged run?); "
                                        "it cannot give meaningful scores")
    for key, value in hparams.items():
        check_config(value, path, f"hyper_parameters.{key}", BUILT_FROM_HPARAMS.get(key))
    run_config = checkpoint.get("mmemo_run_config") or {}
    if not isinstance(run_config, dict):
        raise CheckpointError(path, "its stored run config is not a mapping")
    check_config(run_config.get("data"), path, "run config: data", DATAMODULE_BASE)


#: (module prefix, base class) a stored ``_target_`` may name, by where it stands.
ENCODER_BASE = ("mmemo.encoders.", "mmemo.encoders.base.Encoder")
DATAMODULE_BASE = ("mmemo.data.", "mmemo.data.datamodule.EmotionDataModule")
FUSION_BASE = ("mmemo.fusion.", "mmemo.fusion.base.FusionHead")
#: The hyper-parameters a model builds a class from, and the classes each may name.
BUILT_FROM_HPARAMS = {"speech": ENCODER_BASE, "text": ENCODER_BASE, "video": ENCODER_BASE, "fusion": FUSION_BASE}


def check_config(node: Any, path: str | Path, where: str, allowed: tuple[str, str] | None) -> None:
    """Refuse a stored config that could make instantiation run something else than mmemo's own class.

    Only the top level of ``node`` may carry ``_target_`` (when ``allowed`` says which classes);
    no value may be an OmegaConf interpolation.
    """
    if node is None:
        return
    if isinstance(node, dict) and "_target_" in node:
        if allowed is None:
            raise CheckpointError(path, f"{where} names a class to build ({node['_target_']!r}); refused")
        _check_target(node["_target_"], path, where, allowed)
    for key, value in _walk(node):
        if key.endswith("._target_") or key.endswith("._partial_") or key.endswith("._args_"):
            raise CheckpointError(path, f"{where}{key} is refused: a stored config may not build other objects")
        if isinstance(value, str) and "${" in value:
            raise CheckpointError(path, f"{where}{key} holds an interpolation ({value[:60]!r}); refused")


def _walk(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}.{key}"
            if prefix or key not in ("_target_", "_partial_"):
                yield name, value
            yield from _walk(value, name)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield f"{prefix}[{index}]", value
            yield from _walk(value, f"{prefix}[{index}]")


def _check_target(target: Any, path: str | Path, where: str, allowed: tuple[str, str]) -> None:
    prefix, base_name = allowed
    if not isinstance(target, str) or not target.startswith(prefix):
        raise CheckpointError(path, f"{where}: _target_ {target!r} is not one of mmemo's classes ({prefix}*); "
                                    "refused")
    base_module, _, base_class = base_name.rpartition(".")
    base = getattr(importlib.import_module(base_module), base_class)
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckpointError(path, f"{where}: _target_ {target!r} is not a subclass of {base_class}; refused")
