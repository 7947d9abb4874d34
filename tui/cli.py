"""`finetune-tui`: the wizard with no arguments, and headless commands for scripts, tmux and nohup.

Imports stay light here: Textual loads only for the commands that open the app, torch/transformers only in
commands that train or inspect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.tasks import DEFAULT_TASK, TASKS

EXIT_USER_ERROR = 2
LR_STEPS, LR_MIN, LR_MAX = 50, 1e-7, 1.0  # core.lr_range's defaults, kept here so --help costs no import


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="finetune-tui",
        description="Fine-tune Hugging Face models (classifiers, taggers, instruction-tuned LLMs): a wizard, or "
                    "headless commands.",
    )
    p.add_argument("--config", type=Path, help="open the wizard prefilled from this config file")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train what a config file describes, in the foreground")
    run.add_argument("config", type=Path, help="YAML or JSON config file")
    run.add_argument("--output-dir", type=Path, help="run directory (overrides output_dir in the config)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--detach", action="store_true", help="start in the background and return at once")

    mon = sub.add_parser("monitor", help="watch a run (live or finished) in the terminal UI")
    mon.add_argument("run_dir", type=Path)

    runs = sub.add_parser("runs", help="list runs with status, engine, dataset and best metric")
    runs.add_argument("root_dir", type=Path, nargs="?", metavar="DIR",
                      help="folder that holds the runs (default: runs)")
    runs.add_argument("--root", type=Path, help="the same as DIR")
    runs.add_argument("--ui", action="store_true",
                      help="open the runs screen of the terminal UI (space marks runs, c compares them)")
    runs.add_argument("--compare", type=Path, nargs="+", metavar="RUN",
                      help="print two or more runs side by side: their config differences and final metrics "
                           "(a RUN that is not a path is looked for under DIR)")

    init = sub.add_parser("init", help="write a config by answering questions")
    init.add_argument("--plain", action="store_true", help="plain prompts instead of the full-screen wizard")
    init.add_argument("-o", "--output", type=Path, default=Path("finetune.yaml"), help="config file to write")

    val = sub.add_parser("validate", help="check a config, its data and its model without training")
    val.add_argument("config", type=Path)

    ins = sub.add_parser("inspect", help="show a data file's columns, suggested mapping and labels (class balance, "
                                        "or the scores' spread)")
    ins.add_argument("data_file", type=Path)
    ins.add_argument("--task", choices=list(TASKS), default=DEFAULT_TASK,
                     help=f"what the labels are for (default: {DEFAULT_TASK})")

    demo = sub.add_parser("demo", help="write the demo data and config (works offline)")
    demo.add_argument("directory", type=Path, nargs="?", default=Path("examples"))
    demo.add_argument("--force", action="store_true", help="replace existing demo files")

    stop = sub.add_parser("stop", help="ask a running run to stop gracefully (it writes a checkpoint)")
    stop.add_argument("run_dir", type=Path)

    res = sub.add_parser("resume", help="continue a stopped, failed or died run from its last checkpoint")
    res.add_argument("run_dir", type=Path)
    res.add_argument("--detach", action="store_true", help="continue in the background and return at once")

    probe = sub.add_parser(
        "probe", help="find the largest batch size that fits, keeping the effective batch; with --lr, a learning rate",
        description="Without --lr: the largest per-device batch that fits on this device, keeping the effective "
                    "batch. With --lr: a learning-rate range test, a few dozen steps on the real training data and "
                    "device with a rate rising from --min-lr to --max-lr; it draws the loss against the rate and "
                    "suggests a rate (a tenth of where the loss was lowest). Configs of every engine are tested in "
                    "PyTorch on the same transformers model, keras ones included.")
    probe.add_argument("config", type=Path)
    probe.add_argument("--lr", action="store_true", help="run the learning-rate range test instead")
    probe.add_argument("--steps", type=int, help=f"--lr: optimizer steps to take (default: {LR_STEPS})")
    probe.add_argument("--min-lr", type=float, help=f"--lr: the first rate (default: {LR_MIN:g})")
    probe.add_argument("--max-lr", type=float, help=f"--lr: the last rate, unless the loss diverges first "
                                                    f"(default: {LR_MAX:g})")
    probe.add_argument("--write", action="store_true",
                       help="write the probed batch layout (with --lr: the suggested learning rate) into the config")
    probe.add_argument("--json", action="store_true",
                       help="print the result as JSON (for the wizard); with --lr one object a line: "
                            '{"progress": ...} per step, then the result')

    ev = sub.add_parser("evaluate", help="metrics, per-class table, confusion matrix and worst mistakes of a run")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--split", choices=("validation", "test", "train"), default="validation",
                    help="which split of the run's data (default: validation)")
    ev.add_argument("--batch-size", type=int, help="examples per prediction batch (default: the run's eval batch)")

    pred = sub.add_parser("predict", help="classify texts, or a csv/tsv/jsonl file, with a run or a saved model")
    pred.add_argument("model", type=Path, help="run directory or model directory")
    pred.add_argument("texts", nargs="*", help="texts to classify")
    pred.add_argument("--pair", action="append", default=None, metavar="TEXT",
                      help="second text of a pair, once per text (for sentence-pair models)")
    pred.add_argument("--input", type=Path, help="csv, tsv, jsonl or txt (a text per line) file with a text per row")
    pred.add_argument("--output", type=Path, help="file to write (default: <input>.predictions.<ext>)")
    pred.add_argument("--text-column", help="column of --input with the texts (default: detected)")
    pred.add_argument("--pair-column", help="column of --input with the second texts, for pair models")
    pred.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: 32)")
    pred.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    pred.add_argument("--json", action="store_true", help="print one JSON object per text")
    pred.add_argument("--format", choices=("text", "jsonl"), default="text",
                      help="text: a line per text; jsonl: as --json (entities with their character offsets)")

    exp = sub.add_parser("export", help="export a config as commented yaml, json, the run command or a script")
    exp.add_argument("config", type=Path, help="YAML or JSON config file")
    exp.add_argument("--to", choices=("yaml", "json", "command", "script"), default="yaml", dest="to",
                     help="what to export (default: yaml)")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: print it)")
    exp.add_argument("--force", action="store_true", help="replace an existing output file")

    push = sub.add_parser("push", help="upload a finished run's model, with its model card, to the Hugging Face Hub",
                          description="Uploads RUN_DIR/model (weights, tokenizer, task.json and the README.md model "
                                      "card, written first if the run has none) to REPO_ID, creating the repository "
                                      "if needed. The token comes from HF_TOKEN or `hf auth login`.")
    push.add_argument("run_dir", type=Path, help="a finished run directory (or its model/ directory)")
    push.add_argument("repo_id", help="Hub repository: owner/name, or name for one under your account")
    push.add_argument("--private", action="store_true", help="create the repository as private (an existing "
                                                             "repository keeps its visibility)")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from core.config import load_config
    from core.launch import run_foreground, start_detached

    config = load_config(args.config)
    if args.output_dir is not None:
        config.output_dir = args.output_dir
    base = args.config.resolve().parent
    if args.detach:
        run_dir = start_detached(config, overwrite=args.overwrite, base=base)
        print(f"started in the background: {run_dir.path}\nwatch it with: finetune-tui monitor {run_dir.path}")
        return 0
    return run_foreground(config, overwrite=args.overwrite, base=base)


def _cmd_runs(args: argparse.Namespace) -> int:
    if args.root_dir is not None and args.root is not None and args.root_dir != args.root:
        raise UserError(f"two folders given: {args.root_dir} and --root {args.root}", "give the folder once")
    root = args.root_dir or args.root or Path("runs")
    if root != Path("runs") and not root.is_dir():  # a mistyped folder must not read as "no runs yet"
        raise UserError(f"{root} is not a folder", "give the folder that holds your runs (default: runs)")
    if args.compare is not None:
        if args.ui:
            raise UserError("give --compare or --ui, not both",
                            "in the runs screen (--ui), mark runs with space and press c to compare them")
        from core.compare import format_comparison, load_comparison

        # A bare run name is looked for under DIR, as `finetune-tui runs` lists them.
        paths = [run if run.exists() or not (root / run).exists() else root / run for run in args.compare]
        print(format_comparison(load_comparison(paths)))
        return 0
    if args.ui:
        return _run_app(runs_root=root, show_runs=True)
    from core.console import format_runs
    from core.rundir import list_runs

    print(format_runs(list_runs(root)))
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    from core.errors import RunDirError
    from core.rundir import is_run_dir

    if not is_run_dir(args.run_dir):
        raise RunDirError(f"{args.run_dir} is not a run directory (no events.jsonl or run.pid)",
                          "give a folder that `finetune-tui run` made; `finetune-tui runs` lists them")
    return _run_app(monitor=args.run_dir)


def _cmd_init(args: argparse.Namespace) -> int:
    if args.plain:
        from tui.plain import run_plain

        run_plain(args.output)  # it says where it wrote and how to run it
        return 0
    return _run_app(config_path=args.output)


def _cmd_validate(args: argparse.Namespace) -> int:
    from core.config import load_config
    from core.launch import preflight, resolve_config
    from core.memory import report
    from core.push import push_warnings

    config = resolve_config(load_config(args.config), args.config.resolve().parent)
    for warning in [*push_warnings(config), *preflight(config)]:  # the token first: it needs no model or data
        print(f"warning: {warning}")
    for line in report(config)[1]:  # weights, gradients, optimizer and activations against the free memory
        print(line)
    print(f"{args.config}: config, data and model are fine")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from core.config import DataConfig
    from core.data import inspect_dataset, load_sources, source_notes

    raw, sources = load_sources(DataConfig(train_file=args.data_file))
    info = inspect_dataset(raw, notes=source_notes(sources), task=args.task)
    print(f"splits: {info.splits}")
    for note in info.notes:
        print(f"note: {note}")
    for col in info.columns:
        print(f"  {col.name}: {col.dtype}, {col.unique} distinct, {col.missing} missing")
    s = info.suggestion
    print(f"suggested: text_column={s.text} text_pair_column={s.text_pair} label_column={s.label}")
    if info.task_hint is not None and info.task_hint.task != args.task:
        print(f"suggested task: {info.task_hint.task} ({info.task_hint.reason}); "
              f"inspect with --task {info.task_hint.task}, and set task: {info.task_hint.task} in the config")
    if info.labels is not None:
        overview = info.labels
        print(f"{overview.title.lower()}: " + ", ".join(f"{k}={v}" for k, v in overview.counts.items())
              + (f" ({overview.caption})" if overview.caption else ""))
        for example in overview.examples:
            print(f"  {example}")
        if overview.warning:
            print(f"warning: {overview.warning}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import write_demo

    config = write_demo(args.directory, overwrite=args.force)
    print(f"wrote demo data and {config}\nrun it with: finetune-tui run {config}\n"
          f"(text-regression on star ratings: finetune-tui run {config.with_name('demo-regression.yaml')};\n"
          f" multi-label-classification on tagged support comments: "
          f"finetune-tui run {config.with_name('demo-multilabel.yaml')};\n"
          f" token-classification on news sentences: finetune-tui run {config.with_name('demo-ner.yaml')})")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from core.rundir import RunDir

    run_dir = RunDir(args.run_dir)
    if not run_dir.is_live():
        raise UserError(f"{args.run_dir} has no live run to stop (status: {run_dir.status()})",
                        "check the path with `finetune-tui runs`")
    run_dir.request_stop()
    print(f"asked {args.run_dir} to stop; it writes a checkpoint first")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation import evaluate_run, format_evaluation

    print(format_evaluation(evaluate_run(args.run_dir, args.split, batch_size=args.batch_size)))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from core.predict_file import predict_file, training_columns

    if not args.texts and args.input is None:
        raise UserError("nothing to predict", 'give texts (finetune-tui predict RUN "a text") or --input FILE')
    if args.texts and args.input is not None:
        raise UserError("give texts or --input, not both", "run predict once for each")
    from core.predict import load_predictor

    predictor = load_predictor(args.model)
    if args.input is not None:
        result = predict_file(args.model, args.input, args.output, predictor=predictor,
                              text_column=args.text_column, text_pair_column=args.pair_column,
                              batch_size=args.batch_size, overwrite=args.overwrite)
        print(f"wrote {result.rows} predictions to {result.output} (text column: {result.text_column}"
              + (f", pair column: {result.text_pair_column}" if result.text_pair_column else "")
              + f"): {result.summary}")
        return 0
    pairs = args.pair
    if pairs is not None and len(pairs) != len(args.texts):
        raise UserError(f"{len(args.texts)} texts but {len(pairs)} --pair values", "give one --pair per text")
    if pairs is None and training_columns(args.model, predictor)[1] is not None:
        raise UserError("this model was trained on text pairs", 'give the second text with --pair, e.g. "a" --pair "b"')
    answers = predictor.predict(args.texts, pairs, batch_size=args.batch_size)
    _print_predictions(args.texts, pairs, predictor.task, answers, as_json=args.json or args.format == "jsonl")
    return 0


def _print_predictions(texts: list[str], pairs: list[str] | None, task: Any, answers: list[dict[str, Any]],
                       *, as_json: bool) -> None:
    import json

    for i, (text, answer) in enumerate(zip(texts, answers, strict=True)):
        if as_json:
            record = {"text": text, **({"text_pair": pairs[i]} if pairs else {}), **task.answer_json(answer)}
            print(json.dumps(record, ensure_ascii=False))
            continue
        print(task.format_answer(answer, text + (f" || {pairs[i]}" if pairs else "")))


def _cmd_export(args: argparse.Namespace) -> int:
    from core.config import load_config
    from core.export import export_config

    config = load_config(args.config)
    if args.to == "script":
        from core.launch import resolve_config

        # Data paths in a config are relative to the working directory or its own folder, as `run` reads them.
        output_dir = config.output_dir
        config = resolve_config(config, args.config.resolve().parent)
        config.output_dir = output_dir
    exported = export_config(config, args.to, config_path=args.config)
    if exported.secrets_removed:
        print(f"warning: removed {exported.secrets_removed} Hub token(s) from the export; keep tokens in HF_TOKEN "
              "or `hf auth login`, never in a config", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(exported.text)
        return 0
    if args.output.exists() and not args.force:
        raise UserError(f"{args.output} already exists", "choose another file name, or pass --force to replace it")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(exported.text, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from core.push import push_run

    pushed = push_run(args.run_dir, args.repo_id, private=args.private)
    card = "README.md written" if pushed.card == "written" else "README.md kept as edited"
    print(f"pushed {len(pushed.files)} files ({card}) to {pushed.url}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from core.launch import resume_run
    from core.rundir import RunDir

    run_dir = RunDir(args.run_dir)
    code = resume_run(run_dir, detached=args.detach)
    if args.detach and code == 0:
        print(f"resumed in the background; watch it with: finetune-tui monitor {run_dir.path}")
    return code


def _cmd_probe(args: argparse.Namespace) -> int:
    import json

    if args.lr:
        return _cmd_probe_lr(args)
    if args.steps is not None or args.min_lr is not None or args.max_lr is not None:
        raise UserError("--steps, --min-lr and --max-lr are for the learning-rate range test",
                        f"add --lr: finetune-tui probe {args.config} --lr")
    from core.config import load_config, save_config
    from core.launch import resolve_config
    from core.probe import apply, format_probe, probe

    config = load_config(args.config)
    result = probe(resolve_config(config, args.config.resolve().parent),
                   on_row=None if args.json else lambda row: print(f"batch {row.batch_size}: "
                                                                    f"{'fits' if row.fits else 'does not fit'}",
                                                                    flush=True))
    print(json.dumps(result.to_dict()) if args.json else format_probe(result))
    if args.write:
        save_config(apply(config, result), args.config, overwrite=True)
        if not args.json:
            print(f"wrote the batch layout into {args.config}")
    return 0


def _cmd_probe_lr(args: argparse.Namespace) -> int:
    import json

    from core.config import load_config, save_config
    from core.launch import resolve_config
    from core.lr_range import LrPoint, apply, format_lr_range, lr_range_test, rate_label

    config = load_config(args.config)
    steps = LR_STEPS if args.steps is None else args.steps

    def progress(point: LrPoint) -> None:
        if args.json:
            print(json.dumps({"progress": {**vars(point), "steps": steps}}), flush=True)
        else:
            print(f"step {point.step}/{steps}: lr {rate_label(point.lr)}, loss {point.loss:.4g}", flush=True)

    result = lr_range_test(resolve_config(config, args.config.resolve().parent), steps=steps,
                           min_lr=LR_MIN if args.min_lr is None else args.min_lr,
                           max_lr=LR_MAX if args.max_lr is None else args.max_lr, on_point=progress)
    written = args.write and result.suggested_lr is not None
    if written:
        save_config(apply(config, result), args.config, overwrite=True)
    if args.json:
        print(json.dumps({**result.to_dict(), "written": str(args.config) if written else None}))
        return 0
    import shutil

    columns = shutil.get_terminal_size((80, 24)).columns
    print(format_lr_range(result, width=min(columns, 100) - 1))
    if written:
        print(f"wrote learning_rate: {result.suggested_lr:g} into {args.config}")
    elif args.write:
        print(f"left {args.config} as it was: no rate to write")
    return 0


COMMANDS = {"run": _cmd_run, "runs": _cmd_runs, "monitor": _cmd_monitor, "init": _cmd_init,
            "validate": _cmd_validate, "inspect": _cmd_inspect, "demo": _cmd_demo, "stop": _cmd_stop,
            "evaluate": _cmd_evaluate, "predict": _cmd_predict, "export": _cmd_export,
            "resume": _cmd_resume, "probe": _cmd_probe, "push": _cmd_push}


def _open_wizard(args: argparse.Namespace) -> int:
    from tui import startup_gc

    startup_gc.pause()  # reading the config is part of start-up too
    config = None
    if args.config is not None:
        from core.config import load_config

        config = load_config(args.config)
    return _run_app(config=config, config_path=args.config)


def _run_app(**options: Any) -> int:
    """Open the terminal UI (see tui.app.make_app for the options)."""
    from tui import startup_gc

    startup_gc.pause()
    from tui.app import make_app

    make_app(**options).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        handler = COMMANDS.get(args.command or "", _open_wizard)
        return handler(args)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: say so plainly, keep the traceback for --debug
        if args.debug:
            raise
        print(f"internal error: {type(err).__name__}: {err}\n  rerun with --debug for the traceback, "
              "and please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
