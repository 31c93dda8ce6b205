"""Events and acknowledgements in both directions with the official Python client."""

ARGS = ("text", 42, -1.5, True, False, None, [1, "two", [3]], {"a": {"b": [None, {}]}})


def test_message_comes_back_as_message_back(peers):
    peer = peers()
    peer.emit("message", *ARGS)
    assert peer.wait("message-back") == ARGS


def test_client_to_server_ack_returns_the_same_arguments(peers):
    peer = peers()
    assert peer.call("message-with-ack", *ARGS) == list(ARGS)


def test_client_to_server_ack_via_call(peers):
    peer = peers()
    assert peer.sio.call("message-with-ack", {"k": "v"}, timeout=10) == {"k": "v"}
    assert peer.sio.call("message-with-ack", (1, 2), timeout=10) == (1, 2)


def test_client_to_server_ack_without_arguments(peers):
    peer = peers()
    assert peer.call("message-with-ack") == []


def test_server_to_client_ack(peers):
    seen = []

    def please_ack(*args):
        seen.append(args)
        return "got", {"args": list(args)}

    peer = peers(handlers={"please-ack": please_ack})
    peer.emit("request-ack", "please-ack", 1, "two", {"three": [3]})
    assert peer.wait("request-ack-result") == (["got", {"args": [1, "two", {"three": [3]}]}],)
    assert seen == [(1, "two", {"three": [3]})]


def test_server_to_client_ack_without_arguments(peers):
    peer = peers(handlers={"empty-ack": lambda *args: None})
    peer.emit("request-ack", "empty-ack")
    assert peer.wait("request-ack-result") == ([],)


def test_many_messages_keep_order(peers):
    # A burst of 300 echoes, all of them, in order, on every transport. Over polling-only
    # this is the README's "polling responses carry at most 16 packets" claim: the client
    # POSTs the emits in a few large payloads, so the server queues far more than 16 echoes
    # at once; python-engineio's client drops the connection on a polling response holding
    # more than 16 packets (engineio.payload.Payload.max_decode_packets), so the burst only
    # arrives whole if the server splits it over consecutive polls.
    n = 300
    peer = peers()
    for i in range(n):
        peer.emit("message", i)
    got = [peer.wait("message-back")[0] for _ in range(n)]
    assert got == list(range(n))
    # Exactly n: anything more the server sent would have arrived by the barrier.
    peer.barrier()
    assert peer.received("message-back") == []
