"""FunASR emotion2vec checkpoints: model confs, the model directory format and hub ids.

A checkpoint is a FunASR model directory (``config.yaml``, ``model.pt``, ``tokens.txt``)
or a hub id (``iic/emotion2vec_plus_base`` on ModelScope, ``emotion2vec/emotion2vec_plus_base``
on Hugging Face). The network is funasr's own ``Emotion2vec`` class with the checkpoint's
weights. This module writes and reads such directories with errors that name the file and
the problem, loads weights strictly (funasr silently keeps random weights for missing or
mis-shaped keys), and resolves hub ids to a local copy, failing within seconds offline
instead of hanging in a download. The batched forward pass lives in
:mod:`mmemo.encoders.emotion2vec`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmemo.errors import InvalidInput, MissingInput

log = logging.getLogger(__name__)

CONFIG_FILE, WEIGHTS_FILE, TOKENS_FILE = "config.yaml", "model.pt", "tokens.txt"
UNKNOWN_TOKEN = "<unk>"
STANDARD_CONV_SPEC = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
TINY_CONV_SPEC = "[(32,10,5)]+[(32,3,2)]*4+[(32,2,2)]+[(32,2,2)]"
#: State-dict prefixes used only in pre-training; their weights are ignored when present.
PRETRAINING_ONLY_PREFIXES = ("modality_encoders.AUDIO.decoder.", "_ema", "ema.", "decoder.")

#: Hub owners and where their emotion2vec repositories live.
_HUB_OF_OWNER = {"iic": "modelscope", "damo": "modelscope", "emotion2vec": "huggingface"}
_HUB_HOSTS = {
    "modelscope": lambda: os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn"),
    "huggingface": lambda: os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0],
}


# --------------------------------------------------------------------------------------
# model_conf presets
# --------------------------------------------------------------------------------------
def _model_conf(*, embed_dim: int, num_heads: int, depth: int, prenet_depth: int, conv_spec: str,
                num_extra_tokens: int, conv_pos_width: int, conv_pos_depth: int, conv_pos_groups: int,
                extractor_mode: str = "layer_norm", layer_norm_first: bool = False,
                alibi_scale_per_layer: bool = False, conv_pos_pre_ln: bool = False,
                decoder: dict | None = None) -> dict:
    """A complete funasr ``model_conf`` (funasr reads every field by attribute: none may be missing)."""
    audio = {
        "type": "AUDIO", "extractor_mode": extractor_mode, "feature_encoder_spec": conv_spec,
        "conv_pos_width": conv_pos_width, "conv_pos_groups": conv_pos_groups,
        "conv_pos_depth": conv_pos_depth, "conv_pos_pre_ln": conv_pos_pre_ln,
        "prenet_depth": prenet_depth, "prenet_layerdrop": 0.05, "prenet_dropout": 0.1,
        "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
        "num_extra_tokens": num_extra_tokens, "init_extra_token_zero": False,
        "mask_noise_std": 0.01, "mask_prob_min": None, "mask_prob": 0.5, "inverse_mask": False,
        "mask_prob_adjust": 0.05, "keep_masked_pct": 0.0, "mask_length": 5, "add_masks": False,
        "remove_masks": False, "mask_dropout": 0.0, "encoder_zero_mask": True,
        "mask_channel_prob": 0.0, "mask_channel_length": 64, "ema_local_encoder": False,
        "local_grad_mult": 1.0,
        "use_alibi_encoder": True, "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
        "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": alibi_scale_per_layer,
        "num_alibi_heads": num_heads, "model_depth": depth, "decoder": decoder,
    }
    return {
        "loss_beta": 0.0, "loss_scale": None, "depth": depth,
        "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "num_heads": num_heads,
        "norm_eps": 1e-5, "norm_affine": True, "encoder_dropout": 0.1, "post_mlp_drop": 0.1,
        "attention_dropout": 0.1, "activation_dropout": 0.0, "dropout_input": 0.0, "layerdrop": 0.05,
        "embed_dim": embed_dim, "mlp_ratio": 4.0, "layer_norm_first": layer_norm_first,
        "average_top_k_layers": depth, "end_of_block_targets": False, "clone_batch": 8,
        "layer_norm_target_layer": False, "batch_norm_target_layer": False,
        "instance_norm_target_layer": True, "instance_norm_targets": False, "layer_norm_targets": False,
        "ema_decay": 0.999, "ema_same_dtype": True, "log_norms": True, "ema_end_decay": 0.99999,
        "ema_anneal_end_step": 75000, "ema_encoder_only": False, "max_update": 400000,
        "min_target_var": 0.1, "min_pred_var": 0.01, "mae_init": False, "seed": 1, "skip_ema": False,
        "cls_loss": 0.0, "recon_loss": 0.0, "d2v_loss": 1.0, "decoder_group": False,
        "normalize": True,
        "modalities": {"audio": audio},
    }


def emotion2vec_base_model_conf() -> dict:
    """The full-size emotion2vec-base architecture (also emotion2vec+ seed/base): data2vec 2.0 audio.

    768-d, 12 heads, 4 prenet + 8 main post-norm blocks, 7-layer conv extractor with 512
    channels and per-frame LayerNorm (``layer_norm`` mode), 5 grouped (16) positional convs of
    width 95 (kernel 19), 10 extra tokens, ALiBi with a learned per-head scale shared by all
    layers (``alibi_scale`` of shape [1,1,12,1,1] in the released checkpoint), waveform
    normalisation on. Pre-training-only fields keep data2vec 2.0's released base values.
    """
    decoder = {"decoder_dim": 384, "decoder_groups": 16, "decoder_kernel": 7, "decoder_layers": 4,
               "input_dropout": 0.1, "add_positions_masked": False, "add_positions_all": False,
               "decoder_residual": True, "projection_layers": 1, "projection_ratio": 2.0}
    return _model_conf(embed_dim=768, num_heads=12, depth=8, prenet_depth=4, conv_spec=STANDARD_CONV_SPEC,
                       num_extra_tokens=10, conv_pos_width=95, conv_pos_depth=5, conv_pos_groups=16,
                       decoder=decoder)


def tiny_model_conf(*, extractor_mode: str = "default", layer_norm_first: bool = False,
                    alibi_scale_per_layer: bool = True, conv_pos_width: int = 10) -> dict:
    """A 32-d, 1 prenet + 2 main block model for tests: every padding path, at toy size.

    The defaults take the paths the base model does not (GroupNorm over time, per-layer
    ALiBi scales); pass ``extractor_mode="layer_norm", alibi_scale_per_layer=False`` for the
    base model's paths. An even ``conv_pos_width // 2`` exercises funasr's ``SamePad`` trim.
    """
    return _model_conf(embed_dim=32, num_heads=4, depth=2, prenet_depth=1, conv_spec=TINY_CONV_SPEC,
                       num_extra_tokens=3, conv_pos_width=conv_pos_width, conv_pos_depth=2,
                       conv_pos_groups=4, extractor_mode=extractor_mode, layer_norm_first=layer_norm_first,
                       alibi_scale_per_layer=alibi_scale_per_layer, conv_pos_pre_ln=layer_norm_first)


# --------------------------------------------------------------------------------------
# the FunASR model directory
# --------------------------------------------------------------------------------------
def build_funasr_model(model_conf: dict, num_labels: int = 0) -> nn.Module:
    """funasr's real ``Emotion2vec`` (with a ``proj`` head of ``num_labels`` outputs when > 0)."""
    from funasr.models.emotion2vec.model import Emotion2vec

    return Emotion2vec(model_conf=model_conf, vocab_size=num_labels if num_labels > 0 else -1)


