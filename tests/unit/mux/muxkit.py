"""Two mux sessions joined by an in-memory link, and small frame builders for playbooks.

`Pair.pump()` moves queued bytes both ways until the link is quiet, cutting them at the
points a `Splitter` chooses, and collects each side's events in order.
"""

from __future__ import annotations

from collections.abc import Callable

from zerogate.core.mux import (
    Flag,
    Frame,
    FrameDecoder,
    GoAwayCode,
    MuxConfig,
    MuxEvent,
    MuxSession,
    encode,
)

Splitter = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def frames_of(data: bytes) -> list[Frame]:
    """Decode bytes a session queued; they must be whole, valid frames."""
    decoder = FrameDecoder()
    decoder.feed(data)
    out: list[Frame] = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    assert decoder.pending == 0, "a session queued a partial frame"
    return out


def wu(stream_id: int, flags: Flag = Flag.NONE, delta: int = 0) -> bytes:
    return encode(Frame.window_update(stream_id, flags, delta))


def data(stream_id: int, payload: bytes, flags: Flag = Flag.NONE) -> bytes:
    return encode(Frame.data(stream_id, payload, flags))


def ping(flags: Flag, opaque: int) -> bytes:
    return encode(Frame.ping(flags, opaque))


def go_away(code: GoAwayCode = GoAwayCode.NORMAL) -> bytes:
    return encode(Frame.go_away(code))


GO_AWAY_PROTOCOL_ERROR = go_away(GoAwayCode.PROTOCOL_ERROR)


class Pair:
    """A client and a server session joined by a lossless in-memory link.

    Bytes a session queued move into the link when `step` or `pump` runs; `step` then
    delivers any prefix of one direction, so tests choose where the stream is cut and what
    happens while the rest is still on the wire.
    """

    def __init__(
        self,
        config: MuxConfig | None = None,
        server_config: MuxConfig | None = None,
    ) -> None:
        config = config or MuxConfig()
        self.client = MuxSession(client=True, config=config)
        self.server = MuxSession(client=False, config=server_config or config)
        self.client_events: list[MuxEvent] = []
        self.server_events: list[MuxEvent] = []
        self.to_server = bytearray()
        self.to_client = bytearray()

    def step(self, to_server: bool, n: int, now: float = 0.0) -> int:
        """Deliver up to `n` bytes in one direction; return how many moved."""
        self.to_server += self.client.data_to_send()
        self.to_client += self.server.data_to_send()
        link, dst = (self.to_server, self.server) if to_server else (self.to_client, self.client)
        piece = bytes(link[:n])
        del link[:n]
        if piece:
            dst.receive_data(piece, now)
        self._collect()
        return len(piece)

    def pump(self, now: float = 0.0, split: Splitter = whole, max_rounds: int = 1000) -> int:
        """Deliver until nothing is queued or in flight; return the bytes moved."""
        moved = 0
        for _ in range(max_rounds):
            round_bytes = 0
            for to_server in (True, False):
                self.step(to_server, 0)  # gather what the sessions queued
                link = self.to_server if to_server else self.to_client
                for piece in split(bytes(link)):
                    round_bytes += self.step(to_server, len(piece), now)
            if round_bytes == 0:
                return moved
            moved += round_bytes
        raise AssertionError("the link never went quiet")

    def take_client_events(self) -> list[MuxEvent]:
        self._collect()
        taken, self.client_events = self.client_events, []
        return taken

    def take_server_events(self) -> list[MuxEvent]:
        self._collect()
        taken, self.server_events = self.server_events, []
        return taken

    def _collect(self) -> None:
        self.client_events.extend(self.client.events())
        self.server_events.extend(self.server.events())
