"""Label scoring by constrained log-likelihood: ``log P(label tokens | prompt)`` for every label.

The answer is always one of the labels (no free text to parse), and both runtimes score the
*same token ids*, so they can be compared number for number:

* :class:`TransformersScorer`: any ``AutoModelForCausalLM`` (hub id, folder, or a GGUF file
  dequantized by transformers), prompt + candidate rows in padded batches;
* :class:`LlamaCppScorer`: a GGUF file run by llama.cpp (the ``xllamacpp`` wheel: prebuilt CPU
  kernels, no compiler). llama.cpp's server reports log-probabilities of generated tokens only, so
  each label token is *forced* (a +1e4 logit bias) one step at a time and its raw (pre-bias)
  log-probability read back; the server's prompt cache keeps the shared prompt's keys and values,
  so each extra step costs one token.

Scores are summed over a label's tokens (``length_norm``: averaged). Contextual calibration
(Zhao et al., 2021) subtracts each label's score for a content-free prompt (``"N/A"``), which
removes the LM's prior for some label words.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

from mmemo.errors import InvalidInput, MissingDependency

log = logging.getLogger(__name__)

#: The bias that makes llama.cpp's sampler pick the forced token whatever the model prefers.
FORCE_BIAS = 1.0e4


def check_candidates(candidates: Sequence[Sequence[int]], labels: Sequence[str]) -> None:
    """Every label needs its own, non-empty token sequence (with what ends it): prompting and label generation."""
    if len({tuple(c) for c in candidates}) != len(candidates) or not all(candidates):
        raise InvalidInput(f"two labels tokenise identically (or one is empty): {dict(zip(labels, candidates))}; "
                           "set label_words to tell them apart")


class TransformersScorer:
    """Log-likelihood of candidate continuations with a transformers causal LM.

    Each prompt is run **once** (left-padded batches, positions counted from each prompt's first real
    token); its keys and values are then repeated for every label and only the labels' own tokens are
    run, so L labels cost one prompt pass, not L. Only the logits that are read are computed.
    """

    runtime = "transformers"

    def __init__(self, model: torch.nn.Module, *, batch_rows: int = 8, pad_id: int = 0):
        self.model = model.eval()
        self.batch_rows = int(batch_rows)
        self.pad_id = int(pad_id)

    @torch.inference_mode()
    def score(self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]) -> np.ndarray:
        """[N, C]: for each prompt, the summed log-probability of each candidate's tokens."""
        out = np.zeros((len(prompts), len(candidates)), dtype=np.float64)
        for begin in range(0, len(prompts), self.batch_rows):
            part = prompts[begin: begin + self.batch_rows]
            out[begin: begin + len(part)] = self._score_batch(part, candidates)
        return out

    def _score_batch(self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]) -> np.ndarray:
        device = next(self.model.parameters()).device
        rows, labels, width = len(prompts), len(candidates), max(len(p) for p in prompts)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: every prompt ends at the same column
            ids[row, width - len(prompt):] = torch.tensor(list(prompt))
            mask[row, width - len(prompt):] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        first = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                           use_cache=True, logits_to_keep=1)
        first_tokens = torch.tensor([c[0] for c in candidates])
        scores = first.logits[:, -1].float().log_softmax(-1).cpu()[:, first_tokens]  # [rows, labels]
        longest = max(len(c) for c in candidates)
        if longest > 1:  # the labels' later tokens, every label of every prompt in one pass over the cache
            steps = longest - 1
            cont = torch.full((labels, steps), self.pad_id, dtype=torch.long)
            for c, candidate in enumerate(candidates):
                cont[c, : len(candidate) - 1] = torch.tensor(list(candidate[:-1]))
            cache = first.past_key_values
            cache.batch_repeat_interleave(labels)
            cont_ids = cont.repeat(rows, 1)
            cont_mask = torch.cat([mask.repeat_interleave(labels, 0),
                                   torch.ones((rows * labels, steps), dtype=torch.long)], 1)
            cont_pos = positions[:, -1:].repeat_interleave(labels, 0) + 1 + torch.arange(steps)[None]
            logits = self.model(input_ids=cont_ids.to(device), attention_mask=cont_mask.to(device),
                                position_ids=cont_pos.to(device), past_key_values=cache, use_cache=True).logits
            log_probs = logits.float().log_softmax(-1).cpu().view(rows, labels, steps, -1)
            for c, candidate in enumerate(candidates):
                if len(candidate) > 1:
                    targets = torch.tensor(list(candidate[1:]))
                    picked = log_probs[:, c, : len(candidate) - 1].gather(-1, targets.expand(rows, -1)[..., None])
                    scores[:, c] += picked[..., 0].sum(-1)
        return scores.double().numpy()


