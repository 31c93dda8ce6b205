"""Rooms and broadcasts seen by several official Python clients."""

import itertools
import os

_seq = itertools.count()


def fresh_room(tag: str) -> str:
    return f"py-{tag}-{os.getpid()}-{next(_seq)}"


def test_join_and_rooms(peers):
    a = peers()
    room = fresh_room("join")
    assert a.call("rooms") == [[a.sio.get_sid()]]
    assert a.call("join", room) == [True]
    [rooms] = a.call("rooms")
    assert sorted(rooms) == sorted([a.sio.get_sid(), room])


def test_broadcast_reaches_members_including_sender_only(peers):
    a, b, outsider = peers(), peers(), peers()
    room = fresh_room("bcast")
    assert a.call("join", room) == [True]
    assert b.call("join", room) == [True]
    assert a.call("broadcast", room, "news", "hello", {"n": 1}) == [True]
    assert a.wait("news") == ("hello", {"n": 1})
    assert b.wait("news") == ("hello", {"n": 1})
    # Once each: anything more the server sent them would have arrived by the barrier.
    for p in (a, b, outsider):
        p.barrier()
    assert a.received("news") == []
    assert b.received("news") == []
    assert outsider.received("news") == []


def test_broadcast_except_self(peers):
    a, b, c = peers(), peers(), peers()
    room = fresh_room("except")
    for p in (a, b, c):
        p.call("join", room)
    assert a.call("broadcast-except-self", room, "chat", "from a") == [True]
    assert b.wait("chat") == ("from a",)
    assert c.wait("chat") == ("from a",)
    for p in (a, b, c):
        p.barrier()
    assert b.received("chat") == [], "once each"
    assert c.received("chat") == [], "once each"
    assert a.received("chat") == []


def test_leave_stops_broadcasts(peers):
    a, b = peers(), peers()
    room = fresh_room("leave")
    a.call("join", room)
    b.call("join", room)
    assert b.call("leave", room) == [True]
    assert b.call("rooms") == [[b.sio.get_sid()]]
    a.call("broadcast", room, "news", "after leave")
    assert a.wait("news") == ("after leave",)
    b.barrier()
    assert b.received("news") == []
