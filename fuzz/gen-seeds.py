#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: realistic inputs for each body in
crates/fuzz-targets, in the framing that body documents (selector byte, separators).

Cluster seeds are the bytes the real Node packages wrote
(crates/protocol/tests/fixtures/cluster-codec.json); the rest follow the protocol specs'
examples and the unit tests. Deterministic: running it again rewrites the same files.
Files named `regression-*` are kept as they are: fuzzer findings committed by hand (and
one the script writes itself), which regenerating must not drop.

    python3 fuzz/gen-seeds.py
"""

import base64
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
FIXTURES = ROOT / "crates" / "protocol" / "tests" / "fixtures" / "cluster-codec.json"
# Seeds larger than this are left out (the corpus stays small; libFuzzer's default
# -max_len is 4096 anyway).
MAX_SEED = 4096

# Must match crates/fuzz-targets/src/auth.rs.
JWT_SECRET = b"switchboard-fuzz-secret-0123456789abcdef-switchboard-fuzz-secret"
ISSUER = "https://issuer.example"
AUDIENCE = "switchboard"
FAR_FUTURE = 4102444800  # 2100-01-01

SID = "AAAAAAAAAAAAAAAAAAAA"


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60]
    (folder / safe).write_bytes(data)


def hexed(case):
    h = case.get("hex")
    return bytes.fromhex(h) if isinstance(h, str) else None


def engineio():
    open_json = '{"sid":"%s","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}' % SID
    packets = {
        "open": "0" + open_json,
        "close": "1",
        "ping": "2",
        "ping-probe": "2probe",
        "pong-probe": "3probe",
        "message": "4hello",
        "message-utf8": "4h\u00e9llo w\u00f6rld \U0001F44B",
        "message-sio-event": '42["chat","hi"]',
        "message-sio-connect": '40{"token":"abc"}',
        "upgrade": "5",
        "noop": "6",
        "binary": "bAQIDBA==",
        "binary-empty": "b",
    }
    for name, text in packets.items():
        write("engineio_packet", name, text)
    payloads = {
        "mixed": "4hello\x1ebAQIDBA==\x1e2",
        "connect-and-event": '40\x1e42["chat","hi"]',
        "noop": "6",
        "pong": "3",
        "binary-attachments": '451-["file",{"_placeholder":true,"num":0}]\x1ebAQID',
        "many": "\x1e".join(["42[\"n\",%d]" % i for i in range(8)]),
    }
    for name, body in payloads.items():
        write("engineio_payload", name, body)
    # flags: bits 0-1 method (0 GET, 1 POST, 2 other), bit 2 websocket, bits 3-4 transports.
    handshakes = {
        "polling-handshake": (0, "EIO=4&transport=polling&t=N8hyd6w"),
        "websocket-handshake": (4, "EIO=4&transport=websocket"),
        "polling-get": (0, "EIO=4&transport=polling&sid=%s&t=N8hyd7H" % SID),
        "polling-post": (1, "EIO=4&transport=polling&sid=%s" % SID),
        "upgrade": (4, "EIO=4&transport=websocket&sid=%s" % SID),
        "eio3": (0, "EIO=3&transport=polling&j=0"),
        "websocket-disabled": (0x14, "EIO=4&transport=websocket"),
        "bad-sid": (0, "EIO=4&transport=polling&sid=abc"),
    }
    for name, (flags, query) in handshakes.items():
        write("engineio_handshake", name, bytes([flags]) + query.encode())


def socketio():
    sep, binary = b"\xff", b"\x00"
    seqs = {
        "connect": [b'0{"token":"x"}'],
        "connect-nsp": [b"0/custom,"],
        "event-ack-id": [b'2/admin,12["hello",{"a":1}]'],
        "ack": [b"3/x,7[]"],
        "disconnect": [b"1/custom,"],
        "connect-error": [b'4{"message":"Invalid namespace"}'],
        "binary-event": [
            b'51-["ev",{"_placeholder":true,"num":0}]',
            binary + b"\x01\x02\x03",
        ],
        "binary-ack-two": [
            b'62-/admin,456[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            binary + b"a",
            binary + b"b",
        ],
        "text-while-reconstructing": [
            b'52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b'2["x"]',
            b'2["after"]',
        ],
        "unexpected-binary": [binary + b"extra", b'2["ok"]'],
        "dangling-placeholder": [b'51-["ev",{"_placeholder":true,"num":3}]', binary + b"a"],
        "events": [b'2["a"]', b'2["b",1,2.5,null,true]', b'3/chat,1[{"ok":true}]'],
        # Floats serde_json would write longer than they came (`check_growth`).
        "floats": [b'2["n",1e15,-9e15,1e-5,12e-6,1E3,5e-324,1.5e300,100.0]'],
    }
    for name, messages in seqs.items():
        write("socketio_decoder", name, sep.join(messages))


def cluster(fixtures):
    for case in fixtures["values"]:
        for flavor in ("notepack", "msgpack"):
            h = case.get(flavor)
            if isinstance(h, str):
                write("msgpack", f"{flavor}-{case['name']}", bytes.fromhex(h))
    # Regression (found by fuzzing): maps nested as keys of maps; their keys used to grow
    # exponentially with the nesting.
    write("msgpack", "regression-keys-within-keys", b"\x81" * 40 + b"\xc0" * 41)
    for i, case in enumerate(fixtures["json_texts"]):
        write("msgpack", f"json-text-{i}", bytes.fromhex(case["msgpack"]))
    adapter = fixtures["redis_adapter"]
    for selector, kind in ((0, "broadcasts"), (1, "requests"), (2, "responses")):
        for case in adapter[kind]:
            data = hexed(case)
            if data is not None:
                write("redis_adapter", f"{kind}-{case['name']}", bytes([selector]) + data)
    channels = {
        "namespace": "socket.io#/#",
        "room": "socket.io#/chat#room1#",
        "room-with-hash": "socket.io#/chat#a#b#",
        "request": "socket.io-request#/#",
        "response": "socket.io-response#/chat#",
        "specific-response": "socket.io-response#/chat#abc123#",
        "custom-key": "k\x00k#/#r#",
        "other": "other#/#",
    }
    for case in adapter["broadcasts"] + adapter["requests"] + adapter["responses"]:
        channels[f"fixture-{case['name']}"] = case["channel"]
    for name, channel in channels.items():
        write("redis_adapter", f"channel-{name}", b"\x03" + channel.encode())
    streams = fixtures["streams"]
    for case in streams["entries"]:
        flat = [part for field in case["fields"] for part in field]
        write("streams", f"entry-{case['name']}", b"\x00" + b"\x00".join(p.encode() for p in flat))
    for case in streams["pubsub"]:
        data = hexed(case)
        if data is not None:
            write("streams", f"pubsub-{case['name']}", b"\x01" + data)
    # The sharded adapter (createShardedAdapter): the whole message as JSON (what
    # JSON.stringify writes), or MessagePack when it carries binary (the streams
    # adapter's pub/sub bytes above are such MessagePack).
    uid = "a1b2c3d4e5f60718"
    room_opts = {"rooms": ["news"], "except": [], "flags": {}}
    event = lambda nsp, *args: {"type": 2, "data": list(args), "nsp": nsp}
    sharded = {
        "broadcast-room": (3, {"packet": event("/", "hello", 1, {"x": 2}), "opts": room_opts}),
        "broadcast-all-flags": (3, {
            "packet": event("/chat", "e"),
            "opts": {"rooms": [], "except": [SID], "flags": {"volatile": True, "compress": True}},
        }),
        "broadcast-with-ack": (3, {
            "packet": event("/", "q"),
            "requestId": "r1",
            "opts": {"rooms": ["a", "b"], "except": [], "flags": {"timeout": 5000}},
        }),
        "sockets-join": (4, {"opts": room_opts, "rooms": ["r1", "r2"]}),
        "sockets-leave": (5, {"opts": room_opts, "rooms": ["r1"]}),
        "disconnect-sockets": (6, {"opts": room_opts, "close": True}),
        "fetch-sockets": (7, {"opts": room_opts, "requestId": "r2"}),
        "fetch-sockets-response": (8, {"requestId": "r2", "sockets": [{
            "id": SID,
            "handshake": {"headers": {}, "time": "t", "address": "::1", "xdomain": False,
                          "secure": False, "issued": 1, "url": "/", "query": {}, "auth": {}},
            "rooms": [SID],
            "data": {"n": 1},
        }]}),
        "server-side-emit": (9, {"requestId": "r3", "packet": ["ping", 1]}),
        "server-side-emit-response": (10, {"requestId": "r3", "packet": ["pong"]}),
        "broadcast-client-count": (11, {"requestId": "r1", "clientCount": 3}),
        "broadcast-ack": (12, {"requestId": "r1", "packet": ["ok"]}),
        "adapter-close": (13, None),
    }
    for name, (kind, data) in sharded.items():
        message = {"type": kind, **({"data": data} if data is not None else {}), "uid": uid, "nsp": "/"}
        write("sharded", name, json.dumps(message, separators=(",", ":")))
    for case in streams["pubsub"]:
        data = hexed(case)
        if data is not None:
            write("sharded", f"msgpack-{case['name']}", data)
    # Socket.IO event frames as the SSE transport reads them: a flags byte (bit 0:
    # offsets on), then the engine text frame, with names and arguments a client
    # could relay (line breaks, NULs, a forged field).
    sse_frames = {
        "event-offset": (1, '42/chat,["message",{"text":"hi"},"1733-7"]'),
        "event-no-offset": (0, '42["tick",1,"x"]'),
        "ack-id": (1, '42/a,12["ev","o-1"]'),
        "binary": (1, '451-/a,["bin",{"_placeholder":true,"num":0},"o-2"]'),
        "name-line-break": (0, '42["a\\nid: 9\\n\\nevent: x",1]'),
        "data-whitespace": (1, '42["e",{"a":\n1},\r\n[2],"o-3"]'),
        "disconnect": (0, "41/chat,"),
        "connect": (0, '40{"sid":"x","offsets":true}'),
    }
    for name, (flags, frame) in sse_frames.items():
        write("sse_frame", name, bytes([flags]) + frame.encode())
    # RESP2 as a node's subscriber connection reads it from Redis: pushes of both
    # kinds (payloads with CRLF and binary), confirmations, AUTH's answers, a pong.
    def bulk(b):
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def array(*items):
        return b"*%d\r\n" % len(items) + b"".join(items)

    # A broadcast the Node adapter published, as the channel and payload of a push.
    node = fixtures["redis_adapter"]["broadcasts"][0]
    payload = hexed(node)
    resp_seeds = {
        "message": array(bulk(b"message"), bulk(node["channel"].encode()), bulk(payload)),
        "pmessage": array(bulk(b"pmessage"), bulk(b"socket.io#/#*"), bulk(b"socket.io#/#room#"), bulk(payload)),
        "smessage": array(bulk(b"smessage"), bulk(b"socket.io#/#"), bulk(b"a\r\nb\x00")),
        "subscribe": array(bulk(b"psubscribe"), bulk(b"socket.io#/#*"), b":1\r\n"),
        "unsubscribe": array(bulk(b"unsubscribe"), bulk(b"c"), b":0\r\n"),
        "pong": array(bulk(b"pong"), bulk(b"")),
        "ok": b"+OK\r\n",
        "wrongpass": b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        "null": b"$-1\r\n",
        "two-frames": array(bulk(b"subscribe"), bulk(b"c"), b":1\r\n") + array(bulk(b"message"), bulk(b"c"), bulk(b"hi")),
    }
    for name, data in resp_seeds.items():
        write("resp", name, data)
    for case in streams["sessions"]:
        write("session", f"session-{case['name']}", b"\x00" + case["stored"].encode())
    # As Switchboard stores a session: Node's four fields, then its own (an offset, the
    # rooms joined late and the rooms left, with stream ids).
    switchboard_session = {
        "sid": SID,
        "pid": "BBBBBBBBBBBBBBBBBBBB",
        "rooms": [SID, "late", "early"],
        "data": {"user": "ann"},
        "offset": "1700000000000-0",
        "joined": {"late": "1700000000005-0"},
        "left": [["gone", "1700000000000-0", "1700000000007-1"]],
    }
    write("session", "session-switchboard-memberships", b"\x00" + base64.b64encode(msgpack(switchboard_session)))
    for name, offset in {
        "offset": "1700000000000-3",
        "zero": "0-0",
        "max": "18446744073709551615-18446744073709551615",
        "leading-zeros": "007-01",
    }.items():
        write("session", f"offset-{name}", b"\x01" + offset.encode())


def msgpack(value):
    """MessagePack of the maps, arrays and strings a stored session holds (short ones)."""
    if isinstance(value, dict):
        assert len(value) < 16
        out = bytes([0x80 | len(value)])
        for k, v in value.items():
            out += msgpack(k) + msgpack(v)
        return out
    if isinstance(value, list):
        assert len(value) < 16
        return bytes([0x90 | len(value)]) + b"".join(msgpack(v) for v in value)
    data = value.encode()
    assert len(data) < 256
    return (bytes([0xA0 | len(data)]) if len(data) < 32 else bytes([0xD9, len(data)])) + data


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt():
    def token(header, claims, alg="HS256", key=JWT_SECRET):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        message = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = hmac.new(key, message.encode(), digest).digest()
        return message + "." + b64url(sig)

    good = {"sub": "alice", "exp": FAR_FUTURE, "iss": ISSUER, "aud": AUDIENCE, "role": "admin"}
    raw = {
        "valid-hs256": token({"alg": "HS256", "typ": "JWT"}, good),
        "valid-hs512-kid": token({"alg": "HS512", "kid": "k1"}, good, "HS512"),
        "valid-aud-list": token({"alg": "HS384"}, dict(good, aud=["x", AUDIENCE]), "HS384"),
        "wrong-key": token({"alg": "HS256"}, good, key=b"another-secret-another-secret-xx"),
        "expired": token({"alg": "HS256"}, dict(good, exp=1)),
        "no-exp": token({"alg": "HS256"}, {"sub": "bob", "iss": ISSUER, "aud": AUDIENCE}),
        "alg-none": b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(good).encode()) + ".",
        "rs256": b64url(b'{"alg":"RS256"}') + "." + b64url(b"{}") + ".c2ln",
        "jwe-shape": "a.b.c.d.e",
    }
    for name, text in raw.items():
        write("jwt", f"token-{name}", b"\x00" + text.encode())
    signed = {
        "claims": ('{"alg":"HS256","typ":"JWT"}', json.dumps(good)),
        "hs384-nbf": ('{"alg":"HS384"}', json.dumps(dict(good, nbf=FAR_FUTURE))),
        "crit": ('{"alg":"HS256","crit":["exp"]}', json.dumps(good)),
        "kid-number": ('{"alg":"HS256","kid":7}', json.dumps(good)),
        "float-exp": ('{"alg":"HS512"}', json.dumps(dict(good, exp=4102444800.6, sub=5))),
        "wrong-issuer": ('{"alg":"HS256"}', json.dumps(dict(good, iss="evil"))),
    }
    for name, (header, payload) in signed.items():
        write("jwt", f"signed-{name}", b"\x01" + header.encode() + b"\x00" + payload.encode())


def hooks():
    replies = {
        "empty": "",
        "blank": " \n",
        "empty-object": "{}",
        "ack-null": '{"ack":null}',
        "full": json.dumps({
            "ack": ["ok", {"id": 7}],
            "actions": [
                {"type": "join", "rooms": ["chat:42"]},
                {"type": "leave", "rooms": ["lobby"]},
                {"type": "emit", "rooms": ["chat:42"], "event": "joined", "args": [{"user": "u1"}]},
                {"type": "emit", "event": "to-sender"},
            ],
            "extra": "ignored",
        }),
        "unknown-action": '{"actions":[{"type":"kick"}]}',
        "unknown-field": '{"actions":[{"type":"join","rooms":["a"],"x":1}]}',
        "html": "<html>",
    }
    for name, body in replies.items():
        write("hook_reply", name, body)


def forward():
    import struct

    def frame(kind, header, body=b""):
        h = json.dumps(header, separators=(",", ":")).encode()
        return bytes([kind]) + struct.pack(">I", len(h)) + h + body

    base = {"id": 2**128 - 8, "to": "node02", "ts": 1700000000000, "from": "node01"}
    frames = {
        "request": frame(1, dict(base, method="POST",
                                 query="EIO=4&transport=polling&sid=AbCdEf123",
                                 remote="10.0.0.7:50123",
                                 headers=[["content-type", "text/plain"], ["content-length", "7"]]),
                         b'42["x"]'),
        "request-get-ipv6": frame(1, dict(base, method="GET", query="EIO=4&transport=polling",
                                          remote="[::1]:8080")),
        "response": frame(2, dict(base, status=200,
                                  headers=[["content-type", "text/plain; charset=UTF-8"]]),
                          b'42["chat","hi"]\x1e6'),
        "response-error": frame(2, dict(base, status=400), b'{"code":1,"message":"Session ID unknown"}'),
        "cancel": frame(3, base),
        "unknown-kind": frame(9, base),
    }
    for name, data in frames.items():
        write("forward_frame", name, data)


def questions():
    def frame(obj):
        return json.dumps(obj, separators=(",", ":")).encode()

    base = {"id": 2**128 - 9, "from": "node01", "ts": 1700000000000}
    frames = {
        "question-disconnects": frame({"question": dict(base, body={
            "disconnects": {"namespace": "/chat", "category": "heartbeat", "limit": 100}})}),
        "question-timeline": frame({"question": dict(base, body={
            "timeline": {"namespace": "/", "socket": "uzQdNPnX8YbQ2l7mAAAB"}})}),
        "answer": frame({"answer": dict(base, to="node02", node="eu-1", body={"disconnects": [{
            "at": 1700000000000, "namespace": "/", "socket_id": "uzQdNPnX8YbQ2l7mAAAB",
            "transport": "websocket", "reason": "ping timeout", "category": "heartbeat",
            "confidence": 1.0, "evidence": ["last heard 46.1 s ago"],
            "breadcrumbs": [{"at": 1700000000000, "step": "joined", "room": "a"}],
            "dropped_steps": 0}]})}),
        "answer-timeline-none": frame({"answer": dict(base, to="node02", node="eu-1",
                                                      body={"timeline": None})}),
        "bad-name": frame({"answer": dict(base, to="node 02", node="", body={})}),
        "unknown-field": frame({"question": dict(base, body={}, extra=1)}),
    }
    for name, data in frames.items():
        write("question_frame", name, data)


WS_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def ws_frame(payload, opcode=0x1, fin=True, rsv=0, key=WS_MASK):
    """A WebSocket frame (RFC 6455 §5.2), masked with `key` as a client masks them."""
    if isinstance(payload, str):
        payload = payload.encode()
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, (0x80 if key else 0) | n])
    elif n < 65536:
        head = bytes([first, (0x80 if key else 0) | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, (0x80 if key else 0) | 127]) + n.to_bytes(8, "big")
    if not key:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def relay_watch():
    """What a client sends on a relayed WebSocket, after 4 bytes that choose how the
    body cuts it into reads."""
    mask = WS_MASK
    whole, bytewise, mixed = bytes([63] * 4), bytes([0] * 4), bytes([1, 13, 0, 40])
    probe, upgrade = ws_frame("2probe"), ws_frame("5")
    seeds = {
        "probe-then-upgrade": whole + probe + upgrade,
        "probe-then-upgrade-bytewise": bytewise + probe + upgrade,
        "upgrade-then-events": mixed + probe + upgrade + ws_frame('42["a",1]'),
        "unmasked-upgrade": whole + ws_frame("5", key=None),
        "long-16-bit-then-upgrade": mixed + ws_frame("5" * 300) + upgrade,
        "binary-5": whole + ws_frame(b"5", opcode=0x2) + upgrade,
        "fragmented-5": whole + ws_frame("5", fin=False) + ws_frame("", opcode=0x0) + upgrade,
        "compressed-5": whole + ws_frame("5", rsv=0x40) + upgrade,
        "ping-5-then-upgrade": mixed + ws_frame("5", opcode=0x9) + upgrade,
        "reserved-opcode": whole + ws_frame("5", opcode=0x3) + upgrade,
        "huge-claimed-length": whole + bytes([0x81, 0xFF]) + (2**64 - 1).to_bytes(8, "big")
        + mask + upgrade,
        "empty-text-then-upgrade": bytewise + ws_frame("") + upgrade,
        "only-probe": mixed + probe,
    }
    for name, data in seeds.items():
        write("relay_watch", name, data)


def inbound_watch():
    """What a client sends on its WebSocket, after 4 bytes that choose how the body
    cuts it into reads: whole messages, messages in fragments with control frames
    between them, unfinished ones, and headers whose lengths lie."""
    whole, bytewise, mixed = bytes([63] * 4), bytes([0] * 4), bytes([1, 13, 0, 40])
    event = ws_frame('42["a",1]')
    seeds = {
        "whole-messages": whole + ws_frame("40") + event + ws_frame(b"\x01\x02", opcode=0x2),
        "whole-messages-bytewise": bytewise + ws_frame("40") + event,
        "fragments-with-pongs": mixed + ws_frame('42["big","', fin=False) + ws_frame("", opcode=0xA)
        + ws_frame("x" * 300, opcode=0x0, fin=False) + ws_frame("3", opcode=0x9)
        + ws_frame('"]', opcode=0x0) + event,
        "unfinished-fragment": mixed + event + ws_frame("x" * 200, fin=False) + ws_frame("2", opcode=0xA),
        "partial-frame": whole + ws_frame("x" * 70000)[:1000],
        "empty-final-frames": bytewise + ws_frame("") + ws_frame("", fin=False) + ws_frame("", opcode=0x0),
        "continuation-first": mixed + ws_frame("x", opcode=0x0) + event,
        "text-inside-message": mixed + ws_frame("a", fin=False) + ws_frame("b") + event,
        "unmasked": whole + ws_frame("40", key=None) + ws_frame("x", fin=False, key=None),
        "reserved-opcode": whole + event + ws_frame("5", opcode=0x3) + event,
        "huge-claimed-length": whole + bytes([0x81, 0xFF]) + (2**64 - 1).to_bytes(8, "big")
        + WS_MASK + b"x" * 50,
        "close-between": mixed + ws_frame("a", fin=False) + ws_frame(b"\x03\xe8", opcode=0x8),
    }
    for name, data in seeds.items():
        write("inbound_watch", name, data)


def reframe():
    """What a client sends on its WebSocket, after one byte choosing the piece length
    ((b % 32 + 1) × 4 bytes: 4 to 128) and 4 choosing the reads and the room each
    read offers; the body's frame bound is 1,024 bytes. Frames longer than a piece
    (cut), exactly a piece, longer than the bound (passed whole), and the frames
    tungstenite refuses whole (unmasked, control, reserved opcode or bits)."""
    whole, bytewise, mixed = bytes([63] * 4), bytes([0] * 4), bytes([1, 13, 0, 40])
    small, odd = bytes([3]), bytes([30])  # pieces of 16 and 124 bytes
    event = ws_frame('42["a",1]')
    seeds = {
        "long-text-multibyte": small + mixed + ws_frame("é€" * 60) + event,
        "long-text-multibyte-bytewise": small + bytewise + ws_frame("é€" * 20),
        "long-binary": odd + whole + ws_frame(bytes(range(256)) * 3, opcode=0x2),
        "exactly-a-piece": small + whole + ws_frame("x" * 16) + ws_frame("y" * 17),
        "fragments-with-pings": small + mixed + ws_frame("a" * 40, fin=False)
        + ws_frame("p", opcode=0x9) + ws_frame("b" * 50, opcode=0x0, fin=False)
        + ws_frame("c" * 33, opcode=0x0) + event,
        "over-the-bound": small + whole + ws_frame("x" * 1100) + event,
        "unmasked-long": small + whole + ws_frame("x" * 200, key=None),
        "long-ping": small + whole + ws_frame("x" * 200, opcode=0x9),
        "reserved-opcode-long": small + whole + ws_frame("x" * 200, opcode=0x3),
        "compressed-long": small + mixed + ws_frame("x" * 200, rsv=0x40),
        "bad-utf8-in-a-later-piece": small + whole + ws_frame(b"a" * 40 + b"\xff" + b"b" * 40),
        "utf8-cut-at-the-end": small + mixed + ws_frame(b"a" * 15 + "é".encode())
        + ws_frame("é" * 30),
        "partial-long-frame": small + mixed + ws_frame("x" * 500)[:300],
        "continuation-first-long": small + whole + ws_frame("x" * 100, opcode=0x0) + event,
        "close-after-long": odd + whole + ws_frame("x" * 300) + ws_frame(b"\x03\xe8", opcode=0x8)
        + event,
        "sixty-four-bit-length": small + whole + bytes([0x82, 0xFF]) + (100).to_bytes(8, "big")
        + WS_MASK + b"z" * 100,
    }
    for name, data in seeds.items():
        write("reframe", name, data)


def main():
    if CORPUS.exists():
        for seed in CORPUS.rglob("*"):
            if seed.is_file() and not seed.name.startswith("regression-"):
                seed.unlink()
    fixtures = json.loads(FIXTURES.read_text())
    engineio()
    socketio()
    cluster(fixtures)
    jwt()
    hooks()
    forward()
    questions()
    relay_watch()
    inbound_watch()
    reframe()
    files = list(CORPUS.rglob("*"))
    size = sum(f.stat().st_size for f in files if f.is_file())
    print(f"{sum(1 for f in files if f.is_file())} seeds, {size} bytes")


if __name__ == "__main__":
    main()
