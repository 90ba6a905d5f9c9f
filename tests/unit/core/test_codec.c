/* Unit tests for core/codec.c and core/props.c: framing, every packet type round-tripped in
 * 3.1.1 and 5.0, property rules checked against an independent copy of MQTT 5.0 2.2.2.2,
 * UTF-8 against a reference decoder, and malformed input with its exact reason code. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "tests/unit/check.h"

#define S(lit) ((struct rq_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define M (-RQ_RC_MALFORMED)
#define PE (-RQ_RC_PROTOCOL_ERROR)
#define UPV (-RQ_RC_UNSUPPORTED_PROTOCOL_VERSION)
#define TAI (-RQ_RC_TOPIC_ALIAS_INVALID)

static bool str_same(struct rq_str a, struct rq_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool str_eq(struct rq_str s, const char *lit)
{
    return str_same(s, (struct rq_str){(const uint8_t *)lit, (uint32_t)strlen(lit)});
}

/* ---- Packet building and decoding ---- */

static uint8_t g_buf[70000]; /* the last framed packet; decoded strings point here */
static struct rq_packet pk;  /* the last decoded packet */
static const char *why;

static size_t frame_into(uint8_t *dst, uint8_t b0, const uint8_t *body, size_t n)
{
    dst[0] = b0;
    size_t h = 1 + rq_varint_encode(dst + 1, (uint32_t)n);
    if (n)
        memmove(dst + h, body, n);
    return h + n;
}

/* Frames p[0..n) (which must be exactly one packet) and decodes it. */
static int decode(const uint8_t *p, size_t n, int v)
{
    size_t hl = 0;
    long t = rq_codec_frame(p, n, UINT32_MAX, &hl, &why);
    CHECK_EQ(t, (long)n);
    why = NULL;
    int rc = rq_codec_decode(p, n, v, &pk, &why);
    if (rc)
        CHECK(why != NULL);
    return rc;
}

static int decode_body(int v, uint8_t b0, const uint8_t *body, size_t n)
{
    return decode(g_buf, frame_into(g_buf, b0, body, n), v);
}

#define BODY(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
#define DEC(v, b0, ...) decode_body(v, b0, BODY(__VA_ARGS__))
#define MQTT 0, 4, 'M', 'Q', 'T', 'T'

/* Encoded user property entries from key/value pairs. */
static struct rq_str user_blob(uint8_t *dst, const char *const *kv, size_t pairs)
{
    size_t n = 0;
    for (size_t i = 0; i < 2 * pairs; i++) {
        size_t l = strlen(kv[i]);
        if (i % 2 == 0)
            dst[n++] = RQ_PROP_USER_PROPERTY;
        dst[n++] = (uint8_t)(l >> 8);
        dst[n++] = (uint8_t)l;
        memcpy(dst + n, kv[i], l);
        n += l;
    }
    return (struct rq_str){dst, (uint32_t)n};
}

static void check_users(const struct rq_props *w, const struct rq_props *g)
{
    struct rq_props blob = {0};
    struct rq_str k1, v1, k2, v2;
    uint32_t o1 = 0, o2 = 0, n = 0;

    blob.raw = w->user_props;
    while (rq_props_next_user(&blob, &o1, &k1, &v1)) {
        CHECK(rq_props_next_user(g, &o2, &k2, &v2));
        CHECK(str_same(k1, k2));
        CHECK(str_same(v1, v2));
        n++;
    }
    CHECK(!rq_props_next_user(g, &o2, &k2, &v2));
    CHECK_EQ(g->user_prop_count, n);
}

/* Every value field of struct rq_props, for field-by-field comparison. */
/* clang-format off */
#define SCALARS(X)                                                                                 \
    X(payload_format) X(message_expiry) X(sub_id) X(session_expiry) X(server_keep_alive)           \
    X(request_problem_info) X(will_delay) X(request_response_info) X(receive_max)                  \
    X(topic_alias_max) X(topic_alias) X(maximum_qos) X(retain_available) X(max_packet_size)        \
    X(wildcard_sub_avail) X(sub_id_avail) X(shared_sub_avail)
#define STRINGS(X)                                                                                 \
    X(content_type) X(response_topic) X(correlation_data) X(assigned_client_id) X(auth_method)     \
    X(auth_data) X(response_info) X(server_reference) X(reason_string)
/* clang-format on */
#define CHECK_SCALAR(f) CHECK_EQ(g->f, w->f);
#define CHECK_STRING(f) CHECK(str_same(g->f, w->f));

static void check_props(const struct rq_props *w, const struct rq_props *g)
{
    uint64_t want = w->present | (w->user_props.len ? RQ_PROP_BIT(RQ_PROP_USER_PROPERTY) : 0);
    CHECK_EQ(g->present, want);
    SCALARS(CHECK_SCALAR)
    STRINGS(CHECK_STRING)
    check_users(w, g);
}

#define SET(pr, id, field, val)                                                                    \
    do {                                                                                           \
        (pr)->present |= RQ_PROP_BIT(id);                                                          \
        (pr)->field = (val);                                                                       \
    } while (0)

/* ---- Variable byte integers, framing ---- */

static void test_varint(void)
{
    static const uint32_t vals[] = {0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455};
    static const size_t sizes[] = {1, 1, 1, 2, 2, 3, 3, 4, 4};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t b[8] = {0x30};
        size_t hl;
        CHECK_EQ(rq_varint_size(vals[i]), sizes[i]);
        CHECK_EQ(rq_varint_encode(b + 1, vals[i]), sizes[i]);
        /* the frame reader is the varint decoder */
        CHECK_EQ(rq_codec_frame(b, 1 + sizes[i], UINT32_MAX, &hl, &why),
                 (long)(1 + sizes[i] + vals[i]));
        CHECK_EQ(hl, 1 + sizes[i]);
    }
}

static long frame(const uint8_t *p, size_t n, uint32_t max, size_t *hl)
{
    why = NULL;
    long rc = rq_codec_frame(p, n, max, hl, &why);
    if (rc < 0 && rc != RQ_INCOMPLETE)
        CHECK(why != NULL);
    return rc;
}

