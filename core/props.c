/* MQTT 5.0 properties (section 2.2.2): one table says, for every property identifier, its
 * value type, where in struct rq_props it lives, in which packets it is allowed (2.2.2.2; the
 * will properties of CONNECT have their own set), whether it may repeat and what values are
 * legal. Decoding, sizing, encoding and the user-property walk are all driven by that table.
 *
 * Not here: packet layout (core/codec.c), and any policy on values (e.g. whether a client may
 * send a subscription identifier in PUBLISH, or a topic alias above the maximum): the broker
 * decides that. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "core/codec.h"
#include "core/codec_int.h"

enum pkind {
    PK_NONE = 0, /* unknown identifier */
    PK_BYTE,
    PK_U16,
    PK_U32,
    PK_VARINT,
    PK_UTF8,
    PK_BIN,
    PK_PAIR, /* user property: UTF-8 string pair, kept in the raw block only */
};

enum prange {
    PR_ANY = 0,
    PR_BOOL,     /* 0 or 1, else MALFORMED */
    PR_NZ_MALF,  /* 0 is MALFORMED (subscription identifier) */
    PR_NZ_PROTO, /* 0 is a PROTOCOL_ERROR (receive maximum, maximum packet size) */
    PR_NZ_ALIAS, /* 0 is TOPIC_ALIAS_INVALID */
    PR_NAME,     /* a topic name: '+' or '#' is a PROTOCOL_ERROR (response topic) */
};

#define IN(t) (1u << (t))
#define WILL IN(RQ_WHERE_WILL)
#define ACKS (IN(RQ_PUBACK) | IN(RQ_PUBREC) | IN(RQ_PUBREL) | IN(RQ_PUBCOMP))
#define ALL_BUT_PINGS                                                                              \
    (WILL | IN(RQ_CONNECT) | IN(RQ_CONNACK) | IN(RQ_PUBLISH) | ACKS | IN(RQ_SUBSCRIBE) |           \
     IN(RQ_SUBACK) | IN(RQ_UNSUBSCRIBE) | IN(RQ_UNSUBACK) | IN(RQ_DISCONNECT) | IN(RQ_AUTH))
#define AT(field) offsetof(struct rq_props, field)

struct prop_rule {
    uint8_t kind;    /* enum pkind */
    uint8_t range;   /* enum prange */
    uint16_t in;     /* IN(packet type) bits where the property is allowed */
    uint16_t repeat; /* IN(packet type) bits where it may appear more than once */
    uint16_t at;     /* offset of the value in struct rq_props */
    const char *bad; /* why, when the value is out of range */
};

#define NRULES (RQ_PROP_SHARED_SUB_AVAIL + 1)

