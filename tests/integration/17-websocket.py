#!/usr/bin/python3
"""17 MQTT over WebSockets (ports[].protocol: WebSockets), plain and over TLS: the upgrade (101
with subprotocol mqtt, HTTP errors for bad requests), paho (transport="websockets") QoS 0/1
both ways with TCP clients, MQTT packets split across frames and several packets in one frame,
ping/pong and the close handshake, unmasked and text frames, frames and messages over the size
limit, a stalled upgrade closed at the connect timeout. ringmq only."""

import functools
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402
import fixtures  # noqa: E402
import certs  # noqa: E402

ONLY = "WebSocket listeners are a ringmq feature here"
CONNECT_TIMEOUT = 2
MAX_PACKET = 4096  # spec.advanced.clients.maxPacketSizeBytes


class Pki:
    def __init__(self):
        f = certs.CertFactory()
        self.root = f.ca("/CN=ringmq WS Test Root", name="root")
        self.inter = f.ca("/CN=ringmq WS Test Intermediate", issuer=self.root, name="inter")
        self.srv = f.server(self.inter, name="srv")


pki = fixtures.once(Pki)


def fixture():
    p = pki()
    ports = {k: rq.free_port() for k in ("tcp", "ws", "wss")}
    y = """---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  advanced: {clients: {maxPacketSizeBytes: %(max)d}}
  diagnostics: {logs: {level: debug}}
  ringmq: {connectTimeoutSeconds: %(ct)d}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: listeners}
spec:
  ports:
  - {port: %(tcp)d, bindAddress: 127.0.0.1, protocol: Mqtt}
  - {port: %(ws)d, bindAddress: 127.0.0.1, protocol: WebSockets}
  - port: %(wss)d
    bindAddress: 127.0.0.1
    protocol: WebSockets
    tls: {mode: Manual, manual: {secretRef: server-cert}}
""" % dict(ports, max=MAX_PACKET, ct=CONNECT_TIMEOUT)
    y += certs.secret_yaml("server-cert", p.srv.chain_pem, p.srv.key_pem)
    return fixtures.start_listening(y, ports, timeout=2.0)


def tls_ctx():
    return rq.tls_context(pki().root.cert)


def ws(b, tls=False, **kw):
    return rq.WsRawClient(b.ports["wss" if tls else "ws"], tls=tls_ctx() if tls else None, **kw)


def ws_connected(b, tls=False, version=5, client_id=None, **kw):
    c = ws(b, tls)
    cid = client_id or rq.uniq("ws")
    ack = c.connect(version=version, client_id=cid, **kw)
    check_eq(ack.rc, 0, "CONNACK over WebSocket")
    c.client_id = cid
    return c


expect_log = functools.partial(fixtures.expect_log, timeout=3.0)


def expect_close_code(c, code, what):
    closed, got = c.expect_ws_close(3.0)
    check_eq(got, code, "%s: close frame code (control frames %r)" % (what, c.control))
    check(closed, "%s: TCP connection still open after close frame %s" % (what, got))


# ---------------------------------------------------------------------------------------------
# Upgrade.

@case(ringmq_only=ONLY)
def upgrade_101_with_mqtt_subprotocol(b):
    for tls in (False, True):
        c = ws(b, tls)
        h = c.upgrade.headers
        check_eq(h.get("sec-websocket-protocol"), "mqtt", "Sec-WebSocket-Protocol (tls=%s)" % tls)
        check_eq(h.get("upgrade", "").lower(), "websocket", "Upgrade header")
        check("upgrade" in h.get("connection", "").lower(), "Connection header %r"
              % h.get("connection"))
        for v in (5, 4):
            if v == 4:
                c = ws(b, tls)
            ack = c.connect(version=v, client_id=rq.uniq("ws"))
            check_eq(ack.rc, 0, "v%d CONNACK over WebSocket (tls=%s)" % (v, tls))
            c.ping(3)
            c.disconnect()


@case(ringmq_only=ONLY)
def upgrade_picks_mqtt_among_offered(b):
    c = ws(b, protocol="chat, mqtt")
    check_eq(c.upgrade.headers.get("sec-websocket-protocol"), "mqtt",
             "subprotocol chosen from 'chat, mqtt'")
    check_eq(c.connect(client_id=rq.uniq("ws")).rc, 0, "CONNACK")
    c.disconnect()


