/* Unit tests for net/ws.c and net/sha1.c: SHA-1 against FIPS 180 examples, the RFC 6455 accept
 * key, every rejected upgrade with its HTTP status, subprotocol selection, the frame decoder
 * (masking, fragmentation, MQTT packets across and inside frames, control frames, the close
 * handshake, every protocol error with its close code, length forms and the size limit) fed
 * whole, byte by byte and at every split point, and the server frame encoders. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "net/sha1.h"
#include "net/ws.h"
#include "tests/unit/check.h"

/* ---- Helpers ---- */

static const uint8_t key1[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a client frame: b0 (FIN, RSV, opcode) as given, payload masked with `mask` (NULL: no
 * mask bit). form: 0 minimal length encoding, 16 or 64 forces that form. */
static void cframe(struct rq_buf *b, uint8_t b0, const void *payload, size_t len,
                   const uint8_t *mask, int form)
{
    uint8_t h[14];
    size_t hl = 2;
    uint8_t mbit = mask ? 0x80 : 0;
    h[0] = b0;
    if (form == 0 && len < 126) {
        h[1] = (uint8_t)(mbit | len);
    } else if (form != 64 && len <= 0xffff) {
        h[1] = mbit | 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    if (mask) {
        memcpy(h + hl, mask, 4);
        hl += 4;
    }
    CHECK_EQ(rq_buf_append(b, h, hl), 0);
    CHECK_EQ(rq_buf_reserve(b, len), 0);
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        b->data[b->len + i] = mask ? (uint8_t)(p[i] ^ mask[i & 3]) : p[i];
    b->len += len;
}

/* A masked binary frame with FIN. */
static void bin(struct rq_buf *b, const void *payload, size_t len)
{
    cframe(b, 0x82, payload, len, key1, 0);
}

static bool buf_is(const struct rq_buf *b, const void *want, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->data, want, n) == 0);
}