static const struct prop_rule rules[NRULES] = {
    [RQ_PROP_PAYLOAD_FORMAT] = {PK_BYTE, PR_BOOL, IN(RQ_PUBLISH) | WILL, 0, AT(payload_format),
                                "payload format indicator not 0 or 1"},
    [RQ_PROP_MESSAGE_EXPIRY] = {PK_U32, 0, IN(RQ_PUBLISH) | WILL, 0, AT(message_expiry), NULL},
    [RQ_PROP_CONTENT_TYPE] = {PK_UTF8, 0, IN(RQ_PUBLISH) | WILL, 0, AT(content_type), NULL},
    [RQ_PROP_RESPONSE_TOPIC] = {PK_UTF8, PR_NAME, IN(RQ_PUBLISH) | WILL, 0, AT(response_topic),
                                "wildcard in the response topic [MQTT-3.3.2-14]"},
    [RQ_PROP_CORRELATION_DATA] = {PK_BIN, 0, IN(RQ_PUBLISH) | WILL, 0, AT(correlation_data), NULL},
    [RQ_PROP_SUB_ID] = {PK_VARINT, PR_NZ_MALF, IN(RQ_PUBLISH) | IN(RQ_SUBSCRIBE), IN(RQ_PUBLISH),
                        AT(sub_id), "subscription identifier 0"},
    [RQ_PROP_SESSION_EXPIRY] = {PK_U32, 0, IN(RQ_CONNECT) | IN(RQ_CONNACK) | IN(RQ_DISCONNECT), 0,
                                AT(session_expiry), NULL},
    [RQ_PROP_ASSIGNED_CLIENT_ID] = {PK_UTF8, 0, IN(RQ_CONNACK), 0, AT(assigned_client_id), NULL},
    [RQ_PROP_SERVER_KEEP_ALIVE] = {PK_U16, 0, IN(RQ_CONNACK), 0, AT(server_keep_alive), NULL},
    [RQ_PROP_AUTH_METHOD] = {PK_UTF8, 0, IN(RQ_CONNECT) | IN(RQ_CONNACK) | IN(RQ_AUTH), 0,
                             AT(auth_method), NULL},
    [RQ_PROP_AUTH_DATA] = {PK_BIN, 0, IN(RQ_CONNECT) | IN(RQ_CONNACK) | IN(RQ_AUTH), 0,
                           AT(auth_data), NULL},
    [RQ_PROP_REQUEST_PROBLEM_INFO] = {PK_BYTE, PR_BOOL, IN(RQ_CONNECT), 0, AT(request_problem_info),
                                      "request problem information not 0 or 1"},
    [RQ_PROP_WILL_DELAY] = {PK_U32, 0, WILL, 0, AT(will_delay), NULL},
    [RQ_PROP_REQUEST_RESPONSE_INFO] = {PK_BYTE, PR_BOOL, IN(RQ_CONNECT), 0,
                                       AT(request_response_info),
                                       "request response information not 0 or 1"},
    [RQ_PROP_RESPONSE_INFO] = {PK_UTF8, 0, IN(RQ_CONNACK), 0, AT(response_info), NULL},
    [RQ_PROP_SERVER_REFERENCE] = {PK_UTF8, 0, IN(RQ_CONNACK) | IN(RQ_DISCONNECT), 0,
                                  AT(server_reference), NULL},
    [RQ_PROP_REASON_STRING] = {PK_UTF8, 0,
                               IN(RQ_CONNACK) | ACKS | IN(RQ_SUBACK) | IN(RQ_UNSUBACK) |
                                   IN(RQ_DISCONNECT) | IN(RQ_AUTH),
                               0, AT(reason_string), NULL},
    [RQ_PROP_RECEIVE_MAX] = {PK_U16, PR_NZ_PROTO, IN(RQ_CONNECT) | IN(RQ_CONNACK), 0,
                             AT(receive_max), "receive maximum 0"},
    [RQ_PROP_TOPIC_ALIAS_MAX] = {PK_U16, 0, IN(RQ_CONNECT) | IN(RQ_CONNACK), 0, AT(topic_alias_max),
                                 NULL},
    [RQ_PROP_TOPIC_ALIAS] = {PK_U16, PR_NZ_ALIAS, IN(RQ_PUBLISH), 0, AT(topic_alias),
                             "topic alias 0"},
    [RQ_PROP_MAXIMUM_QOS] = {PK_BYTE, PR_BOOL, IN(RQ_CONNACK), 0, AT(maximum_qos),
                             "maximum QoS not 0 or 1"},
    [RQ_PROP_RETAIN_AVAILABLE] = {PK_BYTE, PR_BOOL, IN(RQ_CONNACK), 0, AT(retain_available),
                                  "retain available not 0 or 1"},
    [RQ_PROP_USER_PROPERTY] = {PK_PAIR, 0, ALL_BUT_PINGS, ALL_BUT_PINGS, 0, NULL},
    [RQ_PROP_MAX_PACKET_SIZE] = {PK_U32, PR_NZ_PROTO, IN(RQ_CONNECT) | IN(RQ_CONNACK), 0,
                                 AT(max_packet_size), "maximum packet size 0"},
    [RQ_PROP_WILDCARD_SUB_AVAIL] = {PK_BYTE, PR_BOOL, IN(RQ_CONNACK), 0, AT(wildcard_sub_avail),
                                    "wildcard subscription available not 0 or 1"},
    [RQ_PROP_SUB_ID_AVAIL] = {PK_BYTE, PR_BOOL, IN(RQ_CONNACK), 0, AT(sub_id_avail),
                              "subscription identifiers available not 0 or 1"},
    [RQ_PROP_SHARED_SUB_AVAIL] = {PK_BYTE, PR_BOOL, IN(RQ_CONNACK), 0, AT(shared_sub_avail),
                                  "shared subscription available not 0 or 1"},
};

