"""The ``mmemo`` command. Each subcommand parses arguments and calls one library function.

``train`` and ``eval`` hand the rest of the command line to Hydra, so every
Hydra feature works (``-m`` multirun, ``--cfg job``, sweepers, launchers).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from mmemo.data.audio import SILENCE_DBFS, AudioError, UnusableAudioError
from mmemo.config import ConfigError
from mmemo.data.manifest import ManifestError
from mmemo.textfiles import TextFileError
from mmemo.training.checkpoints import CheckpointError
from mmemo.training.errors import NonFiniteScoresError

log = logging.getLogger("mmemo")
#: Errors caused by the user's input: printed as a message, not a traceback.
USER_ERRORS = (ManifestError, AudioError, UnusableAudioError, FileNotFoundError, FileExistsError, CheckpointError,
               TextFileError, ConfigError, NonFiniteScoresError)


def finite_float(text: str) -> float:
    """argparse type: a float that is a number (``nan``, ``inf`` and ``1e999`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def optional_dbfs(text: str) -> float | None:
    """argparse type for a silence threshold: a level in dBFS, or ``none`` to turn the check off."""
    return None if text.lower() in ("none", "null", "off") else finite_float(text)


def _run_hydra(config_name: str, task: Callable, argv: list[str]) -> None:
    import hydra

    from mmemo.config import config_dir, register_resolvers

    from mmemo.config import check_finite

    register_resolvers()

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
    def main(cfg):
        try:
            check_finite(cfg)
            return task(cfg)
        except USER_ERRORS as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            log.error("%s", error)
            sys.exit(2)

    sys.argv = [f"mmemo {config_name}", *argv]
    main()


def cmd_train(argv: list[str]) -> None:
    from mmemo.training.run import train

    _run_hydra("train", train, argv)


def cmd_eval(argv: list[str]) -> None:
    from mmemo.training.run import evaluate

    _run_hydra("eval", evaluate, argv)


def cmd_extract(argv: list[str]) -> None:
    """``mmemo extract [overrides]`` caches features; ``mmemo extract --info [DIR]`` lists caches."""
    if argv and argv[0] == "--info":
        from mmemo.features.extract import render_store_table
        from mmemo.features.store import list_stores

        root = argv[1] if len(argv) > 1 else os.path.join(os.environ.get("MMEMO_ROOT", "."), "cache", "features")
        print(render_store_table(list_stores(root)))
        return
    from mmemo.features.extract import extract_for_config

    _run_hydra("train", extract_for_config, argv)


def cmd_demo(args: argparse.Namespace) -> None:
    from mmemo.demo import run_demo

    run_demo(folds=args.folds, output_dir=args.out, results_dir=args.results, extra_overrides=args.overrides)


def cmd_data_synth(args: argparse.Namespace) -> None:
    from mmemo.data.synthetic import synthesize_corpus

    synthesize_corpus(args.out, seed=args.seed, speakers=args.speakers,
                      utterances_per_speaker=args.per_speaker, overwrite=args.overwrite)
    print(f"demo corpus written to {args.out}")


def cmd_data_check(args: argparse.Namespace) -> None:
    from mmemo.data.check import check_corpus

    report = check_corpus(args.root, folds=args.fold, audio=not args.no_audio, audio_root=args.audio_root,
                          allow_speaker_overlap=True if args.allow_speaker_overlap else None)
    print(report.render())
    if not report.ok:
        sys.exit(1)


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from mmemo.data.corpora import prepare_corpus

    summary = prepare_corpus(args.corpus, args.root, args.out, **_option_pairs(args.options))
    print(summary.render())


def _option_pairs(tokens: list[str]) -> dict[str, str]:
    """``--subset full --improvised-only true`` -> {"subset": "full", "improvised_only": "true"}."""
    options: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            raise ValueError(f"expected an option like --name value, got {token!r}")
        name, _, value = token[2:].partition("=")
        if not value:
            if index + 1 >= len(tokens) or tokens[index + 1].startswith("--"):
                raise ValueError(f"option {token} needs a value")
            index += 1
            value = tokens[index]
        options[name.replace("-", "_")] = value
        index += 1
    return options


def _corpus_options_help() -> str:
    from mmemo.data.corpora import CORPORA

    lines = ["corpus options:"]
    for name, adapter in sorted(CORPORA.items()):
        lines.append(f"  {name}:")
        lines += [f"    {option.describe()}" for option in adapter.options] or ["    (none)"]
    return "\n".join(lines)


def cmd_data_folds(args: argparse.Namespace) -> None:
    from mmemo.data.check import write_group_folds

    paths = write_group_folds(args.manifest, args.out, group_by=args.group_by, n_folds=args.n_folds,
                              name=args.name)
    print(f"wrote {len(paths) // 2} folds to {args.out}")


def cmd_sweep_wandb(args: argparse.Namespace) -> None:
    from mmemo.sweeps.wandb_sweep import start_wandb_sweep

    start_wandb_sweep(args.config, method=args.method, count=args.count, project=args.project,
                      entity=args.entity, dry_run=args.dry_run)


def cmd_sweep_job(args: argparse.Namespace) -> None:
    from mmemo.sweeps.wandb_sweep import run_job

    run_job(args.config, args.overrides)


def cmd_predict(args: argparse.Namespace) -> None:
    from mmemo.inference.run import DEFAULT_MODEL, predict

    try:
        summary = predict(args.paths, args.model or DEFAULT_MODEL, granularity=args.granularity,
                          embeddings_dir=args.embeddings, fmt=args.format, out=args.out, batch_size=args.batch_size,
                          batch_seconds=args.batch_seconds, smooth=args.smooth, max_seconds=args.max_seconds,
                          audio_root=args.audio_root, device=args.device, progress=not args.no_progress,
                          use_text=not args.no_text, silence_dbfs=args.silence_dbfs)
    except (OSError, NotImplementedError) as error:  # e.g. a hub id while offline: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(summary.render(), file=sys.stderr)
    if summary.failed:
        sys.exit(1)


def cmd_monitor_serve(args: argparse.Namespace) -> None:
    from mmemo.monitor.service import serve
    from mmemo.monitor.settings import MonitorSettings

    serve(MonitorSettings(
        model=args.model, device=args.device, compute_dtype=args.compute_dtype, host=args.host, port=args.port, token=args.token,
        insecure_local=args.insecure_local, db_url=args.db_url, data_dir=args.data_dir, rules=args.rules,
        watch=args.watch, embeddings=args.embeddings, smooth=args.smooth, max_upload_mb=args.max_upload_mb,
        max_duration_s=args.max_duration, max_stream_s=args.max_stream, cors_origins=args.cors_origin or [],
        retention_days=args.retention_days, hash_ids=args.hash_ids, batch_size=args.batch_size,
        stream_hop_s=args.stream_hop, stream_context_s=args.stream_context, stream_lookahead_s=args.stream_lookahead,
        silence_dbfs=args.silence_dbfs, max_concurrent_decodes=args.max_concurrent_decodes,
        webhook_allow_hosts=args.allow_webhook_host or []))


def _add_monitor_parser(sub) -> None:
    from mmemo.monitor.settings import MonitorSettings

    monitor = sub.add_parser("monitor", help="emotion monitor service: HTTP/WebSocket API, alert rules, web UI")
    serve = monitor.add_subparsers(dest="monitor_command", required=True).add_parser(
        "serve", help="run the monitor (docs/monitor.md)")
    serve.add_argument("--model", required=True, help="mmemo checkpoint (.ckpt), FunASR emotion2vec(+) folder or hub id")
    serve.add_argument("--device", default="cpu")
    serve.add_argument("--compute-dtype", default=None, dest="compute_dtype", choices=["float32", "bfloat16"],
                       help="encoder compute dtype for FunASR emotion2vec folders (bfloat16: ~2x faster on CPUs with bf16)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token", default=None, help="bearer token (default: $MMEMO_MONITOR_TOKEN; prefer the env var)")
    serve.add_argument("--insecure-local", action="store_true", dest="insecure_local",
                       help="no token; only allowed with a loopback --host (demos)")
    serve.add_argument("--db-url", default=None, dest="db_url",
                       help="SQLAlchemy URL, e.g. postgresql+psycopg://... (default: SQLite DATA_DIR/monitor.db)")
    serve.add_argument("--data-dir", default="runs/monitor", dest="data_dir", help="SQLite file and embeddings")
    serve.add_argument("--rules", default=None, help="rules YAML (default: configs/monitor/rules.yaml); hot-reloaded")
    serve.add_argument("--watch", default=None, metavar="DIR", help="also analyse audio files dropped into DIR")
    serve.add_argument("--embeddings", action="store_true", help="save each clip's embedding (.npy) in DATA_DIR")
    serve.add_argument("--smooth", type=int, default=1, help="frames per frame-score window (1 = none)")
    serve.add_argument("--max-upload-mb", type=finite_float, default=25.0, dest="max_upload_mb")
    serve.add_argument("--max-duration", type=finite_float, default=600.0, dest="max_duration", help="seconds per upload")
    serve.add_argument("--max-stream", type=finite_float, default=4 * 3600.0, dest="max_stream", help="seconds per stream")
    serve.add_argument("--cors-origin", action="append", dest="cors_origin", help="allow this origin (CORS is off)")
    serve.add_argument("--retention-days", type=finite_float, default=None, dest="retention_days")
    serve.add_argument("--hash-ids", action="store_true", dest="hash_ids",
                       help="store salted hashes of audio ids (salt: $MMEMO_MONITOR_SALT)")
    serve.add_argument("--batch-size", type=int, default=8, dest="batch_size", help="uploads per model call")
    serve.add_argument("--stream-hop", type=finite_float, default=1.0, dest="stream_hop",
                       help="seconds of new audio per streamed segment (latency vs compute)")
    serve.add_argument("--stream-context", type=finite_float, default=1.0, dest="stream_context",
                       help="seconds of past audio re-encoded with each segment")
    serve.add_argument("--silence-dbfs", type=optional_dbfs, default=SILENCE_DBFS, dest="silence_dbfs",
                       help=f"uploads whose peak is below this level are refused as silent (default {SILENCE_DBFS:g}; "
                            "none: no check)")
    serve.add_argument("--max-concurrent-decodes", type=int, default=MonitorSettings.max_concurrent_decodes,
                       dest="max_concurrent_decodes", help="uploads decoded at once (bounds the memory peak)")
    serve.add_argument("--allow-webhook-host", action="append", dest="allow_webhook_host", metavar="HOST",
                       help="let webhooks reach HOST even if it is link-local or a cloud metadata name (repeatable)")
    serve.add_argument("--stream-lookahead", type=finite_float, default=0.5, dest="stream_lookahead",
                       help="seconds of future audio a frame waits for")


def cmd_table(args: argparse.Namespace) -> None:
    from mmemo.evaluation.tables import build_table, load_runs, run_key, to_markdown, write_table

    runs = load_runs(args.runs) if args.runs else []
    if args.wandb:
        from mmemo.evaluation.wandb_runs import load_wandb_runs

        runs += load_wandb_runs(args.wandb)
    if not runs:
        raise FileNotFoundError(f"no finished runs (metrics.json) under {args.runs or args.wandb}")
    table = build_table(runs, row=lambda run: run_key(run, args.rows), column=lambda run: run_key(run, args.columns),
                        metrics=args.metrics, title=args.title, cited=args.cited or [])
    print(to_markdown(table))
    if args.out:
        for path in write_table(table, args.out, args.name):
            print(f"wrote {path}")
        if args.plot:
            from mmemo.evaluation.plots import table_chart

            print(f"wrote {table_chart(table, Path(args.out) / f'{args.name}.png', metric=args.metrics[0], chance=args.chance)}")


def _folds(text: str) -> list[int] | str:
    if text == "all":
        return "all"
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--folds takes 'all' or a list like 1,2,3; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmemo", description="Multimodal speech + text emotion recognition.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train + test one config (Hydra overrides follow)", add_help=False)
    sub.add_parser("eval", help="evaluate a checkpoint: mmemo eval ckpt_path=... (Hydra overrides)",
                   add_help=False)
    sub.add_parser("extract", help="cache frozen encoders' features (Hydra overrides); --info [DIR] lists caches",
                   add_help=False)

    demo = sub.add_parser("demo", help="speech-only, text-only, fused and classical models on the demo corpus")
    demo.add_argument("--folds", type=_folds, default="all", help="'all' (default) or e.g. 1,3")
    demo.add_argument("--out", default=None, help="run folder (default: runs/demo/<timestamp>)")
    demo.add_argument("--results", default=None,
                      help="also copy the table (md/csv/png) here, e.g. experiments/demo/results")
    demo.add_argument("overrides", nargs="*", help="extra Hydra overrides for every neural run")

    table = sub.add_parser("table", help="paper table (md/tex/csv) from finished runs: mean ± std over folds x seeds")
    table.add_argument("runs", nargs="*", help="folders searched for run folders (metrics.json)")
    table.add_argument("--wandb", default=None, help="also read runs from a W&B project, ENTITY/PROJECT")
    table.add_argument("--rows", default="model.speech.name",
                       help="dotted config key for rows (default model.speech.name; e.g. model.fusion.name)")
    table.add_argument("--columns", default="dataset", help="dotted config key for columns, or dataset/fold/seed")
    table.add_argument("--metrics", nargs="+", default=["UA", "WA", "macro_F1"])
    table.add_argument("--title", default="")
    table.add_argument("--plot", action="store_true", help="also write <name>.png: one bar per row (first column)")
    table.add_argument("--chance", type=finite_float, default=None, help="chance level (%%) drawn on the plot")
    table.add_argument("--cited", action="append", metavar="CSV",
                       help="published results to show beside this study's rows, marked as cited (repeatable)")
    table.add_argument("--out", default=None, help="folder for <name>.md/.tex/.csv")
    table.add_argument("--name", default="table")

    data = sub.add_parser("data", help="corpus tools").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the built-in espeak-ng demo corpus")
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=13)
    synth.add_argument("--speakers", type=int, default=10)
    synth.add_argument("--per-speaker", type=int, default=100, dest="per_speaker")
    synth.add_argument("--overwrite", action="store_true")

    check = data.add_parser("check", help="validate an EmoBox-layout corpus: manifests, labels, speakers, audio")
    check.add_argument("root")
    check.add_argument("--fold", type=int, action="append", help="only these folds (repeatable)")
    check.add_argument("--no-audio", action="store_true", help="skip the audio files (metadata only)")
    check.add_argument("--audio-root", default=None, help="where relative wav paths point (default: ROOT)")
    check.add_argument("--allow-speaker-overlap", action="store_true",
                       help="report test speakers in training as a warning (official speaker-dependent splits)")

    prepare = data.add_parser("prepare", help="read a corpus from its original layout into an mmemo folder",
                              epilog=_corpus_options_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    prepare.add_argument("corpus", help="iemocap, meld, ravdess, cremad, emodb, esd or emobox")
    prepare.add_argument("--root", required=True, help="the corpus as distributed (see docs/corpora.md)")
    prepare.add_argument("--out", required=True, help="where to write manifest, folds and label map")

    folds = data.add_parser("folds", help="write speaker-independent folds for a manifest.jsonl")
    folds.add_argument("manifest")
    folds.add_argument("--out", required=True)
    folds.add_argument("--group-by", default="speaker", choices=["speaker", "session"])
    folds.add_argument("--n-folds", type=int, default=None,
                       help="number of folds (default: one per group, i.e. leave-one-group-out)")
    folds.add_argument("--name", default=None, help="file prefix (default: the dataset field)")

    sweep = sub.add_parser("sweep", help="hyperparameter sweeps on external engines (W&B sweeps)").add_subparsers(
        dest="sweep_command", required=True)
    wandb_sweep = sweep.add_parser("wandb", help="turn an hparams_search config into a W&B sweep and run an agent")
    wandb_sweep.add_argument("config", help="hparams_search name (e.g. fusion_optuna) or a yaml path")
    wandb_sweep.add_argument("--method", default="bayes", choices=["bayes", "random", "grid"])
    wandb_sweep.add_argument("--count", type=int, default=None, help="jobs this agent runs (default: until done)")
    wandb_sweep.add_argument("--project", default=None, help="W&B project (default: $WANDB_PROJECT or mmemo)")
    wandb_sweep.add_argument("--entity", default=None)
    wandb_sweep.add_argument("--dry-run", action="store_true", help="print the sweep spec and example job commands")
    job = sweep.add_parser("job", help="one W&B sweep job (the agent runs this): mmemo train with the drawn values")
    job.add_argument("config")
    job.add_argument("overrides", nargs=argparse.REMAINDER)

    pred = sub.add_parser("predict", help="emotion of audio files, folders or manifests (utterance or frame timeline)")
    pred.add_argument("paths", nargs="+", help="audio files, folders (searched recursively) or .jsonl manifests")
    pred.add_argument("--model", default=None,
                      help="mmemo checkpoint (.ckpt), FunASR emotion2vec(+) folder or hub id "
                           "(default: iic/emotion2vec_plus_base)")
    pred.add_argument("--granularity", default="utterance", choices=["utterance", "frame"])
    pred.add_argument("--embeddings", default=None, metavar="DIR", help="save pooled embeddings (.npy + index.jsonl)")
    pred.add_argument("--format", default="json", choices=["json", "jsonl", "csv"])
    pred.add_argument("--out", default=None, help="result file (default: stdout)")
    pred.add_argument("--batch-size", type=int, default=16, dest="batch_size", help="clips per batch")
    pred.add_argument("--batch-seconds", type=finite_float, default=32.0, dest="batch_seconds",
                      help="padded audio per batch, seconds")
    pred.add_argument("--smooth", type=int, default=1, help="frame window N (frames) the head scores; 1 = none")
    pred.add_argument("--max-seconds", type=finite_float, default=30.0, dest="max_seconds",
                      help="longest audio encoded at once; utterance scores use the first MAX_SECONDS")
    pred.add_argument("--audio-root", default=None, dest="audio_root",
                      help="where a manifest's relative wav paths point (default: as in training: the corpus.json audio root, else the corpus root)")
    pred.add_argument("--silence-dbfs", type=optional_dbfs, default=SILENCE_DBFS, dest="silence_dbfs",
                      help=f"files whose peak is below this level are reported as silent (default {SILENCE_DBFS:g}; "
                           "none: no check)")
    pred.add_argument("--device", default="cpu")
    pred.add_argument("--no-text", action="store_true", dest="no_text", help="ignore manifest transcripts")
    pred.add_argument("--no-progress", action="store_true", dest="no_progress")
    _add_monitor_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "eval", "extract"):
        {"train": cmd_train, "eval": cmd_eval, "extract": cmd_extract}[argv[0]](argv[1:])
        return
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if getattr(args, "data_command", None) == "prepare":
        args.options = extras
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    log.addHandler(handler)  # only mmemo's own loggers; Lightning prints its own messages
    log.setLevel(logging.INFO)
    log.propagate = False
    handlers = {"demo": cmd_demo, "table": cmd_table, ("data", "synth"): cmd_data_synth, ("data", "check"): cmd_data_check,
                ("data", "prepare"): cmd_data_prepare, ("data", "folds"): cmd_data_folds}
    handlers |= {("sweep", "wandb"): cmd_sweep_wandb, ("sweep", "job"): cmd_sweep_job}
    handlers |= {"predict": cmd_predict}
    handlers |= {("monitor", "serve"): cmd_monitor_serve}
    key = {"data": ("data", getattr(args, "data_command", None)),
           "sweep": ("sweep", getattr(args, "sweep_command", None)),
           "monitor": ("monitor", getattr(args, "monitor_command", None))}.get(args.command, args.command)
    try:
        handlers[key](args)
    except USER_ERRORS + (ValueError, RuntimeError) as error:
        if os.environ.get("MMEMO_DEBUG") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