def bad_upgrade(b, request):
    s = socket.create_connection((rq.HOST, b.ports["ws"]), timeout=5)
    rq.on_cleanup(s.close)
    s.sendall(request)
    resp, rest = rq.read_http_response(s, 3.0)
    s.settimeout(3.0)
    try:
        more = rest or s.recv(4096)
    except socket.timeout:
        more = None
    except ConnectionResetError:
        more = b""
    s.close()
    return resp, more


@case(ringmq_only=ONLY)
def bad_upgrade_requests(b):
    cases = [
        ("missing Sec-WebSocket-Key", rq.ws_request(omit=("sec-websocket-key",))[0], 400),
        ("Sec-WebSocket-Version 12", rq.ws_request(version="12")[0], 426),
        ("subprotocol chat only", rq.ws_request(protocol="chat")[0], 400),
        ("no Sec-WebSocket-Protocol", rq.ws_request(protocol=None)[0], 400),
        ("POST", rq.ws_request(method="POST")[0], 405),
    ]
    for what, req, status in cases:
        resp, more = bad_upgrade(b, req)
        check_eq(resp.status, status, "%s: status (%r)" % (what, resp))
        check(more == b"", "%s: connection not closed after the error response (got %r)"
              % (what, more))
        if status == 426:
            check_eq(resp.headers.get("sec-websocket-version"), "13",
                     "426 response's Sec-WebSocket-Version")
    rq.check_serves(b.ports["tcp"], "after bad upgrades")


@case(ringmq_only=ONLY)
def stalled_upgrade_closed_at_connect_timeout(b):
    mark = b.log_mark()
    s = socket.create_connection((rq.HOST, b.ports["ws"]), timeout=5)
    rq.on_cleanup(s.close)
    t0 = time.monotonic()
    s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # head never ends
    s.settimeout(CONNECT_TIMEOUT + 4)
    try:
        data = s.recv(4096)
    except socket.timeout:
        raise AssertionError("half an upgrade request: still open %.1fs later"
                             % (time.monotonic() - t0))
    except ConnectionResetError:
        data = b""
    dt = time.monotonic() - t0
    s.close()
    check(data == b"" or data.startswith(b"HTTP/1.1 4"), "answer to a stalled upgrade: %r"
          % data[:100])
    check(CONNECT_TIMEOUT - 0.5 <= dt <= CONNECT_TIMEOUT + 1.5,
          "stalled upgrade closed after %.2fs, want about %ds" % (dt, CONNECT_TIMEOUT))
    expect_log(b, mark, r"\(transport handshake\)[^\n]*connect timeout", "stalled upgrade log")


# ---------------------------------------------------------------------------------------------
# paho over WebSockets, to and from TCP clients.

def paho_both_ways(b, tls):
    for v in (5, 4):
        for qos in (0, 1):
            t = rq.uniq("pws")
            p = rq.Paho(b.ports["wss" if tls else "ws"], version=v, transport="websockets",
                        tls=tls_ctx() if tls else None)
            p.subscribe(t + "/in", qos=qos)
            tcp = rq.connected(b.ports["tcp"])
            tcp.subscribe(t + "/out", qos=qos)
            tcp.publish(t + "/in", b"tcp->ws", qos=qos)
            m = p.recv(3)
            what = "v%d QoS %d tls=%s" % (v, qos, tls)
            check(m is not None, "%s: paho over WebSocket received nothing" % what)
            check_eq((m.topic, m.payload, m.qos), (t + "/in", b"tcp->ws", qos),
                     "%s: TCP -> WebSocket" % what)
            p.publish(t + "/out", b"ws->tcp", qos=qos)
            m = tcp.recv_publish(3)
            check_eq((m.topic, m.payload, m.qos), (t + "/out", b"ws->tcp", qos),
                     "%s: WebSocket -> TCP" % what)
            p.disconnect()
            tcp.disconnect()


@case(ringmq_only=ONLY)
def paho_websocket_plain(b):
    paho_both_ways(b, False)


@case(ringmq_only=ONLY)
def paho_websocket_tls(b):
    paho_both_ways(b, True)


@case(ringmq_only=ONLY)
def raw_websocket_tls_roundtrip(b):
    c = ws_connected(b, tls=True)
    tcp = rq.connected(b.ports["tcp"])
    t = rq.uniq("wss")
    c.subscribe(t, qos=1)
    tcp.publish(t, b"to-wss", qos=1)
    check_eq(c.recv_publish(3).payload, b"to-wss", "TCP -> WebSocket over TLS")
    tcp.subscribe(t + "/back", qos=1)
    c.publish(t + "/back", b"from-wss", qos=1)
    check_eq(tcp.recv_publish(3).payload, b"from-wss", "WebSocket over TLS -> TCP")
    c.disconnect()
    tcp.disconnect()