static void test_frame(void)
{
    size_t hl = 0;
    CHECK_EQ(frame((const uint8_t *)"", 0, 100, &hl), RQ_INCOMPLETE);
    CHECK_EQ(frame(BODY(0x30), 100, &hl), RQ_INCOMPLETE);
    CHECK_EQ(frame(BODY(0xC0, 0x00), 100, &hl), 2);
    CHECK_EQ(hl, 2);
    /* only the fixed header is needed, not the packet */
    CHECK_EQ(frame(BODY(0x30, 0x7F), 1000, &hl), 129);
    CHECK_EQ(frame(BODY(0x30, 0x80), 1000, &hl), RQ_INCOMPLETE);
    CHECK_EQ(frame(BODY(0x30, 0x80, 0x01), 1000, &hl), 131);
    CHECK_EQ(hl, 3);
    CHECK_EQ(frame(BODY(0x30, 0xFF, 0xFF, 0xFF), UINT32_MAX, &hl), RQ_INCOMPLETE);
    CHECK_EQ(frame(BODY(0x30, 0xFF, 0xFF, 0xFF, 0x7F), UINT32_MAX, &hl), 268435460);
    CHECK_EQ(hl, 5);
    /* a fifth remaining-length byte: malformed as soon as the fourth says "more" */
    CHECK_EQ(frame(BODY(0x30, 0xFF, 0xFF, 0xFF, 0xFF), UINT32_MAX, &hl), M);
    CHECK_EQ(frame(BODY(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), UINT32_MAX, &hl), M);
    /* non-minimal encodings [MQTT-1.5.5-1] */
    CHECK_EQ(frame(BODY(0x30, 0x80, 0x00), 1000, &hl), M);
    CHECK_EQ(frame(BODY(0x30, 0xFF, 0x80, 0x00), 100000, &hl), M);
    /* maximum packet size, decided from the header alone */
    CHECK_EQ(frame(BODY(0x30, 0x05), 7, &hl), 7);
    CHECK_EQ(frame(BODY(0x30, 0x05), 6, &hl), -RQ_RC_PACKET_TOO_LARGE);
    CHECK_EQ(frame(BODY(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 1u << 20, &hl), -RQ_RC_PACKET_TOO_LARGE);
    CHECK_EQ(frame(BODY(0x30, 0x80, 0x80, 0x01), 16388, &hl), 16388);
    CHECK_EQ(frame(BODY(0x30, 0x80, 0x80, 0x01), 16387, &hl), -RQ_RC_PACKET_TOO_LARGE);

    /* decode re-checks the header against the length it is given */
    static const uint8_t ping[] = {0xC0, 0x00, 0x00};
    CHECK_EQ(rq_codec_decode(ping, 1, 4, &pk, &why), M);
    CHECK_EQ(rq_codec_decode(ping, 3, 4, &pk, &why), M);
    CHECK_EQ(rq_codec_decode(ping, 2, 4, &pk, &why), 0);
    static const uint8_t pub[] = {0x30, 0x04, 0x00, 0x01, 't'};
    CHECK_EQ(rq_codec_decode(pub, sizeof(pub), 4, &pk, &why), M);
    static const uint8_t five[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    CHECK_EQ(rq_codec_decode(five, sizeof(five), 4, &pk, &why), M);
}

/* ---- UTF-8 ---- */

/* Reference: decode code points arithmetically, then apply the rules. */
static bool ref_utf8(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t c = p[i], min;
        size_t k;
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            k = 1, c &= 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            k = 2, c &= 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            k = 3, c &= 0x07, min = 0x10000;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
            c = c << 6 | (p[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static void test_utf8(void)
{
    CHECK(rq_utf8_valid((const uint8_t *)"", 0));
    CHECK(rq_utf8_valid(BODY('a', '/', 'b')));
    CHECK(rq_utf8_valid(BODY(0xC3, 0xA9)));             /* U+00E9 */
    CHECK(rq_utf8_valid(BODY(0xEF, 0xBF, 0xBF)));       /* U+FFFF: allowed */
    CHECK(rq_utf8_valid(BODY(0xF4, 0x8F, 0xBF, 0xBF))); /* U+10FFFF */
    CHECK(!rq_utf8_valid(BODY(0x00)));
    CHECK(!rq_utf8_valid(BODY(0xC0, 0x80)));             /* overlong U+0000 */
    CHECK(!rq_utf8_valid(BODY(0xE0, 0x80, 0xAF)));       /* overlong '/' */
    CHECK(!rq_utf8_valid(BODY(0xF0, 0x80, 0x80, 0xAF))); /* overlong '/' */
    CHECK(!rq_utf8_valid(BODY(0xED, 0xA0, 0x80)));       /* U+D800 */
    CHECK(!rq_utf8_valid(BODY(0xED, 0xBF, 0xBF)));       /* U+DFFF */
    CHECK(!rq_utf8_valid(BODY(0xF4, 0x90, 0x80, 0x80))); /* U+110000 */
    CHECK(!rq_utf8_valid(BODY(0xF8, 0x88, 0x80, 0x80, 0x80)));
    CHECK(!rq_utf8_valid(BODY(0x80)));
    CHECK(!rq_utf8_valid(BODY('a', 0xE2, 0x82)));

    /* every string of 1, 2 and 3 bytes against the reference */
    int mismatches = 0;
    for (uint32_t x = 0; x < (1u << 24); x++) {
        uint8_t b[3] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16)};
        if (x < 256 && rq_utf8_valid(b, 1) != ref_utf8(b, 1))
            mismatches++;
        if (x < 65536 && rq_utf8_valid(b, 2) != ref_utf8(b, 2))
            mismatches++;
        if (rq_utf8_valid(b, 3) != ref_utf8(b, 3))
            mismatches++;
    }
    /* four-byte forms: every first two bytes, edge values for the rest */
    static const uint8_t edge[] = {0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (uint32_t x = 0; x < 65536; x++)
        for (size_t i = 0; i < sizeof(edge); i++)
            for (size_t j = 0; j < sizeof(edge); j++) {
                uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), edge[i], edge[j]};
                if (rq_utf8_valid(b, 4) != ref_utf8(b, 4))
                    mismatches++;
            }
    /* longer strings exercise the 8-byte ASCII path at every alignment */
    uint32_t seed = 12345;
    static const uint8_t pool[] = {'a',  'b',  0,    0x7F, 0x80, 0xC3, 0xA9, 0xE2, 0x82,
                                   0xAC, 0xED, 0xF0, 0x9F, 0x98, 0x80, 0xF4, 0x90};
    for (int round = 0; round < 200000; round++) {
        uint8_t b[40];
        size_t n = (size_t)(round % 40);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245 + 12345;
            b[i] = (seed >> 16) % 4 ? 'x' : pool[(seed >> 8) % sizeof(pool)];
        }
        if (rq_utf8_valid(b, n) != ref_utf8(b, n))
            mismatches++;
    }
    CHECK_EQ(mismatches, 0);
}

/* ---- Round trips ---- */

static struct rq_buf out;

static int encoded_decode(int v)
{
    return decode(out.data, out.len, v);
}

static void test_connect(void)
{
    static const uint8_t pw[] = {'p', 0, 'w'};
    static const uint8_t corr[] = {1, 2, 0, 3};
    static const char *const users[] = {"k1", "v1", "k2", ""};
    uint8_t ub[64], wb[64];

    for (int v = 3; v <= 5; v++) {
        struct rq_connect c = {.version = (uint8_t)v,
                               .clean_start = true,
                               .keepalive = 30,
                               .client_id = S("client-1"),
                               .will = true,
                               .will_qos = 2,
                               .will_retain = true,
                               .will_topic = S("will/t"),
                               .will_payload = {pw, sizeof(pw)},
                               .has_username = true,
                               .has_password = true,
                               .username = S("user"),
                               .password = {pw, sizeof(pw)}};
        if (v == 5) {
            SET(&c.props, RQ_PROP_SESSION_EXPIRY, session_expiry, 3600);
            SET(&c.props, RQ_PROP_RECEIVE_MAX, receive_max, 10);
            SET(&c.props, RQ_PROP_MAX_PACKET_SIZE, max_packet_size, 65536);
            SET(&c.props, RQ_PROP_TOPIC_ALIAS_MAX, topic_alias_max, 5);
            SET(&c.props, RQ_PROP_REQUEST_PROBLEM_INFO, request_problem_info, 0);
            SET(&c.props, RQ_PROP_REQUEST_RESPONSE_INFO, request_response_info, 1);
            SET(&c.props, RQ_PROP_AUTH_METHOD, auth_method, S("SCRAM-SHA-1"));
            SET(&c.props, RQ_PROP_AUTH_DATA, auth_data, ((struct rq_str){corr, sizeof(corr)}));
            c.props.user_props = user_blob(ub, users, 2);
            SET(&c.will_props, RQ_PROP_WILL_DELAY, will_delay, 5);
            SET(&c.will_props, RQ_PROP_PAYLOAD_FORMAT, payload_format, 1);
            SET(&c.will_props, RQ_PROP_MESSAGE_EXPIRY, message_expiry, 60);
            SET(&c.will_props, RQ_PROP_CONTENT_TYPE, content_type, S("text/plain"));
            SET(&c.will_props, RQ_PROP_RESPONSE_TOPIC, response_topic, S("resp/t"));
            SET(&c.will_props, RQ_PROP_CORRELATION_DATA, correlation_data,
                ((struct rq_str){corr, sizeof(corr)}));
            c.will_props.user_props = user_blob(wb, users, 1);
        }
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_connect(&out, &c), 0);
        CHECK_EQ(encoded_decode(0), 0);
        const struct rq_connect *g = &pk.u.connect;
        CHECK_EQ(pk.type, RQ_CONNECT);
        CHECK_EQ(g->version, v);
        CHECK(g->clean_start && g->will && g->will_retain && g->has_username && g->has_password);
        CHECK_EQ(g->will_qos, 2);
        CHECK_EQ(g->keepalive, 30);
        CHECK(str_eq(g->client_id, "client-1"));
        CHECK(str_eq(g->will_topic, "will/t"));
        CHECK(str_same(g->will_payload, c.will_payload));
        CHECK(str_eq(g->username, "user"));
        CHECK(str_same(g->password, c.password));
        check_props(&c.props, &g->props);
        check_props(&c.will_props, &g->will_props);
        if (v == 3)
            CHECK(memcmp(out.data + 2, "\0\6MQIsdp\3", 9) == 0);
    }

    /* minimal: empty client id, no will, no credentials; byte-exact for 3.1.1 */
    struct rq_connect c = {.version = 4, .clean_start = true, .keepalive = 60};
    c.client_id = S("c");
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_connect(&out, &c), 0);
    static const uint8_t want[] = {0x10, 13, MQTT, 4, 2, 0, 60, 0, 1, 'c'};
    CHECK_EQ(out.len, sizeof(want));
    CHECK(memcmp(out.data, want, sizeof(want)) == 0);
    c.version = 5;
    c.client_id = S("");
    c.clean_start = false;
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_connect(&out, &c), 0);
    CHECK_EQ(encoded_decode(0), 0);
    CHECK(pk.u.connect.client_id.len == 0 && !pk.u.connect.clean_start);
    CHECK(!pk.u.connect.will && !pk.u.connect.has_username && pk.u.connect.props.present == 0);

    /* version is reported even when the level is refused */
    CHECK_EQ(DEC(4, 0x10, MQTT, 6, 2, 0, 60, 0, 1, 'c'), UPV);
    CHECK_EQ(pk.u.connect.version, 6);
}

