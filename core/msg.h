/* An application message: immutable after creation, refcounted, shared by every subscriber and
 * every shard it is delivered to. Topic, shared v5 properties (already encoded once) and payload
 * live in the same allocation. */
#ifndef RQ_MSG_H
#define RQ_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/codec.h"

struct rq_msg {
    atomic_uint refs;
    uint8_t qos;
    bool retain;
    bool has_expiry;      /* the message expires (its own interval or the broker's cap) */
    bool expiry_prop;     /* the publisher set Message Expiry Interval: forward it counted down */
    uint16_t topic_len;
    uint32_t props_len;   /* shared v5 property entries (no length prefix) */
    uint32_t payload_len;
    uint64_t expires_at;  /* monotonic ms, valid when has_expiry */
    uint64_t origin;      /* publishing session id (No Local), 0 = none (will, retained load) */
    const uint8_t *topic;
    const uint8_t *props;
    const uint8_t *payload;
    uint8_t data[];
};

/* Builds a message from a decoded PUBLISH (or will): copies topic, payload and the shareable
 * properties (encoded once here). expiry_cap_s caps the Message Expiry Interval (0 = no cap).
 * Returns NULL on ENOMEM. refs = 1. */
struct rq_msg *rq_msg_new(struct rq_str topic, struct rq_str payload, const struct rq_props *props,
                          uint8_t qos, bool retain, uint64_t origin, uint64_t now_ms,
                          uint32_t expiry_cap_s);

static inline struct rq_msg *rq_msg_ref(struct rq_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void rq_msg_unref(struct rq_msg *m);

/* Remaining Message Expiry Interval in seconds (rounded up), or -1 if it has expired.
 * Messages without expiry return 0 and *has is false. */
long rq_msg_remaining(const struct rq_msg *m, uint64_t now_ms);

#endif
