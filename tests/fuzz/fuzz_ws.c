/* libFuzzer harness for net/ws.c (handshake and frame decoder) and net/sha1.c.
 *
 * Input layout: byte 0 = mode (low 4 bits: size limit 2^(4+n); bit 4: a handshake request comes
 * first), bytes 1..4 = seed for the split points, the rest = the bytes a client sends.
 *
 * Checked: the handshake result depends only on the request head (any longer prefix gives the
 * same answer, any shorter one is incomplete) and its reply is a well-formed response; the
 * frame decoder gives the same result, MQTT bytes, wire output and state whether fed whole or
 * cut at random points; the wire output is a sequence of valid server frames with at most one
 * close, last; what was decoded survives rq_ws_wrap() and decoding again. Any violation aborts.
 *
 * The fuzz targets link rq_config and rq_core only (CMakeLists.txt), and rq_net brings liburing
 * and TLS, which this harness does not need: the two modules are compiled in directly. Their
 * symbols are then defined here, so an rq_net on the link line would not be pulled in twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/sha1.c"
#include "net/ws.c"

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static bool starts(const struct rq_buf *b, const char *s)
{
    size_t n = strlen(s);
    return b->len >= n && memcmp(b->data, s, n) == 0;
}

static void check_reply(int rc, const struct rq_buf *reply, const char *why)
{
    if (rc == RQ_WS_INCOMPLETE) {
        ENSURE(reply->len == 0);
        return;
    }
    ENSURE(memmem(reply->data, reply->len, "\r\n\r\n", 4) != NULL);
    if (rc == 0) {
        ENSURE(starts(reply, "HTTP/1.1 101 Switching Protocols\r\n"));
        ENSURE(memmem(reply->data, reply->len, "\r\nSec-WebSocket-Protocol: mqtt\r\n", 32));
        ENSURE(reply->len >= 4 && memcmp(reply->data + reply->len - 4, "\r\n\r\n", 4) == 0);
        return;
    }
    ENSURE(why != NULL);
    ENSURE(rc == -400 || rc == -405 || rc == -426 || rc == -431 || rc == -505);
    char line[32];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", -rc);
    ENSURE(starts(reply, line));
}

/* Runs the handshake on p[0..n); returns the number of bytes it took, or 0 to stop. */
static size_t handshake(const uint8_t *p, size_t n, uint32_t *seed)
{
    struct rq_buf reply = {0};
    size_t consumed = 0, c2 = 0;
    const char *why = NULL, *why2 = NULL;
    int rc = rq_ws_handshake(p, n, &reply, &consumed, &why);
    check_reply(rc, &reply, why);
    ENSURE(consumed <= n && consumed <= RQ_WS_MAX_HEAD);
    ENSURE(rc == RQ_WS_INCOMPLETE || rc == -431 || consumed > 0);
    if (rc != RQ_WS_INCOMPLETE && consumed > 0) {
        /* a shorter prefix is incomplete, a longer one answers the same */
        size_t k = next_rand(seed) % consumed;
        struct rq_buf r2 = {0};
        ENSURE(rq_ws_handshake(p, k, &r2, &c2, &why2) == RQ_WS_INCOMPLETE && r2.len == 0);
        k = consumed + next_rand(seed) % (n - consumed + 1);
        ENSURE(rq_ws_handshake(p, k, &r2, &c2, &why2) == rc && c2 == consumed);
        ENSURE(r2.len == reply.len && memcmp(r2.data, reply.data, r2.len) == 0);
        rq_buf_free(&r2);
    }
    rq_buf_free(&reply);
    return rc == 0 ? consumed : 0;
}

struct run {
    long rc;
    struct rq_ws_rx rx;
    struct rq_buf app, wire;
};

/* Feeds p[0..n) cut at random points (seed != 0) or whole. */
static void run_feed(struct run *r, const uint8_t *p, size_t n, uint64_t max, uint32_t seed)
{
    const char *why = NULL;
    memset(r, 0, sizeof *r);
    rq_ws_rx_init(&r->rx, max);
    size_t off = 0;
    do {
        size_t k = n - off;
        if (seed && k > 0)
            k = 1 + next_rand(&seed) % (next_rand(&seed) & 1 ? k : (k < 16 ? k : 16));
        why = NULL;
        r->rc = rq_ws_rx_feed(&r->rx, p + off, k, &r->app, &r->wire, &why);
        if (r->rc < 0) {
            ENSURE(r->rc == RQ_WS_CLOSED || why != NULL);
            break;
        }
        ENSURE(r->rc == (long)k);
        off += k;
    } while (off < n);
    if (r->rc >= 0)
        r->rc = (long)n;
    ENSURE(r->app.len <= n);
}

