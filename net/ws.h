/* WebSocket (RFC 6455) server side for MQTT over WebSockets (MQTT 5.0 / 3.1.1 section 6):
 * the HTTP/1.1 opening handshake, a streaming frame decoder that turns client frames into the
 * MQTT byte stream, and the encoders for server frames.
 *
 * Pure: bytes in, bytes out (into caller-owned struct rq_buf), no I/O, no globals, no logging;
 * any thread may call it, one struct rq_ws_rx per connection. The connection layer owns the
 * socket (plain or TLS: this module sits above either), the buffers and the decision to close.
 *
 * Typical driving from a receive buffer:
 *   1. before the upgrade: rq_ws_handshake() on the bytes received so far; on RQ_WS_INCOMPLETE
 *      keep them and wait; on 0 send `reply` and go on with p[consumed..] as frame bytes; on a
 *      negative status send `reply` and close.
 *   2. after it: rq_ws_rx_feed() on every chunk received; it always consumes the whole chunk
 *      (partial frame headers and control payloads are kept inside struct rq_ws_rx), appends
 *      the unmasked MQTT bytes to app_out and pongs/close frames to wire_out.
 *   3. each flush of MQTT bytes toward the client goes out as one binary frame: rq_ws_wrap(), or
 *      rq_ws_frame_header() + the bytes themselves (iovec, no copy). */
#ifndef RQ_WS_H
#define RQ_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

/* rq_ws_handshake(): the request head is not complete yet. */
#define RQ_WS_INCOMPLETE RQ_INCOMPLETE
/* Longest request head (request line + headers + empty line) accepted; longer fails with 431. */
#define RQ_WS_MAX_HEAD 8192
/* rq_ws_rx_feed(): the peer sent a close frame (or the decoder is already closed). */
#define RQ_WS_CLOSED (-2)
/* Room for the longest server frame header (2 + 8 bytes; server frames carry no mask). */
#define RQ_WS_MAX_HEADER 10

/* Opcodes (RFC 6455 section 5.2). */
enum rq_ws_opcode {
    RQ_WS_OP_CONT = 0x0,
    RQ_WS_OP_TEXT = 0x1,
    RQ_WS_OP_BINARY = 0x2,
    RQ_WS_OP_CLOSE = 0x8,
    RQ_WS_OP_PING = 0x9,
    RQ_WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 section 7.4.1) this module produces or reports. */
enum rq_ws_close {
    RQ_WS_CLOSE_NORMAL = 1000,
    RQ_WS_CLOSE_GOING_AWAY = 1001,
    RQ_WS_CLOSE_PROTOCOL = 1002,
    RQ_WS_CLOSE_UNSUPPORTED = 1003, /* text frame [MQTT-6.0.0-1] */
    RQ_WS_CLOSE_NO_STATUS = 1005,   /* never sent: a close frame without a code */
    RQ_WS_CLOSE_POLICY = 1008,
    RQ_WS_CLOSE_TOO_BIG = 1009,
    RQ_WS_CLOSE_INTERNAL = 1011,
};

/* ---- Opening handshake ---- */

/* Parses the client's opening handshake at the start of p[0..len) and appends the answer to
 * `reply` (not reset first). Any request target (path and query) is accepted: a listener has
 * one endpoint. Origin and Sec-WebSocket-Extensions are ignored (no extension is ever agreed,
 * so RSV bits stay reserved).
 * Returns:
 *   RQ_WS_INCOMPLETE  no empty line yet within the first RQ_WS_MAX_HEAD bytes; reply untouched.
 *   0                 upgrade accepted: reply holds "101 Switching Protocols" with
 *                     Sec-WebSocket-Accept and "Sec-WebSocket-Protocol: mqtt" [MQTT-6.0.0-4];
 *                     *consumed = length of the request head. Bytes after it are frames.
 *   -status           a complete HTTP error response (Connection: close) is in reply, *why says
 *                     why; the caller sends it and closes. *consumed = head length, or 0 when
 *                     the head never ended. Statuses:
 *     -400  malformed request line or header, obs-fold, Host missing or repeated, Connection
 *           without the "upgrade" token, Sec-WebSocket-Key missing, repeated or not 16 bytes
 *           of base64, no "mqtt" in Sec-WebSocket-Protocol [MQTT-6.0.0-3]
 *     -405  method other than GET
 *     -426  no Upgrade: websocket, or Sec-WebSocket-Version missing or not 13 (the answer
 *           carries "Sec-WebSocket-Version: 13" and "Upgrade: websocket")
 *     -431  no end of the head within RQ_WS_MAX_HEAD bytes
 *     -500  out of memory (reply left as it was)
 *     -505  HTTP version other than 1.1 */
int rq_ws_handshake(const uint8_t *p, size_t len, struct rq_buf *reply, size_t *consumed,
                    const char **why);