static void test_connack(void)
{
    static const char *const users[] = {"a", "b"};
    uint8_t ub[16];
    for (int v = 4; v <= 5; v++) {
        struct rq_connack c = {.session_present = true, .rc = v == 5 ? 0x86 : 5};
        if (v == 5) {
            struct rq_props *p = &c.props;
            SET(p, RQ_PROP_SESSION_EXPIRY, session_expiry, 100);
            SET(p, RQ_PROP_ASSIGNED_CLIENT_ID, assigned_client_id, S("auto-1"));
            SET(p, RQ_PROP_SERVER_KEEP_ALIVE, server_keep_alive, 20);
            SET(p, RQ_PROP_AUTH_METHOD, auth_method, S("m"));
            SET(p, RQ_PROP_AUTH_DATA, auth_data, S("d"));
            SET(p, RQ_PROP_RESPONSE_INFO, response_info, S("ri"));
            SET(p, RQ_PROP_SERVER_REFERENCE, server_reference, S("other:1883"));
            SET(p, RQ_PROP_REASON_STRING, reason_string, S("bad password"));
            SET(p, RQ_PROP_RECEIVE_MAX, receive_max, 65535);
            SET(p, RQ_PROP_TOPIC_ALIAS_MAX, topic_alias_max, 0);
            SET(p, RQ_PROP_MAXIMUM_QOS, maximum_qos, 1);
            SET(p, RQ_PROP_RETAIN_AVAILABLE, retain_available, 0);
            SET(p, RQ_PROP_MAX_PACKET_SIZE, max_packet_size, 268435460);
            SET(p, RQ_PROP_WILDCARD_SUB_AVAIL, wildcard_sub_avail, 1);
            SET(p, RQ_PROP_SUB_ID_AVAIL, sub_id_avail, 0);
            SET(p, RQ_PROP_SHARED_SUB_AVAIL, shared_sub_avail, 1);
            p->user_props = user_blob(ub, users, 1);
        }
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_connack(&out, v, &c), 0);
        CHECK_EQ(out.len, v == 5 ? out.len : 4);
        CHECK_EQ(encoded_decode(v), 0);
        CHECK_EQ(pk.type, RQ_CONNACK);
        CHECK(pk.u.connack.session_present);
        CHECK_EQ(pk.u.connack.rc, c.rc);
        check_props(&c.props, &pk.u.connack.props);
    }
    /* a v5 CONNACK without a property length is read as having none */
    CHECK_EQ(DEC(5, 0x20, 0, 0), 0);
}

static void test_publish(void)
{
    static const char *const users[] = {"u", "1", "u", "2"};
    static const uint32_t ids[] = {1, 300, 268435455};
    uint8_t ub[32];
    struct rq_buf shared = {0};
    struct rq_props mp = {0};

    SET(&mp, RQ_PROP_PAYLOAD_FORMAT, payload_format, 1);
    SET(&mp, RQ_PROP_CONTENT_TYPE, content_type, S("text/plain"));
    SET(&mp, RQ_PROP_RESPONSE_TOPIC, response_topic, S("r/t"));
    SET(&mp, RQ_PROP_CORRELATION_DATA, correlation_data, S("xyz"));
    SET(&mp, RQ_PROP_MESSAGE_EXPIRY, message_expiry, 999); /* per subscriber: not shared */
    mp.user_props = user_blob(ub, users, 2);
    CHECK_EQ(rq_codec_encode_shared_props(&shared, &mp), 0);
    /* nothing shared, into a buffer never allocated (UBSan found a NULL + 0 here) */
    struct rq_buf none = {0};
    struct rq_props empty = {0};
    SET(&empty, RQ_PROP_TOPIC_ALIAS, topic_alias, 1);
    CHECK_EQ(rq_codec_encode_shared_props(&none, &empty), 0);
    CHECK(none.len == 0 && none.data == NULL);

    for (int v = 4; v <= 5; v++)
        for (int qos = 0; qos <= 2; qos++) {
            struct rq_pubout po = {.qos = (uint8_t)qos,
                                   .dup = qos > 0,
                                   .retain = qos != 1,
                                   .topic = S("a/b/c"),
                                   .packet_id = qos ? 0x1234 : 0,
                                   .topic_alias = 7,
                                   .has_expiry = true,
                                   .expiry = 100,
                                   .sub_ids = ids,
                                   .n_sub_ids = 3,
                                   .payload = S("hello\0world"),
                                   .shared_props = {shared.data, (uint32_t)shared.len}};
            rq_buf_reset(&out);
            CHECK_EQ(rq_codec_encode_publish(&out, v, &po), 0);
            CHECK_EQ(rq_codec_publish_size(v, &po), out.len);
            /* shared props then payload are the tail, copied as they are */
            size_t tail = (v == 5 ? shared.len : 0) + po.payload.len;
            CHECK(memcmp(out.data + out.len - tail, v == 5 ? shared.data : po.payload.p,
                         v == 5 ? shared.len : po.payload.len) == 0);
            CHECK_EQ(encoded_decode(v), 0);
            const struct rq_publish *g = &pk.u.publish;
            CHECK_EQ(pk.type, RQ_PUBLISH);
            CHECK_EQ(g->qos, qos);
            CHECK_EQ(g->dup, qos > 0);
            CHECK_EQ(g->retain, qos != 1);
            CHECK(str_eq(g->topic, "a/b/c"));
            CHECK_EQ(g->packet_id, po.packet_id);
            CHECK(str_same(g->payload, po.payload));
            if (v == 4) {
                CHECK_EQ(g->props.present, 0);
                continue;
            }
            struct rq_props want = mp;
            want.present &= ~RQ_PROP_BIT(RQ_PROP_MESSAGE_EXPIRY);
            SET(&want, RQ_PROP_MESSAGE_EXPIRY, message_expiry, 100);
            SET(&want, RQ_PROP_TOPIC_ALIAS, topic_alias, 7);
            SET(&want, RQ_PROP_SUB_ID, sub_id, 1);
            check_props(&want, &g->props);
            CHECK_EQ(g->n_sub_ids, 3);
        }

    /* v5: empty topic with an alias, empty payload, no properties at all */
    struct rq_pubout po = {.topic = S(""), .topic_alias = 3};
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_publish(&out, 5, &po), 0);
    static const uint8_t want1[] = {0x30, 6, 0, 0, 3, 0x23, 0, 3};
    CHECK(out.len == sizeof(want1) && memcmp(out.data, want1, sizeof(want1)) == 0);
    CHECK_EQ(encoded_decode(5), 0);
    CHECK(pk.u.publish.topic.len == 0 && pk.u.publish.payload.len == 0);
    po = (struct rq_pubout){.topic = S("t")};
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_publish(&out, 5, &po), 0);
    CHECK_EQ(out.len, 6); /* 30 04 00 01 t 00 */
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_publish(&out, 4, &po), 0);
    CHECK_EQ(out.len, 5);

    /* invalid outgoing PUBLISH: refused, buffer untouched */
    static const uint32_t zero[] = {0};
    po.sub_ids = zero;
    po.n_sub_ids = 1;
    CHECK_EQ(rq_codec_encode_publish(&out, 5, &po), -EINVAL);
    CHECK_EQ(rq_codec_publish_size(5, &po), SIZE_MAX);
    CHECK_EQ(out.len, 5);
    po.n_sub_ids = 0;
    po.qos = 3;
    CHECK_EQ(rq_codec_encode_publish(&out, 4, &po), -EINVAL);
    CHECK_EQ(out.len, 5);
    po.qos = 0; /* over the largest remaining length: sized, refused before reading payload */
    po.payload = (struct rq_str){out.data, 268435453};
    CHECK_EQ(rq_codec_publish_size(4, &po), 1 + 4 + 268435456);
    CHECK_EQ(rq_codec_encode_publish(&out, 4, &po), -EMSGSIZE);
    CHECK_EQ(out.len, 5);
    rq_buf_free(&shared);
}

