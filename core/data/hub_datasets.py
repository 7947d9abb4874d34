"""Datasets from the Hugging Face Hub, through `datasets.load_dataset` (whose cache is what makes a second load
instant), failing fast with a clear message where the Hub cannot be reached."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.config import HubDataset
from core.data.arrow import SplitSource
from core.errors import DataError
from core.hub import hub_reachable, require_hub

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict


def hub_dataset_cached(name: str) -> bool:
    """Whether `datasets` has prepared this dataset before (its cache layout: <ns>___<name>/<config>/<ver>/<hash>)."""
    import datasets.config
    from datasets.naming import camelcase_to_snakecase

    parts = name.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = Path(datasets.config.HF_DATASETS_CACHE).expanduser() / "___".join(parts)
    return root.is_dir() and any(p.is_dir() for p in root.glob("*/*/*"))


def load_hub(hub: HubDataset) -> tuple[DatasetDict, dict[str, SplitSource]]:
    import datasets
    from datasets import DatasetDict

    cached = hub_dataset_cached(hub.name)
    if not cached:
        require_hub("dataset", hub.name, DataError)
    offline = cached and not hub_reachable()
    label = hub.name + (f"/{hub.config}" if hub.config else "")
    old = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = offline or old  # cached and no network: read the cache, no 25 s of retries
    try:
        loaded = datasets.load_dataset(hub.name, hub.config)
    except datasets.exceptions.DatasetNotFoundError as err:
        raise DataError(
            f"Hub dataset {hub.name!r} cannot be found: {err}",
            "check the id on huggingface.co/datasets (and log in with `hf auth login` if it is gated)",
        ) from None
    except ValueError as err:
        msg = str(err)
        if "config" in msg.lower():
            raise DataError(f"Hub dataset {hub.name!r}: {msg}",
                            "set data.hub.config to one of the configurations named above") from None
        raise DataError(f"cannot load Hub dataset {label}: {msg}", "check data.hub") from None
    except ConnectionError as err:
        raise DataError(f"cannot reach the Hub for dataset {label}: {err}", "run where the Hub is reachable") from None
    finally:
        datasets.config.HF_HUB_OFFLINE = old
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({hub.train_split: loaded})
    available = list(loaded)

    def pick(split: str, key: str) -> Dataset:
        if split not in loaded:
            raise DataError(f"Hub dataset {label} has no split {split!r}; it has {', '.join(available)}",
                            f"set data.hub.{key} to one of {', '.join(available)}")
        return loaded[split]

    out = {"train": pick(hub.train_split, "train_split")}
    sources = {"train": SplitSource(f"{label} split {hub.train_split!r}")}
    validation = hub.validation_split or ("validation" if "validation" in loaded else None)
    if validation is not None:
        out["validation"] = pick(validation, "validation_split")
        sources["validation"] = SplitSource(f"{label} split {validation!r}")
    if hub.test_split is not None:
        out["test"] = pick(hub.test_split, "test_split")
        sources["test"] = SplitSource(f"{label} split {hub.test_split!r}")
    return DatasetDict(out), sources