/* Sec-WebSocket-Accept for a key (as sent, without surrounding whitespace): base64 of
 * SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"). Writes 28 characters and a NUL. */
void rq_ws_accept_key(const uint8_t *key, size_t key_len, char out[29]);

/* ---- Frame decoder (client -> server) ---- */

/* Per-connection decoder state. Plain data without pointers: it may be copied (e.g. when a
 * connection moves to another thread) and needs no free. Fields are private except the ones
 * marked "read". */
struct rq_ws_rx {
    uint64_t max_message; /* limit on one frame and on a fragmented message (payload bytes) */
    uint64_t remaining;   /* payload bytes still to come in the current frame */
    uint64_t message;     /* payload bytes so far of the current data message */
    uint8_t state;        /* enum in ws.c */
    uint8_t opcode;       /* current frame */
    bool fin;             /* current frame */
    bool in_message;      /* a fragmented binary message awaits continuation frames */
    bool close_sent;      /* read: a close frame has been appended to wire_out */
    uint8_t mask[4];
    uint8_t mask_off; /* payload offset mod 4 */
    uint8_t hdr_fill; /* header bytes gathered */
    uint8_t hdr[14];  /* 2 + 8 length + 4 mask at most */
    uint8_t ctl_fill; /* control payload bytes gathered */
    uint8_t ctl[125];
    uint16_t peer_code; /* read: after RQ_WS_CLOSED, the peer's code (1005 if none) */
};

/* max_message: the longest frame and the longest fragmented message accepted; longer ones close
 * with 1009. MQTT framing is independent of WebSocket framing, so pick the MQTT maximum packet
 * size plus slack for clients that batch several small packets into one frame. */
void rq_ws_rx_init(struct rq_ws_rx *rx, uint64_t max_message);

/* Feeds received bytes p[0..len) (not modified, not retained). Payload bytes of binary frames
 * (and their continuations) are unmasked while being copied to app_out, exactly once, however
 * the frames are split across calls; app_out is the MQTT byte stream, in which packets may span
 * frames and a frame may hold several packets. Pongs, close replies and close frames for errors
 * are appended to wire_out, always as whole frames, so wire_out may be the connection's send
 * buffer as long as everything else written there is whole frames too.
 * Returns:
 *   len               all bytes consumed (partial headers/control payloads are kept in rx;
 *                     the caller never keeps a tail).
 *   RQ_WS_CLOSED      a close frame arrived: a reply with the same code was appended to
 *                     wire_out unless one was sent already (rq_ws_rx_close); rx->peer_code has
 *                     the peer's code. app_out holds everything before the close frame; bytes
 *                     after it are ignored. Also returned by every later call.
 *   -code             protocol error: a close frame with that code (and *why as reason) was
 *                     appended to wire_out unless one was sent already; send wire_out, close
 *                     the connection. app_out may hold data of earlier frames. Later calls
 *                     return RQ_WS_CLOSED.
 *     -1002  unmasked frame, RSV bit set, unknown opcode, control frame > 125 bytes or
 *            fragmented, continuation without a message, new message inside a fragmented one,
 *            64-bit length with the top bit set, close payload of 1 byte, invalid close code
 *            or close reason not UTF-8
 *     -1003  text frame [MQTT-6.0.0-1]
 *     -1009  frame or fragmented message longer than max_message
 *     -1011  out of memory growing app_out or wire_out */
long rq_ws_rx_feed(struct rq_ws_rx *rx, const uint8_t *p, size_t len, struct rq_buf *app_out,
                   struct rq_buf *wire_out, const char **why);

/* Starts a server-initiated close (e.g. DISCONNECT, shutdown, MQTT protocol error): appends a
 * close frame to wire_out unless one was sent already, so that the client's echo is not
 * answered again. Returns 0 or -ENOMEM. */
int rq_ws_rx_close(struct rq_ws_rx *rx, struct rq_buf *wire_out, uint16_t code, const char *reason);

/* ---- Encoders (server -> client): never masked (RFC 6455 section 5.1) ---- */

/* Writes the header of a final, unmasked frame into hdr; returns its length (2, 4 or 10). */
size_t rq_ws_frame_header(uint8_t hdr[RQ_WS_MAX_HEADER], enum rq_ws_opcode op, uint64_t len);

/* Appends one final binary frame carrying p[0..len). Returns 0 or -ENOMEM (out unchanged). */
int rq_ws_wrap(struct rq_buf *out, const uint8_t *p, size_t len);

/* Appends a close frame. code 0 sends no status; otherwise the code and the reason (may be NULL,
 * cut to 123 bytes at a UTF-8 boundary). Returns 0 or -ENOMEM (out unchanged). */
int rq_ws_close_frame(struct rq_buf *out, uint16_t code, const char *reason);

#endif