def llama_cpp_server(gguf_path: str | os.PathLike, *, n_ctx: int = 2048, threads: int | None = None):
    """An in-process llama.cpp server (``xllamacpp``) on a GGUF file: one slot, quiet, every core by default."""
    try:
        import xllamacpp
    except ImportError as error:
        raise MissingDependency("the llama.cpp runtime needs the xllamacpp wheel: pip install xllamacpp") from error
    if not os.path.isfile(gguf_path):
        raise InvalidInput(f"llama.cpp needs a GGUF file; {gguf_path} is not one")
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path)
    params.n_ctx = int(n_ctx)
    params.n_parallel = 1  # one slot: its prompt cache carries over from one request to the next
    params.cpuparams.n_threads = int(threads or max(1, os.cpu_count() or 1))
    params.warmup = False
    params.verbosity = -1  # llama.cpp logs every request otherwise
    return xllamacpp.Server(params)


class LlamaCppScorer:
    """The same scores through llama.cpp (``xllamacpp``) on a GGUF file."""

    runtime = "llama.cpp"

    def __init__(self, gguf_path: str | os.PathLike, *, n_ctx: int = 2048, threads: int | None = None):
        self.n_ctx = int(n_ctx)
        self.server = llama_cpp_server(gguf_path, n_ctx=n_ctx, threads=threads)

    def _next_logprob(self, context: list[int], token: int) -> float:
        request = {"prompt": context, "n_predict": 1, "n_probs": 1, "temperature": 0.0, "cache_prompt": True,
                   "logit_bias": [[int(token), FORCE_BIAS]]}
        answer = self.server.handle_completions(request)
        if "error" in answer:
            raise RuntimeError(f"llama.cpp refused a scoring request: {answer['error'].get('message')}")
        (step,) = answer["choices"][0]["logprobs"]["content"]
        if int(step["id"]) != int(token):
            raise RuntimeError(f"llama.cpp did not take the forced token {token} (got {step['id']})")
        return float(step["logprob"])

    def score(self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(prompts), len(candidates)), dtype=np.float64)
        for i, prompt in enumerate(prompts):
            if len(prompt) + max(map(len, candidates)) > self.n_ctx:
                raise InvalidInput(f"prompt {i} has {len(prompt)} tokens; with the labels it exceeds "
                                   f"n_ctx={self.n_ctx} (raise model.n_ctx or use fewer shots)")
            for c, candidate in enumerate(candidates):
                out[i, c] = sum(self._next_logprob(list(prompt) + list(candidate[:j]), token)
                                for j, token in enumerate(candidate))
        return out


def normalise(scores: np.ndarray, candidates: Sequence[Sequence[int]], length_norm: bool,
              calibration: np.ndarray | None = None) -> np.ndarray:
    """Scores as class logits: optionally per token, optionally minus the content-free prompt's scores."""
    scores = np.asarray(scores, dtype=np.float64)
    if length_norm:
        scores = scores / np.array([len(c) for c in candidates], dtype=np.float64)
    if calibration is not None:
        scores = scores - np.asarray(calibration, dtype=np.float64).reshape(1, -1)
    return scores