/* wire must hold unmasked final pong/close frames, at most one close, and nothing after it. */
static void check_wire(const struct rq_buf *w, bool closed)
{
    size_t pos = 0, closes = 0;
    while (pos < w->len) {
        ENSURE(closes == 0);
        ENSURE(w->len - pos >= 2);
        uint8_t b0 = w->data[pos], b1 = w->data[pos + 1];
        ENSURE(b0 == 0x8A || b0 == 0x88);
        ENSURE(b1 <= 125); /* control frames only, unmasked */
        ENSURE(w->len - pos >= 2u + b1);
        if (b0 == 0x88) {
            closes++;
            ENSURE(b1 == 0 || b1 >= 2);
        }
        pos += 2u + b1;
    }
    ENSURE(closes == (closed ? 1u : 0u));
}

static bool same_buf(const struct rq_buf *a, const struct rq_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* What the server wraps, masked by a client, decodes to the same bytes. */
static void roundtrip(const struct rq_buf *app, uint32_t seed)
{
    struct rq_buf out = {0}, in = {0}, app2 = {0}, wire = {0};
    size_t pos = 0;
    while (pos < app->len) {
        size_t k = 1 + next_rand(&seed) % (app->len - pos);
        ENSURE(rq_ws_wrap(&out, app->data + pos, k) == 0);
        pos += k;
    }
    /* server frames -> client frames: set the mask bit and insert a key (0 or seeded) */
    uint8_t key[4] = {0};
    pos = 0;
    while (pos < out.len) {
        size_t l7 = out.data[pos + 1], hl = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
        uint64_t len = l7;
        if (l7 == 126)
            len = (uint64_t)out.data[pos + 2] << 8 | out.data[pos + 3];
        else if (l7 == 127)
            for (size_t i = 0; i < 8; i++)
                len = (i ? len << 8 : 0) | out.data[pos + 2 + i];
        ENSURE(pos + hl + len <= out.len);
        ENSURE(rq_buf_append(&in, out.data + pos, hl) == 0);
        in.data[in.len - hl + 1] |= 0x80;
        uint32_t r = next_rand(&seed);
        memcpy(key, &r, 4);
        ENSURE(rq_buf_append(&in, key, 4) == 0);
        ENSURE(rq_buf_reserve(&in, (size_t)len) == 0);
        for (size_t i = 0; i < len; i++)
            in.data[in.len + i] = out.data[pos + hl + i] ^ key[i & 3];
        in.len += (size_t)len;
        pos += hl + (size_t)len;
    }
    struct rq_ws_rx rx;
    const char *why = NULL;
    rq_ws_rx_init(&rx, UINT64_MAX);
    ENSURE(rq_ws_rx_feed(&rx, in.data, in.len, &app2, &wire, &why) == (long)in.len);
    ENSURE(same_buf(app, &app2) && wire.len == 0);
    rq_buf_free(&out);
    rq_buf_free(&in);
    rq_buf_free(&app2);
    rq_buf_free(&wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t mode = data[0];
    uint32_t seed;
    memcpy(&seed, data + 1, 4);
    seed |= 1; /* xorshift needs a non-zero state */
    const uint8_t *p = data + 5;
    size_t n = size - 5;
    uint64_t max = 1ULL << (4 + (mode & 15));

    if (mode & 0x10) {
        size_t used = handshake(p, n, &seed);
        if (used == 0)
            return 0;
        p += used;
        n -= used;
    }

    struct run whole, cut;
    run_feed(&whole, p, n, max, 0);
    run_feed(&cut, p, n, max, seed);
    ENSURE(whole.rc == cut.rc);
    ENSURE(same_buf(&whole.app, &cut.app) && same_buf(&whole.wire, &cut.wire));
    ENSURE(whole.rx.state == cut.rx.state && whole.rx.close_sent == cut.rx.close_sent);
    ENSURE(whole.rx.peer_code == cut.rx.peer_code && whole.rx.in_message == cut.rx.in_message);
    ENSURE(whole.rx.remaining == cut.rx.remaining && whole.rx.message == cut.rx.message);
    ENSURE(whole.rx.hdr_fill == cut.rx.hdr_fill);
    ENSURE(whole.rx.message <= max);
    bool closed = whole.rc < 0;
    ENSURE(closed == whole.rx.close_sent);
    check_wire(&whole.wire, closed);
    if (whole.rc < 0 && whole.rc != RQ_WS_CLOSED)
        ENSURE(whole.rc == -1002 || whole.rc == -1003 || whole.rc == -1009);
    roundtrip(&whole.app, seed);

    /* sha1 incremental == one-shot on the raw input */
    uint8_t d1[RQ_SHA1_LEN], d2[RQ_SHA1_LEN];
    struct rq_sha1 c;
    rq_sha1(data, size, d1);
    rq_sha1_init(&c);
    size_t k = seed % (size + 1);
    rq_sha1_update(&c, data, k);
    rq_sha1_update(&c, data + k, size - k);
    rq_sha1_final(&c, d2);
    ENSURE(memcmp(d1, d2, sizeof d1) == 0);

    rq_buf_free(&whole.app);
    rq_buf_free(&whole.wire);
    rq_buf_free(&cut.app);
    rq_buf_free(&cut.wire);
    return 0;
}
