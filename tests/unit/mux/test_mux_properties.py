"""Hypothesis properties: two honest sessions never lose, duplicate or reorder a byte, never
break flow control and never see a protocol error; hostile bytes never raise.

The program test runs a random sequence of application operations on both ends of a `Pair`,
with the link delivering random prefixes in between, against a reference model that only
remembers, per stream direction, the bytes `send` accepted. At the end the link is drained
with every byte consumed: each direction must have delivered exactly what was sent, or a
prefix of it if the stream was reset.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from muxkit import GO_AWAY_PROTOCOL_ERROR, Pair, frames_of

from zerogate.core.mux import (
    RECEIVING_STATES,
    SENDING_STATES,
    DataReceived,
    Flag,
    Frame,
    GoAwayCode,
    GoAwayReceived,
    MuxConfig,
    MuxError,
    MuxEvent,
    MuxSession,
    PingAnswered,
    SessionEnded,
    StreamAccepted,
    StreamClosed,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
    encode,
)

PROGRAMS = settings(max_examples=200, deadline=None)
FUZZ = settings(max_examples=200, deadline=None)
PATTERN = bytes(range(256)) * 14  # payloads are windows into this, offset per stream

configs = st.builds(
    MuxConfig,
    initial_window=st.one_of(st.integers(1, 3000), st.sampled_from([1, 2, 100, 256 * 1024])),
    max_window=st.just(1 << 24),
    max_frame=st.integers(1, 1500),
    max_streams=st.integers(2, 8),
    accept_backlog=st.integers(1, 6),  # 0 refuses every peer stream: a unit test covers it
)
KINDS = (
    *("open", "open", "send", "send", "send", "consume", "consume", "accept", "close", "close"),
    *("reset", "ping", "deliver", "deliver", "deliver", "deliver", "deliver"),
)
# (kind, on the client?, a stream pick or a byte count, a size)
operation = st.tuples(
    st.sampled_from(KINDS),
    st.booleans(),
    st.integers(0, 1 << 16),
    st.one_of(st.integers(0, 20), st.integers(100, 3000)),
)
# A go-away ends the opening of streams, so it comes at most once, late or never.
operations = st.builds(
    lambda ops, at, client: [*ops[:at], ("go_away", client, 0, 0), *ops[at:]] if at else ops,
    st.lists(operation, min_size=20, max_size=100),
    st.one_of(st.none(), st.integers(1, 80)),
    st.booleans(),
)


@dataclass
class App:
    """What one end's application knows, and checks about the events it is given."""

    session: MuxSession
    peer_parity: int
    known: list[int] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)  # peer-opened streams we ACKed
    accepted: set[int] = field(default_factory=set)  # our streams the peer ACKed
    unconsumed: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    received: dict[int, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    sent: dict[int, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    ended: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)  # StreamClosed / StreamReset seen
    aborted: set[int] = field(default_factory=set)  # reset by either side, or refused
    pings: dict[int, float] = field(default_factory=dict)
    went_away: bool = False  # this side called go_away

    def pick(self, index: int) -> int | None:
        return self.known[index % len(self.known)] if self.known else None

    def on_event(self, event: MuxEvent, now: float) -> None:
        assert not isinstance(event, SessionEnded), f"honest peers ended a session: {event}"
        if isinstance(event, PingAnswered):
            assert event.rtt == now - self.pings.pop(event.opaque)
            return
        if isinstance(event, GoAwayReceived):
            assert event.code == GoAwayCode.NORMAL
            return
        sid = event.stream_id
        assert sid not in self.finished, f"{event} after the stream finished"
        if isinstance(event, StreamOpened):
            assert sid % 2 == self.peer_parity and sid not in self.known
            assert not self.went_away, "a stream opened after our go-away"
            self.known.append(sid)
        elif isinstance(event, StreamAccepted):
            assert sid % 2 != self.peer_parity and sid not in self.accepted
            self.accepted.add(sid)
        elif isinstance(event, DataReceived):
            assert sid not in self.ended and event.data
            self.received[sid] += event.data
            self.unconsumed[sid] += len(event.data)
        elif isinstance(event, StreamEnded):
            assert sid not in self.ended
            self.ended.add(sid)
        elif isinstance(event, StreamReset | StreamClosed):
            self.finished.add(sid)
            if isinstance(event, StreamReset):
                self.aborted.add(sid)
        else:
            assert isinstance(event, WindowOpened)


class Program:
    def __init__(self, config: MuxConfig) -> None:
        self.config = config
        self.pair = Pair(config)
        self.apps = {True: App(self.pair.client, 0), False: App(self.pair.server, 1)}
        self.now = 0.0

    def run(self, kind: str, client: bool, a: int, b: int) -> None:
        app = self.apps[client]
        getattr(self, f"do_{kind}")(app, a, b, client)
        self.collect()
        self.check_windows()

    def do_open(self, app: App, _a: int, _b: int, _client: bool) -> None:
        session = app.session
        if session.going_away or session.stream_count >= self.config.max_streams:
            with pytest.raises(MuxError):
                session.open_stream()
            return
        app.known.append(session.open_stream())

    def do_send(self, app: App, a: int, size: int, _client: bool) -> None:
        sid = app.pick(a)
        if sid is None:
            return
        state = app.session.stream_state(sid)
        if state not in SENDING_STATES:
            with pytest.raises(MuxError):
                app.session.send(sid, b"x")
            return
        window = app.session.send_window(sid)
        start = (sid * 37 + len(app.sent[sid])) % 256
        taken = app.session.send(sid, PATTERN[start : start + size])
        assert taken == min(size, window)
        app.sent[sid] += PATTERN[start : start + taken]
        if taken and sid % 2 == app.peer_parity:
            app.acked.add(sid)

    def do_consume(self, app: App, a: int, b: int, _client: bool) -> None:
        sid = app.pick(a)
        if sid is not None:
            n = min(b, app.unconsumed[sid])
            app.session.consumed(sid, n)
            app.unconsumed[sid] -= n

    def do_accept(self, app: App, a: int, _b: int, _client: bool) -> None:
        sid = app.pick(a)
        if sid is None or sid % 2 != app.peer_parity or sid in app.acked:
            return
        if app.session.stream_state(sid) is not None:
            app.session.accept_stream(sid)
            app.acked.add(sid)

    def do_close(self, app: App, a: int, _b: int, _client: bool) -> None:
        sid = app.pick(a)
        if sid is not None and app.session.stream_state(sid) in SENDING_STATES:
            app.session.close_stream(sid)
            if sid % 2 == app.peer_parity:
                app.acked.add(sid)

    def do_reset(self, app: App, a: int, _b: int, client: bool) -> None:
        sid = app.pick(a)
        if sid is None:
            return
        if app.session.stream_state(sid) is not None:
            app.aborted.add(sid)
            self.apps[not client].aborted.add(sid)
        app.session.reset_stream(sid)

    def do_ping(self, app: App, _a: int, _b: int, _client: bool) -> None:
        app.pings[app.session.ping(self.now)] = self.now

    def do_go_away(self, app: App, _a: int, _b: int, _client: bool) -> None:
        app.session.go_away()
        app.went_away = True

    def do_deliver(self, _app: App, a: int, b: int, client: bool) -> None:
        self.now += 1.0
        self.pair.step(client, a if b % 2 else a % 1024, self.now)  # all, or a random cut

    def collect(self) -> None:
        for client, app in self.apps.items():
            for event in (
                self.pair.take_client_events() if client else self.pair.take_server_events()
            ):
                app.on_event(event, self.now)
        for client, app in self.apps.items():  # a refusal or peer reset aborts both views
            self.apps[not client].aborted |= app.aborted

    def check_windows(self) -> None:
        window = self.config.initial_window
        for app in self.apps.values():
            session = app.session
            waiting = [
                s for s in session.stream_ids if s % 2 == app.peer_parity and s not in app.acked
            ]
            assert session.backlog == len(waiting) <= self.config.accept_backlog
            for sid in session.stream_ids:
                assert session.send_window(sid) >= 0
                assert app.unconsumed[sid] <= window  # invariant 1, seen from outside
                stream = session._streams[sid]  # invariant 1, seen from inside
                if stream.state in RECEIVING_STATES:
                    assert stream.recv_window + stream.unconsumed + stream.credit == window
                    assert stream.unconsumed == app.unconsumed[sid]

    def drain(self) -> None:
        for _ in range(10_000):
            self.now += 1.0
            moved = self.pair.pump(self.now)
            self.collect()
            consumed = 0
            for app in self.apps.values():
                for sid, n in list(app.unconsumed.items()):
                    if n:
                        app.session.consumed(sid, n)
                        app.unconsumed[sid] = 0
                        consumed += n
            self.check_windows()
            if moved == 0 and consumed == 0:
                return
        raise AssertionError("the program never settled")

    def check_delivery(self) -> None:
        for client, app in self.apps.items():
            peer = self.apps[not client]
            for sid in set(app.sent) | set(peer.received):
                sent, got = bytes(app.sent[sid]), bytes(peer.received[sid])
                if sid in app.aborted:
                    assert sent.startswith(got)
                else:
                    assert got == sent, f"stream {sid}: {len(got)} of {len(sent)} bytes"

    def check_settled(self) -> None:
        """Once drained, nothing is owed: ACKs arrived, and every send window is full again
        but for credit under the half-window threshold (the receiver's pending `credit`)."""
        threshold = max(1, self.config.initial_window // 2)
        for client, app in self.apps.items():
            peer = self.apps[not client]
            assert {sid for sid in peer.acked if sid not in app.aborted} <= app.accepted
            for sid in app.session.stream_ids:
                mine = app.session._streams[sid]
                theirs = peer.session._streams.get(sid)
                assert theirs is not None, f"stream {sid} lingers after the peer forgot it"
                if mine.state not in SENDING_STATES:
                    continue
                assert theirs.state in RECEIVING_STATES and theirs.unconsumed == 0
                assert theirs.credit < threshold
                assert mine.send_window == self.config.initial_window - theirs.credit


@PROGRAMS
@given(configs, operations)
def test_two_honest_sessions_deliver_every_byte_in_order(
    config: MuxConfig, ops: list[tuple[str, bool, int, int]]
) -> None:
    program = Program(config)
    for op in ops:
        program.run(*op)
    program.drain()
    program.check_delivery()
    program.check_settled()
    for app in program.apps.values():
        assert not app.pings  # every ping was answered
        assert not app.session.closed
        for sid in app.session.stream_ids:  # a live stream has a reason to be live
            assert sid not in app.finished


# ----- hostile input ------------------------------------------------------------------------

STREAM_FLAGS = st.sampled_from([Flag(bits) for bits in range(16)])
frames = st.one_of(
    st.builds(Frame.data, st.integers(1, 8), st.binary(max_size=40), STREAM_FLAGS),
    st.builds(Frame.window_update, st.integers(1, 8), STREAM_FLAGS, st.integers(0, 1 << 20)),
    st.builds(Frame.ping, st.sampled_from([Flag.SYN, Flag.ACK]), st.integers(0, 3)),
    st.builds(Frame.go_away, st.sampled_from(list(GoAwayCode))),
)
SMALL = MuxConfig(initial_window=64, max_window=1 << 16, max_streams=3, accept_backlog=2)


def feed_checked(session: MuxSession, chunks: list[bytes]) -> None:
    """Feed chunks; nothing may raise, and the events must tell a coherent story."""
    events: list[MuxEvent] = []
    for chunk in chunks:
        session.receive_data(chunk)  # never raises
        events += session.events()
    out = session.data_to_send()
    frames_of(out)  # whatever we answered is well formed
    ends = [i for i, e in enumerate(events) if isinstance(e, SessionEnded)]
    assert ends in ([], [len(events) - 1])
    if not ends:
        assert not session.closed
        return
    end = events[-1]
    assert isinstance(end, SessionEnded) and session.closed and session.stream_count == 0
    if end.code == GoAwayCode.PROTOCOL_ERROR and not _peer_said(events, end.code):
        assert out.endswith(GO_AWAY_PROTOCOL_ERROR)
    elif end.code != GoAwayCode.NORMAL:
        assert _peer_said(events, end.code)


def _peer_said(events: list[MuxEvent], code: int) -> bool:
    return len(events) >= 2 and events[-2] == GoAwayReceived(code)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@FUZZ
@given(st.booleans(), st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_random_bytes_never_raise(client: bool, data: bytes, cuts: list[int]) -> None:
    feed_checked(MuxSession(client=client, config=SMALL), cut(data, cuts))


@FUZZ
@given(st.booleans(), st.lists(frames, max_size=20), st.lists(st.integers(0, 600), max_size=8))
def test_random_valid_frames_never_raise(
    client: bool, frames_: list[Frame], cuts: list[int]
) -> None:
    data = b"".join(encode(frame) for frame in frames_)
    feed_checked(MuxSession(client=client, config=SMALL), cut(data, cuts))


@FUZZ
@given(st.booleans(), st.lists(frames, min_size=1, max_size=20), st.data())
def test_one_mutated_byte_never_raises(
    client: bool, frames_: list[Frame], data: st.DataObject
) -> None:
    wire = bytearray(b"".join(encode(frame) for frame in frames_))
    position = data.draw(st.integers(0, len(wire) - 1))
    wire[position] = data.draw(st.integers(0, 255))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
    session = MuxSession(client=client, config=SMALL)
    feed_checked(session, [*cut(bytes(wire), cuts), b""])  # and EOF at the end
    assert session.closed
