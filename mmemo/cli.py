"""The ``mmemo`` command. Each subcommand parses arguments and calls one library function.

``train`` and ``eval`` hand the rest of the command line to Hydra, so every
Hydra feature works (``-m`` multirun, ``--cfg job``, sweepers, launchers).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mmemo.arguments import add_options, finite_float, from_options
from mmemo.errors import InvalidInput, MissingInput, UserError, debugging

log = logging.getLogger("mmemo")
#: What a user can fix: printed as one message (exit status 2), not a traceback, by every command.
#: ``OSError``s that name a path the user gave are theirs too; ``NotImplementedError`` names an unbuilt part.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
               NotADirectoryError, NotImplementedError)


def report_user_error(error: BaseException, *, logged: bool = False) -> None:
    """The one way every command ends on a user error (``MMEMO_DEBUG=1``: the traceback instead).

    ``logged``: inside a Hydra job the message goes through logging, so it also lands in the run's log file.
    """
    if debugging():
        raise error
    if logged:
        log.error("%s", error)
    else:
        print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def _run_hydra(config_name: str, argv: list[str]) -> None:
    """Compose the config from the command line (all of Hydra's features) and run its recipe."""
    import hydra

    from mmemo.config import check_finite, config_dir, register_resolvers
    from mmemo.recipes import run_config

    register_resolvers()

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
    def main(cfg):
        try:
            check_finite(cfg)
            return run_config(cfg)
        except USER_ERRORS as error:  # inside the job, so a multirun's other jobs are not reported as crashes
            report_user_error(error, logged=True)

    sys.argv = [f"mmemo {config_name}", *argv]
    main()


def cmd_train(argv: list[str]) -> None:
    _run_hydra("train", argv)


def cmd_eval(argv: list[str]) -> None:
    if argv and argv[0] == "long-form":
        cmd_eval_long_form(argv[1:])
        return
    _run_hydra("eval", argv)


def cmd_eval_long_form(argv: list[str]) -> None:
    """``mmemo eval long-form DATA...``: EDER, frame F1, segment UA and DER on annotated recordings."""
    from mmemo.longform.evaluate import evaluate_long_form, render, write

    parser = argparse.ArgumentParser(prog="mmemo eval long-form", description=cmd_eval_long_form.__doc__)
    parser.add_argument("data", nargs="+", help="RTTM files (EMOTION, optional SPEAKER lines) with their audio "
                                                "beside them, or folders of them")
    parser.add_argument("--model", default=None, help="run the long-form pipeline with this checkpoint")
    parser.add_argument("--hypothesis", default=None, help="or score the RTTM files in this folder (<stem>.rttm)")
    parser.add_argument("--diarize", action="store_true")
    parser.add_argument("--num-speakers", type=int, default=None)
    parser.add_argument("--asr", default=None, help="Whisper model transcribing each segment")
    parser.add_argument("--vad-padding", type=float, default=0.1, help="seconds added before each segment")
    parser.add_argument("--vad-padding-after", type=float, default=None, help="seconds added after each segment")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    try:
        report = evaluate_long_form(args.data, model=args.model, hypothesis=args.hypothesis, diarize=args.diarize,
                                    num_speakers=args.num_speakers, asr=args.asr, device=args.device,
                                    padding=(args.vad_padding, args.vad_padding_after))
    except USER_ERRORS as error:
        report_user_error(error)
        return
    print(render(report))
    if args.out:
        print(f"wrote {write(report, args.out)}", file=sys.stderr)


def cmd_extract(argv: list[str]) -> None:
    """``mmemo extract [overrides]`` caches features; ``mmemo extract --info [DIR]`` lists caches."""
    if argv and argv[0] == "--info":
        from mmemo.features.extract import render_store_table
        from mmemo.features.store import list_stores

        print(render_store_table(list_stores(argv[1] if len(argv) > 1 else _configured_feature_dir())))
        return
    _run_hydra("train", ["recipe=extract", *argv])


def _configured_feature_dir() -> str:
    """``features.dir`` of the default config (where ``mmemo train`` caches features)."""
    from hydra import compose, initialize_config_dir

    from mmemo.config import config_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        return str(compose("train").features.dir)


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
            raise InvalidInput(f"expected an option like --name value, got {token!r}")
        name, _, value = token[2:].partition("=")
        if not value:
            if index + 1 >= len(tokens) or tokens[index + 1].startswith("--"):
                raise InvalidInput(f"option {token} needs a value")
            index += 1
            value = tokens[index]
        options[name.replace("-", "_")] = value
        index += 1
    return options


def _corpus_options_help() -> str:
    from mmemo.data.corpora import adapters

    lines = ["corpus options:"]
    for name, adapter in sorted(adapters().items()):
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
    from mmemo.inference.run import PredictOptions, predict

    summary = predict(args.paths, from_options(PredictOptions, args))
    print(summary.render(), file=sys.stderr)
    if summary.failed:
        sys.exit(1)


def cmd_monitor_serve(args: argparse.Namespace) -> None:
    from mmemo.monitor.service import serve
    from mmemo.monitor.settings import MonitorSettings

    serve(from_options(MonitorSettings, args))


def _add_monitor_parser(sub) -> None:
    from mmemo.monitor.settings import MonitorSettings

    monitor = sub.add_parser("monitor", help="emotion monitor service: HTTP/WebSocket API, alert rules, web UI")
    commands = monitor.add_subparsers(dest="monitor_command", required=True)
    serve = commands.add_parser("serve", help="run the monitor (docs/monitor.md)")
    add_options(serve, MonitorSettings)
    backtest = commands.add_parser("backtest", help="replay annotated recordings through alert rules: precision, "
                                                    "recall and latency per rule (docs/long_recordings.md)")
    backtest.add_argument("data", nargs="+", help="recordings: RTTM files with EMOTION lines (audio beside them, "
                                                  "same stem), their audio files, or folders of them")
    backtest.add_argument("--rules", required=True, help="the rules file to evaluate")
    backtest.add_argument("--model", required=True, help="mmemo checkpoint, FunASR emotion2vec(+) folder or hub id")
    backtest.add_argument("--sweep", default=None, help="threshold=START:STOP:STEP or duration=V1,V2,...: "
                                                        "evaluate every rule over the grid and plot the trade-off")
    backtest.add_argument("--asr", default=None, help="Whisper model transcribing each segment (text branches)")
    backtest.add_argument("--asr-cache", default="cache/transcripts", help="segment transcripts cached here")
    backtest.add_argument("--vad-padding", type=float, default=0.1, help="seconds added before each segment")
    backtest.add_argument("--vad-padding-after", type=float, default=None,
                          help="seconds added after each segment (default: --vad-padding)")
    backtest.add_argument("--tolerance", type=float, default=1.0, help="seconds after an event an alert still hits it")
    backtest.add_argument("--merge-gap", type=float, default=1.0, help="reference spans closer than this are one event")
    backtest.add_argument("--out", default="backtest", help="folder for backtest.json/.csv and the plot")
    backtest.add_argument("--device", default="cpu")


def cmd_monitor_backtest(args: argparse.Namespace) -> None:
    from mmemo.inference.predictor import Predictor
    from mmemo.longform.pipeline import LongFormOptions, LongFormPipeline
    from mmemo.monitor.backtest import backtest, find_recordings, parse_sweep, render, score_recordings, write_report

    sweep = parse_sweep(args.sweep) if args.sweep else None
    pairs = find_recordings(args.data)
    predictor = Predictor.from_source(args.model, args.device)
    from mmemo.longform.vad import VadOptions

    vad = VadOptions(padding=args.vad_padding, padding_after=args.vad_padding_after)
    pipeline = LongFormPipeline(predictor, LongFormOptions(vad=vad, asr=args.asr, asr_cache=args.asr_cache,
                                                           granularity="frame"))
    recordings = score_recordings(pairs, pipeline, list(predictor.classes))
    rows = backtest(args.rules, recordings, list(predictor.classes), sweep=sweep, tolerance=args.tolerance,
                    merge_gap=args.merge_gap)
    print(render(rows))
    for path in write_report(rows, args.out, sweep):
        print(f"wrote {path}", file=sys.stderr)


def cmd_table(args: argparse.Namespace) -> None:
    from mmemo.evaluation.tables import build_table, load_runs, run_key, to_markdown, write_table

    runs = load_runs(args.runs) if args.runs else []
    if args.wandb:
        from mmemo.evaluation.wandb_runs import load_wandb_runs

        runs += load_wandb_runs(args.wandb)
    if not runs:
        raise MissingInput(f"no finished runs (metrics.json) under {args.runs or args.wandb}")
    table = build_table(runs, row=lambda run: run_key(run, args.rows), column=lambda run: run_key(run, args.columns),
                        metrics=args.metrics, title=args.title, cited=args.cited or [])
    print(to_markdown(table))
    if args.out:
        for path in write_table(table, args.out, args.name):
            print(f"wrote {path}")
        if args.plot:
            from mmemo.evaluation.plots import table_chart

            chart = table_chart(table, Path(args.out) / f"{args.name}.png", metric=args.metrics[0], chance=args.chance)
            print(f"wrote {chart}")


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

    from mmemo.inference.run import PredictOptions

    pred = sub.add_parser("predict", help="emotion of audio files, folders or manifests (utterance or frame timeline)")
    pred.add_argument("paths", nargs="+", help="audio files, folders (searched recursively) or .jsonl manifests")
    add_options(pred, PredictOptions)
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
    handlers = {"demo": cmd_demo, "table": cmd_table, ("data", "synth"): cmd_data_synth,
                ("data", "check"): cmd_data_check,
                ("data", "prepare"): cmd_data_prepare, ("data", "folds"): cmd_data_folds}
    handlers |= {("sweep", "wandb"): cmd_sweep_wandb, ("sweep", "job"): cmd_sweep_job}
    handlers |= {"predict": cmd_predict}
    handlers |= {("monitor", "serve"): cmd_monitor_serve, ("monitor", "backtest"): cmd_monitor_backtest}
    key = {"data": ("data", getattr(args, "data_command", None)),
           "sweep": ("sweep", getattr(args, "sweep_command", None)),
           "monitor": ("monitor", getattr(args, "monitor_command", None))}.get(args.command, args.command)
    try:
        handlers[key](args)
    except USER_ERRORS as error:
        report_user_error(error)


if __name__ == "__main__":
    main()