# ---------------------------------------------------------------------------------------------
# Framing.

@case(ringmq_only=ONLY)
def connect_split_across_frames(b):
    for tls in (False, True):
        conn = rq.enc_connect(5, client_id=rq.uniq("split"))
        for cut in (1, 7, len(conn) - 1):
            # Two binary messages, each complete (FIN).
            c = ws(b, tls)
            c.send_frame(rq.WS_BINARY, conn[:cut])
            time.sleep(0.05)
            c.send_frame(rq.WS_BINARY, conn[cut:])
            p = c.recv_packet(3)
            check(p is not None and p.type == rq.CONNACK and p.rc == 0,
                  "CONNECT in two messages cut at %d (tls=%s): got %r" % (cut, tls, p))
            c.disconnect()
            # One message in two fragments (binary without FIN, then continuation).
            c = ws(b, tls)
            c.send_frame(rq.WS_BINARY, conn[:cut], fin=False)
            time.sleep(0.05)
            c.send_frame(rq.WS_CONT, conn[cut:])
            p = c.recv_packet(3)
            check(p is not None and p.type == rq.CONNACK and p.rc == 0,
                  "CONNECT in two fragments cut at %d (tls=%s): got %r" % (cut, tls, p))
            c.disconnect()


@case(ringmq_only=ONLY)
def several_packets_in_one_frame(b):
    c = ws(b)
    t = rq.uniq("multi")
    c.send_frame(rq.WS_BINARY, rq.enc_connect(5, client_id=rq.uniq("multi")) +
                 rq.enc_subscribe(5, 1, [(t, 1)]))
    ack = c.wait_for(rq.CONNACK, 3)
    check_eq(ack.rc, 0, "CONNACK of CONNECT + SUBSCRIBE in one frame")
    check_eq(c.wait_for(rq.SUBACK, 3).codes, [1], "SUBACK of CONNECT + SUBSCRIBE in one frame")
    # Two PUBLISHes and a PINGREQ in one frame; the second PUBLISH split into the next frame.
    pub1 = rq.enc_publish(5, t, b"one", qos=1, pid=10)
    pub2 = rq.enc_publish(5, t, b"two", qos=1, pid=11)
    c.send_frame(rq.WS_BINARY, pub1 + rq.packet(rq.PINGREQ, 0, b"") + pub2[:4])
    c.send_frame(rq.WS_BINARY, pub2[4:])
    c.wait_for(rq.PUBACK, 3, pid=10)
    c.wait_for(rq.PUBACK, 3, pid=11)
    c.wait_for(rq.PINGRESP, 3)
    got = [p.payload for p in c.collect(2.0, count=2)]
    check_eq(got, [b"one", b"two"], "messages published from one frame")
    c.disconnect()


@case(ringmq_only=ONLY)
def ping_pong(b):
    c = ws_connected(b)
    c.send_frame(rq.WS_PING, b"are-you-there")
    c.expect_nothing(0.5, "MQTT packet after a WebSocket ping")
    check((rq.WS_PONG, b"are-you-there") in c.control, "no pong echoing the ping's payload: %r"
          % c.control)
    c.ping(3)  # MQTT still works
    c.disconnect()


@case(ringmq_only=ONLY)
def close_handshake(b):
    t = rq.uniq("wclose")
    w = rq.connected(b.ports["tcp"])
    w.subscribe(t, qos=1)
    c = ws_connected(b, will={"topic": t, "payload": b"ws-closed", "qos": 1})
    c.send_frame(rq.WS_CLOSE, struct.pack(">H", 1000) + b"bye")
    expect_close_code(c, 1000, "client close 1000")
    # A WebSocket close without MQTT DISCONNECT ends the network connection: the will goes out.
    check_eq(w.recv_publish(3).payload, b"ws-closed", "will after a WebSocket close")
    w.disconnect()


@case(ringmq_only=ONLY)
def unmasked_frame_fails_with_1002(b):
    mark = b.log_mark()
    c = ws_connected(b)
    c.send_frame(rq.WS_BINARY, rq.packet(rq.PINGREQ, 0, b""), mask=False)
    expect_close_code(c, 1002, "unmasked client frame")
    expect_log(b, mark, r"mask", "unmasked frame log line")
    rq.check_serves(b.ports["tcp"], "after an unmasked frame")


