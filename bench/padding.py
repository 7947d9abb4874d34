"""2. Padding: the tutorials' padding="max_length" against dynamic padding, and dynamic padding with length grouping.

Three `finetune-tui run`s on the same varied-length data (about 8 to 256 tokens, a long tail of long texts), the
same max_length (256, with truncation), epochs, batch, learning rate and seed; only tokenizer.padding and
training.group_by_length differ. Time per epoch = Trainer's train_runtime / epochs (no evaluation or checkpoints
while training); accuracy = the run's final validation accuracy (its `finished` event).
"""

from __future__ import annotations

from pathlib import Path

from bench.common import (
    Result,
    Target,
    log,
    product_run,
    settle,
    token_lengths,
    varied_rows,
    write_config,
    write_csv,
)

MAX_LENGTH = 256
BATCH = 16
MODES = {
    # name: (tokenizer.padding, training.group_by_length)
    "max_length": ("max_length", False),
    "dynamic": ("dynamic", False),
    "dynamic+group_by_length": ("dynamic", True),
}
DEFAULT = "dynamic"  # the project's default: tokenizer.padding dynamic, training.group_by_length false


def _default_mode() -> str:
    from core.config import TokenizerConfig, TrainingConfig

    padding, grouped = TokenizerConfig().padding, TrainingConfig().group_by_length
    return next(name for name, mode in MODES.items() if mode == (padding, grouped))


def run(work: Path, quick: bool) -> Result:
    # 4 epochs: after 2 the model was still learning and the modes' accuracies differed by run-to-run noise (4 points).
    n_train, n_val, epochs = (64, 48, 1) if quick else (384, 450, 4)
    result = Result("padding", "Padding: max_length vs dynamic vs dynamic + length grouping")
    train = write_csv(work / "train.csv", varied_rows(n_train, seed=21))
    validation = write_csv(work / "validation.csv", varied_rows(n_val, seed=22))
    lengths = token_lengths(train)
    default = _default_mode()

    per_epoch: dict[str, float] = {}
    accuracy: dict[str, float] = {}
    tokens_per_s: dict[str, float | None] = {}
    for name, (padding, grouped) in MODES.items():
        log(f"padding: {name} ({epochs} epoch(s) of {n_train} rows)")
        config = write_config(
            work / f"{name}.yaml", train, validation, work / f"run-{name.replace('+', '-')}",
            tokenizer={"padding": padding, "max_length": MAX_LENGTH, "truncation": True},
            training={"num_train_epochs": epochs, "per_device_train_batch_size": BATCH, "learning_rate": 1e-4,
                      "warmup_ratio": 0.1, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 5,
                      "group_by_length": grouped, "seed": 42},
        )
        settle()
        r = product_run(config, work / f"run-{name.replace('+', '-')}")
        per_epoch[name] = r.train_metrics["train_runtime"] / epochs
        accuracy[name] = float(r.last("finished")["metrics"]["accuracy"])
        steps = [e for e in r.events if e.get("type") == "step" and e.get("tokens_per_second") is not None]
        tokens_per_s[name] = float(steps[-1]["tokens_per_second"]) if steps else None

    base = per_epoch["max_length"]
    speedup = {name: base / seconds for name, seconds in per_epoch.items()}
    gap = {name: round(100 * (accuracy["max_length"] - acc), 2) for name, acc in accuracy.items()}
    result.figures = {
        "train_rows": n_train, "validation_rows": n_val, "epochs": epochs, "batch_size": BATCH,
        "max_length": MAX_LENGTH, "token_lengths": lengths, "project_default": default,
        "seconds_per_epoch": {k: round(v, 2) for k, v in per_epoch.items()},
        "speedup_vs_max_length": {k: round(v, 2) for k, v in speedup.items()},
        "accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "accuracy_points_below_max_length": gap,
        "non_padding_tokens_per_s_last_window": tokens_per_s,
    }
    p = lengths["percentiles"]
    result.row("token lengths", f"min {lengths['min']}, median {p['50']}, p90 {p['90']}, p99 {p['99']}, "
                                f"max {p['100']} (max_length {MAX_LENGTH})")
    for name in MODES:
        result.row(f"{name}: s/epoch, speed-up, accuracy",
                   f"{per_epoch[name]:.1f} s, {speedup[name]:.2f}x, {100 * accuracy[name]:.1f}%")
    result.targets.append(Target(f"default ({default}) speed-up over max_length", round(speedup[default], 2),
                                 ">=", 3.0, "x"))
    result.targets.append(Target(f"default ({default}) accuracy points below max_length", gap[default], "<=", 1.0))
    best = "dynamic+group_by_length"
    if best != default:
        result.targets.append(Target(f"{best} speed-up over max_length (not the default)", round(speedup[best], 2),
                                     ">=", 3.0, "x"))
        result.targets.append(Target(f"{best} accuracy points below max_length", gap[best], "<=", 1.0))
    result.method = (
        f"One finetune-tui run per mode: {n_train} train rows, {epochs} epoch(s), batch {BATCH}, lr 1e-4, "
        f"max_length {MAX_LENGTH} with truncation, seed 42; seconds per epoch = Trainer's train_runtime / epochs; "
        f"accuracy on {n_val} validation rows after training."
    )
    share = lengths["padding_share"]
    result.notes.append(
        "Padding share of the tokens fed, predicted by core.tokenization.length_stats for batch 16: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in share.items())
    )
    return result