static void test_acks(void)
{
    static const uint8_t types[] = {RQ_PUBACK, RQ_PUBREC, RQ_PUBREL, RQ_PUBCOMP};
    for (size_t i = 0; i < 4; i++) {
        int t = types[i];
        uint8_t b0 = (uint8_t)(t << 4 | (t == RQ_PUBREL ? 2 : 0));
        struct rq_ack a = {.packet_id = 77};
        for (int v = 4; v <= 5; v++) {
            rq_buf_reset(&out);
            CHECK_EQ(rq_codec_encode_ack(&out, v, t, &a), 0);
            uint8_t want[] = {b0, 2, 0, 77};
            CHECK(out.len == 4 && memcmp(out.data, want, 4) == 0);
            CHECK_EQ(encoded_decode(v), 0);
            CHECK(pk.type == t && pk.u.ack.packet_id == 77 && pk.u.ack.reason == 0);
        }
        /* a reason code this type defines: PUBREL/PUBCOMP know only 0x00 and 0x92 */
        uint8_t rc = t == RQ_PUBREL || t == RQ_PUBCOMP ? 0x92 : 0x10;
        a.reason = rc;
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_ack(&out, 4, t, &a), 0); /* 3.1.1: no reason on the wire */
        CHECK_EQ(out.len, 4);
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_ack(&out, 5, t, &a), 0);
        CHECK_EQ(out.len, 5);
        CHECK_EQ(encoded_decode(5), 0);
        CHECK_EQ(pk.u.ack.reason, rc);
        SET(&a.props, RQ_PROP_REASON_STRING, reason_string, S("no such id"));
        a.props.user_props = S("\x26\0\1k\0\1v");
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_ack(&out, 5, t, &a), 0);
        CHECK_EQ(encoded_decode(5), 0);
        CHECK_EQ(pk.u.ack.reason, rc);
        check_props(&a.props, &pk.u.ack.props);
        a.reason = 0; /* reason 0 with properties keeps the reason byte */
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_ack(&out, 5, t, &a), 0);
        CHECK_EQ(out.data[4], 0);
        CHECK_EQ(encoded_decode(5), 0);
        check_props(&a.props, &pk.u.ack.props);
    }
}

static void test_subscribe(void)
{
    struct rq_str f[3] = {S("a/b"), S("c/#"), S("$share/g/+/x")};
    uint8_t opts[3] = {0x00, 0x2D, 0x1A}; /* 0; QoS1|NL|RAP|RH2; QoS2|RAP|RH1 */
    for (int v = 4; v <= 5; v++) {
        struct rq_props p = {0};
        if (v == 5) {
            SET(&p, RQ_PROP_SUB_ID, sub_id, 268435455);
            p.user_props = S("\x26\0\1k\0\0");
        }
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_subscribe(&out, v, 9, &p, f, opts, 3), 0);
        CHECK_EQ(out.data[0], 0x82);
        CHECK_EQ(encoded_decode(v), 0);
        CHECK(pk.type == RQ_SUBSCRIBE && pk.u.sub.packet_id == 9 && pk.u.sub.count == 3);
        check_props(&p, &pk.u.sub.props);
        uint32_t off = 0;
        struct rq_str g;
        uint8_t o;
        for (int i = 0; i < 3; i++) {
            CHECK(rq_codec_next_filter(&pk.u.sub, true, &off, &g, &o));
            CHECK(str_same(g, f[i]));
            CHECK_EQ(o, v == 5 ? opts[i] : RQ_SUBOPT_QOS(opts[i]));
        }
        CHECK(!rq_codec_next_filter(&pk.u.sub, true, &off, &g, &o));

        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_unsubscribe(&out, v, 10, v == 5 ? &p : NULL, f, 3), 0);
        CHECK_EQ(out.data[0], 0xA2);
        if (v == 5) /* a subscription identifier is not allowed in UNSUBSCRIBE */
            CHECK_EQ(encoded_decode(v), M);
        p.present = 0;
        p.sub_id = 0;
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_unsubscribe(&out, v, 10, &p, f, 3), 0);
        CHECK_EQ(encoded_decode(v), 0);
        CHECK(pk.type == RQ_UNSUBSCRIBE && pk.u.sub.packet_id == 10 && pk.u.sub.count == 3);
        check_props(&p, &pk.u.sub.props);
        off = 0;
        for (int i = 0; i < 3; i++) {
            CHECK(rq_codec_next_filter(&pk.u.sub, false, &off, &g, NULL));
            CHECK(str_same(g, f[i]));
        }
        CHECK(!rq_codec_next_filter(&pk.u.sub, false, &off, &g, NULL));
    }
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_subscribe(&out, 4, 1, NULL, f, NULL, 1), 0);
    static const uint8_t want[] = {0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 0};
    CHECK(out.len == sizeof(want) && memcmp(out.data, want, sizeof(want)) == 0);
}

static void test_suback(void)
{
    static const uint8_t codes4[] = {0, 1, 2, 0x80};
    static const uint8_t codes5[] = {0, 0x11, 0x87};
    for (int v = 4; v <= 5; v++) {
        struct rq_props p = {0};
        if (v == 5)
            SET(&p, RQ_PROP_REASON_STRING, reason_string, S("partly"));
        const uint8_t *codes = v == 5 ? codes5 : codes4;
        size_t n = v == 5 ? 3 : 4;
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_suback(&out, v, RQ_SUBACK, 5, &p, codes, n), 0);
        CHECK_EQ(encoded_decode(v), 0);
        CHECK(pk.type == RQ_SUBACK && pk.u.suback.packet_id == 5);
        CHECK(pk.u.suback.codes.len == n && memcmp(pk.u.suback.codes.p, codes, n) == 0);
        check_props(&p, &pk.u.suback.props);
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_suback(&out, v, RQ_UNSUBACK, 6, &p, codes, n), 0);
        CHECK_EQ(out.data[0], 0xB0);
        CHECK_EQ(encoded_decode(v), 0);
        CHECK(pk.type == RQ_UNSUBACK && pk.u.suback.packet_id == 6);
        CHECK_EQ(pk.u.suback.codes.len, v == 5 ? n : 0);
        check_props(&p, &pk.u.suback.props);
    }
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_suback(&out, 4, RQ_UNSUBACK, 5, NULL, codes4, 4), 0);
    CHECK(out.len == 4 && memcmp(out.data, "\xB0\x02\x00\x05", 4) == 0);
}

static void test_simple_and_reason(void)
{
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_simple(&out, RQ_PINGREQ), 0);
    CHECK_EQ(rq_codec_encode_simple(&out, RQ_PINGRESP), 0);
    CHECK(out.len == 4 && memcmp(out.data, "\xC0\x00\xD0\x00", 4) == 0);
    CHECK_EQ(decode(out.data, 2, 4), 0);
    CHECK_EQ(pk.type, RQ_PINGREQ);
    CHECK_EQ(decode(out.data + 2, 2, 5), 0);
    CHECK_EQ(pk.type, RQ_PINGRESP);

    struct rq_props p = {0};
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_reason(&out, 4, RQ_DISCONNECT, 0x8E, &p), 0); /* 3.1.1: 2 bytes */
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_DISCONNECT, 0, &p), 0);
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_AUTH, 0, NULL), 0);
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_DISCONNECT, 0x8E, NULL), 0);
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_AUTH, 0x19, &p), 0);
    static const uint8_t want[] = {0xE0, 0, 0xE0, 0, 0xF0, 0, 0xE0, 1, 0x8E, 0xF0, 2, 0x19, 0};
    CHECK(out.len == sizeof(want) && memcmp(out.data, want, sizeof(want)) == 0);
    CHECK_EQ(decode(out.data + 6, 3, 5), 0);
    CHECK(pk.type == RQ_DISCONNECT && pk.u.reason.reason == 0x8E);
    CHECK_EQ(decode(out.data + 9, 4, 5), 0);
    CHECK(pk.type == RQ_AUTH && pk.u.reason.reason == 0x19);
    CHECK_EQ(decode(out.data + 4, 2, 5), 0);
    CHECK(pk.type == RQ_AUTH && pk.u.reason.reason == 0);

    SET(&p, RQ_PROP_SESSION_EXPIRY, session_expiry, 0);
    SET(&p, RQ_PROP_REASON_STRING, reason_string, S("bye"));
    SET(&p, RQ_PROP_SERVER_REFERENCE, server_reference, S("elsewhere"));
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_DISCONNECT, 0, &p), 0);
    CHECK_EQ(encoded_decode(5), 0);
    CHECK(pk.type == RQ_DISCONNECT && pk.u.reason.reason == 0);
    check_props(&p, &pk.u.reason.props);
    memset(&p, 0, sizeof(p));
    SET(&p, RQ_PROP_AUTH_METHOD, auth_method, S("SCRAM"));
    SET(&p, RQ_PROP_AUTH_DATA, auth_data, S("\x00\x01"));
    SET(&p, RQ_PROP_REASON_STRING, reason_string, S("go on"));
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_AUTH, 0x18, &p), 0);
    CHECK_EQ(encoded_decode(5), 0);
    CHECK(pk.type == RQ_AUTH && pk.u.reason.reason == 0x18);
    check_props(&p, &pk.u.reason.props);
}