@case(ringmq_only=ONLY)
def text_frame_fails_with_1003(b):
    c = ws_connected(b)
    c.send_frame(rq.WS_TEXT, b"hello")
    expect_close_code(c, 1003, "text frame")


@case(ringmq_only=ONLY)
def protocol_errors_fail_with_1002(b):
    # RFC 6455 5.2, 5.4, 5.5, 7.4: each is a protocol error that fails the connection.
    cases = [
        ("ping payload of 126 bytes", [rq.ws_frame(rq.WS_PING, b"p" * 126)]),
        ("fragmented ping", [rq.ws_frame(rq.WS_PING, b"p", fin=False)]),
        ("continuation without a first fragment", [rq.ws_frame(rq.WS_CONT, b"\xc0\x00")]),
        ("new message inside a fragmented one",
         [rq.ws_frame(rq.WS_BINARY, b"\xc0", fin=False), rq.ws_frame(rq.WS_BINARY, b"\x00")]),
        ("RSV1 set without an extension", [rq.ws_frame(rq.WS_BINARY, b"\xc0\x00", rsv=4)]),
        ("reserved opcode 0x3", [rq.ws_frame(0x3, b"")]),
        ("close code 999", [rq.ws_frame(rq.WS_CLOSE, struct.pack(">H", 999))]),
    ]
    for what, frames in cases:
        c = ws_connected(b)
        c.send_bytes(b"".join(frames))
        expect_close_code(c, 1002, what)


@case(ringmq_only=ONLY)
def frame_over_max_packet_size_fails_with_1009(b):
    # Control: a PUBLISH near the limit in one frame goes through.
    c = ws_connected(b)
    t = rq.uniq("big")
    c.subscribe(t, qos=1)
    c.publish(t, b"x" * (MAX_PACKET - 200), qos=1)
    check_eq(len(c.recv_publish(3).payload), MAX_PACKET - 200, "PUBLISH near the limit")
    # A frame announcing far more than the limit: closed before the payload is sent.
    c.send_bytes(rq.ws_frame(rq.WS_BINARY, b"", length=100000)[:14])
    expect_close_code(c, 1009, "frame of 100000 bytes with maxPacketSizeBytes %d" % MAX_PACKET)
    # Just over: a whole frame of 2 x the limit.
    c = ws_connected(b)
    c.send_frame(rq.WS_BINARY, rq.enc_publish(5, t, b"y" * (2 * MAX_PACKET)))
    expect_close_code(c, 1009, "frame of %d bytes" % (2 * MAX_PACKET))
    # A fragmented message whose fragments are small but whose sum is over the limit. Each
    # fragment holds whole small PUBLISHes, so only the WebSocket layer sees a size problem.
    c = ws_connected(b)
    pubs = b"".join(rq.enc_publish(5, t + "/nobody", b"f" * 900) for _ in range(3))
    n = (MAX_PACKET + 8) // len(pubs) + 2  # fragments: their sum passes the limit
    try:
        for i in range(n):
            c.send_frame(rq.WS_BINARY if i == 0 else rq.WS_CONT, pubs, fin=i == n - 1)
    except OSError:
        pass  # closed while sending the last fragments: fine, the close frame is read below
    expect_close_code(c, 1009, "fragmented message of %d bytes in fragments of %d"
                      % (n * len(pubs), len(pubs)))


@case(ringmq_only=ONLY)
def packet_over_max_packet_size_across_frames(b):
    # The frames are small, the MQTT packet they carry is not: MQTT's own limit applies
    # (DISCONNECT 0x95 Packet too large, then the connection closes).
    c = ws_connected(b)
    big = rq.enc_publish(5, rq.uniq("big"), b"z" * (2 * MAX_PACKET))
    try:
        for i in range(0, len(big), 1000):
            c.send_frame(rq.WS_BINARY, big[i:i + 1000])
    except OSError:
        pass
    res = c.expect_closed(3.0)
    check(res, "connection still open after a %d-byte PUBLISH: %r" % (len(big), res))
    check_eq(res.rc, 0x95, "DISCONNECT reason for a packet over maxPacketSizeBytes (%r)" % res)


if __name__ == "__main__":
    if not certs.openssl_available():
        print("SKIP all: the openssl command line tool is missing (certificates are made with it)")
        sys.exit(rq.SKIP_RC)
    rq.run(fixture, timeout=180)
