/* Private to core/broker.c, core/session.c, core/client.c and core/connect.c. */
#ifndef RQ_BROKER_INT_H
#define RQ_BROKER_INT_H

#include "core/broker.h"
#include "core/stats.h"

#define RQ_SHARD_BITS 8
#define RQ_MAX_SHARDS (1 << RQ_SHARD_BITS)
#define RQ_SESSION_SHARD(id) ((int)((id) & (RQ_MAX_SHARDS - 1)))
#define RQ_EXPIRY_NEVER UINT32_MAX

/* One message on its way to one session: the merged result of all matching subscriptions. */
struct rq_delivery {
    struct rq_msg *msg; /* reference held */
    uint8_t qos;
    bool retain;
    uint16_t n_ids;
    uint32_t id0;  /* when n_ids == 1 */
    uint32_t *ids; /* heap, when n_ids > 1 */
};

enum { INF_FREE = 0, INF_PUBLISHED = 1, INF_RELEASED = 2 };

struct rq_inflight {
    struct rq_delivery d;
    uint32_t seq; /* order of the first send (session's send_seq then), for resends */
    uint16_t pid;
    uint8_t state;
    bool resend;  /* not yet sent on the current connection (resumed session) */
};

/* One in-flight entry to resend on a resumed connection, in the order of its first send. */
struct rq_resend {
    uint32_t age; /* seq - send_seq at resume (wraps): smaller = sent earlier */
    uint16_t pid;
};

struct rq_sub {
    uint8_t *filter;
    uint16_t len;
    uint8_t opts;
    uint32_t sub_id;
};

struct rq_session {
    /* Every client has one: keep it small. */
    uint64_t id;
    struct rq_worker *w;
    struct rq_client *client;    /* NULL when offline */
    struct rq_session *reg_next; /* client-id registry chain (broker.c), under reg_lock */
    /* Offline: one timer for both the will delay and the session's end, whichever is next. */
    struct rq_timer timer;
    uint64_t expires_at; /* offline: w->now-based ms when the session ends; 0 = never */
    struct rq_sub *subs;
    uint32_t n_subs, cap_subs;
    /* messages not yet sent (ring) */
    struct rq_delivery *q;
    uint32_t q_head, q_len, q_cap;
    /* QoS > 0 messages sent and not yet fully acknowledged, indexed by pid & (inf_cap - 1) */
    struct rq_inflight *inf;
    uint32_t inf_cap, inf_count;
    /* Resumed: in-flight entries still to resend, oldest first, as the window allows
     * [MQTT-4.6.0-1]; NULL when none ([resend_head, resend_n) are left; inf_resend counts the
     * entries whose resend flag is set). */
    struct rq_resend *resend;
    /* QoS 2 PUBLISHes received from the client, PUBREL not yet: their packet ids. Part of the
     * session so that exactly-once holds across a reconnect [MQTT-4.3.3-..]. */
    uint16_t *qos2_in; /* capacity = our Receive Maximum; NULL until the first QoS 2 */
    struct rq_msg *will;
    uint32_t will_delay;
    uint32_t expiry; /* Session Expiry Interval, seconds; RQ_EXPIRY_NEVER */
    uint32_t send_seq; /* next rq_inflight.seq */
    uint16_t resend_n, resend_head, inf_resend;
    uint16_t qos2_in_count;
    uint16_t next_pid;
    uint16_t cid_len;
    uint8_t stat_version; /* its total_sessions{mqtt_version} label (core/stats.h) */
    /* On its way to another shard with its client (core/placement.h), under reg_lock: in no
     * shard's session map, so a CONNECT for its client id is answered Server busy meanwhile. */
    bool moving;
    char cid[]; /* NUL-terminated copy of the client id */
};

/* broker.c */
struct rq_session *rq_smap_get(struct rq_smap *m, uint64_t id);
int rq_smap_put(struct rq_smap *m, struct rq_session *s);
void rq_smap_del(struct rq_smap *m, uint64_t id);
/* Client-id registry, all shards' sessions; caller holds reg_lock. get: the session id
 * registered for cid, 0 if none. set: s becomes the session of its client id (replacing any
 * other). del: s leaves it, if it is still the one registered. */
uint64_t rq_reg_get(struct rq_reg *r, const uint8_t *cid, size_t len);
/* The session registered for cid, NULL if none (valid while reg_lock is held). */
struct rq_session *rq_reg_find(struct rq_reg *r, const uint8_t *cid, size_t len);
void rq_reg_set(struct rq_reg *r, struct rq_session *s);
void rq_reg_del(struct rq_reg *r, struct rq_session *s);
/* Routes a message to every matching subscription (all shards). Consumes no reference.
 * Returns how many subscriptions take it (0: PUBACK/PUBREC 0x10 No matching subscribers), and
 * sets w->route_shard to where they are. */
#define RQ_ROUTE_HERE (-1)
#define RQ_ROUTE_SPREAD (-2)
size_t rq_route(struct rq_worker *w, struct rq_msg *m);
/* Stores/clears a retained message (m->retain set). */
void rq_retain_store(struct rq_worker *w, struct rq_msg *m);

/* session.c */
struct rq_session *rq_session_new(struct rq_worker *w, const uint8_t *cid, size_t len);
/* Ends a session: will published if pending, subscriptions removed, state freed. */
void rq_session_end(struct rq_session *s, const char *why);
/* Frees a session that is in no session map (and whose subscriptions are out of the tree):
 * its registry entry, queue, in-flight messages and memory. Any thread holding it alone. */
