"""The Hugging Face hub: asked once, with a short timeout, whether it can be reached, so a run without a network
fails in seconds with the fix instead of after minutes of retries.
"""

from __future__ import annotations

from functools import lru_cache

from evalkit import EvalkitError
from evalkit.config import hub_offline

TIMEOUT_S = 5.0


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT  # HF_ENDPOINT, else https://huggingface.co


@lru_cache(maxsize=4)
def unreachable(url: str) -> str | None:
    """Why `url` cannot be reached (one short phrase), or None when it answers at all."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason) or type(reason).__name__
    return None


def check_reachable(what: str, fix: str) -> None:
    """Before downloading `what` (unless HF_HUB_OFFLINE): one line with `fix` when the hub cannot be reached."""
    if hub_offline():
        return
    reason = unreachable(endpoint())
    if reason:
        raise EvalkitError(f"cannot reach the Hugging Face hub at {endpoint()} ({reason}) to download {what}: {fix}, "
                           f"or set HF_HUB_OFFLINE=1 to use what the local cache holds")


def offline_error(what: str, fix: str) -> EvalkitError:
    """What to raise when a load failed under HF_HUB_OFFLINE."""
    return EvalkitError(f"{what} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it"
                        + (f": {fix}" if fix else ""))
