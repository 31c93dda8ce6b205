"""Server- and client-initiated disconnections with the official Python client."""

from engineio import packet as eio

#: A Socket.IO DISCONNECT for ``/``, as the data of an Engine.IO MESSAGE.
SIO_DISCONNECT_ROOT = (eio.MESSAGE, "1")


def test_disconnect_me_is_a_server_disconnect(peers):
    peer = peers()
    other = peers()
    peer.emit("disconnect-me")
    (reason,) = peer.wait("disconnect")
    assert reason == peer.sio.reason.SERVER_DISCONNECT  # "io server disconnect" on the wire
    assert not peer.sio.connected
    # python-engineio gives the same reason for an Engine.IO CLOSE, so the packets say
    # which it was: a Socket.IO DISCONNECT for `/` must have come, before any CLOSE.
    packets = list(peer.packets)
    assert SIO_DISCONNECT_ROOT in packets, f"no Socket.IO DISCONNECT for /: {packets}"
    closes = [i for i, (kind, _) in enumerate(packets) if kind == eio.CLOSE]
    assert all(packets.index(SIO_DISCONNECT_ROOT) < i for i in closes), (
        f"an Engine.IO CLOSE came before the DISCONNECT: {packets}"
    )
    assert other.call("message-with-ack", "still here") == ["still here"]


def test_client_disconnect(peers):
    peer = peers()
    other = peers()
    sid = peer.sio.get_sid()
    assert sid in other.socket_ids()
    peer.sio.disconnect()
    (reason,) = peer.wait("disconnect")
    assert reason == peer.sio.reason.CLIENT_DISCONNECT
    assert not peer.sio.connected
    # The state above is the client's own; the server must have let the socket go too.
    other.wait_gone(sid)
