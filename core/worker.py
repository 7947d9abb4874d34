"""The run process: `python -m core.worker RUN_DIR` trains what RUN_DIR/config.yaml describes.

It is started by core.launch (in the foreground for `finetune-tui run`, detached for the wizard) and is the only
process that writes the run directory. It holds the run lock for its whole life.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from core.config import RunConfig, load_config, save_config
from core.engines.base import EngineResult, RunContext, data_parallel_size, is_main_process, total_steps
from core.errors import UserError
from core.events import EventWriter
from core.rundir import RunDir, write_json

DEVICE_INTERVAL_S = 5.0
OOM_HINT = (
    "lower training.per_device_train_batch_size (raise gradient_accumulation_steps to keep the effective batch), "
    "lower tokenizer.max_length, or set training.mixed_precision to fp16/bf16 on a GPU"
)


class StopFlag:
    """Set by SIGINT/SIGTERM or by a STOP file in the run directory; engines poll it between steps."""

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self._set = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._set and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means now
        self._set = True
        print(f"received {signal.Signals(signum).name}: stopping after this step", flush=True)

    def __call__(self) -> bool:
        if not self._set and self.run_dir.stop_path.exists():
            self._set = True
        return self._set


class DeviceSampler(threading.Thread):
    def __init__(self, events: EventWriter, interval: float = DEVICE_INTERVAL_S) -> None:
        super().__init__(daemon=True, name="device-sampler")
        self.events = events
        self.interval = interval
        self._done = threading.Event()

    def run(self) -> None:
        from core.device import snapshot

        pid = os.getpid()
        while not self._done.is_set():
            try:
                self.events.emit("device", snapshot=snapshot(pid))
            except Exception as err:  # a failed reading must never take the run down
                print(f"device snapshot failed: {err}", file=sys.stderr)
            self._done.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for a reading in flight: the run's terminal event must be its last."""
        self._done.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=30)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("finetune-tui", "torch", "transformers", "datasets", "accelerate", "peft", "tensorflow", "keras"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def _dataset_name(run_dir: RunDir) -> str:
    data = load_config(run_dir.config_path).data
    if data.hub is not None:
        return data.hub.name + (f"/{data.hub.config}" if data.hub.config else "")
    return Path(str(data.train_file)).name


def _batch_layout(config: RunConfig) -> dict[str, int]:
    t = config.training
    return {"per_device_train_batch_size": t.per_device_train_batch_size,
            "gradient_accumulation_steps": t.gradient_accumulation_steps, "num_processes": data_parallel_size(config)}


def _resume_warnings(run_dir: RunDir, config: RunConfig) -> list[str]:
    """Changed batch geometry changes what a step means: say so instead of resuming silently."""
    before = next((e.get("batch_layout") for e in reversed(run_dir.events()) if e["type"] == "run_started"), None)
    now = _batch_layout(config)
    if not isinstance(before, dict):
        return []
    return [f"{key} changed from {before[key]} to {value} since the checkpoint: steps, data order and learning-rate "
            "schedule will not match an uninterrupted run" for key, value in now.items()
            if key in before and before[key] != value]


def execute(run_dir: RunDir, events: EventWriter, stop: StopFlag, sampler: DeviceSampler,
            resume: Path | None = None) -> tuple[EngineResult, list[Any]]:
    from core.data.handoff import prepare_and_tokenize
    from core.device import device_name, peak_tflops, torch_device
    from core.engines import get_engine
    from core.launch import check_data, check_model
    from core.models import check_max_length, count_parameters, load_model_config
    from core.push import push_warnings
    from core.tasks import get_task
    from core.tokenization import check_lengths, load_tokenizer, tokenize_dataset

    _quiet_progress_bars()
    config = load_config(run_dir.config_path)
    engine = get_engine(config.engine)
    main = is_main_process()
    model_config = load_model_config(config.model)
    check_model(config, model_config)  # `finetune-tui run` leaves these checks to us: we load the model anyway
    _seed(config.training.seed)
    tokenizer = load_tokenizer(config.model)
    run_task = get_task(config.task).for_run(config)
    run_task.prepare_tokenizer(tokenizer)  # e.g. data.chat_template, saved with the model's tokenizer
    limit = check_max_length(config.tokenizer.max_length, model_config, tokenizer)

    def prepared_here(prepared: Any) -> None:
        for note in prepared.notes:  # e.g. that a TSV was read with no quote processing
            print(f"note: {note}", flush=True)
        # Keep the columns that were detected, so the run directory says exactly what was trained on.
        for key, value in get_task(config.task).found_columns(prepared).items():
            setattr(config.data, key, value)
        save_config(config, run_dir.config_path, overwrite=True)
        print("tokenizing", flush=True)

    if main:
        print(f"loading data for {config.engine} run in {run_dir.path}", flush=True)
    # Under torchrun only rank 0 reads and tokenizes; the others map its tokenized splits (core.data.handoff).
    prepared, tokenized = prepare_and_tokenize(
        config.data, run_dir.path, lambda p: tokenize_dataset(p, tokenizer, config.tokenizer, run_task), prepared_here,
        config.task)
    if not len(tokenized["train"]):
        from core.errors import DataError

        raise DataError(f"no training example is left to learn from at tokenizer.max_length "
                        f"{config.tokenizer.max_length}: every one was cut to nothing the model could learn",
                        "raise tokenizer.max_length, or check the data")
    check_lengths(tokenized, limit, config.tokenizer)  # with truncation off, before a long row crashes the run
    device = torch_device()
    warnings = _resume_warnings(run_dir, config) if resume is not None else []
    if main:  # the other processes hold no rows of their own (core.data.handoff)
        warnings += check_data(config, prepared)
        warnings += push_warnings(config)  # now, not after hours of training
    for warning in warnings:
        print(f"warning: {warning}", flush=True)
    memory = None
    if main:
        from core.memory import report

        memory, lines = report(config, model_config)
        for line in lines:
            print(line if line.startswith("warning: ") else f"note: {line}", flush=True)
    report_to = _tracker_environment(run_dir, config) if main else {}
    events.emit(
        "run_started", run_id=run_dir.path.name, engine=config.engine, model=config.model.name_or_path,
        dataset=_dataset_name(run_dir), task=config.task, labels=prepared.label_names,
        label_summary=get_task(config.task).summary(prepared), sizes=prepared.sizes,
        total_steps=total_steps(config, len(tokenized["train"])), num_train_epochs=config.training.num_train_epochs,
        primary_metric=config.training.metric_for_best_model or config.metrics[0], metrics=config.metrics,
        text_column=prepared.text_column, text_pair_column=prepared.text_pair_column,
        label_column=prepared.label_column, device={"type": device, "name": device_name(device)},
        versions=_versions(), pid=os.getpid(), output_dir=str(run_dir.path.resolve()),
        batch_layout=_batch_layout(config), resumed_from=str(resume) if resume else None, warnings=warnings,
        parameters=count_parameters(model_config), report_to=report_to, local_model=_local_model(config),
        memory_estimate={"total": memory.total, **memory.parts, "free": memory.free} if memory else None,
        peak_tflops=peak_tflops(device_name(device), config.training.mixed_precision) if device == "cuda" else None,
    )
    if main:
        sampler.start()  # after run_started, so readers always meet run_started first
    print(f"training on {device}: {prepared.sizes}", flush=True)
    ctx = RunContext(config=config, run_dir=run_dir, events=events, prepared=prepared, tokenizer=tokenizer,
                     tokenized=tokenized, stop_requested=stop, device=device, resume_from=resume)
    trackers = _open_trackers(run_dir, config, events) if main else None
    outcome = "failed"
    try:
        result = engine(ctx)
        outcome = "stopped" if result.stopped else "finished"
    finally:
        if trackers is not None:
            events.observers.remove(trackers)
            trackers.close(outcome)
    evaluations: list[Any] = []
    if main and not result.stopped:
        result.extra.update(_after_training(run_dir, config, prepared, result))
        extra, evaluations = _evaluate(run_dir, config, prepared, result)
        result.extra.update(extra)
    return result, evaluations


def _local_model(config: RunConfig) -> str | None:
    """The model directory when the model is a local one (not the bundled copy of a Hub model, not a Hub id): the
    model card names a Hub base model only, and a relative path can read as one later, from another folder."""
    from core.models import BUNDLED_ALIASES

    name = config.model.name_or_path
    path = Path(name).expanduser()
    return str(path.resolve()) if name not in BUNDLED_ALIASES and path.exists() else None


def _tracker_environment(run_dir: RunDir, config: RunConfig) -> dict[str, str]:
    """training.report_to: the environment every engine's trackers read (core.tracking); where each one writes."""
    from core.tracking import destinations, prepare_environment

    kept, notes = prepare_environment(config.training.report_to, run_dir.path, run_dir.path.name)
    for note in notes:
        print(note if note.startswith("warning: ") else f"note: {note}", flush=True)
    config.training.report_to = kept  # for the engine; config.yaml keeps what was asked for
    return destinations(kept, run_dir.path)


def _open_trackers(run_dir: RunDir, config: RunConfig, events: EventWriter) -> Any:
    """For the engines that do not track by themselves: training.report_to's trackers, fed from the events."""
    from core.engines import ENGINES
    from core.tracking import EventTrackers, flat_config

    names = config.training.report_to
    if not names or ENGINES[config.engine].tracks_itself:
        return None
    trackers = EventTrackers(names, run_dir.path, run_dir.path.name, flat_config(config))
    events.observers.append(trackers)
    return trackers


def _after_training(run_dir: RunDir, config: RunConfig, prepared: Any, result: EngineResult) -> dict[str, Any]:
    """What the task settles about the saved model from its final validation outputs (Task.after_training, e.g.
    multi-label's tuned thresholds), merged into the model's task.json before the evaluation reads it; the fields go
    into the `finished` event too."""
    from core.tasks import get_task
    from core.tasks.model_meta import read_meta, write_meta

    fields = get_task(config.task).after_training(result.predictions.get("validation"), prepared, config)
    if fields:
        meta = read_meta(run_dir.model_dir, list(prepared.label_names))
        write_meta(run_dir.model_dir, {**meta, **fields})
    return fields


def _evaluate(run_dir: RunDir, config: RunConfig, prepared: Any, result: EngineResult) -> tuple[dict[str, Any], list]:
    """Per-class table, confusion matrix, predictions and worst mistakes of each split, from the logits of the
    engine's own final evaluation (one pass over the data); the PNG reports follow `finished` (_write_reports).

    The model is already saved: a report that cannot be written is logged, not turned into a failed run.
    """
    from core.evaluation import evaluate_logits, evaluate_run
    from core.tasks import get_task

    written: dict[str, str] = {}
    evaluations = []
    predictor = None
    keeps_outputs = get_task(config.task).keeps_outputs
    try:
        for split, metrics in (("validation", result.metrics), ("test", result.test_metrics or {})):
            if split not in prepared.dataset:
                continue
            if result.predictions.get(split) is not None:
                ev = evaluate_logits(run_dir.path, split, prepared, result.predictions[split], config.metrics,
                                     loss=metrics.get("loss"), report=False)
            else:
                # An engine that kept no logits: the saved model is run over the split once more. A task that
                # keeps none takes the engine's metrics and only answers a few of the split's prompts.
                if predictor is None:
                    from core.predict import load_predictor

                    predictor = load_predictor(run_dir.path)
                ev = evaluate_run(run_dir.path, split, prepared=prepared, predictor=predictor, report=False,
                                  metrics=metrics if not keeps_outputs and metrics else None)
            evaluations.append(ev)
            written[split] = str((run_dir.path / "evaluation" / split).resolve())
    except Exception as err:  # see docstring
        traceback.print_exc()
        return {"evaluation": written, "evaluation_error": f"{type(err).__name__}: {err}"}, evaluations
    return {"evaluation": written}, evaluations


def _write_reports(run_dir: RunDir, evaluations: list[Any]) -> None:
    """report.png of each evaluated split, after `finished`: a plot is for people and must not delay the run's end
    (matplotlib alone takes a second to import). A failure is logged; the run has finished either way."""
    from core.evaluation import write_report_png

    for ev in evaluations:
        try:
            write_report_png(run_dir.path, ev)
        except Exception:  # see docstring
            traceback.print_exc()


def _quiet_progress_bars() -> None:
    """tqdm bars written to a log file are noise: progress is in the events, the log is for people."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


def _seed(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the location is read-only", errno.EACCES: "permission is denied"}


def _failure(err: BaseException) -> tuple[str, str | None]:
    if isinstance(err, UserError):
        return err.problem, err.fix
    if isinstance(err, OSError) and err.errno in _DISK_ERRORS:
        where = err.filename or "the run directory"
        return (f"cannot write {where}: {_DISK_ERRORS[err.errno]}",
                "free space (old runs, ~/.cache/huggingface) or choose another output_dir; the last complete "
                "checkpoint is kept, so `finetune-tui resume` continues from it")
    text = str(err)
    if type(err).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return f"out of memory: {text.splitlines()[0] if text else type(err).__name__}", OOM_HINT
    return f"{type(err).__name__}: {text}", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.worker")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", type=Path, help="checkpoint directory to continue from")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run_dir = RunDir(args.run_dir)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if not is_main_process():
        return _follower(run_dir, args.resume)
    lock_fd = run_dir.acquire_lock()  # held until the run ends; the OS drops it if the process dies
    run_dir.stop_path.unlink(missing_ok=True)  # a stop request of an earlier segment is not for this one
    events = EventWriter(run_dir.events_path)
    stop = StopFlag(run_dir)
    sampler = DeviceSampler(events)
    started = time.monotonic()
    try:
        result, evaluations = execute(run_dir, events, stop, sampler, args.resume)
        sampler.stop()  # before the terminal event, which readers take as the run's last
        if result.stopped:
            events.emit("stopped", step=_last_step(run_dir), checkpoint=result.last_checkpoint)
            print(f"stopped; resume with: finetune-tui resume {run_dir.path}", flush=True)
            return 0
        metrics: dict[str, Any] = dict(result.metrics)
        if result.test_metrics is not None:
            metrics["test"] = result.test_metrics
        _write_metrics(run_dir, result)
        shared = _share(run_dir, stop())
        events.emit("finished", metrics=metrics, model_dir=str(run_dir.model_dir.resolve()),
                    runtime_s=round(time.monotonic() - started, 1), checkpoint=result.last_checkpoint,
                    **result.extra, **shared)
        print(f"finished: {metrics}; model in {run_dir.model_dir}", flush=True)
        _write_reports(run_dir, evaluations)
        return 0
    except BaseException as err:  # every way out must leave a terminal event behind
        problem, hint = _failure(err)
        tail = "".join(traceback.format_exception(err)[-6:])
        # Bad input found before training (the data, the model, the settings): `finetune-tui run` reports it as
        # the error it is, exit 2, as if it had checked it itself.
        bad_input = isinstance(err, UserError) and "run_started" not in events.written
        sampler.stop()
        events.emit("failed", error=problem, hint=hint, error_type=type(err).__name__, traceback_tail=tail,
                    bad_input=bad_input)
        print(f"failed: {problem}" + (f"\n  fix: {hint}" if hint else ""), file=sys.stderr, flush=True)
        if not isinstance(err, UserError):
            traceback.print_exc()
        return 2 if bad_input else 1
    finally:
        sampler.stop()
        events.close()
        os.close(lock_fd)


class _Silent(EventWriter):
    """Events of a non-main process go nowhere: only the main process writes the run directory."""

    def __init__(self) -> None:
        self.path = Path(os.devnull)

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        return {"type": type_, **fields}

    def close(self) -> None:
        pass


def _follower(run_dir: RunDir, resume: Path | None) -> int:
    """A non-main process of a multi-process run: trains its share, writes nothing, fails loudly in its log."""
    sampler = DeviceSampler(_Silent())
    execute(run_dir, _Silent(), StopFlag(run_dir), sampler, resume)
    return 0


def _share(run_dir: RunDir, stop_requested: bool) -> dict[str, Any]:
    """The model card (RUN/model/README.md) and, with training.push_to_hub, the upload: after the model is saved and
    evaluated, before `finished`. Neither fails the run, whose model is saved either way: a card that cannot be
    written is a warning in the log, a push that fails is one too, and the `finished` event's push_error (with the
    command that retries it); a push that succeeds gives the event hub_url."""
    from core.model_card import write_model_card
    from core.push import worker_push

    try:
        print(f"wrote the model card {write_model_card(run_dir.path)}", flush=True)
    except Exception as err:  # see docstring
        print(f"warning: the model card could not be written: {type(err).__name__}: {err}", flush=True)
        traceback.print_exc()
    config = load_config(run_dir.config_path)
    if not config.training.push_to_hub:
        return {}
    print("pushing the model to the Hugging Face Hub", flush=True)
    fields = worker_push(run_dir, config, stop_requested)
    if "push_error" in fields:
        print(f"warning: the model was not pushed: {fields['push_error']}", flush=True)
    else:
        print(f"pushed the model to {fields['hub_url']}", flush=True)
    return fields


def _write_metrics(run_dir: RunDir, result: EngineResult) -> None:
    """metrics.json: the engine's final metrics, keeping what the evaluation added to it."""
    import json

    try:
        data = json.loads(run_dir.metrics_path.read_text())
    except (OSError, ValueError):
        data = {}
    data.update({"validation": result.metrics, "test": result.test_metrics})
    write_json(run_dir.metrics_path, data)


def _last_step(run_dir: RunDir) -> int:
    steps = [e.get("step", 0) for e in run_dir.events() if e["type"] in ("step", "checkpoint")]
    return max(steps, default=0)


if __name__ == "__main__":
    code = main()
    # Every file of the run is written and closed: skip the interpreter's teardown of the thousands of modules torch
    # and transformers loaded, which takes seconds on a busy machine and would only delay the caller waiting on us.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
