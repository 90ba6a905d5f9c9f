/* libFuzzer harness for core/codec.c and core/props.c: frames the input as a stream of
 * packets, decodes each one as MQTT 3.1.1 and as 5.0, walks what the decoder says can be
 * walked, re-encodes whatever decoded and checks that the re-encoded packet decodes to the
 * same fields. Any disagreement aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"

#define MAX_PACKET (1u << 20)
#define MAX_FILTERS 256

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool same(struct rq_str a, struct rq_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Re-encodes the user properties of a decoded block so they can be written again. */
static void users_of(struct rq_props *p, struct rq_buf *scratch)
{
    struct rq_str k, v;
    uint32_t off = 0, n = 0;
    size_t start = scratch->len;
    while (rq_props_next_user(p, &off, &k, &v)) {
        uint8_t h[3] = {RQ_PROP_USER_PROPERTY, (uint8_t)(k.len >> 8), (uint8_t)k.len};
        uint8_t l[2] = {(uint8_t)(v.len >> 8), (uint8_t)v.len};
        ENSURE(rq_buf_append(scratch, h, 3) == 0 && rq_buf_append(scratch, k.p, k.len) == 0);
        ENSURE(rq_buf_append(scratch, l, 2) == 0 && rq_buf_append(scratch, v.p, v.len) == 0);
        n++;
    }
    ENSURE(n == p->user_prop_count);
    /* scratch is reserved up front, so this pointer stays valid */
    p->user_props = (struct rq_str){scratch->data + start, (uint32_t)(scratch->len - start)};
}

static void same_props(const struct rq_props *a, const struct rq_props *b)
{
    ENSURE(a->present == b->present && a->user_prop_count == b->user_prop_count);
    ENSURE(a->payload_format == b->payload_format && a->message_expiry == b->message_expiry);
    ENSURE(a->session_expiry == b->session_expiry && a->receive_max == b->receive_max);
    ENSURE(a->topic_alias == b->topic_alias && a->max_packet_size == b->max_packet_size);
    ENSURE(a->will_delay == b->will_delay && a->server_keep_alive == b->server_keep_alive);
    ENSURE(same(a->content_type, b->content_type) && same(a->auth_data, b->auth_data));
    ENSURE(same(a->reason_string, b->reason_string) && same(a->auth_method, b->auth_method));
    ENSURE(same(a->correlation_data, b->correlation_data));
}

/* The walk must visit exactly `count` entries and stay inside the list. */
static size_t walk_filters(const struct rq_sublist *s, bool is_sub, struct rq_str *f, uint8_t *o)
{
    uint32_t off = 0;
    size_t n = 0;
    struct rq_str tmp;
    uint8_t otmp;
    while (rq_codec_next_filter(s, is_sub, &off, n < MAX_FILTERS ? &f[n] : &tmp,
                                n < MAX_FILTERS ? &o[n] : &otmp))
        n++;
    ENSURE(n == s->count && off == s->entries.len);
    return n;
}

static int reencode_publish(struct rq_buf *out, int v, const struct rq_publish *m)
{
    struct rq_buf shared = {0};
    struct rq_props p = m->props;
    int rc = rq_codec_encode_shared_props(&shared, &p);
    ENSURE(rc == 0);
    size_t size = rq_props_size(&p), before = shared.len;
    ENSURE(rq_props_encode(&shared, &p) == 0); /* the whole block, thrown away after */
    ENSURE(shared.len - before == rq_varint_size((uint32_t)size) + size);
    shared.len = before;
    struct rq_pubout po = {.qos = m->qos, .dup = m->dup, .retain = m->retain};
    po.topic = m->topic;
    po.packet_id = m->packet_id;
    po.topic_alias = m->props.topic_alias;
    po.has_expiry = RQ_PROP_HAS(&m->props, RQ_PROP_MESSAGE_EXPIRY);
    po.expiry = m->props.message_expiry;
    po.sub_ids = &m->props.sub_id;
    po.n_sub_ids = m->n_sub_ids ? 1 : 0;
    po.shared_props = (struct rq_str){shared.data, (uint32_t)shared.len};
    po.payload = m->payload;
    before = out->len;
    rc = rq_codec_encode_publish(out, v, &po);
    ENSURE(rc != 0 || out->len - before == rq_codec_publish_size(v, &po));
    rq_buf_free(&shared);
    return rc;
}

