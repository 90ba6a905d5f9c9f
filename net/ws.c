/* WebSocket server side (RFC 6455) for MQTT over WebSockets (MQTT 5.0 section 6): the opening
 * handshake (parse the request head, answer 101 or an HTTP error), the client frame decoder
 * and the server frame encoders.
 *
 * Pure: no I/O, no globals, no logging; output goes to caller-owned buffers. The decoder is a
 * byte-driven state machine, so any split of the input gives the same output (the fuzz harness
 * checks exactly that). Not here: sockets, TLS, timeouts for a handshake that never completes,
 * permessage-deflate or any other extension, the client side (no masking on output). */
#include "net/ws.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/sha1.h"

/* ---- Small helpers ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding (RFC 4648 section 4); out holds 4 * ceil(n / 3) + 1 bytes. */
static void b64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

static bool is_b64(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* ASCII case-insensitive comparison of p[0..n) with the NUL-terminated lower-case `s`. */
static bool ieq(const uint8_t *p, size_t n, const char *s)
{
    size_t i = 0;
    for (; i < n && s[i]; i++)
        if (lower(p[i]) != (uint8_t)s[i])
            return false;
    return i == n && s[i] == '\0';
}

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* True when the comma-separated list v[0..n) has an element equal to `token` (lower case),
 * ignoring case and optional whitespace; empty elements are allowed (RFC 9110 5.6.1). */
static bool list_has(const uint8_t *v, size_t n, const char *token)
{
    size_t i = 0;
    while (i <= n) {
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t a = start, b = i;
        while (a < b && is_ows(v[a]))
            a++;
        while (b > a && is_ows(v[b - 1]))
            b--;
        if (ieq(v + a, b - a, token))
            return true;
        i++; /* past the comma (or past the end) */
    }
    return false;
}

/* ---- Opening handshake ---- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void rq_ws_accept_key(const uint8_t *key, size_t key_len, char out[29])
{
    struct rq_sha1 c;
    uint8_t d[RQ_SHA1_LEN];
    rq_sha1_init(&c);
    rq_sha1_update(&c, key, key_len);
    rq_sha1_update(&c, ws_guid, sizeof ws_guid - 1);
    rq_sha1_final(&c, d);
    b64_encode(d, sizeof d, out);
}

/* What the header lines said. Version and key are kept as pointers into the request. */
struct head {
    unsigned n_host, n_version, n_key;
    bool upgrade_ws, conn_upgrade, mqtt;
    const uint8_t *version, *key;
    size_t version_len, key_len;
};

static void on_host(struct head *h, const uint8_t *v, size_t n)
{
    h->n_host++;
}

static void on_upgrade(struct head *h, const uint8_t *v, size_t n)
{
    h->upgrade_ws = h->upgrade_ws || list_has(v, n, "websocket");
}

static void on_connection(struct head *h, const uint8_t *v, size_t n)
{
    h->conn_upgrade = h->conn_upgrade || list_has(v, n, "upgrade");
}

static void on_version(struct head *h, const uint8_t *v, size_t n)
{
    h->n_version++;
    h->version = v;
    h->version_len = n;
}

static void on_key(struct head *h, const uint8_t *v, size_t n)
{
    h->n_key++;
    h->key = v;
    h->key_len = n;
}

/* The header may be repeated (RFC 6455 4.1 item 10); the lists are combined. */
static void on_protocol(struct head *h, const uint8_t *v, size_t n)
{
    h->mqtt = h->mqtt || list_has(v, n, "mqtt");
}

/* Headers that matter; everything else (Origin, Sec-WebSocket-Extensions, ...) is skipped. */
static const struct {
    const char *name; /* lower case */
    void (*fn)(struct head *h, const uint8_t *v, size_t n);
} header_table[] = {
    {"host", on_host},
    {"upgrade", on_upgrade},
    {"connection", on_connection},
    {"sec-websocket-version", on_version},
    {"sec-websocket-key", on_key},
    {"sec-websocket-protocol", on_protocol},
};

/* One header line (without its line ending): "name:" OWS value OWS. Returns 0 or -400. */
static int header_line(struct head *h, const uint8_t *l, size_t n, const char **why)
{
    if (is_ows(l[0])) {
        *why = "obs-fold (header line continuation) is not supported";
        return -400;
    }
    const uint8_t *colon = memchr(l, ':', n);
    if (!colon || colon == l) {
        *why = "malformed header line";
        return -400;
    }
    size_t nlen = (size_t)(colon - l);
    for (size_t i = 0; i < nlen; i++) {
        if (!is_tchar(l[i])) {
            *why = "malformed header name";
            return -400;
        }
    }
    size_t a = nlen + 1, b = n;
    while (a < b && is_ows(l[a]))
        a++;
    while (b > a && is_ows(l[b - 1]))
        b--;
    for (size_t i = a; i < b; i++) {
        if ((l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f) {
            *why = "control character in a header value";
            return -400;
        }
    }
    for (size_t i = 0; i < sizeof header_table / sizeof header_table[0]; i++) {
        if (ieq(l, nlen, header_table[i].name)) {
            header_table[i].fn(h, l + a, b - a);
            break;
        }
    }
    return 0;
}

/* "GET" SP request-target SP "HTTP/1.1". Any request target is accepted. */
static int request_line(const uint8_t *l, size_t n, const char **why)
{
    const uint8_t *sp1 = memchr(l, ' ', n);
    const uint8_t *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)) : NULL;
    if (!sp1 || !sp2 || sp1 == l || sp2 == sp1 + 1) {
        *why = "malformed request line";
        return -400;
    }
    for (const uint8_t *c = l; c < sp1; c++) {
        if (!is_tchar(*c)) {
            *why = "malformed method";
            return -400;
        }
    }
    for (const uint8_t *c = sp1 + 1; c < sp2; c++) {
        if (*c <= 0x20 || *c >= 0x7f) {
            *why = "malformed request target";
            return -400;
        }
    }
    const uint8_t *ver = sp2 + 1;
    size_t vlen = n - (size_t)(ver - l);
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        *why = "malformed HTTP version";
        return -400;
    }
    if (sp1 - l != 3 || memcmp(l, "GET", 3) != 0) {
        *why = "the opening handshake must be a GET";
        return -405;
    }
    if (memcmp(ver, "HTTP/1.1", 8) != 0) {
        *why = "the opening handshake needs HTTP/1.1";
        return -505;
    }
    return 0;
}

