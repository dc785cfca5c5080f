"""The frames we write ourselves on the audio path are what a websocket server reads."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from custom_components.realtime_assist.realtime.providers.base import _masked_text_frame


@pytest.mark.parametrize("size", [0, 125, 126, 1300, 65535, 65536, 200_000])
def test_a_server_reads_the_text_we_framed(size: int) -> None:
    """Every length encoding (7-bit, 16-bit, 64-bit), masked as a client must."""
    payload = (b'{"audio":"' + b"A" * size)[:size]
    server = Protocol(Side.SERVER, max_size=None)

    server.receive_data(_masked_text_frame(payload) + _masked_text_frame(b"{}"))

    assert server.events_received() == [
        Frame(Opcode.TEXT, payload, fin=True),
        Frame(Opcode.TEXT, b"{}", fin=True),
    ]
    assert server.parser_exc is None


def test_each_frame_has_a_fresh_mask() -> None:
    """RFC 6455 5.3: an unpredictable masking key per frame (the payload differs on the wire)."""
    payload = b"x" * 64
    assert len({_masked_text_frame(payload)[2:] for _ in range(8)}) == 8