static bool has(const struct rq_buf *b, const char *s)
{
    return b->len && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/* Result of feeding one decoder. */
struct fed {
    long rc;
    const char *why;
    struct rq_buf app, wire;
    struct rq_ws_rx rx;
};

static void fed_free(struct fed *f)
{
    rq_buf_free(&f->app);
    rq_buf_free(&f->wire);
}

/* Feeds p[0..len) in pieces of `step` bytes (0: all at once) to a fresh decoder; stops at the
 * first negative result. */
static struct fed feed(const uint8_t *p, size_t len, size_t step, uint64_t max)
{
    struct fed f = {0};
    rq_ws_rx_init(&f.rx, max);
    size_t off = 0;
    do {
        size_t n = step && len - off > step ? step : len - off;
        f.rc = rq_ws_rx_feed(&f.rx, p + off, n, &f.app, &f.wire, &f.why);
        if (f.rc < 0)
            return f;
        CHECK_EQ(f.rc, (long)n); /* the decoder always takes everything */
        off += n;
    } while (off < len);
    f.rc = (long)len;
    return f;
}

/* Feeds whole, byte by byte, and split at every point: all must agree on rc, app and wire. */
static struct fed feed_all_ways(const struct rq_buf *in, uint64_t max)
{
    struct fed whole = feed(in->data, in->len, 0, max);
    struct fed bytes = feed(in->data, in->len, 1, max);
    CHECK_EQ(bytes.rc, whole.rc);
    CHECK(buf_is(&bytes.app, whole.app.data, whole.app.len));
    CHECK(buf_is(&bytes.wire, whole.wire.data, whole.wire.len));
    fed_free(&bytes);
    for (size_t cut = 1; cut < in->len && in->len < 4096; cut++) {
        struct fed two = {0};
        rq_ws_rx_init(&two.rx, max);
        two.rc = rq_ws_rx_feed(&two.rx, in->data, cut, &two.app, &two.wire, &two.why);
        if (two.rc >= 0)
            two.rc = rq_ws_rx_feed(&two.rx, in->data + cut, in->len - cut, &two.app, &two.wire,
                                   &two.why);
        if (two.rc >= 0)
            two.rc = (long)in->len;
        CHECK_EQ(two.rc, whole.rc);
        CHECK(buf_is(&two.app, whole.app.data, whole.app.len));
        CHECK(buf_is(&two.wire, whole.wire.data, whole.wire.len));
        fed_free(&two);
    }
    return whole;
}

/* The close code of the single close frame expected in wire (unmasked server frame). */
static int wire_close_code(const struct rq_buf *w)
{
    if (w->len < 2 || w->data[0] != 0x88 || (size_t)(w->data[1] + 2) != w->len)
        return -1;
    if (w->data[1] == 0)
        return 0;
    return w->data[2] << 8 | w->data[3];
}

/* Feeds a stream that must fail with `code`, and checks the close frame sent for it. */
static void expect_error(const struct rq_buf *in, uint64_t max, int code)
{
    struct fed f = feed_all_ways(in, max);
    CHECK_EQ(f.rc, -code);
    CHECK(f.why != NULL);
    CHECK_EQ(wire_close_code(&f.wire), code);
    CHECK(f.rx.close_sent);
    /* afterwards the decoder stays closed and sends nothing more */
    size_t wl = f.wire.len;
    CHECK_EQ(rq_ws_rx_feed(&f.rx, in->data, in->len, &f.app, &f.wire, &f.why), RQ_WS_CLOSED);
    CHECK_EQ(f.wire.len, wl);
    fed_free(&f);
}

/* ---- SHA-1 and the accept key ---- */

static void hex(const uint8_t *d, char *out)
{
    for (int i = 0; i < RQ_SHA1_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha1(void)
{
    static const struct {
        const char *msg, *digest;
    } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopq"
         "rlmnopqrsmnopqrstnopqrstu",
         "a49b2446a02c645bf419f995b67091253a04a259"},
    };
    uint8_t d[RQ_SHA1_LEN];
    char h[41];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rq_sha1(v[i].msg, strlen(v[i].msg), d);
        hex(d, h);
        CHECK_STR(h, v[i].digest);
    }
    /* one million 'a', in uneven pieces through the incremental interface */
    static uint8_t a[1000];
    memset(a, 'a', sizeof a);
    struct rq_sha1 c;
    rq_sha1_init(&c);
    size_t done = 0, step = 1;
    while (done < 1000000) {
        size_t n = step < 1000000 - done ? step : 1000000 - done;
        n = n > sizeof a ? sizeof a : n;
        rq_sha1_update(&c, a, n);
        done += n;
        step = step * 7 % 997 + 1;
    }
    rq_sha1_final(&c, d);
    hex(d, h);
    CHECK_STR(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    /* lengths around the padding boundary (55, 56, 63, 64 bytes) against one-shot updates */
    for (size_t n = 50; n < 70; n++) {
        uint8_t d2[RQ_SHA1_LEN];
        rq_sha1(a, n, d);
        rq_sha1_init(&c);
        for (size_t i = 0; i < n; i++)
            rq_sha1_update(&c, a + i, 1);
        rq_sha1_final(&c, d2);
        CHECK(memcmp(d, d2, sizeof d) == 0);
    }
}

static void test_accept_key(void)
{
    char out[29];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 section 1.3 */
    rq_ws_accept_key((const uint8_t *)k, strlen(k), out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ---- Opening handshake ---- */

#define REQ_LINE "GET /mqtt HTTP/1.1\r\n"
#define H_HOST "Host: broker.example:8080\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define H_PROTO "Sec-WebSocket-Protocol: mqtt\r\n"
#define GOOD REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n"

static const char accept_reply[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                   "Sec-WebSocket-Protocol: mqtt\r\n"
                                   "\r\n";

static int hs(const char *req, struct rq_buf *reply, size_t *consumed, const char **why)
{
    rq_buf_reset(reply);
    *why = NULL;
    return rq_ws_handshake((const uint8_t *)req, strlen(req), reply, consumed, why);
}

/* The request must be accepted with exactly the RFC example answer. */
static void expect_accept(const char *req)
{
    struct rq_buf reply = {0};
    size_t consumed = 0;
    const char *why;
    int rc = hs(req, &reply, &consumed, &why);
    CHECK_EQ(rc, 0);
    if (rc)
        fprintf(stderr, "  rejected (%s): %s\n", why, req);
    CHECK_EQ(consumed, strlen(req));
    CHECK(buf_is(&reply, accept_reply, sizeof accept_reply - 1));
    rq_buf_free(&reply);
}

/* The request must be refused with `status`; the answer is a whole HTTP response. */
static void expect_status(const char *req, int status, size_t want_consumed)
{
    struct rq_buf reply = {0};
    size_t consumed = 99;
    const char *why;
    int rc = hs(req, &reply, &consumed, &why);
    CHECK_EQ(rc, -status);
    if (rc != -status)
        fprintf(stderr, "  got %d for: %s\n", rc, req);
    CHECK(why != NULL);
    CHECK_EQ(consumed, want_consumed);
    char line[64];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    CHECK(reply.len > strlen(line) && memcmp(reply.data, line, strlen(line)) == 0);
    CHECK(has(&reply, "\r\nConnection: close\r\n"));
    if (status == 426) {
        CHECK(has(&reply, "\r\nSec-WebSocket-Version: 13\r\n"));
        CHECK(has(&reply, "\r\nUpgrade: websocket\r\n"));
    }
    if (status == 405)
        CHECK(has(&reply, "\r\nAllow: GET\r\n"));
    /* Content-Length matches the body after the empty line */
    const uint8_t *end = memmem(reply.data, reply.len, "\r\n\r\n", 4);
    CHECK(end != NULL);
    size_t clen = 0;
    const uint8_t *cl = memmem(reply.data, reply.len, "Content-Length: ", 16);
    CHECK(cl != NULL);
    if (end && cl) {
        clen = strtoul((const char *)cl + 16, NULL, 10);
        CHECK_EQ(clen, reply.len - (size_t)(end + 4 - reply.data));
    }
    rq_buf_free(&reply);
}

static void expect_status_head(const char *req, int status)
{
    expect_status(req, status, strlen(req));
}

static void test_handshake_good(void)
{
    expect_accept(GOOD);
    /* names in any case, values with odd spacing and case, lists, other headers skipped */
    expect_accept("GET / HTTP/1.1\r\n"
                  "HOST:x\r\n"
                  "upgrade:  WebSocket \r\n"
                  "CONNECTION: keep-alive, Upgrade\r\n"
                  "Origin: http://example.com\r\n"
                  "sec-websocket-key:\tdGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-Websocket-Version: 13\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                  "SEC-WEBSOCKET-PROTOCOL: foo,, MQTT ,bar\r\n"
                  "\r\n");
    /* any request target; bare LF line endings (RFC 9112 2.2) */
    expect_accept("GET /some/path?x=1&y=%20 HTTP/1.1\n"
                  "Host: a\nUpgrade: websocket\nConnection: upgrade\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n"
                  "Sec-WebSocket-Protocol: mqtt\n\n");
    /* Upgrade and Connection as lists; mqtt in a second Sec-WebSocket-Protocol header */
    expect_accept(REQ_LINE H_HOST "Upgrade: foo/2, websocket\r\n"
                                  "Connection: Upgrade, keep-alive\r\n" H_KEY H_VER
                                  "Sec-WebSocket-Protocol: mqttv3.1\r\n"
                                  "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
    expect_accept(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Protocol: Mqtt\r\n\r\n");

    /* bytes after the head (a first frame) are not consumed; reply is appended to */
    struct rq_buf reply = {0};
    CHECK_EQ(rq_buf_append(&reply, "X", 1), 0);
    char req[512];
    snprintf(req, sizeof req, "%s\x82\x80....", GOOD);
    size_t consumed = 0;
    const char *why = NULL;
    CHECK_EQ(rq_ws_handshake((const uint8_t *)req, strlen(req), &reply, &consumed, &why), 0);
    CHECK_EQ(consumed, strlen(GOOD));
    CHECK_EQ(reply.len, sizeof accept_reply);
    CHECK(reply.data[0] == 'X' && memcmp(reply.data + 1, accept_reply, reply.len - 1) == 0);

    /* every prefix of the head is incomplete and leaves reply alone */
    size_t glen = strlen(GOOD);
    for (size_t n = 0; n < glen; n++) {
        rq_buf_reset(&reply);
        CHECK_EQ(rq_ws_handshake((const uint8_t *)GOOD, n, &reply, &consumed, &why),
                 RQ_WS_INCOMPLETE);
        CHECK_EQ(reply.len, 0);
    }
    rq_buf_free(&reply);
}

static void test_handshake_subprotocol(void)
{
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400);
    expect_status_head(
        REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n", 400);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER
                       "Sec-WebSocket-Protocol: mqtt5, xmqtt, mqt\r\n\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Protocol:\r\n\r\n",
                       400);
}

static void test_handshake_bad(void)
{
    /* request line */
    expect_status_head("POST /mqtt HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       405);
    expect_status_head("get /mqtt HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       405);
    expect_status_head("GET /mqtt HTTP/1.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       505);
    expect_status_head("GET /mqtt HTTP/2.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       505);
    expect_status_head("GET /mqtt HTTP/1.1 x\r\n" H_HOST "\r\n", 400);
    expect_status_head("GET /mqtt\r\n" H_HOST "\r\n", 400);
    expect_status_head("GET  /mqtt HTTP/1.1\r\n" H_HOST "\r\n", 400);
    expect_status_head("GET /m\x01qtt HTTP/1.1\r\n" H_HOST "\r\n", 400);
    expect_status_head("GET /mqtt http/1.1\r\n" H_HOST "\r\n", 400);
    expect_status_head("\r\n", 400);
    expect_status_head("\n", 400);
    /* header syntax */
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO " continued\r\n\r\n", 400);
    expect_status_head(REQ_LINE H_HOST "\tfolded: x\r\n" H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST "Upgrade : websocket\r\n" H_CONN H_KEY H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST "no colon here\r\n" H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST ": empty name\r\n" H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST "X-A: a\x01b\r\n" H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST "X-A: a\rb\r\n" H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n",
                       400);
    /* Host */
    expect_status_head(REQ_LINE H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n", 400);
    expect_status_head(REQ_LINE H_HOST H_HOST H_UPG H_CONN H_KEY H_VER H_PROTO "\r\n", 400);
    /* Upgrade and Connection */
    expect_status_head(REQ_LINE H_HOST H_CONN H_KEY H_VER H_PROTO "\r\n", 426);
    expect_status_head(REQ_LINE H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VER H_PROTO "\r\n", 426);
    expect_status_head(REQ_LINE H_HOST "Upgrade: websockets\r\n" H_CONN H_KEY H_VER H_PROTO "\r\n",
                       426);
    expect_status_head(REQ_LINE H_HOST H_UPG H_KEY H_VER H_PROTO "\r\n", 400);
    expect_status_head(
        REQ_LINE H_HOST H_UPG "Connection: keep-alive\r\n" H_KEY H_VER H_PROTO "\r\n", 400);
    expect_status_head(REQ_LINE H_HOST H_UPG "Connection: upgraded\r\n" H_KEY H_VER H_PROTO "\r\n",
                       400);
    /* Sec-WebSocket-Version */
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_PROTO "\r\n", 426);
    expect_status_head(
        REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n" H_PROTO "\r\n", 426);
    expect_status_head(
        REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 13, 8\r\n" H_PROTO "\r\n", 426);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER H_VER H_PROTO "\r\n", 426);
    /* Sec-WebSocket-Key */
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_VER H_PROTO "\r\n", 400);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_KEY H_VER H_PROTO "\r\n", 400);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n" H_VER H_PROTO "\r\n",
                       400); /* 10 bytes */
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" H_VER H_PROTO "\r\n",
                       400); /* no padding */
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=A\r\n" H_VER H_PROTO "\r\n",
                       400);
    expect_status_head(REQ_LINE H_HOST H_UPG H_CONN
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSBub25jZQ==\r\n" H_VER H_PROTO
                       "\r\n",
                       400); /* 22 bytes */

    /* head size: 8 KiB without an empty line is 431; just below stays incomplete */
    static char big[RQ_WS_MAX_HEAD + 64];
    size_t n = (size_t)snprintf(big, sizeof big, REQ_LINE H_HOST);
    for (; n < sizeof big - 1; n++)
        big[n] = n % 64 == 63 ? '\n' : 'a'; /* lines without a colon, and no empty line */
    big[n] = '\0';
    struct rq_buf reply = {0};
    size_t consumed = 7;
    const char *why = NULL;
    CHECK_EQ(rq_ws_handshake((const uint8_t *)big, RQ_WS_MAX_HEAD - 1, &reply, &consumed, &why),
             RQ_WS_INCOMPLETE);
    CHECK_EQ(reply.len, 0);
    rq_buf_free(&reply);
    big[RQ_WS_MAX_HEAD] = '\0';
    expect_status(big, 431, 0);
    big[RQ_WS_MAX_HEAD + 10] = '\0';
    expect_status(big, 431, 0);
    /* an empty line past the limit does not count */
    big[RQ_WS_MAX_HEAD + 2] = '\n';
    big[RQ_WS_MAX_HEAD + 3] = '\n';
    expect_status(big, 431, 0);
}

/* ---- Frames ---- */

static void test_single_frames(void)
{
    static const uint8_t ping_pkt[] = {0xC0, 0x00};
    struct rq_buf in = {0};
    bin(&in, ping_pkt, 2);
    struct fed f = feed_all_ways(&in, 1000);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK(buf_is(&f.app, ping_pkt, 2));
    CHECK_EQ(f.wire.len, 0);
    fed_free(&f);

    /* unmasking at every payload length and key, including zero-length frames */
    for (size_t len = 0; len < 40; len++) {
        uint8_t pl[40], key[4] = {(uint8_t)(len * 13), 0xff, 0x00, (uint8_t)(0xa5 ^ len)};
        for (size_t i = 0; i < len; i++)
            pl[i] = (uint8_t)(i * 31 + 7);
        rq_buf_reset(&in);
        cframe(&in, 0x82, pl, len, key, 0);
        cframe(&in, 0x82, pl, len, key, 0);
        f = feed(in.data, in.len, len % 5, 1000);
        CHECK_EQ(f.rc, (long)in.len);
        CHECK_EQ(f.app.len, 2 * len);
        CHECK(len == 0 ||
              (memcmp(f.app.data, pl, len) == 0 && memcmp(f.app.data + len, pl, len) == 0));
        fed_free(&f);
    }

    /* a lone zero-length frame at the end of the input is finished at once */
    rq_buf_reset(&in);
    cframe(&in, 0x82, NULL, 0, key1, 0);
    f = feed(in.data, in.len, 0, 10);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK_EQ(f.rx.hdr_fill, 0);
    CHECK_EQ(f.app.len, 0);
    fed_free(&f);

    /* empty input */
    f = feed((const uint8_t *)"", 0, 0, 10);
    CHECK_EQ(f.rc, 0);
    fed_free(&f);
    rq_buf_free(&in);
}

static void test_fragmentation(void)
{
    struct rq_buf in = {0};
    static const uint8_t k2[4] = {1, 2, 3, 4};
    cframe(&in, 0x02, "ab", 2, key1, 0);         /* binary, no FIN */
    cframe(&in, 0x00, "cde", 3, k2, 0);          /* continuation */
    cframe(&in, 0x89, "hi", 2, k2, 0);           /* ping in between */
    cframe(&in, 0x00, "", 0, key1, 0);           /* empty continuation */
    cframe(&in, 0x8A, "unsolicited", 11, k2, 0); /* pong: ignored */
    cframe(&in, 0x80, "fgh", 3, key1, 0);        /* last continuation */
    bin(&in, "ij", 2);                           /* next message */
    struct fed f = feed_all_ways(&in, 100);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK(buf_is(&f.app, "abcdefghij", 10));
    CHECK(buf_is(&f.wire, "\x8A\x02hi", 4));
    CHECK(!f.rx.in_message);
    fed_free(&f);
    rq_buf_free(&in);
}

/* MQTT packets are independent of frames: one packet over three frames, three packets in one
 * frame, and a packet split over two fragmented messages; decoded afterwards by core/codec. */
static void test_mqtt_stream(void)
{
    struct rq_buf mq = {0}, in = {0};
    struct rq_connect c = {.version = 4, .clean_start = true, .keepalive = 30};
    c.client_id = (struct rq_str){(const uint8_t *)"ws-client", 9};
    CHECK_EQ(rq_codec_encode_connect(&mq, &c), 0);
    static uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    struct rq_pubout po = {.qos = 1, .packet_id = 7};
    po.topic = (struct rq_str){(const uint8_t *)"a/b", 3};
    po.payload = (struct rq_str){payload, sizeof payload};
    CHECK_EQ(rq_codec_encode_publish(&mq, 4, &po), 0);
    CHECK_EQ(rq_codec_encode_simple(&mq, RQ_PINGREQ), 0);
    CHECK_EQ(rq_codec_encode_simple(&mq, RQ_PINGREQ), 0);
    CHECK_EQ(rq_codec_encode_publish(&mq, 4, &po), 0);

    /* frames cut at arbitrary places: 5 bytes, 200 (16-bit length), rest in pieces */
    size_t cuts[] = {5, 200, 1, 150, mq.len};
    size_t off = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] && off < mq.len; i++) {
        size_t n = cuts[i] < mq.len - off ? cuts[i] : mq.len - off;
        uint8_t b0 = i == 0 ? 0x02 : i == 2 ? 0x80 : i == 3 ? 0x02 : 0x00;
        if (off + n == mq.len)
            b0 |= 0x80;
        cframe(&in, b0, mq.data + off, n, i & 1 ? key1 : (const uint8_t *)"\x00\x11\x22\x33", 0);
        off += n;
    }
    struct fed f = feed_all_ways(&in, 1000);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK(buf_is(&f.app, mq.data, mq.len));
    /* decode the stream */
    int types[8], n = 0;
    size_t pos = 0;
    while (pos < f.app.len && n < 8) {
        size_t hl;
        const char *why;
        long t = rq_codec_frame(f.app.data + pos, f.app.len - pos, 1000, &hl, &why);
        CHECK(t > 0);
        if (t <= 0)
            break;
        struct rq_packet pkt;
        CHECK_EQ(rq_codec_decode(f.app.data + pos, (size_t)t, 4, &pkt, &why), 0);
        types[n++] = pkt.type;
        if (pkt.type == RQ_PUBLISH)
            CHECK(pkt.u.publish.payload.len == sizeof payload &&
                  memcmp(pkt.u.publish.payload.p, payload, sizeof payload) == 0);
        pos += (size_t)t;
    }
    CHECK_EQ(n, 5);
    CHECK(types[0] == RQ_CONNECT && types[1] == RQ_PUBLISH && types[2] == RQ_PINGREQ &&
          types[3] == RQ_PINGREQ && types[4] == RQ_PUBLISH);
    fed_free(&f);

    /* all of it in one frame */
    rq_buf_reset(&in);
    bin(&in, mq.data, mq.len);
    f = feed_all_ways(&in, 1000);
    CHECK(buf_is(&f.app, mq.data, mq.len));
    fed_free(&f);
    rq_buf_free(&in);
    rq_buf_free(&mq);
}

static void test_control(void)
{
    struct rq_buf in = {0};
    uint8_t big[126];
    memset(big, 'p', sizeof big);
    /* ping payloads of 0 and 125 bytes are echoed; the size limit does not apply to them */
    cframe(&in, 0x89, NULL, 0, key1, 0);
    cframe(&in, 0x89, big, 125, key1, 0);
    struct fed f = feed_all_ways(&in, 10);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK_EQ(f.wire.len, 2 + 2 + 125);
    CHECK(f.wire.len == 129 && memcmp(f.wire.data, "\x8A\x00\x8A\x7D", 4) == 0 &&
          memcmp(f.wire.data + 4, big, 125) == 0);
    CHECK_EQ(f.app.len, 0);
    fed_free(&f);

    /* control frames of 126 bytes or fragmented */
    rq_buf_reset(&in);
    cframe(&in, 0x89, big, 126, key1, 0);
    expect_error(&in, 1000, 1002);
    rq_buf_reset(&in);
    cframe(&in, 0x09, "x", 1, key1, 0);
    expect_error(&in, 1000, 1002);
    rq_buf_reset(&in);
    cframe(&in, 0x88, "\x03\xe8", 2, key1, 0);
    in.data[0] = 0x08; /* close without FIN */
    expect_error(&in, 1000, 1002);
    rq_buf_reset(&in);
    cframe(&in, 0x8A, big, 126, key1, 16); /* pong with a 16-bit length */
    expect_error(&in, 1000, 1002);
    rq_buf_free(&in);
}

static void test_close(void)
{
    struct rq_buf in = {0};
    /* data, then close 1000 "bye", then garbage that must be ignored */
    bin(&in, "\xC0\x00", 2);
    cframe(&in, 0x88,
           "\x03\xe8"
           "bye",
           5, key1, 0);
    CHECK_EQ(rq_buf_append(&in, "\xff\xff\xff", 3), 0);
    struct fed f = feed_all_ways(&in, 100);
    CHECK_EQ(f.rc, RQ_WS_CLOSED);
    CHECK_EQ(f.rx.peer_code, 1000);
    CHECK(buf_is(&f.app, "\xC0\x00", 2));
    CHECK(buf_is(&f.wire, "\x88\x02\x03\xe8", 4)); /* echo of the code, once */
    CHECK(f.rx.close_sent);
    CHECK_EQ(rq_ws_rx_feed(&f.rx, in.data, in.len, &f.app, &f.wire, &f.why), RQ_WS_CLOSED);
    CHECK_EQ(f.wire.len, 4);
    CHECK_EQ(rq_ws_rx_close(&f.rx, &f.wire, 1000, "again"), 0);
    CHECK_EQ(f.wire.len, 4);
    fed_free(&f);

    /* a close without a code is answered without one */
    rq_buf_reset(&in);
    cframe(&in, 0x88, NULL, 0, key1, 0);
    f = feed_all_ways(&in, 100);
    CHECK_EQ(f.rc, RQ_WS_CLOSED);
    CHECK_EQ(f.rx.peer_code, RQ_WS_CLOSE_NO_STATUS);
    CHECK(buf_is(&f.wire, "\x88\x00", 2));
    fed_free(&f);

    /* valid codes, including the IANA-registered 1012-1014 and private 4999, and a UTF-8
     * reason (U+0000 is allowed in WebSocket text) */
    static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                    1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint8_t body[16] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        memcpy(body + 2, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x00", 10);
        rq_buf_reset(&in);
        cframe(&in, 0x88, body, 12, key1, 0);
        f = feed(in.data, in.len, 0, 100);
        CHECK_EQ(f.rc, RQ_WS_CLOSED);
        CHECK_EQ(f.rx.peer_code, good[i]);
        CHECK_EQ(wire_close_code(&f.wire), good[i]);
        fed_free(&f);
    }

    /* server-initiated: our close goes first, the client's echo is not answered */
    struct rq_ws_rx rx;
    struct rq_buf app = {0}, wire = {0};
    const char *why = NULL;
    rq_ws_rx_init(&rx, 100);
    CHECK_EQ(rq_ws_rx_close(&rx, &wire, 1001, "shutting down"), 0);
    CHECK(buf_is(&wire, "\x88\x0f\x03\xe9shutting down", 17));
    rq_buf_reset(&in);
    bin(&in, "late", 4);                /* data still in flight from the client */
    cframe(&in, 0x89, "p", 1, key1, 0); /* no pong after our close */
    cframe(&in, 0x88, "\x03\xe9", 2, key1, 0);
    CHECK_EQ(rq_ws_rx_feed(&rx, in.data, in.len, &app, &wire, &why), RQ_WS_CLOSED);
    CHECK_EQ(wire.len, 17);
    CHECK(buf_is(&app, "late", 4));
    CHECK_EQ(rx.peer_code, 1001);
    rq_buf_free(&app);
    rq_buf_free(&wire);
    rq_buf_free(&in);
}

static void test_protocol_errors(void)
{
    struct rq_buf in = {0};
    /* unmasked client frame (RFC 6455 5.1) */
    cframe(&in, 0x82, "ab", 2, NULL, 0);
    expect_error(&in, 100, 1002);
    /* RSV1, RSV2, RSV3 without an extension */
    for (int bit = 0x10; bit <= 0x40; bit <<= 1) {
        rq_buf_reset(&in);
        cframe(&in, (uint8_t)(0x82 | bit), "ab", 2, key1, 0);
        expect_error(&in, 100, 1002);
    }
    /* text frames [MQTT-6.0.0-1], also as a continuation's start */
    rq_buf_reset(&in);
    cframe(&in, 0x81, "ab", 2, key1, 0);
    expect_error(&in, 100, 1003);
    rq_buf_reset(&in);
    cframe(&in, 0x01, "ab", 2, key1, 0);
    expect_error(&in, 100, 1003);
    /* reserved opcodes */
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof ops; i++) {
        rq_buf_reset(&in);
        cframe(&in, (uint8_t)(0x80 | ops[i]), "", 0, key1, 0);
        expect_error(&in, 100, 1002);
    }
    /* continuation without a message; new message inside a fragmented one */
    rq_buf_reset(&in);
    cframe(&in, 0x80, "ab", 2, key1, 0);
    expect_error(&in, 100, 1002);
    rq_buf_reset(&in);
    cframe(&in, 0x02, "ab", 2, key1, 0);
    cframe(&in, 0x82, "cd", 2, key1, 0);
    expect_error(&in, 100, 1002);
    /* 64-bit length with the top bit set (checked before the size limit) */
    rq_buf_reset(&in);
    CHECK_EQ(rq_buf_append(&in,
                           "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x05"
                           "abcd",
                           14),
             0);
    expect_error(&in, UINT64_MAX, 1002);
    /* close payloads */
    rq_buf_reset(&in);
    cframe(&in, 0x88, "\x03", 1, key1, 0);
    expect_error(&in, 100, 1002);
    static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t body[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        rq_buf_reset(&in);
        cframe(&in, 0x88, body, 2, key1, 0);
        expect_error(&in, 100, 1002);
    }
    static const char *bad_utf8[] = {"\x80",
                                     "\xc0\x80",
                                     "\xc3",
                                     "\xed\xa0\x80",
                                     "\xe0\x80\xaf",
                                     "\xf4\x90\x80\x80",
                                     "\xf5\x80\x80\x80",
                                     "ok\xff",
                                     "\xf0\x9f\x98"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        uint8_t body[16] = {0x03, 0xe8};
        size_t n = strlen(bad_utf8[i]);
        memcpy(body + 2, bad_utf8[i], n);
        rq_buf_reset(&in);
        cframe(&in, 0x88, body, 2 + n, key1, 0);
        expect_error(&in, 100, 1002);
    }
    /* the error close frame carries the reason */
    rq_buf_reset(&in);
    cframe(&in, 0x81, "x", 1, key1, 0);
    struct fed f = feed(in.data, in.len, 0, 100);
    CHECK(f.wire.len > 4 && (size_t)f.wire.data[1] == f.wire.len - 2 &&
          memcmp(f.wire.data + 4, f.why, f.wire.len - 4) == 0);
    fed_free(&f);
    /* data before the bad frame is delivered */
    rq_buf_reset(&in);
    bin(&in, "ok", 2);
    cframe(&in, 0x82, "no", 2, NULL, 0);
    f = feed(in.data, in.len, 0, 100);
    CHECK_EQ(f.rc, -1002);
    CHECK(buf_is(&f.app, "ok", 2));
    fed_free(&f);
    rq_buf_free(&in);
}

static void test_lengths(void)
{
    static uint8_t pl[70000];
    for (size_t i = 0; i < sizeof pl; i++)
        pl[i] = (uint8_t)(i * 7 + (i >> 8));
    static const size_t sizes[] = {125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct rq_buf in = {0};
        cframe(&in, 0x82, pl, sizes[i], key1, 0);
        size_t want_hdr = sizes[i] < 126 ? 6 : sizes[i] <= 0xffff ? 8 : 14;
        CHECK_EQ(in.len - sizes[i], want_hdr);
        for (size_t step = 0; step <= 4099; step += 4099) {
            struct fed f = feed(in.data, in.len, step, 70000);
            CHECK_EQ(f.rc, (long)in.len);
            CHECK(buf_is(&f.app, pl, sizes[i]));
            fed_free(&f);
        }
        rq_buf_free(&in);
    }
    /* non-minimal length encodings are accepted */
    struct rq_buf in = {0};
    cframe(&in, 0x82, "abc", 3, key1, 16);
    cframe(&in, 0x82, "def", 3, key1, 64);
    struct fed f = feed_all_ways(&in, 100);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK(buf_is(&f.app, "abcdef", 6));
    fed_free(&f);
    rq_buf_free(&in);
}

static void test_max_size(void)
{
    static uint8_t pl[1200];
    struct rq_buf in = {0};
    cframe(&in, 0x82, pl, 1000, key1, 0);
    struct fed f = feed(in.data, in.len, 0, 1000);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK_EQ(f.app.len, 1000);
    fed_free(&f);
    /* one byte over: refused when the header is complete, before any payload arrives */
    rq_buf_reset(&in);
    cframe(&in, 0x82, pl, 1001, key1, 0);
    f = feed(in.data, 8, 0, 1000);
    CHECK_EQ(f.rc, -1009);
    CHECK_EQ(wire_close_code(&f.wire), 1009);
    CHECK_EQ(f.app.len, 0);
    fed_free(&f);
    expect_error(&in, 1000, 1009);
    /* a 64-bit length far beyond anything */
    rq_buf_reset(&in);
    CHECK_EQ(rq_buf_append(&in,
                           "\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff"
                           "abcd",
                           14),
             0);
    expect_error(&in, 1u << 20, 1009);
    /* a fragmented message adds up */
    rq_buf_reset(&in);
    cframe(&in, 0x02, pl, 600, key1, 0);
    cframe(&in, 0x00, pl, 300, key1, 0);
    cframe(&in, 0x80, pl, 101, key1, 0);
    expect_error(&in, 1000, 1009);
    /* ... but the count restarts with each message */
    rq_buf_reset(&in);
    cframe(&in, 0x02, pl, 600, key1, 0);
    cframe(&in, 0x80, pl, 400, key1, 0);
    cframe(&in, 0x02, pl, 600, key1, 0);
    cframe(&in, 0x80, pl, 400, key1, 0);
    cframe(&in, 0x82, pl, 1000, key1, 0);
    f = feed(in.data, in.len, 0, 1000);
    CHECK_EQ(f.rc, (long)in.len);
    CHECK_EQ(f.app.len, 3000);
    fed_free(&f);
    rq_buf_free(&in);
}

/* ---- Encoders ---- */

static void test_encoders(void)
{
    static uint8_t pl[70000];
    static const struct {
        size_t len;
        const char *hdr;
        size_t hl;
    } v[] = {
        {0, "\x82\x00", 2},
        {125, "\x82\x7d", 2},
        {126, "\x82\x7e\x00\x7e", 4},
        {65535, "\x82\x7e\xff\xff", 4},
        {65536, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct rq_buf out = {0};
        CHECK_EQ(rq_buf_append(&out, "Z", 1), 0);
        CHECK_EQ(rq_ws_wrap(&out, pl, v[i].len), 0);
        CHECK_EQ(out.len, 1 + v[i].hl + v[i].len);
        CHECK(memcmp(out.data + 1, v[i].hdr, v[i].hl) == 0);
        uint8_t h[RQ_WS_MAX_HEADER];
        CHECK_EQ(rq_ws_frame_header(h, RQ_WS_OP_BINARY, v[i].len), v[i].hl);
        CHECK(memcmp(h, v[i].hdr, v[i].hl) == 0);
        rq_buf_free(&out);
    }
    uint8_t h[RQ_WS_MAX_HEADER];
    CHECK_EQ(rq_ws_frame_header(h, RQ_WS_OP_BINARY, 1ULL << 40), 10);
    CHECK(memcmp(h, "\x82\x7f\x00\x00\x01\x00\x00\x00\x00\x00", 10) == 0);

    struct rq_buf out = {0};
    CHECK_EQ(rq_ws_close_frame(&out, 0, "ignored"), 0);
    CHECK(buf_is(&out, "\x88\x00", 2));
    rq_buf_reset(&out);
    CHECK_EQ(rq_ws_close_frame(&out, 1002, NULL), 0);
    CHECK(buf_is(&out, "\x88\x02\x03\xea", 4));
    /* long reasons are cut to 123 bytes, before a character that would straddle the limit */
    char reason[200];
    memset(reason, 'r', 122);
    strcpy(reason + 122, "\xc3\xa9 and more");
    rq_buf_reset(&out);
    CHECK_EQ(rq_ws_close_frame(&out, 1000, reason), 0);
    CHECK_EQ(out.len, 2 + 2 + 122);
    CHECK_EQ(out.data[1], 124);
    memset(reason, 'r', 150);
    reason[150] = '\0';
    rq_buf_reset(&out);
    CHECK_EQ(rq_ws_close_frame(&out, 1000, reason), 0);
    CHECK_EQ(out.len, 2 + 125);
    CHECK_EQ(out.data[1], 125);

    /* round trip: what the server wraps, masked by a client, decodes to the same bytes */
    rq_buf_reset(&out);
    for (size_t i = 0; i < sizeof pl; i++)
        pl[i] = (uint8_t)(i ^ (i >> 9));
    CHECK_EQ(rq_ws_wrap(&out, pl, 300), 0);
    CHECK_EQ(rq_ws_wrap(&out, pl + 300, 69700), 0);
    struct rq_buf in = {0};
    size_t pos = 0;
    while (pos < out.len) { /* re-frame as masked client frames */
        size_t l7 = out.data[pos + 1] & 0x7f, hl = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
        uint64_t len = l7;
        if (l7 == 126)
            len = (uint64_t)out.data[pos + 2] << 8 | out.data[pos + 3];
        else if (l7 == 127)
            for (int i = 0; i < 8; i++)
                len = (i ? len << 8 : 0) | out.data[pos + 2 + i];
        cframe(&in, out.data[pos], out.data + pos + hl, (size_t)len, key1, 0);
        pos += hl + (size_t)len;
    }
    struct fed f = feed(in.data, in.len, 1000, 1 << 20);
    CHECK(buf_is(&f.app, pl, sizeof pl));
    fed_free(&f);
    rq_buf_free(&in);
    rq_buf_free(&out);
}

int main(void)
{
    test_sha1();
    test_accept_key();
    test_handshake_good();
    test_handshake_subprotocol();
    test_handshake_bad();
    test_single_frames();
    test_fragmentation();
    test_mqtt_stream();
    test_control();
    test_close();
    test_protocol_errors();
    test_lengths();
    test_max_size();
    test_encoders();
    return check_exit("test_ws");
}