/* Length of the head through its first empty line ("\r\n" or a bare "\n", RFC 9112 2.2), or 0
 * when p[0..len) has none yet. */
static size_t head_end(const uint8_t *p, size_t len)
{
    size_t start = 0;
    for (;;) {
        const uint8_t *nl = memchr(p + start, '\n', len - start);
        if (!nl)
            return 0;
        size_t e = (size_t)(nl - p);
        if (e == start || (e == start + 1 && p[start] == '\r'))
            return e + 1;
        start = e + 1;
    }
}

/* Walks the lines of a complete head (which ends with an empty line). */
static int parse_head(const uint8_t *p, size_t hlen, struct head *h, const char **why)
{
    size_t pos = 0;
    bool first = true;
    for (;;) {
        const uint8_t *nl = memchr(p + pos, '\n', hlen - pos); /* found: the head ends so */
        size_t n = (size_t)(nl - (p + pos));
        if (n > 0 && p[pos + n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        int rc = first ? request_line(p + pos, n, why) : header_line(h, p + pos, n, why);
        if (rc)
            return rc;
        first = false;
        pos = (size_t)(nl - p) + 1;
    }
    if (first) {
        *why = "empty request line";
        return -400;
    }
    return 0;
}

/* The checks of RFC 6455 section 4.2.1 and MQTT section 6, in the order a client most likely
 * needs to hear about them. */
static int check_head(const struct head *h, const char **why)
{
    static const struct {
        int status;
        const char *why;
    } fail[] = {
        {-400, "Host header missing or repeated"},
        {-426, "Upgrade: websocket required"},
        {-400, "Connection header without the upgrade token"},
        {-426, "Sec-WebSocket-Version must be 13"},
        {-400, "Sec-WebSocket-Key missing, repeated or not 16 bytes of base64"},
        {-400, "Sec-WebSocket-Protocol must offer mqtt"},
    };
    bool key_ok = h->n_key == 1 && h->key_len == 24 && h->key[22] == '=' && h->key[23] == '=';
    for (size_t i = 0; key_ok && i < 22; i++)
        key_ok = is_b64(h->key[i]);
    bool ok[] = {
        h->n_host == 1,
        h->upgrade_ws,
        h->conn_upgrade,
        h->n_version == 1 && h->version_len == 2 && memcmp(h->version, "13", 2) == 0,
        key_ok,
        h->mqtt, /* [MQTT-6.0.0-3] */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!ok[i]) {
            *why = fail[i].why;
            return fail[i].status;
        }
    }
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 505: return "HTTP Version Not Supported";
    default: return "Bad Request";
    }
}