def save_funasr_model_dir(model: nn.Module, model_conf: dict, directory: str | Path,
                          labels: list[str] | None = None) -> Path:
    """Write ``model`` as funasr writes a model directory: config.yaml, model.pt, tokens.txt.

    ``labels`` (the head's classes in output order, containing ``<unk>``) are required
    exactly when the model has a ``proj`` head; a model without one is written without a
    tokenizer, so funasr builds it without a head too.
    """
    from omegaconf import OmegaConf

    head = getattr(model, "proj", None)
    if (head is None) != (labels is None):
        raise InvalidInput("labels must be given exactly when the model has a classification head (proj)")
    if labels is not None:
        _check_labels(labels, "labels")
        if head.out_features != len(labels):
            raise InvalidInput(f"the head has {head.out_features} outputs but {len(labels)} labels were given")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"model": "Emotion2vec", "model_conf": model_conf}
    if labels is not None:
        config.update(tokenizer="CharTokenizer",
                      tokenizer_conf={"unk_symbol": UNKNOWN_TOKEN, "split_with_space": True})
        (directory / TOKENS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    (directory / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(config)), encoding="utf-8")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, directory / WEIGHTS_FILE)
    return directory


def _check_labels(labels: Sequence[str], source: str) -> None:
    if UNKNOWN_TOKEN not in labels:
        raise InvalidInput(f"{source} has no '{UNKNOWN_TOKEN}' line; funasr's tokenizer requires one")
    duplicates = sorted({label for label in labels if list(labels).count(label) > 1})
    if duplicates:
        raise InvalidInput(f"{source} repeats labels {duplicates}")


