"""Shared pytest fixtures: the server under test and connected official clients."""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict

import pytest
import socketio

from interop_server import start_fixture

#: Safety net for any single wait; never an assertion on speed.
WAIT_S = 10.0

#: Every behaviour runs over each: (id, transports argument, expected final transport).
TRANSPORTS = [
    ("websocket", ["websocket"], "websocket"),
    ("polling", ["polling"], "polling"),
    ("upgrade", None, "websocket"),
]


class Peer:
    """One official ``socketio.Client`` plus queues of everything it received.

    Every event without a dedicated handler lands in a queue per event name, so tests
    can wait for it (``wait``) or show it never came (``barrier`` then ``received``).
    ``packets`` is every Engine.IO packet the client read, in order, as
    ``(type, data)``: ``(4, "1")`` is a Socket.IO DISCONNECT for ``/``, ``(1, None)`` an
    Engine.IO CLOSE (python-engineio reports both as a server disconnect).
    """

    def __init__(
        self, url: str, transports, auth=None, handlers=None, headers=None, **client_opts
    ):
        client_opts.setdefault("reconnection", False)
        self.sio = socketio.Client(**client_opts)
        self._queues: dict[str, queue.Queue] = defaultdict(queue.Queue)
        self._lock = threading.Lock()
        self.packets: list[tuple[int, object]] = []
        # python-engineio (pinned in requirements.txt) hands every packet it reads, on any
        # transport, to _receive_packet on its read loop's thread, in order; "message"
        # handlers run later on threads of their own, so the order is taken here.
        receive = self.sio.eio._receive_packet

        def record(pkt):
            self.packets.append((pkt.packet_type, pkt.data))
            return receive(pkt)

        self.sio.eio._receive_packet = record
        self.sio.on("*", self._any)
        self.sio.on("disconnect", self._on_disconnect)
        for event, handler in (handlers or {}).items():
            self.sio.on(event, handler)
        self.url = url
        self.transports = transports
        self.auth = auth
        self.headers = headers or {}

    def _queue(self, event: str) -> queue.Queue:
        with self._lock:
            return self._queues[event]

    def _any(self, event, *args):
        self._queue(event).put(args)

    def _on_disconnect(self, reason=None):
        self._queue("disconnect").put((reason,))

    def connect(self) -> "Peer":
        self.sio.connect(
            self.url,
            headers=self.headers,
            auth=self.auth,
            transports=self.transports,
            wait_timeout=WAIT_S,
        )
        return self

    def wait(self, event: str, timeout: float = WAIT_S) -> tuple:
        """The arguments of the next ``event`` received."""
        try:
            return self._queue(event).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {event!r} event within {timeout} s") from None

    def received(self, event: str) -> list[tuple]:
        """Every ``event`` received and not yet waited for."""
        q = self._queue(event)
        out = []
        while True:
            try:
                out.append(q.get_nowait())
            except queue.Empty:
                return out

    def call(self, event: str, *args):
        """Emits with an ack; returns the ack arguments as a list."""
        done = threading.Event()
        result: list = []

        def on_ack(*ack_args):
            result.extend(ack_args)
            done.set()

        self.sio.emit(event, data=tuple(args), callback=on_ack)
        if not done.wait(WAIT_S):
            raise AssertionError(f"no ack for {event!r} within {WAIT_S} s")
        return result

    def emit(self, event: str, *args) -> None:
        self.sio.emit(event, data=tuple(args))

    def barrier(self) -> None:
        """A round trip: anything the server sent this client before has arrived."""
        assert self.call("message-with-ack", "barrier") == ["barrier"]

    def socket_ids(self) -> set[str]:
        """The ids of every socket the server has on ``/`` (its ``fetch-sockets``)."""
        [sockets] = self.call("fetch-sockets", None)
        assert isinstance(sockets, list), f"fetch-sockets answered {sockets!r}"
        return {s["id"] for s in sockets}

    def wait_gone(self, sid: str, timeout: float = WAIT_S) -> None:
        """Waits until the server no longer lists the socket ``sid`` (asked by this peer)."""
        deadline = time.monotonic() + timeout
        while sid in (ids := self.socket_ids()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the server still has socket {sid} after {timeout} s: {ids}")
            time.sleep(0.02)

    def close(self) -> None:
        self.sio.shutdown()
        if self.sio.eio.state == "connected":
            self.sio.eio.disconnect()


@pytest.fixture(scope="module")
def server():
    fixture = start_fixture()
    yield fixture
    fixture.stop()


@pytest.fixture(params=TRANSPORTS, ids=[t[0] for t in TRANSPORTS])
def transport(request):
    """``(transports argument, expected final transport)``."""
    return request.param[1], request.param[2]


@pytest.fixture
def peers(server, transport):
    """``peers(auth=..., handlers=...)`` opens a connected client on the current transport."""
    opened: list[Peer] = []

    def open_peer(auth=None, handlers=None, **opts) -> Peer:
        peer = Peer(server.url, transport[0], auth=auth, handlers=handlers, **opts)
        opened.append(peer)
        return peer.connect()

    yield open_peer
    errors = []
    for peer in opened:
        try:
            peer.close()
        except Exception as exc:  # close every peer, then report
            errors.append(exc)
    if errors:
        raise errors[0]
