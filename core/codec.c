/* MQTT 3.1 / 3.1.1 / 5.0 packet codec: fixed-header framing, decoding of all fifteen packet
 * types into struct rq_packet (strings point into the input), UTF-8 validation, and encoders.
 *
 * Pure: no I/O, no globals, no allocation while decoding. Encoders size the whole packet first,
 * reserve once and then write, so a failure leaves the output buffer as it was.
 * Not here: properties (core/props.c), topic filter syntax (core/topic.c), and every rule that
 * depends on connection state (topic alias maximum, receive maximum, who may send what). */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "core/codec.h"
#include "core/codec_int.h"

/* ---- Variable byte integers and UTF-8 ---- */

size_t rq_varint_size(uint32_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

size_t rq_varint_encode(uint8_t *out, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[n++] = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return n;
}

/* True when none of the 8 bytes at p is zero or has its top bit set. */
static bool ascii8(const uint8_t *p)
{
    const uint64_t lo = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return ((w | ((w - lo) & ~w)) & hi) == 0;
}

/* Length of the well-formed multi-byte sequence at p, or 0. The lead-byte ranges and the
 * narrowed second-byte ranges are Unicode table 3-7: they exclude overlong forms, surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90.. and F5..FF). */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return n;
}

bool rq_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8 && ascii8(p + i)) {
            i += 8;
        } else if (p[i] < 0x80) {
            if (p[i] == 0)
                return false; /* [MQTT-1.5.4-2] */
            i++;
        } else {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0)
                return false; /* [MQTT-1.5.4-1] */
            i += n;
        }
    }
    return true;
}

/* ---- Framing ---- */

long rq_codec_frame(const uint8_t *p, size_t len, uint32_t max_size, size_t *hdr_len,
                    const char **why)
{
    uint32_t rem;
    size_t n;

    if (len < 2)
        return RQ_INCOMPLETE;
    int rc = varint_decode(p + 1, len - 1, &rem, &n);
    if (rc == RQ_INCOMPLETE)
        return RQ_INCOMPLETE;
    if (rc)
        return fail(why, RQ_RC_MALFORMED, "remaining length over 4 bytes or not minimal");
    size_t total = 1 + n + rem;
    if (total > max_size)
        return fail(why, RQ_RC_PACKET_TOO_LARGE, "packet larger than the maximum packet size");
    if (hdr_len)
        *hdr_len = 1 + n;
    return (long)total;
}

/* ---- Decoding helpers ---- */

static int truncated(const char **why)
{
    return fail(why, RQ_RC_MALFORMED, "packet truncated");
}

/* A UTF-8 string field: length-prefixed, counted against the packet, valid. */
static int rd_utf8(struct rq_rd *r, struct rq_str *s, const char **why)
{
    if (!rd_bin(r, s))
        return truncated(why);
    if (!rq_utf8_valid(s->p, s->len))
        return fail(why, RQ_RC_MALFORMED, "invalid UTF-8 string");
    return 0;
}

/* PUBLISH and will topic names: no wildcards [MQTT-3.3.2-2]. Empty is decided by the caller. */
static int rd_topic_name(struct rq_rd *r, struct rq_str *t, const char **why)
{
    int rc = rd_utf8(r, t, why);
    if (rc)
        return rc;
    if (memchr(t->p, '+', t->len) || memchr(t->p, '#', t->len))
        return fail(why, RQ_RC_MALFORMED, "wildcard in a topic name");
    return 0;
}

/* A packet identifier that must be non-zero [MQTT-2.3.1-1]. */
static int rd_packet_id(struct rq_rd *r, uint16_t *id, const char **why)
{
    if (!rd_u16(r, id))
        return truncated(why);
    if (*id == 0)
        return fail(why, RQ_RC_PROTOCOL_ERROR, "packet identifier 0");
    return 0;
}

