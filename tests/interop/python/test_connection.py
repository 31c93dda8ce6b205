"""Connecting with the official Python client (python-socketio), per transport."""

import pytest
import socketio

from conftest import WAIT_S, Peer


def test_auth_event_echoes_handshake_auth(peers):
    auth = {"token": "abc.def", "user": {"id": 7, "roles": ["x"]}, "ok": True, "none": None}
    peer = peers(auth=auth)
    assert peer.wait("auth") == (auth,)


def test_without_auth_the_auth_event_carries_an_empty_object(peers):
    peer = peers()
    assert peer.wait("auth") == ({},)


def test_connects_on_the_expected_transport(peers, transport):
    peer = peers()
    assert peer.sio.connected
    assert peer.sio.transport() == transport[1]
    assert peer.sio.get_sid() and isinstance(peer.sio.get_sid(), str)
    assert peer.call("message-with-ack", "hi") == ["hi"]
    assert peer.sio.transport() == transport[1]


def test_each_connection_gets_its_own_id(peers):
    a, b = peers(), peers()
    assert a.sio.get_sid() != b.sio.get_sid()


def test_non_ascii_text_round_trips(peers):
    text = "héllo — 你好 — 🚀 — \u2028 \"q\" \\"
    peer = peers(auth={"text": text})
    assert peer.wait("auth") == ({"text": text},)
    assert peer.call("message-with-ack", text, {"t": text}) == [text, {"t": text}]


def test_refused_namespace_gives_invalid_namespace(server, transport):
    errors = []
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", lambda data=None: errors.append(data), namespace="/nope")
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(
            server.url, namespaces=["/nope"], transports=transport[0], wait_timeout=WAIT_S
        )
    try:
        assert errors == [{"message": "Invalid namespace"}]
    finally:
        sio.shutdown()
        if sio.eio.state == "connected":
            sio.eio.disconnect()


def test_async_client_connects_and_acks(server, transport):
    import asyncio

    async def run():
        sio = socketio.AsyncClient(reconnection=False)
        got = asyncio.get_running_loop().create_future()
        sio.on("auth", lambda data: got.set_result(data))
        await sio.connect(
            server.url, auth={"a": 1}, transports=transport[0], wait_timeout=WAIT_S
        )
        try:
            assert await asyncio.wait_for(got, WAIT_S) == {"a": 1}
            assert sio.transport() == transport[1]
            res = await sio.call("message-with-ack", (1, "two", b"\x00\x03"), timeout=WAIT_S)
            assert res == (1, "two", b"\x00\x03")
        finally:
            await sio.disconnect()

    asyncio.run(run())


def test_peer_helper_is_closed_cleanly(server, transport, peers):
    other = peers()
    peer = Peer(server.url, transport[0]).connect()
    sid = peer.sio.get_sid()
    assert sid in other.socket_ids()
    peer.close()
    assert not peer.sio.connected
    # Not only the client's own state: the server let the socket go.
    other.wait_gone(sid)
