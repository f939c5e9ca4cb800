"""session.py as playbooks: the events and frames each step must produce, and every refusal."""

from __future__ import annotations

import pytest
from muxkit import (
    GO_AWAY_PROTOCOL_ERROR,
    Pair,
    bytewise,
    data,
    frames_of,
    go_away,
    ping,
    whole,
    wu,
)

from zerogate.core.mux import (
    DataReceived,
    Flag,
    Frame,
    GoAwayCode,
    GoAwayReceived,
    MuxConfig,
    MuxError,
    MuxSession,
    PingAnswered,
    SessionEnded,
    StreamAccepted,
    StreamClosed,
    StreamEnded,
    StreamOpened,
    StreamReset,
    StreamState,
    WindowOpened,
)

SMALL = MuxConfig(initial_window=100, max_window=1000, max_frame=40)
PROTOCOL_ERROR = GoAwayCode.PROTOCOL_ERROR


def server(config: MuxConfig = MuxConfig(), *raw: bytes) -> MuxSession:
    session = MuxSession(client=False, config=config)
    for chunk in raw:
        session.receive_data(chunk)
    return session


def established(config: MuxConfig = MuxConfig()) -> tuple[Pair, int]:
    pair = Pair(config)
    stream_id = pair.client.open_stream()
    pair.pump()
    pair.server.accept_stream(stream_id)
    pair.pump()
    assert pair.take_client_events() == [StreamAccepted(stream_id)]
    assert pair.take_server_events() == [StreamOpened(stream_id)]
    return pair, stream_id


# ----- opening ------------------------------------------------------------------------------


