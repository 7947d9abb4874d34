"""The batch-size probe keeps the effective batch and stops where memory runs out."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import parse_config
from core.probe import apply, candidates, format_probe, probe
from tests.conftest import tiny_config


def test_candidates_divide_the_effective_batch() -> None:
    assert candidates(32) == [1, 2, 4, 8, 16, 32]
    assert candidates(24) == [1, 2, 4, 8, 24]
    assert candidates(1) == [1]


def test_probe_on_cpu_keeps_effective_batch(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    config = parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "r", per_device_train_batch_size=4,
                                      gradient_accumulation_steps=4))
    rows: list[int] = []
    result = probe(config, on_row=lambda row: rows.append(row.batch_size))
    assert rows == [1, 2, 4, 8, 16]
    assert result.device == "cpu" and all(r.fits and r.seconds_per_step and r.peak_memory_mb for r in result.rows)
    assert result.per_device_train_batch_size == 16 and result.gradient_accumulation_steps == 1
    updated = apply(config, result)
    t = updated.training
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps == 16
    assert config.training.per_device_train_batch_size == 4  # the original is left alone
    assert "s/step" in format_probe(result) and "effective batch of 16" in format_probe(result)


def test_probe_stops_at_the_memory_limit(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import core.probe as probe_module

    peaks = iter([100.0, 100.0, 100.0, 10_000_000.0, 10_000_000.0])
    monkeypatch.setattr(probe_module, "_peak_rss_mb", lambda: next(peaks))
    config = parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "r", per_device_train_batch_size=8,
                                      gradient_accumulation_steps=1))
    result = probe(config)
    assert [r.fits for r in result.rows] == [True, True, False]
    assert result.per_device_train_batch_size == 2 and result.gradient_accumulation_steps == 4
    assert "over 85%" in result.rows[-1].note