/* The properties a PUBLISH shares between all its subscribers (the rest is per subscriber). */
#define SHARED_MASK                                                                                \
    (RQ_PROP_BIT(RQ_PROP_PAYLOAD_FORMAT) | RQ_PROP_BIT(RQ_PROP_CONTENT_TYPE) |                     \
     RQ_PROP_BIT(RQ_PROP_RESPONSE_TOPIC) | RQ_PROP_BIT(RQ_PROP_CORRELATION_DATA))

static const struct prop_rule *rule_of(unsigned id)
{
    return id < NRULES && rules[id].kind != PK_NONE ? &rules[id] : NULL;
}

/* ---- Decoding ---- */

/* One value of the given kind: scalars into *num, strings into *s (pairs: key in s[0]). */
static bool read_value(struct rq_rd *r, int kind, uint32_t *num, struct rq_str s[2])
{
    uint8_t b;
    uint16_t h;
    switch (kind) {
    case PK_BYTE:
        if (!rd_u8(r, &b))
            return false;
        *num = b;
        return true;
    case PK_U16:
        if (!rd_u16(r, &h))
            return false;
        *num = h;
        return true;
    case PK_U32: return rd_u32(r, num);
    case PK_VARINT: return rd_varint(r, num);
    case PK_UTF8:
    case PK_BIN: return rd_bin(r, &s[0]);
    case PK_PAIR: return rd_bin(r, &s[0]) && rd_bin(r, &s[1]);
    }
    return false;
}

static int check_value(const struct prop_rule *rule, uint32_t num, const struct rq_str s[2],
                       const char **why)
{
    switch (rule->kind) {
    case PK_UTF8:
        if (!rq_utf8_valid(s[0].p, s[0].len))
            return fail(why, RQ_RC_MALFORMED, "invalid UTF-8 in a string property");
        if (rule->range == PR_NAME &&
            (memchr(s[0].p, '+', s[0].len) || memchr(s[0].p, '#', s[0].len)))
            return fail(why, RQ_RC_PROTOCOL_ERROR, rule->bad);
        return 0;
    case PK_PAIR:
        if (!rq_utf8_valid(s[0].p, s[0].len) || !rq_utf8_valid(s[1].p, s[1].len))
            return fail(why, RQ_RC_MALFORMED, "invalid UTF-8 in a user property");
        return 0;
    }
    switch (rule->range) {
    case PR_BOOL: return num > 1 ? fail(why, RQ_RC_MALFORMED, rule->bad) : 0;
    case PR_NZ_MALF: return num == 0 ? fail(why, RQ_RC_MALFORMED, rule->bad) : 0;
    case PR_NZ_PROTO: return num == 0 ? fail(why, RQ_RC_PROTOCOL_ERROR, rule->bad) : 0;
    case PR_NZ_ALIAS: return num == 0 ? fail(why, RQ_RC_TOPIC_ALIAS_INVALID, rule->bad) : 0;
    }
    return 0;
}

static void store_value(struct rq_props *props, const struct prop_rule *rule, uint32_t num,
                        const struct rq_str s[2])
{
    unsigned char *field = (unsigned char *)props + rule->at;
    switch (rule->kind) {
    case PK_BYTE: *(uint8_t *)field = (uint8_t)num; break;
    case PK_U16: *(uint16_t *)field = (uint16_t)num; break;
    case PK_U32:
    case PK_VARINT: *(uint32_t *)field = num; break;
    case PK_UTF8:
    case PK_BIN: *(struct rq_str *)field = s[0]; break;
    }
}