static void test_props_api(void)
{
    struct rq_props p = {0};
    uint8_t ub[64];
    static const char *const users[] = {"a", "1", "b", "2", "a", "3"};
    SET(&p, RQ_PROP_MESSAGE_EXPIRY, message_expiry, 5);
    SET(&p, RQ_PROP_TOPIC_ALIAS, topic_alias, 2);
    p.user_props = user_blob(ub, users, 3);
    CHECK_EQ(rq_props_size(&p), 5 + 3 + 3 * 7);
    rq_buf_reset(&out);
    CHECK_EQ(rq_props_encode(&out, &p), 0);
    CHECK_EQ(out.len, 1 + 5 + 3 + 3 * 7);
    CHECK_EQ(out.data[0], 29);
    CHECK_EQ(out.data[1], RQ_PROP_MESSAGE_EXPIRY); /* ascending identifiers, users last */

    /* the walk skips every other kind of property */
    CHECK_EQ(DEC(5, 0x30, 0, 1, 't', 19, 0x26, 0, 1, 'k', 0, 1, 'v', 0x0B, 0x81, 0x01, 0x23, 0, 9,
                 0x26, 0, 0, 0, 1, 'w'),
             0);
    uint32_t off = 0;
    struct rq_str k, v;
    CHECK(rq_props_next_user(&pk.u.publish.props, &off, &k, &v));
    CHECK(str_eq(k, "k") && str_eq(v, "v"));
    CHECK(rq_props_next_user(&pk.u.publish.props, &off, &k, &v));
    CHECK(str_eq(k, "") && str_eq(v, "w"));
    CHECK(!rq_props_next_user(&pk.u.publish.props, &off, &k, &v));
    CHECK_EQ(pk.u.publish.props.sub_id, 129);
    CHECK_EQ(pk.u.publish.props.user_prop_count, 2);
    /* repeated subscription identifiers in PUBLISH: the first is kept, all are counted */
    CHECK_EQ(DEC(5, 0x30, 0, 1, 't', 6, 0x0B, 5, 0x0B, 6, 0x0B, 7), 0);
    CHECK(pk.u.publish.props.sub_id == 5 && pk.u.publish.n_sub_ids == 3);

    /* encoding refuses what it cannot represent */
    memset(&p, 0, sizeof(p));
    SET(&p, RQ_PROP_SUB_ID, sub_id, 0);
    size_t len = out.len;
    CHECK_EQ(rq_props_encode(&out, &p), -EINVAL);
    CHECK_EQ(out.len, len);
    static uint8_t big[70000];
    SET(&p, RQ_PROP_SUB_ID, sub_id, 1);
    SET(&p, RQ_PROP_REASON_STRING, reason_string, ((struct rq_str){big, 65536}));
    CHECK_EQ(rq_props_encode(&out, &p), -EINVAL);
    CHECK_EQ(rq_codec_encode_reason(&out, 5, RQ_DISCONNECT, 0, &p), -EINVAL);
    struct rq_connect c = {.version = 4, .client_id = {big, 65536}};
    CHECK_EQ(rq_codec_encode_connect(&out, &c), -EINVAL);
    CHECK_EQ(out.len, len);
    c.client_id.len = 65535;
    rq_buf_reset(&out);
    memset(big, 'x', sizeof(big));
    CHECK_EQ(rq_codec_encode_connect(&out, &c), 0);
    CHECK_EQ(encoded_decode(4), 0);
    CHECK_EQ(pk.u.connect.client_id.len, 65535);
}

/* ---- The allowed-packet table, written out again from MQTT 5.0 2.2.2.2 ---- */

static const struct {
    uint8_t id;
    const char *value; /* a valid value, encoded */
    uint8_t vlen;
    const char *in;
} spec[] = {
    {0x01, "\x01", 1, "PUBLISH WILL"},
    {0x02, "\0\0\0\x01", 4, "PUBLISH WILL"},
    {0x03, "\0\1x", 3, "PUBLISH WILL"},
    {0x08, "\0\1x", 3, "PUBLISH WILL"},
    {0x09, "\0\1x", 3, "PUBLISH WILL"},
    {0x0B, "\x01", 1, "PUBLISH SUBSCRIBE"},
    {0x11, "\0\0\0\x01", 4, "CONNECT CONNACK DISCONNECT"},
    {0x12, "\0\1x", 3, "CONNACK"},
    {0x13, "\0\x01", 2, "CONNACK"},
    {0x15, "\0\1x", 3, "CONNECT CONNACK AUTH"},
    {0x16, "\0\1x", 3, "CONNECT CONNACK AUTH"},
    {0x17, "\x01", 1, "CONNECT"},
    {0x18, "\0\0\0\x01", 4, "WILL"},
    {0x19, "\x01", 1, "CONNECT"},
    {0x1A, "\0\1x", 3, "CONNACK"},
    {0x1C, "\0\1x", 3, "CONNACK DISCONNECT"},
    {0x1F, "\0\1x", 3, "CONNACK PUBACK PUBREC PUBREL PUBCOMP SUBACK UNSUBACK DISCONNECT AUTH"},
    {0x21, "\0\x01", 2, "CONNECT CONNACK"},
    {0x22, "\0\x01", 2, "CONNECT CONNACK"},
    {0x23, "\0\x01", 2, "PUBLISH"},
    {0x24, "\x01", 1, "CONNACK"},
    {0x25, "\x01", 1, "CONNACK"},
    {0x26, "\0\1k\0\1v", 6,
     "CONNECT CONNACK PUBLISH WILL PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK UNSUBSCRIBE "
     "UNSUBACK DISCONNECT AUTH"},
    {0x27, "\0\0\0\x01", 4, "CONNECT CONNACK"},
    {0x28, "\x01", 1, "CONNACK"},
    {0x29, "\x01", 1, "CONNACK"},
    {0x2A, "\x01", 1, "CONNACK"},
};

static const char *const where_names[] = {
    "WILL",    "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
    "PUBREL",  "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
    "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
};

static bool spec_allows(const char *in, const char *name)
{
    size_t n = strlen(name);
    for (const char *s = in; (s = strstr(s, name)) != NULL; s += n)
        if ((s == in || s[-1] == ' ') && (s[n] == ' ' || s[n] == 0))
            return true;
    return false;
}

/* A minimal valid v5 packet of type `where` (0 = CONNECT with a will) around a property block:
 * first byte, the bytes before the block and the bytes after it. */
static const struct {
    uint8_t b0, npre, npost, pre[14], post[5];
} shapes[16] = {
    [0] = {0x10, 14, 5, {MQTT, 5, 0x06, 0, 60, 0, 0, 1, 'c'}, {0, 1, 't', 0, 0}},
    [RQ_CONNECT] = {0x10, 10, 3, {MQTT, 5, 0x02, 0, 60}, {0, 1, 'c'}},
    [RQ_CONNACK] = {0x20, 2, 0, {0, 0}, {0}},
    [RQ_PUBLISH] = {0x30, 3, 0, {0, 1, 't'}, {0}},
    [RQ_PUBACK] = {0x40, 3, 0, {0, 1, 0}, {0}},
    [RQ_PUBREC] = {0x50, 3, 0, {0, 1, 0}, {0}},
    [RQ_PUBREL] = {0x62, 3, 0, {0, 1, 0}, {0}},
    [RQ_PUBCOMP] = {0x70, 3, 0, {0, 1, 0}, {0}},
    [RQ_SUBSCRIBE] = {0x82, 2, 4, {0, 1}, {0, 1, 't', 0}},
    [RQ_SUBACK] = {0x90, 2, 1, {0, 1}, {0}},
    [RQ_UNSUBSCRIBE] = {0xA2, 2, 3, {0, 1}, {0, 1, 't'}},
    [RQ_UNSUBACK] = {0xB0, 2, 1, {0, 1}, {0}},
    [RQ_DISCONNECT] = {0xE0, 1, 0, {0}, {0}},
    [RQ_AUTH] = {0xF0, 1, 0, {0}, {0}},
};