void rq_session_free(struct rq_broker *b, struct rq_session *s);
/* Offers a delivery (takes its msg reference and ids) to the session: sent now or queued. */
void rq_session_deliver(struct rq_session *s, struct rq_delivery *d);
/* Sends what the window and the output buffer allow: inflight redelivery first, then queue. */
void rq_session_pump(struct rq_session *s);
/* Client resumed: every inflight entry is to be resent (PUBLISH with DUP, or PUBREL), in the
 * order first sent, by rq_session_pump as the resumed connection's window allows. */
void rq_session_resend(struct rq_session *s);
/* Acknowledgements from the client for our QoS>0 sends. Return 0 or -rc. */
int rq_session_on_ack(struct rq_session *s, int type, uint16_t pid, uint8_t reason);
void rq_session_publish_will(struct rq_session *s);
void rq_session_detach(struct rq_session *s, bool publish_will);
int rq_session_subscribe(struct rq_session *s, const uint8_t *f, size_t len, uint8_t opts,
                         uint32_t sub_id, bool *existed);
int rq_session_unsubscribe(struct rq_session *s, const uint8_t *f, size_t len);
void rq_delivery_release(struct rq_delivery *d);
/* Drops the queued messages whose topic keep() refuses and, when inflight, the in-flight
 * PUBLISHes not yet acknowledged too (QoS 2 ones go on as released: PUBREL is resent): a session
 * taken over by another principal, or whose principal changed, hands its client nothing
 * through a subscription it may no longer hold. Returns how many were dropped. */
uint32_t rq_session_drop_unless(struct rq_session *s, bool inflight,
                                bool (*keep)(void *arg, const struct rq_msg *m), void *arg);

/* client.c */
void rq_client_send_disconnect(struct rq_client *c, uint8_t reason, const char *why);
bool rq_client_writable(const struct rq_client *c);
/* Encodes one delivery as PUBLISH into the client's output. Returns false when it was dropped
 * (too large for the client, or expired: a resend, dup, is sent with expiry 0 instead). */
bool rq_client_write_publish(struct rq_client *c, const struct rq_delivery *d, uint16_t pid,
                             bool dup);
void rq_client_write_ack(struct rq_client *c, int type, uint16_t pid, uint8_t reason);
/* The packet the last encoder appended to c->out at `start` is within the client's Maximum
 * Packet Size [MQTT-3.1.2-25] (0 = not known yet). When it is not, it is removed again and
 * false returned: the caller may retry with rq_props_drop_optional or give the packet up. */
bool rq_client_fits(struct rq_client *c, size_t start);
/* Removes what may be left out to make a packet fit: Reason String and User Properties
 * [MQTT-3.2.2-19], [MQTT-3.2.2-20], [MQTT-3.14.2-3], [MQTT-3.14.2-4]. */
void rq_props_drop_optional(struct rq_props *p);
/* Why a client may not publish to topic t ($SYS, $share/), or NULL when it may. */
const char *rq_topic_reserved(const uint8_t *t, size_t len);
/* The name of a reason code, for log lines. */
const char *rq_rc_name(int rc);
/* Connected: arms the client's one timer for the keepalive deadline or the credentials' expiry,
 * whichever comes first. */
void rq_client_arm_timer(struct rq_client *c);
/* Bound to its session: log lines borrow the session's copy of the client id when it is the
 * same text (see client_id_printable in connect.c). */
void rq_client_borrow_id(struct rq_client *c);

static inline const struct rq_config *rq_client_cfg(const struct rq_client *c)
{
    return c->cfg ? c->cfg : c->w->cfg ? c->w->cfg : c->w->b->cfg;
}

/* The client has output: have its connection flushed at the end of this loop iteration. */
static inline void rq_client_flush(struct rq_client *c)
{
    c->w->ops->want_flush(c->w, c->conn);
}

/* connect.c */
/* Handles CONNECT. Returns 0 (connected), -1 (refused: CONNACK written, closing) or -2
 * (suspended, with the CONNECT kept as unconsumed input: AUTHENTICATING, the verdict is pending;
 * or HANDED_OVER, the session lives on another shard, c->migrate_to says which). */
int rq_client_on_connect(struct rq_client *c, const struct rq_connect *k);
/* Refuses a CONNECT: CONNACK with the reason (v5) or the 3.1.1 return code, then close. */
void rq_client_connack_fail(struct rq_client *c, int version, int rc, const char *why);
/* The credentials expire at expiry_unix (Unix seconds, 0 = never): sets c->cred_expires (the
 * caller arms the timer when connected). */
void rq_client_set_cred_expiry(struct rq_client *c, int64_t expiry_unix);

/* reauth.c: MQTT v5 re-authentication */
/* Connected: keeps the CONNECT's Authentication Method (v5), which every AUTH must name. */
void rq_client_keep_auth_method(struct rq_client *c, const struct rq_connect *k);
/* An AUTH packet from a connected client. Returns 0 (handled: answered, pending, or closing
 * with its DISCONNECT sent) or -RQ_RC_PROTOCOL_ERROR with why. */
int rq_client_on_auth(struct rq_client *c, const struct rq_reason *r, const char **why);

#endif
