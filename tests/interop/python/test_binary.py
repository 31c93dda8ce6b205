"""Binary (bytes) arguments with the official Python client, including in acks."""

ALL_BYTES = bytes(range(256))


def test_bytes_come_back_in_message_back(peers):
    peer = peers()
    peer.emit("message", ALL_BYTES)
    assert peer.wait("message-back") == (ALL_BYTES,)


def test_several_binaries_mixed_with_json(peers):
    peer = peers()
    args = (b"\x00\x01", "between", b"\xff" * 10, 3, b"")
    assert peer.call("message-with-ack", *args) == list(args)


def test_binary_nested_in_objects(peers):
    peer = peers()
    value = {"name": "f", "data": ALL_BYTES, "parts": [b"\x01\x02", {"deep": b"\xfe"}, "t"]}
    peer.emit("message", value)
    assert peer.wait("message-back") == (value,)


def test_binary_in_server_to_client_ack(peers):
    seen = []

    def bin_ack(*args):
        seen.append(args)
        return b"\x09" * 64, {"inner": b"\xc8\xc9"}

    peer = peers(handlers={"bin-ack": bin_ack})
    peer.emit("request-ack", "bin-ack", b"\x04" * 16, {"k": b"\x64"})
    assert peer.wait("request-ack-result") == ([b"\x09" * 64, {"inner": b"\xc8\xc9"}],)
    assert seen == [(b"\x04" * 16, {"k": b"\x64"})]


def test_large_binary(peers):
    peer = peers()
    big = bytes(i & 0xFF for i in range(256 * 1024))
    assert peer.call("message-with-ack", big) == [big]


def test_binary_broadcast(peers):
    a, b = peers(), peers()
    room = f"py-bin-{a.sio.get_sid()}"
    a.call("join", room)
    b.call("join", room)
    a.call("broadcast", room, "blob", ALL_BYTES, {"nested": [b"\x2a"]})
    assert b.wait("blob") == (ALL_BYTES, {"nested": [b"\x2a"]})
    assert a.wait("blob") == (ALL_BYTES, {"nested": [b"\x2a"]})
    # Once each: anything more the server sent them would have arrived by the barrier.
    for p in (a, b):
        p.barrier()
    assert a.received("blob") == []
    assert b.received("blob") == []