static size_t packet_with_props(uint8_t *dst, int where, const uint8_t *blk, size_t bl)
{
    uint8_t b[128];
    size_t n = shapes[where].npre;
    memcpy(b, shapes[where].pre, n);
    b[n++] = (uint8_t)bl;
    memcpy(b + n, blk, bl);
    n += bl;
    memcpy(b + n, shapes[where].post, shapes[where].npost);
    return frame_into(dst, shapes[where].b0, b, n + shapes[where].npost);
}

static void test_allowed_table(void)
{
    int wrong = 0;
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
        uint8_t blk[16];
        blk[0] = spec[i].id;
        memcpy(blk + 1, spec[i].value, spec[i].vlen);
        for (int where = 0; where < 16; where++) {
            if (where == RQ_PINGREQ || where == RQ_PINGRESP)
                continue;
            uint8_t pkt[160];
            size_t n = packet_with_props(pkt, where, blk, 1 + spec[i].vlen);
            bool ok = spec_allows(spec[i].in, where_names[where]);
            int want = ok ? 0 : M;
            if (ok && spec[i].id == RQ_PROP_AUTH_DATA)
                want = PE; /* allowed, but never without an authentication method */
            int rc = decode(pkt, n, 5);
            if (rc != want) {
                fprintf(stderr, "property 0x%02x in %s: %d, want %d\n", spec[i].id,
                        where_names[where], rc, want);
                wrong++;
            }
            /* twice: only user properties (and subscription ids in PUBLISH) may repeat */
            memcpy(blk + 1 + spec[i].vlen, blk, 1 + spec[i].vlen);
            n = packet_with_props(pkt, where, blk, 2 * (1 + spec[i].vlen));
            bool rep = spec[i].id == RQ_PROP_USER_PROPERTY ||
                       (spec[i].id == RQ_PROP_SUB_ID && where == RQ_PUBLISH);
            if (ok && !rep)
                want = PE;
            rc = decode(pkt, n, 5);
            if (rc != want) {
                fprintf(stderr, "property 0x%02x twice in %s: %d, want %d\n", spec[i].id,
                        where_names[where], rc, want);
                wrong++;
            }
        }
    }
    CHECK_EQ(wrong, 0);
    /* identifiers that do not exist */
    static const uint8_t unknown[] = {0x00, 0x04, 0x05, 0x0A, 0x10, 0x14,
                                      0x1B, 0x20, 0x2B, 0x7F, 0x80, 0xFF};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        uint8_t blk[2] = {unknown[i], 0}, pkt[64];
        CHECK_EQ(decode(pkt, packet_with_props(pkt, RQ_PUBLISH, blk, 2), 5), M);
    }
}

/* ---- Malformed input, table-driven ---- */

struct bad {
    int v;
    int rc;
    uint8_t b0;
    const char *what;
    size_t n;
    uint8_t body[48];
};

/* clang-format off */
#define B(...) sizeof((uint8_t[]){__VA_ARGS__}), {__VA_ARGS__}
#define NONE 0, {0}
/* clang-format on */