/* Appends a complete error response whose body is `why`. Returns -status, or -500. */
static int error_reply(struct rq_buf *reply, int status, const char *why)
{
    const char *extra = "";
    if (status == 405)
        extra = "Allow: GET\r\n";
    else if (status == 426)
        extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\n%sContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s\n",
                     status, status_text(status), extra, strlen(why) + 1, why);
    if (n < 0 || (size_t)n >= sizeof buf || rq_buf_append(reply, buf, (size_t)n) != 0)
        return -500;
    return -status;
}

/* Appends the 101 answer. Returns 0 or -500. */
static int accept_reply(struct rq_buf *reply, const struct head *h, const char **why)
{
    char accept[29], buf[192];
    rq_ws_accept_key(h->key, h->key_len, accept);
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: mqtt\r\n\r\n", /* [MQTT-6.0.0-4] */
                     accept);
    if (n < 0 || (size_t)n >= sizeof buf || rq_buf_append(reply, buf, (size_t)n) != 0) {
        *why = "out of memory";
        return -500;
    }
    return 0;
}

int rq_ws_handshake(const uint8_t *p, size_t len, struct rq_buf *reply, size_t *consumed,
                    const char **why)
{
    *consumed = 0;
    size_t hlen = len ? head_end(p, len < RQ_WS_MAX_HEAD ? len : RQ_WS_MAX_HEAD) : 0;
    int rc = 0;
    if (hlen == 0) {
        if (len < RQ_WS_MAX_HEAD)
            return RQ_WS_INCOMPLETE;
        *why = "request head longer than 8 KiB";
        rc = -431;
    } else {
        *consumed = hlen;
        struct head h = {0};
        rc = parse_head(p, hlen, &h, why);
        if (rc == 0)
            rc = check_head(&h, why);
        if (rc == 0)
            return accept_reply(reply, &h, why);
    }
    rc = error_reply(reply, -rc, *why);
    if (rc == -500)
        *why = "out of memory";
    return rc;
}

/* ---- Encoders ---- */

size_t rq_ws_frame_header(uint8_t hdr[RQ_WS_MAX_HEADER], enum rq_ws_opcode op, uint64_t len)
{
    hdr[0] = (uint8_t)(0x80 | op);
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

static int put_frame(struct rq_buf *out, enum rq_ws_opcode op, const uint8_t *p, size_t len)
{
    uint8_t hdr[RQ_WS_MAX_HEADER];
    size_t hl = rq_ws_frame_header(hdr, op, len);
    if (rq_buf_reserve(out, hl + len) != 0)
        return -ENOMEM;
    memcpy(out->data + out->len, hdr, hl);
    if (len)
        memcpy(out->data + out->len + hl, p, len);
    out->len += hl + len;
    return 0;
}

int rq_ws_wrap(struct rq_buf *out, const uint8_t *p, size_t len)
{
    return put_frame(out, RQ_WS_OP_BINARY, p, len);
}

int rq_ws_close_frame(struct rq_buf *out, uint16_t code, const char *reason)
{
    uint8_t body[125];
    size_t n = 0;
    if (code) {
        size_t rlen = reason ? strlen(reason) : 0;
        if (rlen > 123) { /* the payload of a control frame is at most 125 bytes */
            rlen = 123;
            while (rlen > 0 && ((uint8_t)reason[rlen] & 0xC0) == 0x80)
                rlen--; /* reason[rlen] continues a character: cut before its lead byte */
        }
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        if (rlen)
            memcpy(body + 2, reason, rlen);
        n = 2 + rlen;
    }
    return put_frame(out, RQ_WS_OP_CLOSE, body, n);
}

/* ---- Frame decoder ---- */

enum { ST_HEADER, ST_PAYLOAD, ST_CLOSED };

void rq_ws_rx_init(struct rq_ws_rx *rx, uint64_t max_message)
{
    memset(rx, 0, sizeof *rx);
    rx->max_message = max_message;
    rx->state = ST_HEADER;
}

int rq_ws_rx_close(struct rq_ws_rx *rx, struct rq_buf *wire_out, uint16_t code, const char *reason)
{
    if (rx->close_sent)
        return 0;
    int rc = rq_ws_close_frame(wire_out, code, reason);
    if (rc == 0)
        rx->close_sent = true;
    return rc;
}

/* Fails the connection (RFC 6455 section 7.1.7): one close frame with the code, then nothing. */
static long fail(struct rq_ws_rx *rx, struct rq_buf *wire, uint16_t code, const char *msg,
                 const char **why)
{
    *why = msg;
    (void)rq_ws_rx_close(rx, wire, code, msg); /* without memory the caller just closes */
    rx->state = ST_CLOSED;
    return -(long)code;
}

/* Copies n masked bytes to dst, unmasking them; off = payload offset of src[0] mod 4. Eight
 * bytes at a time with the key rotated to the offset. */
static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                        unsigned off)
{
    uint8_t k[8];
    for (unsigned i = 0; i < 8; i++)
        k[i] = mask[(off + i) & 3];
    uint64_t k64;
    memcpy(&k64, k, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 7];
}

