"""Server- and client-initiated disconnections with the official Python client."""


def test_disconnect_me_is_a_server_disconnect(peers):
    peer = peers()
    other = peers()
    peer.emit("disconnect-me")
    (reason,) = peer.wait("disconnect")
    assert reason == peer.sio.reason.SERVER_DISCONNECT  # "io server disconnect" on the wire
    assert not peer.sio.connected
    assert other.call("message-with-ack", "still here") == ["still here"]


def test_client_disconnect(peers):
    peer = peers()
    peer.sio.disconnect()
    (reason,) = peer.wait("disconnect")
    assert reason == peer.sio.reason.CLIENT_DISCONNECT
    assert not peer.sio.connected
