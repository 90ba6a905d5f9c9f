/* Message objects: one allocation per PUBLISH that goes anywhere, shared by refcount across
 * subscribers and shards. The v5 properties that travel unchanged (payload format, content
 * type, response topic, correlation data, user properties) are encoded once, here. */
#include "core/msg.h"

#include <stdlib.h>
#include <string.h>

struct rq_msg *rq_msg_new(struct rq_str topic, struct rq_str payload, const struct rq_props *props,
                          uint8_t qos, bool retain, uint64_t origin, uint64_t now_ms,
                          uint32_t expiry_cap_s)
{
    struct rq_buf pb = {0};
    if (props && rq_codec_encode_shared_props(&pb, props) != 0) {
        rq_buf_free(&pb);
        return NULL;
    }
    size_t need = sizeof(struct rq_msg) + topic.len + pb.len + payload.len;
    struct rq_msg *m = malloc(need);
    if (!m) {
        rq_buf_free(&pb);
        return NULL;
    }
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