/* Well-formed UTF-8 (Unicode table 3-7; U+0000 allowed, unlike MQTT strings). */
static bool utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : lo;
            hi = c == 0xED ? 0x9F : hi;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : lo;
            hi = c == 0xF4 ? 0x8F : hi;
        } else {
            return false;
        }
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t j = 2; j < len; j++)
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* Codes a peer may send (RFC 6455 7.4.1-7.4.2 plus the IANA registry: 1012-1014). */
static bool close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* A complete control frame is in rx->ctl. */
static long on_control(struct rq_ws_rx *rx, struct rq_buf *wire, const char **why)
{
    if (rx->opcode == RQ_WS_OP_PING) {
        /* RFC 6455 5.5.3: a pong echoes the ping's payload; none after our close. */
        if (!rx->close_sent && put_frame(wire, RQ_WS_OP_PONG, rx->ctl, rx->ctl_fill) != 0)
            return fail(rx, wire, RQ_WS_CLOSE_INTERNAL, "out of memory", why);
        return 0;
    }
    if (rx->opcode == RQ_WS_OP_PONG)
        return 0; /* unsolicited pongs are allowed and ignored (5.5.3) */
    uint16_t code = RQ_WS_CLOSE_NO_STATUS;
    if (rx->ctl_fill == 1)
        return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "close frame of one byte", why);
    if (rx->ctl_fill >= 2) {
        code = (uint16_t)(rx->ctl[0] << 8 | rx->ctl[1]);
        if (!close_code_ok(code))
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "invalid close code", why);
        if (!utf8_ok(rx->ctl + 2, rx->ctl_fill - 2u))
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "close reason is not UTF-8", why);
    }
    rx->peer_code = code;
    rx->state = ST_CLOSED;
    /* 5.5.1: answer with a close frame, echoing the code (none if the peer sent none). */
    (void)rq_ws_rx_close(rx, wire, code == RQ_WS_CLOSE_NO_STATUS ? 0 : code, NULL);
    return RQ_WS_CLOSED;
}

/* The first two header bytes are in: everything that can be judged from them. */
static long check_start(struct rq_ws_rx *rx, struct rq_buf *wire, const char **why)
{
    uint8_t b0 = rx->hdr[0], b1 = rx->hdr[1], op = b0 & 0x0F;
    if (b0 & 0x70)
        return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "RSV bit set without an extension", why);
    if (op == RQ_WS_OP_TEXT) /* [MQTT-6.0.0-1] */
        return fail(rx, wire, RQ_WS_CLOSE_UNSUPPORTED, "text frame (MQTT needs binary)", why);
    if (op >= 8) {
        if (op > RQ_WS_OP_PONG)
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "unknown opcode", why);
        if (!(b0 & 0x80))
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "fragmented control frame", why);
        if ((b1 & 0x7F) > 125)
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "control frame over 125 bytes", why);
    } else if (op == RQ_WS_OP_CONT) {
        if (!rx->in_message)
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "continuation without a message", why);
    } else if (op == RQ_WS_OP_BINARY) {
        if (rx->in_message)
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "new message inside a fragmented one", why);
    } else {
        return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "unknown opcode", why);
    }
    if (!(b1 & 0x80)) /* RFC 6455 5.1: the server MUST close on an unmasked client frame */
        return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "unmasked client frame", why);
    rx->opcode = op;
    rx->fin = (b0 & 0x80) != 0;
    return 0;
}