static const struct bad bads[] = {
    /* fixed header: reserved types and flags [MQTT-2.2.2-2] */
    {4, M, 0x00, "type 0", B(0)},
    {4, M, 0xF0, "AUTH in 3.1.1", NONE},
    {4, M, 0x11, "CONNECT flags", B(MQTT, 4, 2, 0, 60, 0, 1, 'c')},
    {4, M, 0x28, "CONNACK flags", B(0, 0)},
    {4, M, 0x41, "PUBACK flags", B(0, 1)},
    {4, M, 0x52, "PUBREC flags", B(0, 1)},
    {4, M, 0x60, "PUBREL flags 0", B(0, 1)},
    {4, M, 0x63, "PUBREL flags 3", B(0, 1)},
    {4, M, 0x78, "PUBCOMP flags", B(0, 1)},
    {4, M, 0x80, "SUBSCRIBE flags 0", B(0, 1, 0, 1, 't', 0)},
    {4, M, 0x92, "SUBACK flags", B(0, 1, 0)},
    {4, M, 0xA0, "UNSUBSCRIBE flags 0", B(0, 1, 0, 1, 't')},
    {4, M, 0xB1, "UNSUBACK flags", B(0, 1)},
    {4, M, 0xC1, "PINGREQ flags", NONE},
    {4, M, 0xD2, "PINGRESP flags", NONE},
    {4, M, 0xE4, "DISCONNECT flags", NONE},
    {5, M, 0xF1, "AUTH flags", NONE},
    {4, 0, 0x62, "PUBREL flags 2", B(0, 1)},
    {4, 0, 0x3D, "PUBLISH flags", B(0, 1, 't', 0, 1)},
    /* trailing bytes */
    {4, M, 0xC0, "PINGREQ body", B(0)},
    {5, M, 0xD0, "PINGRESP body", B(0)},
    {4, M, 0xE0, "DISCONNECT 3.1.1 body", B(0)},
    {4, M, 0x40, "PUBACK 3.1.1 reason", B(0, 1, 0)},
    {4, M, 0x20, "CONNACK 3.1.1 properties", B(0, 0, 0)},
    {4, M, 0xB0, "UNSUBACK 3.1.1 codes", B(0, 1, 0)},
    {4, M, 0x10, "CONNECT trailing", B(MQTT, 4, 2, 0, 60, 0, 1, 'c', 'x')},
    {5, M, 0x40, "PUBACK after properties", B(0, 1, 0, 0, 0)},
    {5, M, 0xE0, "DISCONNECT after properties", B(0, 0, 0)},
    /* truncation */
    {4, M, 0x40, "PUBACK short", B(0)},
    {4, M, 0x30, "topic longer than packet", B(0, 5, 'a')},
    {4, M, 0x30, "no topic", B(0)},
    {4, M, 0x32, "no packet id", B(0, 1, 't', 0)},
    {4, M, 0x82, "no options", B(0, 1, 0, 1, 't')},
    {4, M, 0x82, "second entry cut", B(0, 1, 0, 1, 'a', 0, 0, 2, 'b')},
    {4, M, 0x20, "CONNACK short", B(0)},
    /* PUBLISH */
    {4, M, 0x36, "QoS 3", B(0, 1, 't', 0, 1)},
    {4, PE, 0x32, "QoS 1 packet id 0", B(0, 1, 't', 0, 0)},
    {4, PE, 0x34, "QoS 2 packet id 0", B(0, 1, 't', 0, 0)},
    {4, PE, 0x30, "empty topic", B(0, 0, 'x')},
    {4, M, 0x30, "'+' in topic", B(0, 3, 'a', '/', '+')},
    {4, M, 0x30, "'#' in topic", B(0, 1, '#')},
    {4, M, 0x30, "overlong", B(0, 2, 0xC0, 0x80)},
    {4, M, 0x30, "U+0000", B(0, 3, 'a', 0, 'b')},
    {4, M, 0x30, "surrogate", B(0, 3, 0xED, 0xA0, 0x80)},
    {4, M, 0x30, "above U+10FFFF", B(0, 4, 0xF4, 0x90, 0x80, 0x80)},
    {4, M, 0x30, "cut sequence", B(0, 2, 'a', 0xE2)},
    {4, 0, 0x30, "QoS 0, payload may hold anything", B(0, 1, 't', 0, 0xFF)},
    /* acks, packet identifiers */
    {4, PE, 0x40, "PUBACK id 0", B(0, 0)},
    {4, PE, 0x50, "PUBREC id 0", B(0, 0)},
    {4, PE, 0x62, "PUBREL id 0", B(0, 0)},
    {5, PE, 0x70, "PUBCOMP id 0", B(0, 0, 0)},
    /* SUBSCRIBE, UNSUBSCRIBE, SUBACK, CONNACK in 3.1.1 */
    {4, PE, 0x82, "SUBSCRIBE id 0", B(0, 0, 0, 1, 't', 0)},
    {4, PE, 0x82, "no filters", B(0, 1)},
    {4, M, 0x82, "empty filter", B(0, 1, 0, 0, 0)},
    {4, M, 0x82, "subscription QoS 3", B(0, 1, 0, 1, 't', 3)},
    {4, M, 0x82, "No Local in 3.1.1", B(0, 1, 0, 1, 't', 4)},
    {4, M, 0x82, "options 0x80", B(0, 1, 0, 1, 't', 0x80)},
    {4, M, 0x82, "bad UTF-8 filter", B(0, 1, 0, 1, 0xFF, 0)},
    {4, 0, 0x82, "wildcards in filters are not checked here", B(0, 1, 0, 3, 'a', '#', 'b', 1)},
    {4, PE, 0xA2, "UNSUBSCRIBE id 0", B(0, 0, 0, 1, 't')},
    {4, PE, 0xA2, "UNSUBSCRIBE no filters", B(0, 1)},
    {4, M, 0xA2, "UNSUBSCRIBE empty filter", B(0, 1, 0, 0)},
    {4, M, 0xA2, "UNSUBSCRIBE U+0000", B(0, 1, 0, 1, 0)},
    {4, M, 0x90, "SUBACK code 3", B(0, 1, 3)},
    {4, M, 0x90, "SUBACK no codes", B(0, 1)},
    {4, PE, 0x90, "SUBACK id 0", B(0, 0, 0)},
    {4, M, 0x20, "CONNACK reserved flag", B(2, 0)},
    /* CONNECT */
    {4, M, 0x10, "reserved connect flag", B(MQTT, 4, 3, 0, 60, 0, 1, 'c')},
    {4, M, 0x10, "will QoS 3", B(MQTT, 4, 0x1E, 0, 60, 0, 1, 'c', 0, 1, 't', 0, 0)},
    {4, PE, 0x10, "will retain without will", B(MQTT, 4, 0x22, 0, 60, 0, 1, 'c')},
    {4, PE, 0x10, "will QoS without will", B(MQTT, 4, 0x0A, 0, 60, 0, 1, 'c')},
    {4, PE, 0x10, "password without user", B(MQTT, 4, 0x42, 0, 60, 0, 1, 'c', 0, 1, 'p')},
    {4, UPV, 0x10, "protocol name", B(0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 1, 'c')},
    {4, UPV, 0x10, "level 6", B(MQTT, 6, 2, 0, 60, 0, 1, 'c')},
    {4, UPV, 0x10, "MQTT level 3", B(MQTT, 3, 2, 0, 60, 0, 1, 'c')},
    {4, UPV, 0x10, "MQIsdp level 4", B(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 60, 0, 1, 'c')},
    {4, 0, 0x10, "MQIsdp level 3", B(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 1, 'c')},
    {4, M, 0x10, "cut protocol name", B(0, 4, 'M', 'Q')},
    {4, M, 0x10, "client id UTF-8", B(MQTT, 4, 2, 0, 60, 0, 1, 0xC1)},
    {4, M, 0x10, "will topic wildcard", B(MQTT, 4, 0x06, 0, 60, 0, 1, 'c', 0, 1, '#', 0, 0)},
    {4, PE, 0x10, "empty will topic", B(MQTT, 4, 0x06, 0, 60, 0, 1, 'c', 0, 0, 0, 0)},
    {4, M, 0x10, "will payload cut", B(MQTT, 4, 0x06, 0, 60, 0, 1, 'c', 0, 1, 't', 0, 5, 'x')},
    {4, M, 0x10, "user name UTF-8", B(MQTT, 4, 0x82, 0, 60, 0, 1, 'c', 0, 1, 0x80)},
    {4, M, 0x10, "password missing", B(MQTT, 4, 0xC2, 0, 60, 0, 1, 'c', 0, 1, 'u')},
    {5, 0, 0x10, "5.0 password alone", B(MQTT, 5, 0x42, 0, 60, 0, 0, 1, 'c', 0, 1, 'p')},
    /* v5 properties */
    {5, PE, 0x30, "duplicate payload format", B(0, 1, 't', 4, 1, 0, 1, 0)},
    {5, PE, 0x30, "duplicate topic alias", B(0, 1, 't', 6, 0x23, 0, 1, 0x23, 0, 2)},
    {5, PE, 0x82, "two subscription ids", B(0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 't', 0)},
    {5, M, 0x30, "session expiry in PUBLISH", B(0, 1, 't', 5, 0x11, 0, 0, 0, 1)},
    {5, M, 0x30, "payload format 2", B(0, 1, 't', 2, 0x01, 2)},
    {5, TAI, 0x30, "topic alias 0", B(0, 1, 't', 3, 0x23, 0, 0)},
    {5, PE, 0x30, "empty topic, no alias", B(0, 0, 0)},
    {5, 0, 0x30, "empty topic with alias", B(0, 0, 3, 0x23, 0, 1)},
    {5, M, 0x30, "property length past the end", B(0, 1, 't', 5, 1, 0)},
    {5, M, 0x30, "property cut", B(0, 1, 't', 2, 0x23, 0)},
    {5, M, 0x30, "string property cut", B(0, 1, 't', 3, 0x03, 0, 2)},
    {5, M, 0x30, "non-minimal property length", B(0, 1, 't', 0x80, 0)},
    {5, M, 0x30, "non-minimal subscription id", B(0, 1, 't', 3, 0x0B, 0x81, 0)},
    {5, M, 0x30, "5-byte subscription id", B(0, 1, 't', 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 1)},
    {5, M, 0x30, "subscription id 0", B(0, 1, 't', 2, 0x0B, 0)},
    {5, M, 0x30, "content type UTF-8", B(0, 1, 't', 4, 0x03, 0, 1, 0xFE)},
    {5, M, 0x30, "response topic U+0000", B(0, 1, 't', 4, 0x08, 0, 1, 0)},
    {5, M, 0x30, "user property value U+0000", B(0, 1, 't', 7, 0x26, 0, 1, 'k', 0, 1, 0)},
    {5, M, 0x30, "user property key surrogate",
     B(0, 1, 't', 9, 0x26, 0, 3, 0xED, 0xB0, 0x80, 0, 1, 'v')},
    {5, 0, 0x30, "correlation data is binary", B(0, 1, 't', 4, 0x09, 0, 1, 0)},
    {5, M, 0x30, "wildcard in topic", B(0, 3, 'a', '/', '#', 0)},
    {5, M, 0x10, "request problem info 2", B(MQTT, 5, 2, 0, 60, 2, 0x17, 2, 0, 1, 'c')},
    {5, M, 0x10, "request response info 2", B(MQTT, 5, 2, 0, 60, 2, 0x19, 2, 0, 1, 'c')},
    {5, PE, 0x10, "receive maximum 0", B(MQTT, 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 1, 'c')},
    {5, PE, 0x10, "max packet size 0", B(MQTT, 5, 2, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 1, 'c')},
    {5, PE, 0x10, "auth data, no method", B(MQTT, 5, 2, 0, 60, 4, 0x16, 0, 1, 'x', 0, 1, 'c')},
    {5, M, 0x10, "will delay in CONNECT", B(MQTT, 5, 2, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 1, 'c')},
    {5, M, 0x10, "session expiry in will",
     B(MQTT, 5, 6, 0, 60, 0, 0, 1, 'c', 5, 0x11, 0, 0, 0, 1, 0, 1, 't', 0, 0)},
    {5, M, 0x10, "will properties cut", B(MQTT, 5, 6, 0, 60, 0, 0, 1, 'c', 5, 0x18, 0)},
    {5, M, 0x10, "no CONNECT properties", B(MQTT, 5, 2, 0, 60)},
    {5, M, 0x20, "maximum QoS 2", B(0, 0, 2, 0x24, 2)},
    {5, M, 0x20, "retain available 2", B(0, 0, 2, 0x25, 2)},
    {5, M, 0x20, "wildcard available 2", B(0, 0, 2, 0x28, 2)},
    {5, M, 0x20, "sub ids available 2", B(0, 0, 2, 0x29, 2)},
    {5, M, 0x20, "shared available 2", B(0, 0, 2, 0x2A, 2)},
    {5, 0, 0x20, "maximum QoS 1", B(0, 0, 2, 0x24, 1)},
    {5, M, 0x82, "retain handling 3", B(0, 1, 0, 0, 1, 't', 0x30)},
    {5, M, 0x82, "reserved option bits", B(0, 1, 0, 0, 1, 't', 0x40)},
    {5, M, 0x82, "subscription QoS 3 in 5.0", B(0, 1, 0, 0, 1, 't', 0x03)},
    {5, PE, 0x82, "No Local on $share",
     B(0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 't', 0x04)},
    {5, 0, 0x82, "No Local elsewhere", B(0, 1, 0, 0, 6, '$', 's', 'h', 'a', 'r', 'e', 0x2E)},
    {5, M, 0x82, "subscription id 0", B(0, 1, 2, 0x0B, 0, 0, 1, 't', 0)},
    {5, PE, 0x82, "no filters in 5.0", B(0, 1, 0)},
    {5, M, 0x82, "no properties", B(0, 1)},
    {5, M, 0x40, "payload format in PUBACK", B(0, 1, 0x10, 2, 0x01, 0)},
    {5, M, 0x40, "PUBACK property length past the end", B(0, 1, 0, 5)},
    {5, M, 0xB0, "UNSUBACK without codes", B(0, 1, 0)},
    {5, M, 0x90, "SUBACK without codes", B(0, 1, 0)},
    {5, 0, 0x90, "5.0 SUBACK codes are not checked", B(0, 1, 0, 0x97)},
    {5, M, 0xE0, "reason string U+0000", B(0, 4, 0x1F, 0, 1, 0)},
    {5, M, 0xE0, "DISCONNECT property length past the end", B(0, 9)},
    {5, PE, 0xF0, "AUTH data without method", B(0x18, 4, 0x16, 0, 1, 'x')},
    {5, M, 0xF0, "topic alias in AUTH", B(0x18, 3, 0x23, 0, 1)},
    {5, 0, 0xF0, "AUTH reason only", B(0x18)},
    /* issue 8: PUBLISHes and acknowledgements accepted before and malformed by the spec */
    {4, M, 0x38, "DUP on QoS 0 [MQTT-3.3.1-2]", B(0, 1, 't')},
    {5, M, 0x39, "DUP on QoS 0, retain set", B(0, 1, 't', 0)},
    {4, 0, 0x3A, "DUP on QoS 1", B(0, 1, 't', 0, 1)},
    {5, PE, 0x30, "response topic with '+' [MQTT-3.3.2-14]", B(0, 1, 't', 6, 0x08, 0, 3, 'a', '/', '+')},
    {5, PE, 0x30, "response topic with '#'", B(0, 1, 't', 4, 0x08, 0, 1, '#')},
    {5, 0, 0x30, "response topic a/b", B(0, 1, 't', 6, 0x08, 0, 3, 'a', '/', 'b')},
    {5, PE, 0x10, "will response topic with '#'",
     B(MQTT, 5, 6, 0, 60, 0, 0, 1, 'c', 4, 0x08, 0, 1, '#', 0, 1, 't', 0, 0)},
    {5, M, 0x62, "PUBREL reason 0x10", B(0, 1, 0x10)},
    {5, M, 0x62, "PUBREL reason 0x80", B(0, 1, 0x80)},
    {5, 0, 0x62, "PUBREL reason 0x92", B(0, 1, 0x92)},
    {5, M, 0x70, "PUBCOMP reason 0x87", B(0, 1, 0x87)},
    {5, M, 0x40, "PUBACK reason 0x92", B(0, 1, 0x92)},
    {5, M, 0x50, "PUBREC reason 0x01", B(0, 1, 0x01)},
    {5, 0, 0x50, "PUBREC reason 0x10", B(0, 1, 0x10)},
    {4, 0, 0x62, "3.1.1 PUBREL: no reason code", B(0, 1)},
    /* MQTT 3.1 lets a resent PUBREL / SUBSCRIBE / UNSUBSCRIBE carry DUP; 3.1.1 does not */
    {3, 0, 0x6A, "3.1 PUBREL with DUP", B(0, 1)},
    {4, M, 0x6A, "3.1.1 PUBREL with DUP", B(0, 1)},
    {3, 0, 0x8A, "3.1 SUBSCRIBE with DUP", B(0, 1, 0, 1, 't', 1)},
    {3, 0, 0xAA, "3.1 UNSUBSCRIBE with DUP", B(0, 1, 0, 1, 't')},
    {3, M, 0x48, "3.1 PUBACK with DUP", B(0, 1)},
    {3, M, 0x6E, "3.1 PUBREL with DUP and QoS 3", B(0, 1)},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        const struct bad *b = &bads[i];
        int rc = decode_body(b->v, b->b0, b->body, b->n);
        if (rc != b->rc)
            fprintf(stderr, "case \"%s\": rc %d (%s), want %d\n", b->what, rc, why ? why : "",
                    b->rc);
        CHECK_EQ(rc, b->rc);
    }
}