static int decode_one(struct rq_rd *r, int where, struct rq_props *props, uint32_t *n_sub_ids,
                      const char **why)
{
    uint8_t id;
    uint32_t num = 0;
    struct rq_str s[2] = {{NULL, 0}, {NULL, 0}};

    if (!rd_u8(r, &id))
        return fail(why, RQ_RC_MALFORMED, "truncated property");
    const struct prop_rule *rule = rule_of(id);
    if (!rule || !(rule->in & IN(where)))
        return fail(why, RQ_RC_MALFORMED, "property not allowed in this packet");
    bool again = RQ_PROP_HAS(props, id);
    if (again && !(rule->repeat & IN(where)))
        return fail(why, RQ_RC_PROTOCOL_ERROR, "duplicate property");
    if (!read_value(r, rule->kind, &num, s))
        return fail(why, RQ_RC_MALFORMED, "truncated property");
    int rc = check_value(rule, num, s, why);
    if (rc)
        return rc;
    if (!again)
        store_value(props, rule, num, s); /* a repeated subscription id keeps the first */
    props->present |= RQ_PROP_BIT(id);
    if (id == RQ_PROP_USER_PROPERTY)
        props->user_prop_count++;
    if (id == RQ_PROP_SUB_ID && n_sub_ids)
        (*n_sub_ids)++;
    return 0;
}

int rq_props_decode(struct rq_rd *r, int where, struct rq_props *props, uint32_t *n_sub_ids,
                    const char **why)
{
    uint32_t len;

    memset(props, 0, sizeof(*props));
    if (!rd_varint(r, &len))
        return fail(why, RQ_RC_MALFORMED, "bad property length");
    if (len > rd_left(r))
        return fail(why, RQ_RC_MALFORMED, "property length exceeds the packet");
    struct rq_rd block = {r->p + r->off, len, 0};
    props->raw.p = block.p;
    props->raw.len = len;
    r->off += len;
    while (rd_left(&block) > 0) {
        int rc = decode_one(&block, where, props, n_sub_ids, why);
        if (rc)
            return rc;
    }
    /* MQTT 5.0 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.4: data without a method is a protocol error. */
    if (RQ_PROP_HAS(props, RQ_PROP_AUTH_DATA) && !RQ_PROP_HAS(props, RQ_PROP_AUTH_METHOD))
        return fail(why, RQ_RC_PROTOCOL_ERROR, "authentication data without a method");
    return 0;
}

bool rq_props_next_user(const struct rq_props *props, uint32_t *off, struct rq_str *key,
                        struct rq_str *value)
{
    if (!props->raw.p)
        return false;
    struct rq_rd r = {props->raw.p, props->raw.len, *off};
    while (r.off < r.len) {
        uint8_t id;
        uint32_t num;
        struct rq_str s[2];
        const struct prop_rule *rule;
        if (!rd_u8(&r, &id) || !(rule = rule_of(id)) || !read_value(&r, rule->kind, &num, s))
            break; /* cannot happen on a block that decoded */
        if (id == RQ_PROP_USER_PROPERTY) {
            *key = s[0];
            *value = s[1];
            *off = (uint32_t)r.off;
            return true;
        }
    }
    *off = (uint32_t)r.len;
    return false;
}

/* ---- Encoding ---- */

static size_t value_size(const struct prop_rule *rule, const struct rq_props *props, bool *ok)
{
    const unsigned char *field = (const unsigned char *)props + rule->at;
    switch (rule->kind) {
    case PK_BYTE: return 1;
    case PK_U16: return 2;
    case PK_U32: return 4;
    case PK_VARINT: {
        uint32_t v = *(const uint32_t *)field;
        if (v == 0 || v > RQ_VARINT_MAX)
            *ok = false;
        return rq_varint_size(v);
    }
    case PK_UTF8:
    case PK_BIN: {
        size_t n = str_len(*(const struct rq_str *)field);
        if (n > RQ_STR_MAX)
            *ok = false;
        return 2 + n;
    }
    }
    return 0;
}