static bool str_is(struct rq_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* ---- CONNECT ---- */

/* Protocol name, level, flags, keep alive. Spec clause numbers are MQTT 3.1.1 ones. */
static int connect_header(struct rq_rd *r, struct rq_connect *c, const char **why)
{
    struct rq_str name;
    uint8_t flags;

    if (!rd_bin(r, &name) || !rd_u8(r, &c->version))
        return truncated(why);
    bool mqtt = str_is(name, "MQTT"), mqisdp = str_is(name, "MQIsdp");
    if (!(mqtt && (c->version == 4 || c->version == 5)) && !(mqisdp && c->version == 3))
        return fail(why, RQ_RC_UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol name or level");
    if (!rd_u8(r, &flags) || !rd_u16(r, &c->keepalive))
        return truncated(why);
    if (flags & 0x01)
        return fail(why, RQ_RC_MALFORMED, "reserved CONNECT flag set"); /* [MQTT-3.1.2-3] */
    c->clean_start = flags & 0x02;
    c->will = flags & 0x04;
    c->will_qos = (flags >> 3) & 0x03;
    c->will_retain = flags & 0x20;
    c->has_password = flags & 0x40;
    c->has_username = flags & 0x80;
    if (c->will_qos == 3)
        return fail(why, RQ_RC_MALFORMED, "will QoS 3"); /* [MQTT-3.1.2-14] */
    if (!c->will && (c->will_qos || c->will_retain))     /* [MQTT-3.1.2-13], [MQTT-3.1.2-15] */
        return fail(why, RQ_RC_PROTOCOL_ERROR, "will QoS or retain without a will");
    if (c->version != 5 && c->has_password && !c->has_username) /* [MQTT-3.1.2-22] */
        return fail(why, RQ_RC_PROTOCOL_ERROR, "password without user name");
    return 0;
}

static int connect_payload(struct rq_rd *r, struct rq_connect *c, const char **why)
{
    int rc = rd_utf8(r, &c->client_id, why);
    if (rc)
        return rc;
    if (c->will) {
        if (c->version == 5 &&
            (rc = rq_props_decode(r, RQ_WHERE_WILL, &c->will_props, NULL, why)) != 0)
            return rc;
        if ((rc = rd_topic_name(r, &c->will_topic, why)) != 0)
            return rc;
        if (c->will_topic.len == 0) /* [MQTT-4.7.3-1] */
            return fail(why, RQ_RC_PROTOCOL_ERROR, "empty will topic");
        if (!rd_bin(r, &c->will_payload))
            return truncated(why);
    }
    if (c->has_username && (rc = rd_utf8(r, &c->username, why)) != 0)
        return rc;
    if (c->has_password && !rd_bin(r, &c->password))
        return truncated(why);
    return 0;
}

static int dec_connect(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_connect *c = &pkt->u.connect;
    int rc = connect_header(r, c, why);
    if (rc)
        return rc;
    if (c->version == 5 && (rc = rq_props_decode(r, RQ_CONNECT, &c->props, NULL, why)) != 0)
        return rc;
    return connect_payload(r, c, why);
}

/* ---- Other packets ---- */

static int dec_connack(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_connack *c = &pkt->u.connack;
    uint8_t flags;

    if (!rd_u8(r, &flags) || !rd_u8(r, &c->rc))
        return truncated(why);
    if (flags & 0xFE)
        return fail(why, RQ_RC_MALFORMED, "reserved CONNACK flags set"); /* [MQTT-3.2.2-1] */
    c->session_present = flags & 0x01;
    /* v5 always sends a property length; a missing one is read as no properties. */
    if (v == 5 && rd_left(r) > 0)
        return rq_props_decode(r, RQ_CONNACK, &c->props, NULL, why);
    return 0;
}

static int dec_publish(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_publish *m = &pkt->u.publish;
    int rc;

    m->qos = (pkt->flags >> 1) & 0x03;
    m->dup = pkt->flags & 0x08;
    m->retain = pkt->flags & 0x01;
    if (m->qos == 3)
        return fail(why, RQ_RC_MALFORMED, "PUBLISH QoS 3"); /* [MQTT-3.3.1-4] */
    if (m->qos == 0 && m->dup)
        return fail(why, RQ_RC_MALFORMED, "DUP set on a QoS 0 PUBLISH"); /* [MQTT-3.3.1-2] */
    if ((rc = rd_topic_name(r, &m->topic, why)) != 0)
        return rc;
    if (m->qos > 0 && (rc = rd_packet_id(r, &m->packet_id, why)) != 0)
        return rc;
    if (v == 5 && (rc = rq_props_decode(r, RQ_PUBLISH, &m->props, &m->n_sub_ids, why)) != 0)
        return rc;
    if (m->topic.len == 0 && !RQ_PROP_HAS(&m->props, RQ_PROP_TOPIC_ALIAS))
        return fail(why, RQ_RC_PROTOCOL_ERROR, "empty topic name without a topic alias");
    m->payload.p = r->p + r->off;
    m->payload.len = (uint32_t)rd_left(r);
    r->off = r->len;
    return 0;
}

/* Is `reason` one of the codes MQTT 5.0 defines for this acknowledgement (3.4.2.1, 3.5.2.1,
 * 3.6.2.1, 3.7.2.1)? PUBREL and PUBCOMP know only Success and Packet Identifier not found. */
static bool ack_reason_defined(int type, uint8_t reason)
{
    static const uint8_t pub[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
    if (type == RQ_PUBREL || type == RQ_PUBCOMP)
        return reason == 0x00 || reason == 0x92;
    return memchr(pub, reason, sizeof pub) != NULL;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. v5: reason and properties may each be left off. */
static int dec_ack(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_ack *a = &pkt->u.ack;
    int rc = rd_packet_id(r, &a->packet_id, why);
    if (rc || v != 5)
        return rc;
    if (rd_left(r) > 0)
        (void)rd_u8(r, &a->reason);
    if (!ack_reason_defined(pkt->type, a->reason))
        return fail(why, RQ_RC_MALFORMED, "reason code not defined for this acknowledgement");
    if (rd_left(r) > 0)
        return rq_props_decode(r, pkt->type, &a->props, NULL, why);
    return 0;
}

/* Subscription options [MQTT-3.8.3-4], [MQTT-3.8.3-5] (v5 numbering; 3.1.1: MQTT-3.8.3-4). */
static int check_subopts(int v, struct rq_str filter, uint8_t o, const char **why)
{
    if (RQ_SUBOPT_QOS(o) == 3)
        return fail(why, RQ_RC_MALFORMED, "subscription QoS 3");
    if (v != 5)
        return o & ~0x03 ? fail(why, RQ_RC_MALFORMED, "reserved subscription option bits") : 0;
    if (o & 0xC0)
        return fail(why, RQ_RC_MALFORMED, "reserved subscription option bits");
    if (RQ_SUBOPT_RH(o) == 3)
        return fail(why, RQ_RC_MALFORMED, "retain handling 3");
    if ((o & RQ_SUBOPT_NO_LOCAL) && filter.len >= 7 && memcmp(filter.p, "$share/", 7) == 0)
        return fail(why, RQ_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
    return 0;
}

/* The filter list of SUBSCRIBE (with options) or UNSUBSCRIBE, at least one entry. */
static int dec_filters(struct rq_rd *r, int v, bool is_sub, struct rq_sublist *s, const char **why)
{
    struct rq_rd e = {r->p + r->off, rd_left(r), 0};

    while (rd_left(&e) > 0) {
        struct rq_str f;
        uint8_t o = 0;
        int rc = rd_utf8(&e, &f, why);
        if (rc)
            return rc;
        if (f.len == 0) /* [MQTT-4.7.3-1] */
            return fail(why, RQ_RC_MALFORMED, "empty topic filter");
        if (is_sub && !rd_u8(&e, &o))
            return truncated(why);
        if (is_sub && (rc = check_subopts(v, f, o, why)) != 0)
            return rc;
        s->count++;
    }
    if (s->count == 0) /* a Protocol Error: [MQTT-3.8.3-2], [MQTT-3.10.3-2] */
        return fail(why, RQ_RC_PROTOCOL_ERROR, "no topic filters");
    s->entries.p = e.p;
    s->entries.len = (uint32_t)e.len;
    r->off = r->len;
    return 0;
}

static int dec_sublist(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_sublist *s = &pkt->u.sub;
    int rc = rd_packet_id(r, &s->packet_id, why);
    if (rc)
        return rc;
    if (v == 5 && (rc = rq_props_decode(r, pkt->type, &s->props, NULL, why)) != 0)
        return rc;
    return dec_filters(r, v, pkt->type == RQ_SUBSCRIBE, s, why);
}

/* SUBACK and UNSUBACK; a 3.1.1 UNSUBACK is only the packet identifier. */
static int dec_suback(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_subacklist *s = &pkt->u.suback;
    int rc = rd_packet_id(r, &s->packet_id, why);
    if (rc)
        return rc;
    if (v == 5 && (rc = rq_props_decode(r, pkt->type, &s->props, NULL, why)) != 0)
        return rc;
    if (v != 5 && pkt->type == RQ_UNSUBACK)
        return 0;
    s->codes.p = r->p + r->off;
    s->codes.len = (uint32_t)rd_left(r);
    r->off = r->len;
    if (s->codes.len == 0)
        return fail(why, RQ_RC_MALFORMED, "no reason codes");
    for (uint32_t i = 0; v != 5 && i < s->codes.len; i++) {
        uint8_t c = s->codes.p[i];
        if (c > 2 && c != 0x80) /* 3.1.1 section 3.9.3 */
            return fail(why, RQ_RC_MALFORMED, "invalid SUBACK return code");
    }
    return 0;
}

static int dec_empty(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    return 0; /* PINGREQ, PINGRESP: anything after the fixed header is trailing garbage */
}

/* DISCONNECT and AUTH (AUTH exists only in v5). v5: reason and properties may be left off. */
static int dec_reason(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why)
{
    struct rq_reason *x = &pkt->u.reason;
    if (v != 5)
        return 0;
    if (rd_left(r) > 0)
        (void)rd_u8(r, &x->reason);
    if (rd_left(r) > 0)
        return rq_props_decode(r, pkt->type, &x->props, NULL, why);
    return 0;
}

typedef int (*decode_fn)(struct rq_rd *r, int v, struct rq_packet *pkt, const char **why);

#define ANY_FLAGS 0xFF

/* Per packet type: decoder and the required fixed-header flags (2.1.3). */
static const struct {
    decode_fn fn;
    uint8_t flags;
} ptypes[16] = {
    [RQ_CONNECT] = {dec_connect, 0},
    [RQ_CONNACK] = {dec_connack, 0},
    [RQ_PUBLISH] = {dec_publish, ANY_FLAGS},
    [RQ_PUBACK] = {dec_ack, 0},
    [RQ_PUBREC] = {dec_ack, 0},
    [RQ_PUBREL] = {dec_ack, 2},
    [RQ_PUBCOMP] = {dec_ack, 0},
    [RQ_SUBSCRIBE] = {dec_sublist, 2},
    [RQ_SUBACK] = {dec_suback, 0},
    [RQ_UNSUBSCRIBE] = {dec_sublist, 2},
    [RQ_UNSUBACK] = {dec_suback, 0},
    [RQ_PINGREQ] = {dec_empty, 0},
    [RQ_PINGRESP] = {dec_empty, 0},
    [RQ_DISCONNECT] = {dec_reason, 0},
    [RQ_AUTH] = {dec_reason, 0},
};

/* MQTT 3.1 gave PUBREL, SUBSCRIBE and UNSUBSCRIBE (the packets sent with QoS 1) a DUP flag that
 * a client sets when it resends one; 3.1.1 made those bits reserved. */
static bool v31_dup(int version, uint8_t required, uint8_t flags)
{
    return version == 3 && required == 0x02 && flags == 0x0A;
}

int rq_codec_decode(const uint8_t *p, size_t len, int version, struct rq_packet *pkt,
                    const char **why)
{
    uint32_t rem;
    size_t n;

    memset(pkt, 0, sizeof(*pkt));
    if (len < 2 || varint_decode(p + 1, len - 1, &rem, &n) != 0)
        return fail(why, RQ_RC_MALFORMED, "bad fixed header");
    if (rem > len - 1 - n)
        return truncated(why);
    if (rem < len - 1 - n)
        return fail(why, RQ_RC_MALFORMED, "bytes after the remaining length");
    pkt->type = p[0] >> 4;
    pkt->flags = p[0] & 0x0F;
    int v = version == 5 ? 5 : 4;
    if (!ptypes[pkt->type].fn || (pkt->type == RQ_AUTH && v != 5))
        return fail(why, RQ_RC_MALFORMED, "reserved packet type");
    if (ptypes[pkt->type].flags != ANY_FLAGS && pkt->flags != ptypes[pkt->type].flags &&
        !v31_dup(version, ptypes[pkt->type].flags, pkt->flags))
        return fail(why, RQ_RC_MALFORMED, "reserved fixed header flags"); /* [MQTT-2.2.2-2] */
    struct rq_rd r = {p + 1 + n, rem, 0};
    int rc = ptypes[pkt->type].fn(&r, v, pkt, why);
    if (rc)
        return rc;
    if (rd_left(&r) > 0)
        return fail(why, RQ_RC_MALFORMED, "trailing bytes in the packet");
    return 0;
}

bool rq_codec_next_filter(const struct rq_sublist *s, bool is_subscribe, uint32_t *off,
                          struct rq_str *filter, uint8_t *opts)
{
    struct rq_rd r = {s->entries.p, s->entries.len, *off};
    uint8_t o = 0;

    if (!s->entries.p || *off >= s->entries.len || !rd_bin(&r, filter))
        return false;
    if (is_subscribe && !rd_u8(&r, &o))
        return false; /* cannot happen on a list that decoded */
    if (opts)
        *opts = o;
    *off = (uint32_t)r.off;
    return true;
}

/* ---- Encoding ----
 * Besides -ENOMEM, encoders return -EINVAL for a value the wire format cannot carry (a string
 * over 65535 bytes, a subscription identifier of 0 or over 268435455, QoS 3) and -EMSGSIZE for
 * a packet over the largest remaining length. `out` is unchanged in every failure case. */

/* A packet being written: the cursor and where it must end once complete. */
struct enc {
    uint8_t *w;
    uint8_t *end;
};

/* Reserves the whole packet (`rem` bytes after the fixed header) and writes the fixed header. */
static int begin(struct rq_buf *out, uint8_t byte0, size_t rem, struct enc *e)
{
    if (rem > RQ_VARINT_MAX)
        return -EMSGSIZE;
    size_t total = 1 + rq_varint_size((uint32_t)rem) + rem;
    if (rq_buf_reserve(out, total))
        return -ENOMEM;
    e->end = out->data + out->len + total;
    e->w = put_varint(put_u8(out->data + out->len, byte0), (uint32_t)rem);
    return 0;
}

static int finish(struct rq_buf *out, const struct enc *e)
{
    assert(e->w == e->end); /* the sizing and the writing disagree: a bug here */
    out->len = (size_t)(e->w - out->data);
    return 0;
}

/* Size of a length-prefixed string; *ok goes false when it cannot be encoded. */
static size_t sz_str(struct rq_str s, bool *ok)
{
    size_t n = str_len(s);
    if (n > RQ_STR_MAX)
        *ok = false;
    return 2 + n;
}

/* v5 property block size (length varint included) into *blk, entries alone into *psz. */
static int props_block(int version, const struct rq_props *props, size_t *psz, size_t *blk)
{
    *psz = *blk = 0;
    if (version != 5)
        return 0;
    int rc = rq_props_measure(props, psz);
    if (rc)
        return rc;
    *blk = (*psz > RQ_VARINT_MAX ? 4 : rq_varint_size((uint32_t)*psz)) + *psz;
    return 0;
}

static uint8_t *put_props(uint8_t *w, const struct rq_props *props, size_t psz)
{
    return rq_props_write(put_varint(w, (uint32_t)psz), props);
}

static int connect_size(const struct rq_connect *c, size_t psz[2], size_t *rem)
{
    size_t blk[2], n;
    bool ok = true;
    int rc = props_block(c->version, &c->props, &psz[0], &blk[0]);
    if (!rc && c->will)
        rc = props_block(c->version, &c->will_props, &psz[1], &blk[1]);
    if (rc)
        return rc;
    n = (c->version == 3 ? 8 : 6) + 4 + blk[0] + sz_str(c->client_id, &ok);
    if (c->will)
        n += blk[1] + sz_str(c->will_topic, &ok) + sz_str(c->will_payload, &ok);
    if (c->has_username)
        n += sz_str(c->username, &ok);
    if (c->has_password)
        n += sz_str(c->password, &ok);
    *rem = n;
    return ok ? 0 : -EINVAL;
}

int rq_codec_encode_connect(struct rq_buf *out, const struct rq_connect *c)
{
    static const struct rq_str mqtt = {(const uint8_t *)"MQTT", 4};
    static const struct rq_str mqisdp = {(const uint8_t *)"MQIsdp", 6};
    size_t psz[2] = {0, 0}, rem;
    struct enc e;
    int rc = connect_size(c, psz, &rem);
    if (rc || (rc = begin(out, RQ_CONNECT << 4, rem, &e)) != 0)
        return rc;
    uint8_t flags =
        (uint8_t)(c->clean_start << 1 | c->will << 2 | c->has_password << 6 | c->has_username << 7);
    if (c->will)
        flags |= (uint8_t)((c->will_qos & 3) << 3 | c->will_retain << 5);
    e.w = put_str(e.w, c->version == 3 ? mqisdp : mqtt);
    e.w = put_u16(put_u8(put_u8(e.w, c->version), flags), c->keepalive);
    if (c->version == 5)
        e.w = put_props(e.w, &c->props, psz[0]);
    e.w = put_str(e.w, c->client_id);
    if (c->will) {
        if (c->version == 5)
            e.w = put_props(e.w, &c->will_props, psz[1]);
        e.w = put_str(put_str(e.w, c->will_topic), c->will_payload);
    }
    if (c->has_username)
        e.w = put_str(e.w, c->username);
    if (c->has_password)
        e.w = put_str(e.w, c->password);
    return finish(out, &e);
}

int rq_codec_encode_connack(struct rq_buf *out, int version, const struct rq_connack *c)
{
    size_t psz, blk;
    struct enc e;
    int rc = props_block(version, &c->props, &psz, &blk);
    if (rc || (rc = begin(out, RQ_CONNACK << 4, 2 + blk, &e)) != 0)
        return rc;
    e.w = put_u8(put_u8(e.w, c->session_present ? 1 : 0), c->rc);
    if (version == 5)
        e.w = put_props(e.w, &c->props, psz);
    return finish(out, &e);
}

int rq_codec_encode_ack(struct rq_buf *out, int version, int type, const struct rq_ack *a)
{
    size_t psz, blk;
    struct enc e;
    int rc = props_block(version, &a->props, &psz, &blk);
    if (rc)
        return rc;
    /* v5 3.4.2.1: reason left off when 0 without properties, property length when empty. */
    bool with_reason = version == 5 && (a->reason != 0 || psz > 0);
    bool with_props = version == 5 && psz > 0;
    size_t rem = 2 + (with_reason ? 1 : 0) + (with_props ? blk : 0);
    uint8_t byte0 = (uint8_t)(type << 4 | (type == RQ_PUBREL ? 0x02 : 0));
    if ((rc = begin(out, byte0, rem, &e)) != 0)
        return rc;
    e.w = put_u16(e.w, a->packet_id);
    if (with_reason)
        e.w = put_u8(e.w, a->reason);
    if (with_props)
        e.w = put_props(e.w, &a->props, psz);
    return finish(out, &e);
}

/* SUBSCRIBE (is_sub; opts NULL means all 0) and UNSUBSCRIBE. */
static int encode_sublist(struct rq_buf *out, int version, bool is_sub, uint16_t packet_id,
                          const struct rq_props *props, const struct rq_str *filters,
                          const uint8_t *opts, size_t n)
{
    uint8_t byte0 = (uint8_t)((is_sub ? RQ_SUBSCRIBE : RQ_UNSUBSCRIBE) << 4 | 0x02);
    size_t psz, blk, rem;
    bool ok = true;
    struct enc e;
    int rc = props_block(version, props, &psz, &blk);
    if (rc)
        return rc;
    rem = 2 + blk;
    for (size_t i = 0; i < n; i++)
        rem += sz_str(filters[i], &ok) + (is_sub ? 1 : 0);
    if (!ok)
        return -EINVAL;
    if ((rc = begin(out, byte0, rem, &e)) != 0)
        return rc;
    e.w = put_u16(e.w, packet_id);
    if (version == 5)
        e.w = put_props(e.w, props, psz);
    for (size_t i = 0; i < n; i++) {
        e.w = put_str(e.w, filters[i]);
        uint8_t o = opts ? opts[i] : 0;
        if (is_sub)
            e.w = put_u8(e.w, version == 5 ? o : RQ_SUBOPT_QOS(o));
    }
    return finish(out, &e);
}

int rq_codec_encode_subscribe(struct rq_buf *out, int version, uint16_t packet_id,
                              const struct rq_props *props, const struct rq_str *filters,
                              const uint8_t *opts, size_t n)
{
    return encode_sublist(out, version, true, packet_id, props, filters, opts, n);
}

int rq_codec_encode_unsubscribe(struct rq_buf *out, int version, uint16_t packet_id,
                                const struct rq_props *props, const struct rq_str *filters,
                                size_t n)
{
    return encode_sublist(out, version, false, packet_id, props, filters, NULL, n);
}

int rq_codec_encode_suback(struct rq_buf *out, int version, int type, uint16_t packet_id,
                           const struct rq_props *props, const uint8_t *codes, size_t n)
{
    size_t psz, blk;
    struct enc e;
    int rc = props_block(version, props, &psz, &blk);
    if (rc)
        return rc;
    if (version != 5 && type == RQ_UNSUBACK)
        n = 0; /* 3.1.1 UNSUBACK carries no codes */
    if ((rc = begin(out, (uint8_t)(type << 4), 2 + blk + n, &e)) != 0)
        return rc;
    e.w = put_u16(e.w, packet_id);
    if (version == 5)
        e.w = put_props(e.w, props, psz);
    e.w = put_bytes(e.w, codes, n);
    return finish(out, &e);
}

int rq_codec_encode_simple(struct rq_buf *out, int type)
{
    struct enc e;
    int rc = begin(out, (uint8_t)(type << 4), 0, &e);
    return rc ? rc : finish(out, &e);
}

int rq_codec_encode_reason(struct rq_buf *out, int version, int type, uint8_t reason,
                           const struct rq_props *props)
{
    size_t psz, blk, rem = 0;
    struct enc e;
    int rc = props_block(version, props, &psz, &blk);
    if (rc)
        return rc;
    /* 3.14.2.1 / 3.15.2.1: both may go when the reason is 0 and there are no properties;
     * DISCONNECT may also drop an empty property length, AUTH may not (3.15.2.2.1). */
    bool with_reason = version == 5 && (reason != 0 || psz > 0);
    bool with_props = with_reason && (psz > 0 || type == RQ_AUTH);
    rem = (with_reason ? 1 : 0) + (with_props ? blk : 0);
    if ((rc = begin(out, (uint8_t)(type << 4), rem, &e)) != 0)
        return rc;
    if (with_reason)
        e.w = put_u8(e.w, reason);
    if (with_props)
        e.w = put_props(e.w, props, psz);
    return finish(out, &e);
}

/* ---- Outgoing PUBLISH ---- */

/* The per-subscriber properties plus the shared ones (entries only). */
static int pub_props_size(const struct rq_pubout *po, size_t *size)
{
    size_t n = (po->topic_alias ? 3 : 0) + (po->has_expiry ? 5 : 0) + str_len(po->shared_props);
    for (uint32_t i = 0; i < po->n_sub_ids; i++) {
        if (po->sub_ids[i] == 0 || po->sub_ids[i] > RQ_VARINT_MAX)
            return -EINVAL;
        n += 1 + rq_varint_size(po->sub_ids[i]);
    }
    *size = n;
    return 0;
}

/* Remaining length of the PUBLISH and, for v5, the property entries' size. */
static int pub_rem(int version, const struct rq_pubout *po, size_t *rem, size_t *psz)
{
    size_t n = 2 + str_len(po->topic) + (po->qos ? 2 : 0) + str_len(po->payload);
    *psz = 0;
    if (str_len(po->topic) > RQ_STR_MAX || po->qos > 2)
        return -EINVAL;
    if (version == 5) {
        int rc = pub_props_size(po, psz);
        if (rc)
            return rc;
        n += (*psz > RQ_VARINT_MAX ? 4 : rq_varint_size((uint32_t)*psz)) + *psz;
    }
    *rem = n;
    return 0;
}

/* SIZE_MAX when the PUBLISH cannot be encoded at all (bad topic length, QoS, identifier). */
size_t rq_codec_publish_size(int version, const struct rq_pubout *po)
{
    size_t rem, psz;
    if (pub_rem(version, po, &rem, &psz))
        return SIZE_MAX;
    return 1 + (rem > RQ_VARINT_MAX ? 4 : rq_varint_size((uint32_t)rem)) + rem;
}

/* The small per-subscriber head (fixed header, topic, packet id, alias, expiry, subscription
 * identifiers) goes first; the shared property entries and the payload are then two copies. */
int rq_codec_encode_publish(struct rq_buf *out, int version, const struct rq_pubout *po)
{
    size_t rem, psz;
    struct enc e;
    int rc = pub_rem(version, po, &rem, &psz);
    uint8_t byte0 = (uint8_t)(RQ_PUBLISH << 4 | po->dup << 3 | po->qos << 1 | po->retain);
    if (rc || (rc = begin(out, byte0, rem, &e)) != 0)
        return rc;
    e.w = put_str(e.w, po->topic);
    if (po->qos)
        e.w = put_u16(e.w, po->packet_id);
    if (version == 5) {
        e.w = put_varint(e.w, (uint32_t)psz);
        if (po->topic_alias)
            e.w = put_u16(put_u8(e.w, RQ_PROP_TOPIC_ALIAS), po->topic_alias);
        if (po->has_expiry)
            e.w = put_u32(put_u8(e.w, RQ_PROP_MESSAGE_EXPIRY), po->expiry);
        for (uint32_t i = 0; i < po->n_sub_ids; i++)
            e.w = put_varint(put_u8(e.w, RQ_PROP_SUB_ID), po->sub_ids[i]);
        e.w = put_bytes(e.w, po->shared_props.p, str_len(po->shared_props));
    }
    e.w = put_bytes(e.w, po->payload.p, str_len(po->payload));
    return finish(out, &e);
}
