"""Reaching the Hugging Face Hub, or failing fast and clearly when it cannot be reached.

transformers and datasets retry for about 25 s before giving up offline; on a box with no network we
would rather say so at once. The answer is cached for the process.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

from core.errors import UserError


def offline_forced() -> bool:
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in flags)


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    if offline_forced():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(what: str, name: str, error: type[UserError] = UserError) -> None:
    """Raise `error` unless the Hub can be reached; `what` is e.g. 'model' or 'dataset'."""
    if hub_reachable():
        return
    why = "HF_HUB_OFFLINE is set" if offline_forced() else "the Hugging Face Hub cannot be reached (no network)"
    raise error(
        f"{what} {name!r} is not a local path and is not in the local cache, and {why}",
        f"give a local {what} directory or file, or run where the Hub is reachable"
        + (" (the bundled model works offline: bundled:all-MiniLM-L6-v2)" if what == "model" else ""),
    )
