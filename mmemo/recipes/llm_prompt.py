"""Zero- and few-shot classification with a causal LM (``mmemo train model=llm_prompt``).

Nothing is trained: each validation and test utterance's transcript goes into a prompt
(:mod:`mmemo.llm.prompts`, few-shot examples from the fold's *training* split only), every label is
scored by its constrained log-likelihood (:mod:`mmemo.llm.scoring`, through transformers or
llama.cpp), and the argmax is the prediction. The run writes the same ``metrics.json``,
``predictions.csv`` and confusion matrix as a trained model, so the prompting rows sit in the same
tables (UA/WA/F1, mean ± std over folds).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from mmemo.errors import InvalidInput
from mmemo.evaluation.metrics import compute_metrics
from mmemo.evaluation.report import write_run_report
from mmemo.llm.prompts import PromptTemplate, PromptTokens, few_shot_examples
from mmemo.llm.scoring import LlamaCppScorer, TransformersScorer, check_candidates, normalise
from mmemo.recipes.common import container, run_metadata
from mmemo.training.objectives import headline

log = logging.getLogger(__name__)
RUNTIMES = ("transformers", "llama.cpp")
CONTENT_FREE = "N/A"


def build_scorer(options: dict, lm=None):
    """The runtime's scorer and the tokenizer both share (llama.cpp reads the same GGUF file)."""
    from mmemo.encoders.llm import load_causal_lm, split_gguf

    runtime = options.get("runtime", "transformers")
    if runtime not in RUNTIMES:
        raise InvalidInput(f"model.runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "llama.cpp":
        folder, name = split_gguf(str(options["path"]))
        if name is None:
            raise InvalidInput("model.runtime=llama.cpp needs model.path to be a .gguf file")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        return LlamaCppScorer(options["path"], n_ctx=int(options.get("n_ctx", 2048)),
                              threads=options.get("threads")), tokenizer
    tokenizer, model = lm if lm is not None else load_causal_lm(str(options["path"]))
    return TransformersScorer(model, batch_rows=int(options.get("batch_rows", 16)),
                              pad_id=tokenizer.pad_token_id or 0), tokenizer


def training_pool(datamodule) -> list:
    """The utterances few-shot examples may come from: the fold's training split (with a class)."""
    return [e.utterance for e in datamodule.datasets["train"].examples if e.label >= 0]


def score_prompts(scorer, tokens: PromptTokens, prompts: list[list[int]], desc: str, chunk: int = 32) -> np.ndarray:
    """The scorer over ``prompts`` in chunks, with a progress bar (prompting a corpus takes minutes)."""
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(prompts), unit="prompt", desc=desc, disable=len(prompts) < chunk) as bar:
        for begin in range(0, len(prompts), chunk):
            parts.append(scorer.score(prompts[begin: begin + chunk], tokens.candidates))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, len(tokens.candidates)))


def run(cfg: DictConfig) -> dict:
    from mmemo.llm.voice import voice_lines

    started = time.time()
    options = container(cfg.model)
    output_dir = Path(cfg.paths.output_dir)
    splits = list(options.get("splits") or ["valid", "test"])
    if "test" not in splits or not set(splits) <= {"valid", "test"}:
        raise InvalidInput(f"model.splits must list test (and optionally valid), got {splits}")
    voice = options.get("voice") or {}
    # audio is read only for speech-aware prompts (mmemo/llm/voice.py)
    datamodule = instantiate(cfg.data, use_audio=bool(voice.get("prosody") or voice.get("checkpoint")), use_text=True)
    datamodule.setup("fit")
    classes = list(datamodule.classes)
    scorer, tokenizer = build_scorer(options)
    tokens = PromptTokens(tokenizer, classes, PromptTemplate(**(options.get("template") or {})),
                          chat=bool(options.get("chat", True)), label_words=options.get("label_words"),
                          end=str(options.get("end", "\n")))
    check_candidates(tokens.candidates, classes)
    scored_keys = {e.utterance.key for split in ("valid", "test") for e in datamodule.datasets[split].examples}
    label_of = {e.utterance.key: classes[e.label] for e in datamodule.datasets["train"].examples}
    shots = few_shot_examples(training_pool(datamodule), int(options.get("shots", 0)), int(cfg.seed), tokens.words,
                              lambda u: tokens.words[classes.index(label_of[u.key])], scored_keys)
    groups = {"shots": shots, **{s: [e.utterance for e in datamodule.datasets[s].examples] for s in splits}}
    voices = voice_lines(voice, groups, datamodule.load_wave, tokens.words_of)
    examples = [(u.text, tokens.words[classes.index(label_of[u.key])], voices.get(u.key)) for u in shots]
    length_norm = bool(options.get("length_norm", False))
    calibration = None
    if options.get("calibrate"):
        calibration = normalise(scorer.score([tokens.prompt(CONTENT_FREE, examples=examples)], tokens.candidates),
                                tokens.candidates, length_norm)[0]
    results: dict = {"valid": None}
    rows: list[dict] = []
    for split in splits:
        items = datamodule.datasets[split].examples
        prompts = [tokens.prompt(e.utterance.text or "", voices.get(e.utterance.key), examples) for e in items]
        logits = normalise(score_prompts(scorer, tokens, prompts, f"{split} prompts"), tokens.candidates,
                           length_norm, calibration)
        predicted = logits.argmax(1)
        results[split] = compute_metrics(predicted.tolist(), [e.label for e in items], classes)
        if split == "test":
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            rows = [{"key": e.utterance.key, "speaker": e.utterance.speaker or "", "label": classes[e.label],
                     "prediction": classes[int(p)], **{f"p_{c}": round(float(v), 5) for c, v in zip(classes, q)}}
                    for e, p, q in zip(items, predicted, probs)]
    sample = next(iter(datamodule.datasets["test"].examples)).utterance
    meta = run_metadata(cfg, datamodule, started) | {
        "prompting": {"runtime": scorer.runtime, "shots": [u.key for u in shots], "calibrated": calibration is not None,
                      "voice": sorted(k for k in ("prosody", "checkpoint") if voice.get(k)),
                      "example_prompt": tokenizer.decode(tokens.prompt(sample.text or "", voices.get(sample.key),
                                                                       examples))}}
    name = Path(str(options["path"])).name
    write_run_report(output_dir, test=results["test"], valid=results["valid"], meta=meta, predictions=rows,
                     title=f"{name} {len(shots)}-shot: test UA {100 * results['test']['UA']:.1f}%")
    datamodule.write_file_list(output_dir)
    log.info("%s %d-shot (%s) fold %d: valid %s | test %s -> %s", name, len(shots), scorer.runtime, datamodule.fold,
             headline(results["valid"]) if results["valid"] else "-", headline(results["test"]), output_dir)
    return {"test": results["test"], "valid": results["valid"], "meta": meta}
