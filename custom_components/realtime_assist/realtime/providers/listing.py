"""Which models a key may use: the one REST request each provider answers for that.

The HTTP session is the caller's (Home Assistant's shared one); errors come
out as the session's error kinds, so a caller can fall back to a built-in list.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..errors import AuthenticationError, ConnectError, ErrorKind, RealtimeError

LIST_TIMEOUT_S = 10.0
# Response bodies larger than this are not a model list.
MAX_BODY_BYTES = 4 * 1024 * 1024


async def get_json(
    http: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """GET a JSON object; a failure raises a RealtimeError of its kind."""
    try:
        async with http.get(
            url,
            headers=dict(headers),
            params=dict(params or {}),
            timeout=aiohttp.ClientTimeout(total=LIST_TIMEOUT_S),
        ) as response:
            body = await response.content.read(MAX_BODY_BYTES)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise ConnectError(f"listing models failed: {err!r}") from err
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if status >= 400:
        raise http_error(status, _message(data) or f"HTTP {status}")
    if not isinstance(data, dict):
        raise ConnectError("the model list is not a JSON object", kind=ErrorKind.PROTOCOL)
    return data


def http_error(status: int, message: str) -> RealtimeError:
    """What an HTTP error status means for the owner."""
    if status in (401, 403):
        return AuthenticationError(message)
    if status == 429:
        return ConnectError(message, kind=ErrorKind.RATE_LIMIT)
    if status >= 500:
        return ConnectError(message, kind=ErrorKind.SERVER)
    return ConnectError(message, kind=ErrorKind.REQUEST)


def http_url(socket_url: str, path: str) -> str:
    """The HTTPS (HTTP for `ws://`) URL at `path` on a websocket URL's host."""
    parts = urlsplit(socket_url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def ordered_models(available: Iterable[str], preferred: Collection[str]) -> list[str]:
    """The available models: the preferred ones first, in their order, then the rest sorted."""
    names = set(available)
    return [name for name in preferred if name in names] + sorted(names - set(preferred))


def _message(data: Any) -> str | None:
    """The `error.message` both providers put in their error bodies."""
    if isinstance(data, dict) and isinstance(error := data.get("error"), dict):
        message = error.get("message")
        return str(message) if message else None
    return None