/* Header bytes needed in total once the first two are known (client frames are masked). */
static uint8_t header_size(uint8_t b1)
{
    uint8_t l7 = b1 & 0x7F;
    return (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4);
}

/* The whole header is in: length, limits, mask. Enters ST_PAYLOAD. */
static long start_frame(struct rq_ws_rx *rx, struct rq_buf *wire, const char **why)
{
    const uint8_t *h = rx->hdr;
    uint64_t len = h[1] & 0x7F;
    size_t pos = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        pos = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        pos = 10;
        if (len >> 63)
            return fail(rx, wire, RQ_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set", why);
    }
    /* Non-minimal length encodings are accepted: they cost nothing and harm nobody. */
    memcpy(rx->mask, h + pos, 4);
    rx->mask_off = 0;
    rx->remaining = len;
    rx->ctl_fill = 0;
    if (rx->opcode < 8) {
        if (len > rx->max_message)
            return fail(rx, wire, RQ_WS_CLOSE_TOO_BIG, "frame longer than the maximum", why);
        if (len > rx->max_message - rx->message)
            return fail(rx, wire, RQ_WS_CLOSE_TOO_BIG, "message longer than the maximum", why);
        rx->in_message = !rx->fin;
        rx->message = rx->fin ? 0 : rx->message + len;
    }
    rx->state = ST_PAYLOAD;
    return 0;
}

/* Gathers header bytes from p; returns bytes used or a negative close code. */
static long take_header(struct rq_ws_rx *rx, const uint8_t *p, size_t len, struct rq_buf *wire,
                        const char **why)
{
    size_t used = 0;
    while (used < len) {
        uint8_t need = rx->hdr_fill < 2 ? 2 : header_size(rx->hdr[1]);
        size_t n = (size_t)(need - rx->hdr_fill);
        if (n > len - used)
            n = len - used;
        memcpy(rx->hdr + rx->hdr_fill, p + used, n);
        rx->hdr_fill = (uint8_t)(rx->hdr_fill + n);
        used += n;
        if (rx->hdr_fill < need)
            break;
        long rc = need == 2 ? check_start(rx, wire, why) : start_frame(rx, wire, why);
        if (rc < 0)
            return rc;
        if (need > 2)
            break; /* the header is complete */
    }
    return (long)used;
}

/* The current frame's payload is complete. */
static long end_frame(struct rq_ws_rx *rx, struct rq_buf *wire, const char **why)
{
    rx->state = ST_HEADER;
    rx->hdr_fill = 0;
    return rx->opcode >= 8 ? on_control(rx, wire, why) : 0;
}

long rq_ws_rx_feed(struct rq_ws_rx *rx, const uint8_t *p, size_t len, struct rq_buf *app_out,
                   struct rq_buf *wire_out, const char **why)
{
    size_t off = 0;
    while (rx->state != ST_CLOSED) {
        if (rx->state == ST_HEADER) {
            if (off == len)
                return (long)len;
            long rc = take_header(rx, p + off, len - off, wire_out, why);
            if (rc < 0)
                return rc;
            off += (size_t)rc;
            if (rx->state == ST_HEADER)
                continue; /* header still incomplete: off == len now */
        }
        /* ST_PAYLOAD (an empty payload ends right away, even at the end of the input) */
        size_t n = len - off;
        if (n > rx->remaining)
            n = (size_t)rx->remaining;
        if (n > 0) {
            uint8_t *dst;
            if (rx->opcode >= 8) {
                dst = rx->ctl + rx->ctl_fill; /* remaining <= 125 - ctl_fill */
                rx->ctl_fill = (uint8_t)(rx->ctl_fill + n);
            } else {
                if (rq_buf_reserve(app_out, n) != 0)
                    return fail(rx, wire_out, RQ_WS_CLOSE_INTERNAL, "out of memory", why);
                dst = app_out->data + app_out->len;
                app_out->len += n;
            }
            unmask_copy(dst, p + off, n, rx->mask, rx->mask_off);
            rx->mask_off = (uint8_t)((rx->mask_off + n) & 3);
            rx->remaining -= n;
            off += n;
        }
        if (rx->remaining > 0)
            return (long)len; /* input exhausted inside the payload */
        long rc = end_frame(rx, wire_out, why);
        if (rc < 0)
            return rc;
    }
    return RQ_WS_CLOSED;
}
