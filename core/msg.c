/* Message objects: one allocation per PUBLISH that goes anywhere, shared by refcount across
 * subscribers and shards. The v5 properties that travel unchanged (payload format, content
 * type, response topic, correlation data, user properties) are encoded once, here. */
#include "core/msg.h"

#include <stdlib.h>
#include <string.h>

static int put_str(struct rq_buf *b, struct rq_str v)
{
    uint8_t len[2] = {(uint8_t)(v.len >> 8), (uint8_t)v.len};
    int rc = rq_buf_append(b, len, 2);
    return rc ? rc : rq_buf_append(b, v.p, v.len);
}

static int encode_user_props(struct rq_buf *b, const struct rq_props *props)
{
    uint32_t off = 0;
    struct rq_str k, v;
    while (rq_props_next_user(props, &off, &k, &v)) {
        uint8_t id = RQ_PROP_USER_PROPERTY;
        if (rq_buf_append(b, &id, 1) || put_str(b, k) || put_str(b, v))
            return -1;
    }
    return 0;
}

struct rq_msg *rq_msg_new(struct rq_str topic, struct rq_str payload, const struct rq_props *props,
                          uint8_t qos, bool retain, uint64_t origin, uint64_t now_ms,
                          uint32_t expiry_cap_s)
{
    struct rq_buf pb = {0}, users = {0};
    struct rq_props shared;
    if (props) {
        /* Decoded user properties sit in the raw block: re-encode them as 0x26 entries. */
        shared = *props;
        if (props->user_prop_count && !props->user_props.len &&
            encode_user_props(&users, props) != 0)
            goto fail;
        if (users.len)
            shared.user_props = (struct rq_str){users.data, (uint32_t)users.len};
        if (rq_codec_encode_shared_props(&pb, &shared) != 0)
            goto fail;
        rq_buf_free(&users);
    }
    size_t need = sizeof(struct rq_msg) + topic.len + pb.len + payload.len;
    struct rq_msg *m = malloc(need);
    if (!m)
        goto fail;
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->origin = origin;
    m->topic_len = (uint16_t)topic.len;
    m->props_len = (uint32_t)pb.len;
    m->payload_len = payload.len;
    uint8_t *p = m->data;
    if (topic.len)
        memcpy(p, topic.p, topic.len);
    m->topic = p;
    p += topic.len;
    if (pb.len)
        memcpy(p, pb.data, pb.len);
    m->props = p;
    p += pb.len;
    if (payload.len)
        memcpy(p, payload.p, payload.len);
    m->payload = p;
    rq_buf_free(&pb);

    m->has_expiry = false;
    m->expiry_prop = false;
    m->expires_at = 0;
    if (props && RQ_PROP_HAS(props, RQ_PROP_MESSAGE_EXPIRY)) {
        uint32_t e = props->message_expiry;
        if (expiry_cap_s && e > expiry_cap_s)
            e = expiry_cap_s;
        m->has_expiry = true;
        m->expiry_prop = true;
        m->expires_at = now_ms + (uint64_t)e * 1000;
    } else if (expiry_cap_s && expiry_cap_s != UINT32_MAX) {
        /* maxMessageExpirySeconds bounds messages that did not ask for an expiry too. */
        m->has_expiry = true;
        m->expires_at = now_ms + (uint64_t)expiry_cap_s * 1000;
    }
    return m;
fail:
    rq_buf_free(&pb);
    rq_buf_free(&users);
    return NULL;
}

void rq_msg_unref(struct rq_msg *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

long rq_msg_remaining(const struct rq_msg *m, uint64_t now_ms)
{
    if (!m->has_expiry)
        return 0;
    if (now_ms >= m->expires_at)
        return -1;
    return (long)((m->expires_at - now_ms + 999) / 1000);
}