def test_open_sends_a_window_update_with_syn() -> None:
    client = MuxSession(client=True)
    assert client.open_stream() == 1
    assert client.data_to_send() == bytes([0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    assert client.data_to_send() == b""
    assert client.open_stream() == 3
    assert client.stream_state(1) is StreamState.SYN_SENT
    assert MuxSession(client=False).open_stream() == 2


def test_open_and_accept() -> None:
    pair = Pair()
    stream_id = pair.client.open_stream()
    pair.pump()
    assert pair.take_server_events() == [StreamOpened(stream_id)]
    assert pair.server.stream_state(stream_id) is StreamState.SYN_RECEIVED
    assert pair.server.backlog == 1
    pair.server.accept_stream(stream_id)
    assert frames_of(pair.server.data_to_send()) == [Frame.window_update(1, Flag.ACK)]
    pair.client.receive_data(wu(1, Flag.ACK))
    assert pair.take_client_events() == [StreamAccepted(stream_id)]
    assert pair.client.stream_state(stream_id) is StreamState.ESTABLISHED
    assert pair.server.stream_state(stream_id) is StreamState.ESTABLISHED
    assert pair.server.backlog == 0


def test_refuse_with_reset() -> None:
    pair = Pair()
    stream_id = pair.client.open_stream()
    pair.client.send(stream_id, b"request")  # data may follow the SYN before any ACK
    pair.pump()
    assert pair.take_server_events() == [StreamOpened(1), DataReceived(1, b"request")]
    pair.server.reset_stream(stream_id)
    pair.pump()
    assert pair.take_client_events() == [StreamReset(stream_id)]
    assert pair.client.stream_count == pair.server.stream_count == 0
    assert pair.server.backlog == 0


def test_send_accepts_implicitly() -> None:
    pair = Pair()
    pair.client.open_stream()
    pair.pump()
    pair.server.send(1, b"hello")
    assert frames_of(pair.server.data_to_send()) == [Frame.data(1, b"hello", Flag.ACK)]
    pair.server.send(1, b"again")
    assert frames_of(pair.server.data_to_send()) == [Frame.data(1, b"again")]


def test_syn_data_fin_in_one_frame() -> None:
    session = server(MuxConfig(), data(1, b"GET", Flag.SYN | Flag.FIN))
    assert session.events() == [StreamOpened(1), DataReceived(1, b"GET"), StreamEnded(1)]
    assert session.stream_state(1) is StreamState.REMOTE_CLOSED
    assert session.backlog == 1  # the ACK is still owed
    session.send(1, b"200")
    session.close_stream(1)
    assert frames_of(session.data_to_send()) == [
        Frame.data(1, b"200", Flag.ACK),
        Frame.window_update(1, Flag.FIN),
    ]
    assert session.events() == [StreamClosed(1)]
    assert session.stream_count == 0 and session.backlog == 0


def test_peer_may_grant_a_larger_window_with_its_syn_and_ack() -> None:
    session = server(MuxConfig(), wu(1, Flag.SYN, 1000))
    assert session.send_window(1) == 256 * 1024 + 1000
    client = MuxSession(client=True)
    client.open_stream()
    client.receive_data(wu(1, Flag.ACK, 24))
    assert client.events() == [StreamAccepted(1), WindowOpened(1)]
    assert client.send_window(1) == 256 * 1024 + 24


# ----- data and closing ---------------------------------------------------------------------


def test_data_both_ways() -> None:
    pair, sid = established()
    assert pair.client.send(sid, b"ping?") == 5
    assert pair.server.send(sid, b"pong!") == 5
    pair.pump()
    assert pair.take_server_events() == [DataReceived(sid, b"ping?")]
    assert pair.take_client_events() == [DataReceived(sid, b"pong!")]


def test_client_half_closes_first() -> None:
    pair, sid = established()
    pair.client.close_stream(sid)
    pair.pump()
    assert pair.take_server_events() == [StreamEnded(sid)]
    assert pair.client.stream_state(sid) is StreamState.LOCAL_CLOSED
    assert pair.server.stream_state(sid) is StreamState.REMOTE_CLOSED
    with pytest.raises(MuxError, match="closed for sending"):
        pair.client.send(sid, b"x")
    pair.server.send(sid, b"the answer")  # the other direction still flows
    pair.server.close_stream(sid)
    pair.pump()
    assert pair.take_client_events() == [
        DataReceived(sid, b"the answer"),
        StreamEnded(sid),
        StreamClosed(sid),
    ]
    assert pair.take_server_events() == [StreamClosed(sid)]
    assert pair.client.stream_count == pair.server.stream_count == 0


def test_server_half_closes_first() -> None:
    pair, sid = established()
    pair.server.close_stream(sid)
    pair.pump()
    assert pair.take_client_events() == [StreamEnded(sid)]
    pair.client.send(sid, b"late")
    pair.client.close_stream(sid)
    pair.pump()
    assert pair.take_server_events() == [
        DataReceived(sid, b"late"),
        StreamEnded(sid),
        StreamClosed(sid),
    ]
    assert pair.take_client_events() == [StreamClosed(sid)]


def test_close_before_the_ack_arrives() -> None:
    pair = Pair()
    sid = pair.client.open_stream()
    pair.client.send(sid, b"fire and forget")
    pair.client.close_stream(sid)
    assert pair.client.stream_state(sid) is StreamState.LOCAL_CLOSED
    pair.pump()
    assert pair.take_server_events() == [
        StreamOpened(sid),
        DataReceived(sid, b"fire and forget"),
        StreamEnded(sid),
    ]
    pair.server.close_stream(sid)  # carries the ACK too
    pair.pump()
    assert pair.take_client_events() == [StreamAccepted(sid), StreamEnded(sid), StreamClosed(sid)]


def test_reset_aborts_both_directions_and_late_frames_are_dropped() -> None:
    pair, sid = established()
    pair.server.send(sid, b"in flight")
    pair.client.reset_stream(sid)
    assert pair.client.stream_state(sid) is None
    pair.pump()
    assert pair.take_server_events() == [StreamReset(sid)]
    assert pair.take_client_events() == []  # the data crossed the RST and was dropped
    assert not pair.client.closed and not pair.server.closed
    pair.client.receive_data(wu(sid, Flag.NONE, 10) + data(sid, b"x") + wu(sid, Flag.RST))
    assert pair.client.events() == []
    assert not pair.client.closed
    pair.client.reset_stream(sid)  # idempotent
    pair.client.consumed(sid, 0)


def test_misuse_raises_mux_error() -> None:
    pair, sid = established()
    with pytest.raises(MuxError, match="no open stream"):
        pair.client.send(99, b"x")
    with pytest.raises(MuxError, match="unknown stream"):
        pair.client.consumed(99, 1)
    with pytest.raises(MuxError, match="unknown stream"):
        pair.client.reset_stream(99)
    with pytest.raises(MuxError, match="consumed more"):
        pair.client.consumed(sid, 1)
    with pytest.raises(MuxError, match="negative"):
        pair.client.consumed(sid, -1)
    with pytest.raises(MuxError, match="not waiting to be accepted"):
        pair.server.accept_stream(sid)
    with pytest.raises(MuxError, match="not waiting to be accepted"):
        pair.client.accept_stream(sid)
    with pytest.raises(MuxError, match="unknown go away code"):
        pair.client.go_away(7)
    pair.client.close_stream(sid)
    with pytest.raises(MuxError, match="closed for sending"):
        pair.client.close_stream(sid)


def test_sending_nothing_queues_nothing() -> None:
    pair, sid = established()
    assert pair.client.send(sid, b"") == 0
    assert pair.client.data_to_send() == b""


# ----- flow control -------------------------------------------------------------------------


def test_sender_stops_at_the_window_and_resumes_after_consumed() -> None:
    pair, sid = established(SMALL)
    assert pair.client.send(sid, b"a" * 150) == 100
    assert pair.client.send_window(sid) == 0
    assert pair.client.send(sid, b"more") == 0
    assert [len(f.payload) for f in frames_of(pair.client.data_to_send())] == [40, 40, 20]


def test_window_updates_come_per_half_window() -> None:
    pair, sid = established(SMALL)
    pair.client.send(sid, b"a" * 100)
    pair.pump()
    received = pair.take_server_events()
    assert b"".join(e.data for e in received if isinstance(e, DataReceived)) == b"a" * 100
    pair.server.consumed(sid, 49)
    assert pair.server.data_to_send() == b""  # under half a window: no tiny update
    pair.server.consumed(sid, 1)
    assert frames_of(pair.server.data_to_send()) == [Frame.window_update(sid, Flag.NONE, 50)]
    pair.server.consumed(sid, 50)
    assert frames_of(pair.server.data_to_send()) == [Frame.window_update(sid, Flag.NONE, 50)]
    pair.client.receive_data(wu(sid, Flag.NONE, 50) + wu(sid, Flag.NONE, 50))
    assert pair.client.events() == [WindowOpened(sid), WindowOpened(sid)]
    assert pair.client.send_window(sid) == 100
    assert pair.client.send(sid, b"b" * 100) == 100


def test_no_window_update_after_the_peer_finished_sending() -> None:
    pair, sid = established(SMALL)
    pair.client.send(sid, b"a" * 100)
    pair.client.close_stream(sid)
    pair.pump()
    pair.take_server_events()
    pair.server.consumed(sid, 100)
    assert pair.server.data_to_send() == b""


def test_data_beyond_the_window_ends_the_session() -> None:
    session = server(SMALL, data(1, b"a" * 60, Flag.SYN))
    assert session.events() == [StreamOpened(1), DataReceived(1, b"a" * 60)]
    session.receive_data(data(1, b"b" * 41))
    assert session.events() == [SessionEnded(PROTOCOL_ERROR, "data beyond the receive window")]
    assert session.data_to_send().endswith(GO_AWAY_PROTOCOL_ERROR)
    assert session.closed


def test_window_overflow_ends_the_session() -> None:
    session = server(SMALL, wu(1, Flag.SYN, 900))
    assert session.send_window(1) == 1000
    session.receive_data(wu(1, Flag.NONE, 1))
    assert session.events()[-1] == SessionEnded(
        PROTOCOL_ERROR, "window update beyond the maximum window"
    )


def test_max_frame_splits_and_only_the_first_frame_acks() -> None:
    session = server(SMALL, wu(1, Flag.SYN))
    session.data_to_send()
    assert session.send(1, b"x" * 90) == 90
    sent = frames_of(session.data_to_send())
    assert [(f.flags, len(f.payload)) for f in sent] == [
        (Flag.ACK, 40),
        (Flag.NONE, 40),
        (Flag.NONE, 10),
    ]


# ----- ping ---------------------------------------------------------------------------------


def test_ping_measures_rtt_from_the_now_arguments() -> None:
    pair = Pair()
    opaque = pair.client.ping(now=10.0)
    assert pair.client.unanswered_since == 10.0
    pair.pump(now=10.25)
    assert pair.take_client_events() == [PingAnswered(opaque, 0.25)]
    assert pair.take_server_events() == []
    assert pair.client.unanswered_since is None
    assert pair.client.ping(now=11.0) != opaque


def test_peer_pings_are_answered_and_stray_answers_ignored() -> None:
    session = server(MuxConfig(), ping(Flag.SYN, 0xDEADBEEF), ping(Flag.ACK, 5))
    assert session.events() == []
    assert frames_of(session.data_to_send()) == [Frame.ping(Flag.ACK, 0xDEADBEEF)]


def test_only_the_newest_pings_are_remembered() -> None:
    client = MuxSession(client=True)
    first = client.ping(0.0)
    for i in range(100):
        client.ping(float(i + 1))
    client.receive_data(ping(Flag.ACK, first))
    assert client.events() == []
    assert client.unanswered_since is not None and client.unanswered_since > 0


# ----- go away ------------------------------------------------------------------------------


def test_go_away_drains_existing_streams_and_refuses_new_ones() -> None:
    pair, sid = established()
    pair.server.go_away()
    pair.server.go_away()  # once is enough
    assert pair.server.going_away
    with pytest.raises(MuxError, match="going away"):
        pair.server.open_stream()
    pair.pump()
    assert pair.take_client_events() == [GoAwayReceived(0)]
    assert pair.client.going_away and not pair.client.closed
    with pytest.raises(MuxError, match="going away"):
        pair.client.open_stream()
    pair.client.send(sid, b"still flowing")
    pair.client.close_stream(sid)
    pair.server.close_stream(sid)
    pair.pump()
    assert pair.take_server_events() == [
        DataReceived(sid, b"still flowing"),
        StreamEnded(sid),
        StreamClosed(sid),
    ]
    assert pair.server.stream_count == 0 and not pair.server.closed


def test_a_syn_crossing_our_go_away_is_reset() -> None:
    session = server()
    session.go_away()
    session.data_to_send()
    session.receive_data(wu(1, Flag.SYN) + data(1, b"x"))
    assert session.events() == []
    assert frames_of(session.data_to_send()) == [Frame.window_update(1, Flag.RST)]
    assert not session.closed


def test_go_away_with_an_error_ends_the_session() -> None:
    session = server(
        MuxConfig(), wu(1, Flag.SYN), go_away(GoAwayCode.INTERNAL_ERROR), wu(3, Flag.SYN)
    )
    assert session.events() == [
        StreamOpened(1),
        GoAwayReceived(2),
        SessionEnded(2, "peer went away: internal_error"),
    ]
    assert session.closed and session.stream_count == 0
    assert session.data_to_send() == b""  # no go away back to a peer that left
    local = server()
    local.go_away(GoAwayCode.INTERNAL_ERROR)
    assert local.events() == [SessionEnded(2, "closed locally")]
    assert local.data_to_send() == go_away(GoAwayCode.INTERNAL_ERROR)


# ----- limits -------------------------------------------------------------------------------


def test_syn_beyond_max_streams_gets_rst() -> None:
    config = MuxConfig(max_streams=2)
    pair = Pair(MuxConfig(), server_config=config)
    ids = [pair.client.open_stream() for _ in range(3)]
    pair.pump()
    assert pair.take_server_events() == [StreamOpened(ids[0]), StreamOpened(ids[1])]
    assert pair.take_client_events() == [StreamReset(ids[2])]
    assert not pair.server.closed
    with pytest.raises(MuxError, match="too many open streams"):
        pair.server.open_stream()


def test_accept_backlog() -> None:
    session = server(MuxConfig(accept_backlog=1), wu(1, Flag.SYN), wu(3, Flag.SYN))
    assert session.events() == [StreamOpened(1)]
    assert frames_of(session.data_to_send()) == [Frame.window_update(3, Flag.RST)]
    session.accept_stream(1)
    session.receive_data(wu(5, Flag.SYN) + data(3, b"late data for the refused stream"))
    assert session.events() == [StreamOpened(5)]
    assert not session.closed
    session.reset_stream(5)
    assert session.backlog == 0


def test_a_zero_backlog_refuses_every_peer_stream() -> None:
    session = server(MuxConfig(accept_backlog=0), wu(1, Flag.SYN), data(3, b"x", Flag.SYN))
    assert session.events() == []
    assert frames_of(session.data_to_send()) == [
        Frame.window_update(1, Flag.RST),
        Frame.window_update(3, Flag.RST),
    ]
    assert session.open_stream() == 2  # it may still open its own


def test_eof() -> None:
    session = server(MuxConfig(), wu(1, Flag.SYN))
    session.receive_data(b"")
    assert session.events() == [StreamOpened(1), SessionEnded(0, "transport closed")]
    assert session.closed and session.stream_state(1) is None
    session.receive_data(wu(3, Flag.SYN))
    assert session.events() == []
    with pytest.raises(MuxError, match="ended"):
        session.open_stream()
    session.consumed(1, 5)  # clean-up calls stay harmless
    session.reset_stream(1)
    session.go_away()


def test_config_is_checked() -> None:
    for bad in (
        {"initial_window": 0},
        {"initial_window": 2000, "max_window": 1000},
        {"max_window": 2**32},
        {"max_frame": 0},
        {"max_streams": 0},
        {"accept_backlog": -1},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            MuxConfig(**bad)


# ----- what a peer may not send -------------------------------------------------------------

OPEN_1 = wu(1, Flag.SYN)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x01" + OPEN_1[1:], "unsupported version"),
        (b"\x00\x07" + OPEN_1[2:], "unknown frame type"),
        (wu(1, Flag.SYN)[:2] + b"\x00\x11" + OPEN_1[4:], "unknown flag bits"),
        (b"\x00\x02\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00", "ping or go away on a stream"),
        (b"\x00\x03\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00", "ping or go away on a stream"),
        (b"\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "ping is neither request nor answer"),
        (b"\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09", "unknown go away code"),
        (b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "stream frame on the session id"),
        (b"\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x65", "larger than the receive window"),
        (data(5, b"x"), "never opened"),
        (wu(2, Flag.NONE, 5), "never opened"),  # our parity, never ours
        (OPEN_1 + wu(3, Flag.ACK), "never opened"),
        (wu(2, Flag.SYN), "our parity"),
        (OPEN_1 + OPEN_1, "reuses a stream id"),
        (wu(5, Flag.SYN) + wu(3, Flag.SYN) + wu(3, Flag.SYN), "reuses a stream id"),
        (wu(5, Flag.SYN) + wu(3, Flag.NONE), "never opened"),  # skipped, not yet opened
        (wu(1001, Flag.SYN) + wu(1, Flag.SYN), "reuses a stream id"),  # too far back
        (data(1, b"x" * 101, Flag.SYN), "larger than the receive window"),
        (OPEN_1 + data(1, b"x" * 60) + data(1, b"y" * 41), "beyond the receive window"),
        (wu(1, Flag.SYN, 901), "beyond the maximum window"),
        (OPEN_1 + wu(1, Flag.FIN) + data(1, b"x"), "data after FIN"),
        (OPEN_1 + wu(1, Flag.FIN) + wu(1, Flag.FIN), "recv-fin on a remote-closed stream"),
    ],
)
def test_protocol_violations_end_the_session(raw: bytes, reason: str) -> None:
    for split in (whole, bytewise):
        session = server(SMALL)
        for piece in split(raw):
            session.receive_data(piece)  # never raises
        events = session.events()
        assert isinstance(events[-1], SessionEnded)
        assert events[-1].code == PROTOCOL_ERROR and reason in events[-1].reason
        assert not any(isinstance(e, SessionEnded) for e in events[:-1])
        assert session.data_to_send().endswith(GO_AWAY_PROTOCOL_ERROR)
        assert session.closed and session.stream_count == 0
        session.receive_data(OPEN_1 + ping(Flag.SYN, 1))  # ignored from now on
        assert session.events() == [] and session.data_to_send() == b""


def test_eof_inside_a_frame_is_a_protocol_error() -> None:
    session = server(SMALL, data(1, b"abc", Flag.SYN)[:13])
    session.receive_data(b"")
    assert session.events() == [SessionEnded(PROTOCOL_ERROR, "transport closed inside a frame")]


def test_a_late_syn_for_a_skipped_id_is_accepted() -> None:
    """HashiCorp's yamux may put SYN 5 on the wire before SYN 3 (ids are taken before the
    send lock); the skipped ids just below the highest stay open once each."""
    session = server(MuxConfig(), wu(5, Flag.SYN), wu(3, Flag.SYN), wu(1, Flag.SYN))
    assert session.events() == [StreamOpened(5), StreamOpened(3), StreamOpened(1)]
    session.reset_stream(3)
    session.receive_data(data(3, b"crossed the reset"))  # a forgotten id, not a gap
    assert session.events() == [] and not session.closed


def test_tolerated_oddities() -> None:
    client = MuxSession(client=True, config=SMALL)
    sid = client.open_stream()
    client.receive_data(wu(sid, Flag.ACK) + wu(sid, Flag.ACK))  # duplicate ACK
    client.receive_data(data(sid, b""))  # empty data frame
    client.receive_data(go_away() + go_away())  # GoAway twice
    assert client.events() == [StreamAccepted(sid), GoAwayReceived(0)]
    assert not client.closed