@dataclass
class FunasrModelDir:
    """What a FunASR emotion2vec directory holds, read and checked."""

    directory: Path
    model_conf: dict
    state_dict: dict[str, torch.Tensor]
    labels: list[str] | None  # tokens.txt in order, when there is one


def read_funasr_model_dir(directory: str | Path) -> FunasrModelDir:
    """Read config.yaml, model.pt and tokens.txt with errors that name the file and the problem."""
    from mmemo.textfiles import load_yaml, read_text

    directory = Path(directory)
    config_path, weights_path, tokens_path = (directory / n for n in (CONFIG_FILE, WEIGHTS_FILE, TOKENS_FILE))
    missing = [p.name for p in (config_path, weights_path) if not p.is_file()]
    if missing:
        raise MissingInput(f"{directory} is not a FunASR model directory: {', '.join(missing)} missing "
                                f"(expected {CONFIG_FILE}, {WEIGHTS_FILE} and {TOKENS_FILE})")
    config = load_yaml(config_path)  # plain data: a model folder's config is never interpolated
    if not isinstance(config, dict) or config.get("model") != "Emotion2vec":
        found = config.get("model") if isinstance(config, dict) else None
        raise InvalidInput(f"{config_path}: 'model' is {found!r}, expected 'Emotion2vec'")
    if not isinstance(config.get("model_conf"), dict):
        raise InvalidInput(f"{config_path}: no 'model_conf' section")
    labels = None
    if tokens_path.is_file():
        labels = [line.rstrip("\r\n") for line in read_text(tokens_path, max_bytes=1 << 20).splitlines()]
        _check_labels(labels, str(tokens_path))
    elif config.get("tokenizer"):
        raise MissingInput(f"{config_path} names tokenizer {config['tokenizer']!r} but {directory} "
                                f"has no {TOKENS_FILE} (one label per line, including '{UNKNOWN_TOKEN}')")
    return FunasrModelDir(directory, config["model_conf"], _read_state_dict(weights_path), labels)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """model.pt as funasr's loader accepts it: a state dict, maybe under state_dict/model_state_dict/model."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors have many types
        raise InvalidInput(f"{path}: not a loadable PyTorch state dict ({type(error).__name__}: {error}). funasr "
                         "loads model.pt with torch.load's default weights_only=True too; if the file holds more "
                         "than tensors and you trust it, re-save its state dict with torch.save") from None
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInput(f"{path}: expected a dict of tensors (a state dict)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def head_labels(checkpoint: FunasrModelDir) -> list[str] | None:
    """tokens.txt when the checkpoint has an emotion2vec+ head (``proj``), checked against its size."""
    head = checkpoint.state_dict.get("proj.weight")
    if head is None:
        return None  # tokens.txt without a head names nothing
    if checkpoint.labels is None:
        raise InvalidInput(f"{checkpoint.directory / WEIGHTS_FILE} has a classification head but the directory "
                         f"has no {TOKENS_FILE} naming its classes")
    if head.shape[0] != len(checkpoint.labels):
        raise InvalidInput(f"{checkpoint.directory}: the head in {WEIGHTS_FILE} has {head.shape[0]} outputs but "
                         f"{TOKENS_FILE} lists {len(checkpoint.labels)} labels")
    return list(checkpoint.labels)


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: Path) -> None:
    """Strict loading: every weight of the built model must be in the checkpoint with its shape.

    funasr's own loader silently keeps random weights for missing or mis-shaped keys;
    here that is an error naming the file. Pre-training-only weights (decoder, EMA) are ignored.
    """
    state = dict(state_dict)
    scale_key = "modality_encoders.AUDIO.alibi_scale"
    if scale_key in state and state[scale_key].dim() == 4:  # fairseq's older layout, upgraded as fairseq does
        state[scale_key] = state[scale_key].unsqueeze(0)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or mismatched:
        problems = ([f"missing {k}" for k in missing[:8]] + mismatched[:8])
        raise InvalidInput(f"{source}: the state dict does not match {source.parent / CONFIG_FILE} "
                         f"({len(missing)} missing, {len(mismatched)} with other shapes): " + "; ".join(problems))
    unexpected = sorted(k for k in set(state) - set(expected) if not k.startswith(PRETRAINING_ONLY_PREFIXES))
    if unexpected:
        log.warning("%s: ignoring %d weights the model does not use, e.g. %s",
                    source, len(unexpected), unexpected[:5])
    model.load_state_dict({k: state[k] for k in expected})


# --------------------------------------------------------------------------------------
# hub ids
# --------------------------------------------------------------------------------------
def _is_hub_id(path: str) -> bool:
    """``owner/name``: one slash, no leading ``/``, ``.`` or ``~`` (those are local paths)."""
    owner, _, name = path.partition("/")
    return bool(owner and name) and "/" not in name and not path.startswith((".", "~"))


def _host_reachable(host: str, timeout: float = 3.0) -> bool:
    """TCP connect to host:443 within ``timeout`` s, DNS included (in a thread, as getaddrinfo ignores timeouts)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def _hub_of(model_id: str) -> str:
    return _HUB_OF_OWNER.get(model_id.split("/")[0], "modelscope")


