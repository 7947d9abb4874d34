"""Reaching the Hugging Face Hub, or failing fast and clearly when it cannot be reached.

transformers and datasets retry for about 25 s before giving up offline; on a box with no network we
would rather say so at once. The check is one HEAD request to HF_ENDPOINT through huggingface_hub's own HTTP
session, so it goes wherever the downloads would go: through HTTPS_PROXY/HTTP_PROXY (NO_PROXY respected) or a
client set with huggingface_hub.set_client_factory. The answer is cached for the process.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

from core.errors import UserError

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
_failure: dict[str, str] = {}  # why the last check failed, for the error message


def offline_forced() -> bool:
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in flags)


def hub_endpoint() -> str:
    # Read now, not from huggingface_hub.constants: that module froze HF_ENDPOINT when it was first imported.
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _proxy_for(url: str) -> str | None:
    scheme = "https" if url.startswith("https:") else "http"
    return next((os.environ[v] for v in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
                 if os.environ.get(v)), None)


def _probe(url: str, timeout: float) -> str | None:
    """None when the endpoint answers; otherwise why not."""
    from huggingface_hub.utils import get_session

    try:
        response = get_session().head(url, timeout=timeout, follow_redirects=False)
    except Exception as err:  # connection refused, DNS, TLS, proxy refusal, timeout: all mean "not reachable"
        return f"{type(err).__name__}: {err}".splitlines()[0]
    # 5xx is a proxy that could not reach the Hub (or a Hub that is down); 407 a proxy that wants credentials.
    if response.status_code >= 500 or response.status_code == 407:
        return f"HTTP {response.status_code} from {url}"
    return None


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    _failure.clear()
    if offline_forced():
        return False
    url = hub_endpoint()
    answer: list[str | None] = []
    # A thread bounds the whole check: httpx's timeout does not cover a DNS lookup that hangs.
    probe = threading.Thread(target=lambda: answer.append(_probe(url, timeout)), daemon=True, name="hub-probe")
    probe.start()
    probe.join(timeout + 1.0)
    problem = answer[0] if answer else f"no answer within {timeout + 1.0:.0f} s"
    if problem is not None:
        _failure["why"] = problem
    return problem is None


def unreachable_reason() -> str:
    """Why hub_reachable() said no, naming the endpoint and any proxy, for an error's problem."""
    if offline_forced():
        return "HF_HUB_OFFLINE is set"
    url = hub_endpoint()
    proxy = _proxy_for(url)
    where = f"the Hugging Face Hub at {url}" + (f" (through the proxy {proxy})" if proxy else "")
    why = _failure.get("why")
    return f"{where} cannot be reached" + (f" ({why})" if why else "")


def require_hub(what: str, name: str, error: type[UserError] = UserError) -> None:
    """Raise `error` unless the Hub can be reached; `what` is e.g. 'model' or 'dataset'."""
    if hub_reachable():
        return
    fix = f"give a local {what} directory or file, or run where the Hub is reachable"
    if what == "model":
        fix += " (the bundled model works offline: bundled:all-MiniLM-L6-v2)"
    hint = reach_hint()
    if hint:
        fix += f"; {hint}"
    raise error(f"{what} {name!r} is not a local path and is not in the local cache, and {unreachable_reason()}", fix)


def reach_hint() -> str | None:
    """What may make the Hub reachable from here, for an error's fix; None when HF_HUB_OFFLINE says not to try."""
    return None if offline_forced() else "behind a proxy set HTTPS_PROXY, for a Hub mirror set HF_ENDPOINT"