/* User properties are never written from `present`: they come pre-encoded in user_props. */
static int measure_mask(const struct rq_props *props, uint64_t mask, size_t *size)
{
    size_t n = 0;
    bool ok = true;

    *size = 0;
    if (!props)
        return 0;
    uint64_t want = props->present & mask & ~RQ_PROP_BIT(RQ_PROP_USER_PROPERTY);
    for (unsigned id = 1; id < NRULES; id++) {
        const struct prop_rule *rule = rule_of(id);
        if (rule && (want & RQ_PROP_BIT(id)))
            n += 1 + value_size(rule, props, &ok);
    }
    *size = n + str_len(props->user_props);
    return ok ? 0 : -EINVAL;
}

static uint8_t *write_value(uint8_t *w, const struct prop_rule *rule, const struct rq_props *props)
{
    const unsigned char *field = (const unsigned char *)props + rule->at;
    switch (rule->kind) {
    case PK_BYTE: return put_u8(w, *(const uint8_t *)field);
    case PK_U16: return put_u16(w, *(const uint16_t *)field);
    case PK_U32: return put_u32(w, *(const uint32_t *)field);
    case PK_VARINT: return put_varint(w, *(const uint32_t *)field);
    case PK_UTF8:
    case PK_BIN: return put_str(w, *(const struct rq_str *)field);
    }
    return w;
}

static uint8_t *write_mask(uint8_t *w, const struct rq_props *props, uint64_t mask)
{
    if (!props)
        return w;
    uint64_t want = props->present & mask & ~RQ_PROP_BIT(RQ_PROP_USER_PROPERTY);
    for (unsigned id = 1; id < NRULES; id++) {
        const struct prop_rule *rule = rule_of(id);
        if (rule && (want & RQ_PROP_BIT(id)))
            w = write_value(put_u8(w, (uint8_t)id), rule, props);
    }
    return put_bytes(w, props->user_props.p, str_len(props->user_props));
}

int rq_props_measure(const struct rq_props *props, size_t *size)
{
    return measure_mask(props, ~0ULL, size);
}

uint8_t *rq_props_write(uint8_t *w, const struct rq_props *props)
{
    return write_mask(w, props, ~0ULL);
}

size_t rq_props_size(const struct rq_props *props)
{
    size_t n;
    (void)rq_props_measure(props, &n); /* the size is right even when a value is not */
    return n;
}

/* Reserves room for n bytes at the end of out; the caller fills exactly n. */
static int reserve(struct rq_buf *out, size_t n, uint8_t **w)
{
    if (rq_buf_reserve(out, n))
        return -ENOMEM;
    *w = out->data + out->len;
    return 0;
}

int rq_props_encode(struct rq_buf *out, const struct rq_props *props)
{
    size_t n;
    uint8_t *w;
    int rc = rq_props_measure(props, &n);
    if (rc)
        return rc;
    if (n > RQ_VARINT_MAX)
        return -EMSGSIZE;
    rc = reserve(out, rq_varint_size((uint32_t)n) + n, &w);
    if (rc)
        return rc;
    w = rq_props_write(put_varint(w, (uint32_t)n), props);
    out->len = (size_t)(w - out->data);
    return 0;
}

int rq_codec_encode_shared_props(struct rq_buf *out, const struct rq_props *props)
{
    size_t n;
    uint8_t *w;
    int rc = measure_mask(props, SHARED_MASK, &n);
    if (rc || n == 0)
        return rc; /* nothing to write: out->data may still be NULL */
    rc = reserve(out, n, &w);
    if (rc)
        return rc;
    w = write_mask(w, props, SHARED_MASK);
    out->len = (size_t)(w - out->data);
    return 0;
}