def _cached_snapshot(model_id: str, hub: str) -> Path | None:
    """A complete copy of ``model_id`` already in the ModelScope or Hugging Face cache, if any."""
    if hub == "huggingface":
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(model_id, local_files_only=True))
        except Exception:  # not cached
            return None
    cache = Path(os.environ.get("MODELSCOPE_CACHE", Path.home() / ".cache" / "modelscope" / "hub"))
    for candidate in (cache / "models" / model_id, cache / model_id):
        if (candidate / CONFIG_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    return None


def _hub_unreachable_error(model_id: str, hub: str, host: str) -> OSError:
    name = model_id.split("/")[-1]
    return OSError(
        f"emotion2vec model {model_id!r} is not a local directory, and the {hub} hub ({host}) cannot be "
        f"reached from this machine (nor is the model in its local cache). Download the model where there is "
        f"network access - `modelscope download --model iic/{name} --local_dir {name}` or "
        f"`huggingface-cli download emotion2vec/{name} --local-dir {name}` (pages: "
        f"https://modelscope.cn/models/iic/{name}, https://huggingface.co/emotion2vec/{name}) - copy the "
        f"folder here and pass it: model.speech.path=/path/to/{name} (a folder with {CONFIG_FILE}, "
        f"{WEIGHTS_FILE} and {TOKENS_FILE})."
    )


def resolve_model_dir(path: str) -> Path:
    """A local FunASR directory for ``path``: the directory itself, a cached copy, or a fresh download.

    The hub is probed with a 3 s timeout first, so an offline machine fails in seconds
    with instructions instead of retrying for minutes.
    """
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if local.exists() or not _is_hub_id(path):
        raise MissingInput(f"emotion2vec path {path!r} is neither a model directory nor a hub id "
                                f"like iic/emotion2vec_plus_base (a directory needs {CONFIG_FILE}, "
                                f"{WEIGHTS_FILE} and {TOKENS_FILE})")
    hub = _hub_of(path)
    cached = _cached_snapshot(path, hub)
    if cached is not None:
        return cached
    host = _HUB_HOSTS[hub]()
    offline = hub == "huggingface" and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    if offline or not _host_reachable(host):
        raise _hub_unreachable_error(path, hub, host)
    log.info("downloading %s from %s", path, hub)
    if hub == "huggingface":
        from huggingface_hub import snapshot_download as hf_download

        return Path(hf_download(path))
    from modelscope.hub.snapshot_download import snapshot_download as ms_download

    return Path(ms_download(path))