/* Every shorter body of a packet that has no optional tail is MALFORMED, and so is the
 * packet cut short under its original header, and one byte more. */
static void check_cuts(int v, const uint8_t *p, size_t len, size_t valid_from)
{
    uint32_t rem;
    size_t h = 1;
    while (p[h++] & 0x80)
        ;
    rem = (uint32_t)(len - h);
    uint8_t body[600];
    memcpy(body, p + h, rem);
    bool sublist = (p[0] >> 4) == RQ_SUBSCRIBE || (p[0] >> 4) == RQ_UNSUBSCRIBE;
    int empty_lists = 0;
    for (size_t k = 0; k < rem; k++) {
        int rc = decode_body(v, p[0], body, k);
        int want = k >= valid_from ? 0 : M;
        /* cut right where the filter list starts: a list with no filters, a Protocol Error
         * [MQTT-3.8.3-2] -- exactly one such cut per (UN)SUBSCRIBE */
        if (sublist && rc == PE && empty_lists++ == 0)
            want = PE;
        if (rc != want)
            fprintf(stderr, "type %d v%d cut at %zu: rc %d\n", p[0] >> 4, v, k, rc);
        CHECK_EQ(rc, want);
        CHECK_EQ(rq_codec_decode(p, h + k, v, &pk, &why), M);
    }
    if (sublist)
        CHECK_EQ(empty_lists, 1);
    body[rem] = 0;
    if (valid_from > rem)
        CHECK_EQ(decode_body(v, p[0], body, rem + 1), M);
}

static void test_truncation(void)
{
    struct rq_connect c = {.version = 5, .will = true, .has_username = true};
    c.has_password = true;
    c.client_id = S("id");
    c.will_topic = S("w");
    c.will_payload = S("p");
    c.username = S("u");
    c.password = S("pw");
    SET(&c.props, RQ_PROP_SESSION_EXPIRY, session_expiry, 10);
    SET(&c.will_props, RQ_PROP_WILL_DELAY, will_delay, 1);
    for (int v = 3; v <= 5; v++) {
        c.version = (uint8_t)v;
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_connect(&out, &c), 0);
        check_cuts(v, out.data, out.len, SIZE_MAX);
    }
    struct rq_str f = S("a/b");
    uint8_t o = 1;
    struct rq_props sp = {0};
    SET(&sp, RQ_PROP_SUB_ID, sub_id, 200);
    for (int v = 4; v <= 5; v++) {
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_subscribe(&out, v, 1, &sp, &f, &o, 1), 0);
        check_cuts(v, out.data, out.len, SIZE_MAX);
        rq_buf_reset(&out);
        CHECK_EQ(rq_codec_encode_unsubscribe(&out, v, 1, NULL, &f, 1), 0);
        check_cuts(v, out.data, out.len, SIZE_MAX);
    }
    struct rq_ack a = {.packet_id = 1, .reason = 0x10};
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_ack(&out, 4, RQ_PUBACK, &a), 0);
    check_cuts(4, out.data, out.len, SIZE_MAX);
    struct rq_connack ca = {0};
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_connack(&out, 4, &ca), 0);
    check_cuts(4, out.data, out.len, SIZE_MAX);

    /* v5 PUBACK: cut to 2 or 3 bytes is a valid short form, inside properties it is not */
    SET(&a.props, RQ_PROP_REASON_STRING, reason_string, S("r"));
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_ack(&out, 5, RQ_PUBACK, &a), 0);
    for (size_t k = 0; k < out.len - 2; k++)
        CHECK_EQ(decode_body(5, 0x40, out.data + 2, k), k == 2 || k == 3 ? 0 : M);
    /* PUBLISH: anything up to the payload is structure */
    struct rq_pubout po = {.qos = 1, .packet_id = 3, .topic = S("t/t"), .has_expiry = true};
    po.payload = S("pay");
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_publish(&out, 5, &po), 0);
    check_cuts(5, out.data, out.len, out.len - 2 - 3);
    rq_buf_reset(&out);
    CHECK_EQ(rq_codec_encode_publish(&out, 4, &po), 0);
    check_cuts(4, out.data, out.len, out.len - 2 - 3);
}

int main(void)
{
    test_varint();
    test_frame();
    test_utf8();
    test_connect();
    test_connack();
    test_publish();
    test_acks();
    test_subscribe();
    test_suback();
    test_simple_and_reason();
    test_props_api();
    test_allowed_table();
    test_bad();
    test_truncation();
    rq_buf_free(&out);
    return check_exit("test_codec");
}