/* Re-encodes a decoded packet into out. User property blocks go through scratch. */
static int reencode(struct rq_buf *out, int v, struct rq_packet *pkt, struct rq_buf *scratch,
                    struct rq_str *f, uint8_t *o)
{
    switch (pkt->type) {
    case RQ_CONNECT:
        users_of(&pkt->u.connect.props, scratch);
        users_of(&pkt->u.connect.will_props, scratch);
        return rq_codec_encode_connect(out, &pkt->u.connect);
    case RQ_CONNACK:
        users_of(&pkt->u.connack.props, scratch);
        return rq_codec_encode_connack(out, v, &pkt->u.connack);
    case RQ_PUBLISH:
        users_of(&pkt->u.publish.props, scratch);
        return reencode_publish(out, v, &pkt->u.publish);
    case RQ_PUBACK:
    case RQ_PUBREC:
    case RQ_PUBREL:
    case RQ_PUBCOMP:
        users_of(&pkt->u.ack.props, scratch);
        return rq_codec_encode_ack(out, v, pkt->type, &pkt->u.ack);
    case RQ_SUBSCRIBE:
    case RQ_UNSUBSCRIBE: {
        bool is_sub = pkt->type == RQ_SUBSCRIBE;
        size_t n = walk_filters(&pkt->u.sub, is_sub, f, o);
        if (n > MAX_FILTERS)
            return -1;
        users_of(&pkt->u.sub.props, scratch);
        if (is_sub)
            return rq_codec_encode_subscribe(out, v, pkt->u.sub.packet_id, &pkt->u.sub.props, f, o,
                                             n);
        return rq_codec_encode_unsubscribe(out, v, pkt->u.sub.packet_id, &pkt->u.sub.props, f, n);
    }
    case RQ_SUBACK:
    case RQ_UNSUBACK:
        users_of(&pkt->u.suback.props, scratch);
        return rq_codec_encode_suback(out, v, pkt->type, pkt->u.suback.packet_id,
                                      &pkt->u.suback.props, pkt->u.suback.codes.p,
                                      pkt->u.suback.codes.len);
    case RQ_PINGREQ:
    case RQ_PINGRESP: return rq_codec_encode_simple(out, pkt->type);
    default:
        users_of(&pkt->u.reason.props, scratch);
        return rq_codec_encode_reason(out, v, pkt->type, pkt->u.reason.reason,
                                      &pkt->u.reason.props);
    }
}

