"""Opening a provider's websocket: what both wire protocols do the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from ..errors import AuthenticationError, ConnectError

HANDSHAKE_TIMEOUT_S = 10.0


async def open_socket(url: str, headers: dict[str, str]) -> ClientConnection:
    """Open the websocket; a refused handshake becomes AuthenticationError or ConnectError."""
    try:
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=HANDSHAKE_TIMEOUT_S,
            # Audio messages are large and already compressed enough; the SDKs do the same.
            max_size=None,
            compression=None,
            user_agent_header=None,
        )
    except InvalidStatus as err:
        status = err.response.status_code
        if status in (401, 403):
            raise AuthenticationError(_refusal(err)) from err
        raise ConnectError(f"handshake rejected: HTTP {status}") from err
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise ConnectError(str(err) or type(err).__name__) from err


def _refusal(err: InvalidStatus) -> str:
    """The reason a server gave for refusing the handshake (JSON `error.message`)."""
    try:
        body = json.loads(err.response.body or b"{}")
        return str(body["error"]["message"])
    except ValueError, KeyError, TypeError:
        return f"HTTP {err.response.status_code}"


async def configure_or_close(
    socket: ClientConnection, configure: Coroutine[Any, Any, None]
) -> None:
    """Run the protocol's setup exchange; close the socket if it fails or times out."""
    try:
        await asyncio.wait_for(configure, HANDSHAKE_TIMEOUT_S)
    except TimeoutError as err:
        await socket.close()
        raise ConnectError("the server did not confirm the session setup") from err
    except BaseException:
        await socket.close()
        raise
