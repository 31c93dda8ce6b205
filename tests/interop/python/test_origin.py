"""The Origin policy with python-socketio against the shipped binary with an allowlist
that does not name the server's own address: a same-origin client must connect on every
transport, while a request from a listed-nowhere origin is still refused.

Over WebSocket python-socketio's library (websocket-client) sends its target URL as
``Origin``; its polling requests (requests) send no ``Origin`` at all, which the server
lets through as a non-browser client. So wherever polling is used the test sends the
server's own origin itself, as a page the server served would, and the same-origin rule
is what lets it in."""

from __future__ import annotations

import pytest
import requests
import websocket

from conftest import TRANSPORTS, Peer
from interop_server import start_switchboard

ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def listed_server():
    server = start_switchboard({"SWITCHBOARD_CORS__ALLOWED_ORIGINS": ALLOWED})
    yield server
    server.stop()


@pytest.mark.parametrize("name,transports,final", TRANSPORTS, ids=[t[0] for t in TRANSPORTS])
def test_python_socketio_connects_through_an_allowlist_that_omits_the_server(
    listed_server, name, transports, final
):
    if transports == ["websocket"]:
        opts = {}  # websocket-client's own Origin: the server's URL
    else:
        # Polling first: the server's own origin on every request, and on the upgrade's
        # WebSocket only that one (not websocket-client's as well).
        opts = {
            "headers": {"Origin": listed_server.url},
            "websocket_extra_options": {"suppress_origin": True},
        }
    peer = Peer(listed_server.url, transports, **opts).connect()
    try:
        assert peer.sio.connected
        assert peer.sio.transport() == final
    finally:
        peer.sio.disconnect()


def test_a_foreign_origin_is_refused_on_websocket_and_polling(listed_server):
    ws_url = listed_server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url, origin="https://evil.example", timeout=10)
    assert refused.value.status_code == 403
    polling = listed_server.url + "/socket.io/?EIO=4&transport=polling"
    assert requests.get(polling, headers={"Origin": "https://evil.example"}, timeout=10).status_code == 403
    # The listed origin still works, and so does a same-origin request by hand.
    assert requests.get(polling, headers={"Origin": ALLOWED}, timeout=10).status_code == 200
    same = listed_server.url
    assert requests.get(polling, headers={"Origin": same}, timeout=10).status_code == 200