/* The fields that must survive encode -> decode unchanged. */
static void compare(int v, const struct rq_packet *a, const struct rq_packet *b)
{
    ENSURE(a->type == b->type);
    switch (a->type) {
    case RQ_CONNECT: {
        const struct rq_connect *x = &a->u.connect, *y = &b->u.connect;
        ENSURE(x->version == y->version && x->clean_start == y->clean_start);
        ENSURE(x->keepalive == y->keepalive && x->will == y->will);
        ENSURE(x->will_qos == y->will_qos && x->will_retain == y->will_retain);
        ENSURE(same(x->client_id, y->client_id) && same(x->will_topic, y->will_topic));
        ENSURE(same(x->will_payload, y->will_payload) && same(x->username, y->username));
        ENSURE(same(x->password, y->password));
        same_props(&x->props, &y->props);
        same_props(&x->will_props, &y->will_props);
        break;
    }
    case RQ_CONNACK:
        ENSURE(a->u.connack.rc == b->u.connack.rc);
        ENSURE(a->u.connack.session_present == b->u.connack.session_present);
        same_props(&a->u.connack.props, &b->u.connack.props);
        break;
    case RQ_PUBLISH: {
        const struct rq_publish *x = &a->u.publish, *y = &b->u.publish;
        ENSURE(x->qos == y->qos && x->dup == y->dup && x->retain == y->retain);
        ENSURE(same(x->topic, y->topic) && same(x->payload, y->payload));
        ENSURE(x->packet_id == y->packet_id && (x->n_sub_ids > 0) == (y->n_sub_ids > 0));
        ENSURE(x->props.sub_id == y->props.sub_id);
        if (x->n_sub_ids <= 1)
            same_props(&x->props, &y->props);
        break;
    }
    case RQ_PUBACK:
    case RQ_PUBREC:
    case RQ_PUBREL:
    case RQ_PUBCOMP:
        ENSURE(a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.reason == b->u.ack.reason);
        same_props(&a->u.ack.props, &b->u.ack.props);
        break;
    case RQ_SUBSCRIBE:
    case RQ_UNSUBSCRIBE:
        ENSURE(a->u.sub.packet_id == b->u.sub.packet_id && a->u.sub.count == b->u.sub.count);
        ENSURE(same(a->u.sub.entries, b->u.sub.entries));
        same_props(&a->u.sub.props, &b->u.sub.props);
        break;
    case RQ_SUBACK:
    case RQ_UNSUBACK:
        ENSURE(a->u.suback.packet_id == b->u.suback.packet_id);
        ENSURE(same(a->u.suback.codes, b->u.suback.codes));
        same_props(&a->u.suback.props, &b->u.suback.props);
        break;
    case RQ_DISCONNECT:
    case RQ_AUTH:
        ENSURE(a->u.reason.reason == b->u.reason.reason);
        same_props(&a->u.reason.props, &b->u.reason.props);
        break;
    }
    (void)v;
}

static void one(const uint8_t *p, size_t n, int v)
{
    static struct rq_str filters[MAX_FILTERS];
    static uint8_t opts[MAX_FILTERS];
    struct rq_packet pkt, again;
    const char *why = NULL;

    int rc = rq_codec_decode(p, n, v, &pkt, &why);
    ENSURE(rc <= 0 && (rc == 0 || why != NULL));
    if (rc)
        return;
    struct rq_buf out = {0}, scratch = {0};
    ENSURE(rq_buf_reserve(&scratch, 2 * n + 16) == 0); /* user_props point into it */
    int ev = pkt.type == RQ_CONNECT ? pkt.u.connect.version : v;
    if (reencode(&out, ev, &pkt, &scratch, filters, opts) == 0) {
        size_t hl;
        long t = rq_codec_frame(out.data, out.len, UINT32_MAX, &hl, &why);
        ENSURE(t == (long)out.len);
        rc = rq_codec_decode(out.data, out.len, v, &again, &why);
        ENSURE(rc == 0);
        compare(v, &pkt, &again);
    }
    rq_buf_free(&out);
    rq_buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    while (size > 0) {
        size_t hl = 0;
        const char *why = NULL;
        long t = rq_codec_frame(data, size, MAX_PACKET, &hl, &why);
        if (t == RQ_INCOMPLETE)
            return 0;
        ENSURE(t != 0);
        if (t < 0) {
            ENSURE(why != NULL);
            return 0;
        }
        ENSURE(hl >= 2 && hl <= 5 && (size_t)t >= hl);
        if ((size_t)t > size)
            return 0;
        one(data, (size_t)t, 3); /* 3.1: DUP allowed on a resent PUBREL, SUBSCRIBE, UNSUBSCRIBE */
        one(data, (size_t)t, 4);
        one(data, (size_t)t, 5);
        rq_utf8_valid(data, (size_t)t);
        data += t;
        size -= (size_t)t;
    }
    return 0;
}
