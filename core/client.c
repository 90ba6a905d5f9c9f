/* Protocol rules of one client connection (MQTT 3.1.1 and 5.0): packet order (CONNECT and
 * session takeover are in connect.c), QoS flows toward the broker, topic aliases,
 * subscriptions, keepalive, and the reason code for everything a client can get wrong. Bytes come from net/ already framed by
 * the codec's rules; replies go into c->out. No socket calls here. */
#include "core/broker_int.h"
#include "core/placement.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/retain.h"

#define PRE_CONNECT_MAX (1u << 20) /* largest packet accepted before CONNECT completes */

static void on_keepalive(struct rq_timer *t, void *arg);

const char *rq_rc_name(int rc)
{
    switch (rc) {
    case RQ_RC_MALFORMED: return "malformed packet";
    case RQ_RC_PROTOCOL_ERROR: return "protocol error";
    case RQ_RC_UNSUPPORTED_PROTOCOL_VERSION: return "unsupported protocol version";
    case RQ_RC_CLIENT_ID_NOT_VALID: return "client identifier not valid";
    case RQ_RC_BAD_AUTH_METHOD: return "bad authentication method";
    case RQ_RC_KEEP_ALIVE_TIMEOUT: return "keep alive timeout";
    case RQ_RC_SESSION_TAKEN_OVER: return "session taken over";
    case RQ_RC_TOPIC_NAME_INVALID: return "topic name invalid";
    case RQ_RC_RECEIVE_MAX_EXCEEDED: return "receive maximum exceeded";
    case RQ_RC_TOPIC_ALIAS_INVALID: return "topic alias invalid";
    case RQ_RC_PACKET_TOO_LARGE: return "packet too large";
    case RQ_RC_QUOTA_EXCEEDED: return "quota exceeded";
    case RQ_RC_SERVER_SHUTTING_DOWN: return "server shutting down";
    case RQ_RC_SERVER_BUSY: return "server busy";
    case RQ_RC_IMPL_SPECIFIC: return "implementation specific error";
    default: return "error";
    }
}

void rq_client_init(struct rq_client *c, struct rq_worker *w, void *conn, int port,
                    const struct rq_peer *peer)
{
    memset(c, 0, sizeof *c);
    c->w = w;
    c->conn = conn;
    c->migrate_to = -1;
    c->move_to = -1;
    c->last_rx = w->now;
    c->log.shard = w->id;
    c->log.port = port;
    c->log.peer = peer;
    c->log.phase = "connect";
    rq_timer_add(&w->wheel, &c->ka_timer, w->now + rq_client_cfg(c)->connect_timeout_ms,
                 on_keepalive, c);
}

/* Judged on every byte held for the client, not only c->out: TLS and WebSocket connections move
 * c->out into their transport at each flush, so c->out alone says nothing about a backlog. */
bool rq_client_writable(const struct rq_client *c)
{
    const struct rq_worker_ops *ops = c->w->ops;
    size_t held = ops->out_held ? ops->out_held(c->w, c->conn) : c->out.len;
    return held < RQ_OUT_HIGH_WATER;
}

/* ---- output ---- */

bool rq_client_fits(struct rq_client *c, size_t start)
{
    if (!c->max_packet_out || c->out.len - start <= c->max_packet_out)
        return true;
    c->out.len = start;
    return false;
}

void rq_props_drop_optional(struct rq_props *p)
{
    p->present &= ~RQ_PROP_BIT(RQ_PROP_REASON_STRING);
    p->user_props = (struct rq_str){NULL, 0};
}

/* A packet without properties that does not fit the client's Maximum Packet Size (a client
 * that asked for less than a few bytes) cannot be sent: the connection cannot go on. */
static void close_unsendable(struct rq_client *c, const char *what)
{
    char why[96];
    snprintf(why, sizeof why, "%s larger than the client's Maximum Packet Size %u [MQTT-3.1.2-25]",
             what, c->max_packet_out);
    rq_client_close(c, 0, why);
}

void rq_client_write_ack(struct rq_client *c, int type, uint16_t pid, uint8_t reason)
{
    static const char *const names[] = {[RQ_PUBACK] = "PUBACK",
                                        [RQ_PUBREC] = "PUBREC",
                                        [RQ_PUBREL] = "PUBREL",
                                        [RQ_PUBCOMP] = "PUBCOMP"};
    struct rq_ack a = {.packet_id = pid, .reason = reason};
    size_t start = c->out.len;
    if (rq_codec_encode_ack(&c->out, c->version, type, &a) != 0)
        return;
    if (!rq_client_fits(c, start)) {
        close_unsendable(c, names[type]);
        return;
    }
    rq_client_flush(c);
}

/* v5 DISCONNECT with the reason; the Reason String goes when the packet would be larger than
 * the client's Maximum Packet Size, the whole DISCONNECT when even that is [MQTT-3.14.2-3]. */
void rq_client_send_disconnect(struct rq_client *c, uint8_t reason, const char *why)
{
    if (c->version != 5 || !c->connected)
        return;
    struct rq_props p = {0};
    if (why && reason >= 0x80) {
        p.present |= RQ_PROP_BIT(RQ_PROP_REASON_STRING);
        p.reason_string = (struct rq_str){(const uint8_t *)why, (uint32_t)strlen(why)};
    }
    size_t start = c->out.len;
    if (rq_codec_encode_reason(&c->out, 5, RQ_DISCONNECT, reason, &p) != 0)
        return;
    if (!rq_client_fits(c, start)) {
        rq_props_drop_optional(&p);
        if (rq_codec_encode_reason(&c->out, 5, RQ_DISCONNECT, reason, &p) != 0 ||
            !rq_client_fits(c, start))
            return;
    }
    rq_client_flush(c);
}

/* rc: 0 or -RQ_RC_*. v5 clients past CONNECT get DISCONNECT rc; others are just closed. */
void rq_client_close(struct rq_client *c, int rc, const char *why)
{
    if (c->closing)
        return;
    int level = (rc == 0 || rc == -RQ_RC_SERVER_SHUTTING_DOWN) ? RQ_LOG_DEBUG : RQ_LOG_INFO;
    if (rc < 0)
        rq_log(level, &c->log, "closing connection: %s (reason 0x%02X %s)", why, -rc,
               rq_rc_name(-rc));
    else
        rq_log(level, &c->log, "closing connection: %s", why);
    if (rc < 0)
        rq_client_send_disconnect(c, (uint8_t)-rc, why);
    rq_client_phase(c, RQ_PH_CLOSING);
    c->w->ops->want_close(c->w, c->conn);
}

/* ---- topic aliases toward the client ---- */

struct rq_alias_out {
    uint64_t hash;
    uint16_t len;
    uint8_t *topic;
};

static uint64_t topic_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Returns the alias to use (0 = none) and whether the topic must still be sent with it. */
static uint16_t alias_for(struct rq_client *c, const struct rq_msg *m, bool *send_topic)
{
    *send_topic = true;
    if (!c->alias_out_max)
        return 0;
    uint64_t h = topic_hash(m->topic, m->topic_len);
    for (uint16_t i = 0; i < c->alias_out_used; i++) {
        struct rq_alias_out *a = &c->alias_out[i];
        if (a->hash == h && a->len == m->topic_len && memcmp(a->topic, m->topic, a->len) == 0) {
            *send_topic = false;
            return (uint16_t)(i + 1);
        }
    }
    if (c->alias_out_used == c->alias_out_max)
        return 0; /* table full: send the topic in full */
    if (!c->alias_out) {
        c->alias_out = calloc(c->alias_out_max, sizeof *c->alias_out);
        if (!c->alias_out)
            return 0;
    }
    uint8_t *copy = malloc(m->topic_len ? m->topic_len : 1);
    if (!copy)
        return 0;
    memcpy(copy, m->topic, m->topic_len);
    c->alias_out[c->alias_out_used] = (struct rq_alias_out){h, m->topic_len, copy};
    return ++c->alias_out_used;
}

bool rq_client_write_publish(struct rq_client *c, const struct rq_delivery *d, uint16_t pid,
                             bool dup)
{
    const struct rq_msg *m = d->msg;
    if (!m)
        return false; /* released (QoS 2 after PUBREC): nothing to resend */
    long remaining = rq_msg_remaining(m, c->w->now);
    if (remaining < 0 && !dup)
        return rq_stats_drop(RQ_ST_DROP_EXPIRED, d->qos, false), false; /* [MQTT-3.3.2-5] */
    if (remaining < 0)
        remaining = 0; /* a resend: delivery started before it expired (session.c resend_one) */
    struct rq_pubout po = {
        .qos = d->qos,
        .dup = dup,
        .retain = d->retain,
        .topic = {m->topic, m->topic_len},
        .packet_id = pid,
        .has_expiry = m->expiry_prop,
        .expiry = (uint32_t)remaining,
        .sub_ids = d->n_ids > 1 ? d->ids : &d->id0,
        .n_sub_ids = d->n_ids,
        .shared_props = {m->props, m->props_len},
        .payload = {m->payload, m->payload_len},
    };
    if (c->version != 5) {
        po.n_sub_ids = 0;
        po.has_expiry = false;
    }
    if (rq_codec_publish_size(c->version, &po) > c->max_packet_out) {
        char t[128];
        rq_log(RQ_LOG_DEBUG, &c->log,
               "message on \"%s\" larger than the client's maximum packet size: dropped for "
               "this client",
               rq_log_escape(t, sizeof t, m->topic, m->topic_len));
        return rq_stats_drop(RQ_ST_DROP_TOO_LARGE, d->qos, false), false; /* [MQTT-3.1.2-25] */
    }
    bool send_topic = true;
    if (c->version == 5 && !dup) {
        po.topic_alias = alias_for(c, m, &send_topic);
        if (!send_topic)
            po.topic.len = 0;
    }
    if (rq_codec_encode_publish(&c->out, c->version, &po) != 0)
        return false;
    rq_stats_publish_out(m->payload_len);
    rq_client_flush(c);
    return true;
}

/* ---- connect timeout, keepalive, credential expiry: one timer per connection ---- */

/* Connected: arms the timer for whichever comes first, the keepalive deadline (from the last
 * packet received) or the credentials' expiry. */
void rq_client_arm_timer(struct rq_client *c)
{
    uint64_t at = UINT64_MAX;
    if (c->keepalive)
        at = c->last_rx + (uint64_t)c->keepalive * 1500; /* 1.5 x keepalive [MQTT-3.1.2-24] */
    if (c->cred_expires && c->cred_expires < at)
        at = c->cred_expires;
    rq_timer_cancel(&c->w->wheel, &c->ka_timer);
    if (at != UINT64_MAX)
        rq_timer_add(&c->w->wheel, &c->ka_timer, at, on_keepalive, c);
}

static void on_keepalive(struct rq_timer *t, void *arg)
{
    struct rq_client *c = arg;
    if (c->closing)
        return;
    if (c->phase == RQ_PH_AUTHENTICATING) {
        /* info: an operator looks for this when an auth server is slow or unreachable */
        rq_log(RQ_LOG_INFO, &c->log, "CONNECT still waiting for authentication at the connect "
               "timeout (%u ms): closing the connection", rq_client_cfg(c)->connect_timeout_ms);
        rq_client_close(c, 0, "CONNECT still waiting for authentication at the connect timeout");
        return;
    }
    if (!c->connected) {
        rq_client_close(c, 0, "no CONNECT within the connect timeout");
        return;
    }
    if (c->cred_expires && c->w->now >= c->cred_expires) {
        /* The network connection is closed without DISCONNECT (as AIO does), so the will is
         * published. */
        rq_log(RQ_LOG_INFO, &c->log, "credentials expired (%s): closing the connection",
               c->principal && c->principal->method ? c->principal->method : "authentication");
        rq_client_close(c, 0, "credentials expired");
        return;
    }
    if (c->keepalive && c->w->now - c->last_rx >= (uint64_t)c->keepalive * 1500) {
        rq_client_close(c, -RQ_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
        return;
    }
    rq_client_arm_timer(c);
}

/* ---- PUBLISH from the client ---- */

static int resolve_alias(struct rq_client *c, struct rq_publish *p, const char **why)
{
    if (c->version != 5 || !RQ_PROP_HAS(&p->props, RQ_PROP_TOPIC_ALIAS))
        return 0;
    uint16_t a = p->props.topic_alias;
    if (a == 0 || a > c->alias_in_max) {
        *why = "topic alias 0 or above the Topic Alias Maximum [MQTT-3.3.2-9]";
        return -RQ_RC_TOPIC_ALIAS_INVALID;
    }
    struct rq_str *slot = &c->alias_in[a];
    if (p->topic.len) {
        uint8_t *copy = realloc((uint8_t *)slot->p, p->topic.len);
        if (!copy) {
            *why = "out of memory";
            return -RQ_RC_IMPL_SPECIFIC;
        }
        memcpy(copy, p->topic.p, p->topic.len);
        *slot = (struct rq_str){copy, p->topic.len};
        return 0;
    }
    if (!slot->p) {
        *why = "topic alias used before it was set";
        return -RQ_RC_PROTOCOL_ERROR;
    }
    p->topic = *slot;
    return 0;
}

static bool qos2_seen(struct rq_session *s, uint16_t pid, bool remove)
{
    for (uint16_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i] == pid) {
            if (remove)
                s->qos2_in[i] = s->qos2_in[--s->qos2_in_count];
            return true;
        }
    }
    return false;
}

/* Topics a client may not publish to: $SYS (the broker's own) and anything under $share/ (a
 * subscription prefix, never a topic). Returns why, or NULL when the topic is open. */
const char *rq_topic_reserved(const uint8_t *t, size_t len)
{
    if (len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/'))
        return "$SYS topics are the broker's own";
    if (len >= 6 && memcmp(t, "$share", 6) == 0 && (len == 6 || t[6] == '/'))
        return "$share/ names shared subscriptions, not a topic";
    return NULL;
}

/* A PUBLISH to a reserved topic: v5 QoS 1/2 get 0x87 Not authorized; 3.1.1 has no way to say
 * no, so QoS 1/2 are acknowledged and dropped (as mosquitto does for an ACL denial); QoS 0 is
 * dropped. Logged at most once every 10 s per shard (a client can send these in a loop). */
static void refuse_publish(struct rq_client *c, const struct rq_publish *p, const char *reason)
{
    struct rq_worker *w = c->w;
    if (!w->refused_logged || w->now - w->refused_logged >= 10000) {
        char t[128];
        rq_log(RQ_LOG_INFO, &c->log,
               "PUBLISH to \"%s\" dropped: %s (%llu more on this shard since the last such "
               "line; logged at most every 10 s)",
               rq_log_escape(t, sizeof t, p->topic.p, p->topic.len), reason,
               (unsigned long long)w->refused_since);
        w->refused_logged = w->now ? w->now : 1;
        w->refused_since = 0;
    } else {
        w->refused_since++;
    }
    uint8_t rc = c->version == 5 ? RQ_RC_NOT_AUTHORIZED : 0;
    rq_stats_drop(RQ_ST_DROP_NOT_AUTHORIZED, p->qos, true);
    if (p->qos)
        rq_client_write_ack(c, p->qos == 1 ? RQ_PUBACK : RQ_PUBREC, p->packet_id, rc);
}

static int on_publish(struct rq_client *c, struct rq_publish *p, const char **why)
{
    const struct rq_config *cfg = rq_client_cfg(c);
    rq_stats_publish_in(p->payload.len);
    if (p->n_sub_ids) {
        *why = "subscription identifier in a PUBLISH from a client [MQTT-3.3.4-6]";
        return -RQ_RC_PROTOCOL_ERROR;
    }
    int rc = resolve_alias(c, p, why);
    if (rc)
        return rc;
    if (cfg->max_topic_levels && rq_topic_levels(p->topic.p, p->topic.len) > cfg->max_topic_levels) {
        *why = "topic has more levels than maxTopicLevels";
        return -RQ_RC_TOPIC_NAME_INVALID;
    }
    const char *reserved = rq_topic_reserved(p->topic.p, p->topic.len);
    if (reserved) {
        refuse_publish(c, p, reserved);
        return 0;
    }
    if (c->access && !c->access->ops->publish(c->access, p->topic.p, p->topic.len)) {
        rq_stat_inc(RQ_ST_AUTHZ_DENY);
        refuse_publish(c, p, "not authorized (no Publish rule of the port's BrokerAuthorization "
                             "matches the topic for this client)");
        return 0; /* never routed, never retained */
    }
    if (c->access)
        rq_stat_inc(RQ_ST_AUTHZ_ALLOW);
    if (p->qos == 2) {
        if (qos2_seen(c->s, p->packet_id, false)) { /* duplicate: already routed once */
            rq_client_write_ack(c, RQ_PUBREC, p->packet_id, 0);
            return 0;
        }
        if (c->s->qos2_in_count >= cfg->max_inflight) {
            *why = "more QoS 2 messages in flight than our Receive Maximum [MQTT-3.3.4-9]";
            return -RQ_RC_RECEIVE_MAX_EXCEEDED;
        }
        if (!c->s->qos2_in) { /* first QoS 2 message of this session */
            c->s->qos2_in = calloc(cfg->max_inflight, sizeof *c->s->qos2_in);
            if (!c->s->qos2_in) {
                *why = "out of memory";
                return -RQ_RC_IMPL_SPECIFIC;
            }
        }
    }
    struct rq_msg *m = rq_msg_new(p->topic, p->payload, c->version == 5 ? &p->props : NULL,
                                  p->qos, p->retain, c->s->id, c->w->now,
                                  cfg->max_message_expiry);
    if (!m) {
        *why = "out of memory";
        return -RQ_RC_IMPL_SPECIFIC;
    }
    if (p->retain)
        rq_retain_store(c->w, m);
    size_t takers = rq_route(c->w, m);
    rq_msg_unref(m);
    rq_place_after_route(c); /* may decide to move the client after this packet */
    /* v5: 0x10 when no subscription took it, retained or not (the message was accepted and,
     * if retained, stored; mosquitto answers the same). */
    uint8_t ok = c->version == 5 && takers == 0 ? RQ_RC_NO_MATCHING_SUBSCRIBERS : 0;
    if (p->qos == 1) {
        rq_client_write_ack(c, RQ_PUBACK, p->packet_id, ok);
    } else if (p->qos == 2) {
        c->s->qos2_in[c->s->qos2_in_count++] = p->packet_id;
        rq_client_write_ack(c, RQ_PUBREC, p->packet_id, ok);
    }
    return 0;
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

struct retained_ctx {
    struct rq_client *c;
    uint64_t now;
    struct rq_msg **v;
    size_t n, cap;
};

static bool visit_retained(void *ctx, const uint8_t *topic, size_t len, void *msg)
{
    struct retained_ctx *r = ctx;
    struct rq_msg *m = msg;
    if (rq_msg_remaining(m, r->now) < 0)
        return false; /* expired: remove from the store */
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        struct rq_msg **nv = realloc(r->v, ncap * sizeof *nv);
        if (!nv)
            return true;
        r->v = nv;
        r->cap = ncap;
    }
    r->v[r->n++] = rq_msg_ref(m);
    return true;
}

static void drop_msg(void *m)
{
    rq_stat_delta(RQ_ST_RETAINED_BYTES, -(int64_t)((struct rq_msg *)m)->payload_len);
    rq_msg_unref(m);
}

/* Retained messages for a new subscription [MQTT-3.3.1-9..11]; never for shared ones. */
static void send_retained(struct rq_client *c, const uint8_t *f, size_t len, uint8_t opts,
                          uint32_t sub_id)
{
    struct rq_broker *b = c->w->b;
    struct retained_ctx r = {.c = c, .now = c->w->now};
    pthread_mutex_lock(&b->retain_lock);
    rq_retain_match(b->retained, f, len, visit_retained, &r, drop_msg);
    pthread_mutex_unlock(&b->retain_lock);
    for (size_t i = 0; i < r.n; i++) {
        struct rq_delivery d = {.msg = r.v[i], .retain = true};
        d.qos = RQ_SUBOPT_QOS(opts) < r.v[i]->qos ? RQ_SUBOPT_QOS(opts) : r.v[i]->qos;
        if (sub_id) {
            d.n_ids = 1;
            d.id0 = sub_id;
        }
        if (c->s)
            rq_session_deliver(c->s, &d);
        else
            rq_delivery_release(&d);
    }
    free(r.v);
}

/* A filter authorization does not grant: SUBACK 0x87 (v5) / 0x80 (3.1.1) for it alone; no
 * subscription, so no retained message either. Logged like refused PUBLISHes (shared limit). */
static uint8_t refuse_filter(struct rq_client *c, struct rq_str f)
{
    struct rq_worker *w = c->w;
    rq_stat_inc(RQ_ST_AUTHZ_DENY);
    if (!w->refused_logged || w->now - w->refused_logged >= 10000) {
        char t[128];
        rq_log(RQ_LOG_INFO, &c->log,
               "SUBSCRIBE to \"%s\" refused: not authorized (no Subscribe rule of the port's "
               "BrokerAuthorization covers the filter for this client) (%llu more refusals on "
               "this shard since the last such line; logged at most every 10 s)",
               rq_log_escape(t, sizeof t, f.p, f.len), (unsigned long long)w->refused_since);
        w->refused_logged = w->now ? w->now : 1;
        w->refused_since = 0;
    } else {
        w->refused_since++;
    }
    return c->version == 5 ? RQ_RC_NOT_AUTHORIZED : 0x80;
}

static int on_subscribe(struct rq_client *c, const struct rq_sublist *sl, const char **why)
{
    const struct rq_config *cfg = rq_client_cfg(c);
    uint8_t codes[256], wants[256];
    bool heap = sl->count > sizeof codes;
    uint8_t *rcs = heap ? malloc(sl->count) : codes;
    uint8_t *want_retained = heap ? malloc(sl->count) : wants;
    int result = 0;
    if (!rcs || !want_retained) {
        *why = "out of memory";
        result = -RQ_RC_IMPL_SPECIFIC;
        goto out;
    }
    uint32_t sub_id = RQ_PROP_HAS(&sl->props, RQ_PROP_SUB_ID) ? sl->props.sub_id : 0;
    struct rq_str f;
    uint8_t opts;
    uint32_t off = 0, i = 0;
    /* A filter with misplaced wildcards makes the whole packet malformed [MQTT-4.7.1-1]. */
    while (rq_codec_next_filter(sl, true, &off, &f, &opts)) {
        int rc = rq_topic_filter_check(f.p, f.len, cfg->max_topic_levels, why);
        if (rc == -RQ_RC_MALFORMED) {
            result = rc;
            goto out;
        }
        want_retained[i] = 0;
        rcs[i++] = rc ? (c->version == 5 ? (uint8_t)-rc : 0x80) : RQ_SUBOPT_QOS(opts);
        if (!rc && c->access) {
            if (!c->access->ops->subscribe(c->access, f.p, f.len))
                rcs[i - 1] = refuse_filter(c, f);
            else
                rq_stat_inc(RQ_ST_AUTHZ_ALLOW);
        }
    }
    off = i = 0;
    while (rq_codec_next_filter(sl, true, &off, &f, &opts)) {
        uint32_t k = i++;
        if (rcs[k] >= 0x80)
            continue;
        if (c->version != 5)
            opts &= 0x03;
        bool existed = false;
        if (rq_session_subscribe(c->s, f.p, f.len, opts, sub_id, &existed) != 0) {
            rcs[k] = c->version == 5 ? RQ_RC_IMPL_SPECIFIC : 0x80;
            continue;
        }
        const uint8_t *g, *inner;
        size_t glen, ilen;
        bool shared = rq_topic_split_shared(f.p, f.len, &g, &glen, &inner, &ilen);
        int rh = RQ_SUBOPT_RH(opts);
        want_retained[k] = !shared && (rh == 0 || (rh == 1 && !existed));
    }
    size_t start = c->out.len;
    if (rq_codec_encode_suback(&c->out, c->version, RQ_SUBACK, sl->packet_id, NULL, rcs,
                               sl->count) != 0) {
        *why = "out of memory";
        result = -RQ_RC_IMPL_SPECIFIC;
        goto out;
    }
    if (!rq_client_fits(c, start)) {
        *why = "SUBACK larger than the client's Maximum Packet Size [MQTT-3.1.2-25]";
        result = -RQ_RC_PACKET_TOO_LARGE;
        goto out;
    }
    rq_client_flush(c);
    /* Retained messages go out after the SUBACK [MQTT-3.8.4-4]. */
    off = i = 0;
    while (rq_codec_next_filter(sl, true, &off, &f, &opts))
        if (want_retained[i++])
            send_retained(c, f.p, f.len, opts, sub_id);
out:
    if (heap) {
        free(rcs);
        free(want_retained);
    }
    return result;
}

static int on_unsubscribe(struct rq_client *c, const struct rq_sublist *sl, const char **why)
{
    uint8_t codes[256];
    uint8_t *rcs = sl->count <= sizeof codes ? codes : malloc(sl->count);
    if (!rcs) {
        *why = "out of memory";
        return -RQ_RC_IMPL_SPECIFIC;
    }
    struct rq_str f;
    uint32_t off = 0, i = 0;
    while (rq_codec_next_filter(sl, false, &off, &f, NULL)) {
        int rc = rq_topic_filter_check(f.p, f.len, 0, why);
        if (rc == -RQ_RC_MALFORMED) {
            if (rcs != codes)
                free(rcs);
            return rc;
        }
        rcs[i++] = rq_session_unsubscribe(c->s, f.p, f.len) == 0 ? RQ_RC_SUCCESS
                                                                  : RQ_RC_NO_SUBSCRIPTION_EXISTED;
    }
    size_t start = c->out.len;
    int rc = rq_codec_encode_suback(&c->out, c->version, RQ_UNSUBACK, sl->packet_id, NULL, rcs,
                                    sl->count);
    if (rcs != codes)
        free(rcs);
    if (rc == 0 && !rq_client_fits(c, start)) {
        *why = "UNSUBACK larger than the client's Maximum Packet Size [MQTT-3.1.2-25]";
        return -RQ_RC_PACKET_TOO_LARGE;
    }
    rq_client_flush(c);
    return 0;
}

/* ---- DISCONNECT from the client ---- */

static int on_disconnect(struct rq_client *c, const struct rq_reason *r, const char **why)
{
    if (c->version == 5 && RQ_PROP_HAS(&r->props, RQ_PROP_SESSION_EXPIRY)) {
        if (c->s->expiry == 0 && r->props.session_expiry != 0) {
            *why = "session expiry set in DISCONNECT after 0 in CONNECT [MQTT-3.14.2-2]";
            return -RQ_RC_PROTOCOL_ERROR;
        }
        uint32_t e = r->props.session_expiry;
        c->s->expiry =
            e > rq_client_cfg(c)->max_session_expiry ? rq_client_cfg(c)->max_session_expiry : e;
    }
    c->graceful = r->reason != RQ_RC_DISCONNECT_WITH_WILL; /* 0x04 keeps the will */
    rq_log(RQ_LOG_DEBUG, &c->log, "client disconnected (reason 0x%02X)", r->reason);
    rq_client_phase(c, RQ_PH_CLOSING);
    c->w->ops->want_close(c->w, c->conn);
    return 0;
}

/* ---- dispatch ---- */

static int on_packet(struct rq_client *c, struct rq_packet *pk, const char **why)
{
    if (!c->connected) {
        if (pk->type != RQ_CONNECT) {
            *why = "first packet is not CONNECT [MQTT-3.1.0-1]";
            return -RQ_RC_PROTOCOL_ERROR;
        }
        return rq_client_on_connect(c, &pk->u.connect);
    }
    switch (pk->type) {
    case RQ_CONNECT:
        *why = "second CONNECT [MQTT-3.1.0-2]";
        return -RQ_RC_PROTOCOL_ERROR;
    case RQ_PUBLISH:
        return on_publish(c, &pk->u.publish, why);
    case RQ_PUBACK:
    case RQ_PUBREC:
    case RQ_PUBCOMP:
        return rq_session_on_ack(c->s, pk->type, pk->u.ack.packet_id, pk->u.ack.reason);
    case RQ_PUBREL: {
        bool found = qos2_seen(c->s, pk->u.ack.packet_id, true);
        rq_client_write_ack(c, RQ_PUBCOMP, pk->u.ack.packet_id,
                            found ? 0 : RQ_RC_PACKET_ID_NOT_FOUND);
        return 0;
    }
    case RQ_SUBSCRIBE:
        return on_subscribe(c, &pk->u.sub, why);
    case RQ_UNSUBSCRIBE:
        return on_unsubscribe(c, &pk->u.sub, why);
    case RQ_PINGREQ: {
        size_t start = c->out.len;
        if (rq_codec_encode_simple(&c->out, RQ_PINGRESP) != 0)
            return 0;
        if (rq_client_fits(c, start))
            rq_client_flush(c);
        else
            close_unsendable(c, "PINGRESP");
        return 0;
    }
    case RQ_DISCONNECT:
        return on_disconnect(c, &pk->u.reason, why);
    case RQ_AUTH:
        return rq_client_on_auth(c, &pk->u.reason, why); /* re-authentication, reauth.c */
    default:
        *why = "packet type a client must not send";
        return -RQ_RC_PROTOCOL_ERROR;
    }
}

/* Why a first packet that does not start with 0x10 is refused, naming what the bytes probably
 * are when they look like something an operator can fix. */
static const char *not_connect_why(const uint8_t *p, size_t len)
{
    if (p[0] == 0x16)
        return "first packet is not CONNECT: a TLS handshake on a plain MQTT port [MQTT-3.1.0-1]";
    if ((len >= 6 && memcmp(p, "PROXY ", 6) == 0) || (len >= 4 && memcmp(p, "\r\n\r\n", 4) == 0))
        return "first packet is not CONNECT: a PROXY protocol header (not supported) "
               "[MQTT-3.1.0-1]";
    if (len >= 4 && memcmp(p, "GET ", 4) == 0)
        return "first packet is not CONNECT: an HTTP request (WebSocket is served only on ports "
               "with protocol WebSockets) [MQTT-3.1.0-1]";
    return "first packet is not CONNECT [MQTT-3.1.0-1]";
}

/* A CONNECT that did not decode. v5: CONNACK with the reason. 3.1.1 has a return code only for
 * a protocol level it does not support, level 0 included [MQTT-3.1.2-2]; anything else
 * malformed is closed without CONNACK [MQTT-3.1.4-1]. An unsupported level above 5 is answered
 * in the v5 format (0x84, as 5.0 section 3.1.2.2 says), one below in the 3.1.1 format (0x01),
 * which every older client can read. Returns true when a CONNACK went out (closing). */
static bool connect_refused(struct rq_client *c, const struct rq_connect *k, int rc,
                            const char *why)
{
    bool level = rc == -RQ_RC_UNSUPPORTED_PROTOCOL_VERSION; /* the level was read */
    if (!level && k->version != 5)
        return false;
    if (RQ_PROP_HAS(&k->props, RQ_PROP_MAX_PACKET_SIZE))
        c->max_packet_out = k->props.max_packet_size; /* decoded before the failure */
    rq_client_connack_fail(c, level && k->version < 5 ? 4 : 5, -rc, why);
    return true;
}

long rq_client_on_bytes(struct rq_client *c, const uint8_t *p, size_t len)
{
    size_t used = 0;
    if (rq_client_suspended(c) || c->move_to >= 0)
        return 0; /* parsing stopped: net keeps the bytes until the CONNECT resumes, or
                     carries them to the shard the client moves to */
    c->last_rx = c->w->now;
    /* The first packet must be CONNECT [MQTT-3.1.0-1]: type 1, reserved flags 0 [MQTT-2.1.3-1].
     * Its first byte tells, so anything else is refused there, before its length is read: not
     * after a whole packet (up to 1 MiB) has been held for the connect timeout. */
    if (!c->connected && len && p[0] != 0x10) {
        rq_client_close(c, -RQ_RC_PROTOCOL_ERROR, not_connect_why(p, len));
        return -1;
    }
    while (used < len && !c->closing && c->move_to < 0) {
        const char *why = "malformed packet";
        size_t hdr;
        uint32_t max = rq_client_cfg(c)->max_packet_size;
        if (!c->connected && max > PRE_CONNECT_MAX)
            max = PRE_CONNECT_MAX;
        long n = rq_codec_frame(p + used, len - used, max, &hdr, &why);
        if (n == RQ_INCOMPLETE || (n > 0 && (size_t)n > len - used))
            break; /* the rest of the packet has not arrived yet */
        int rc = (int)n;
        struct rq_packet pk;
        pk.type = 0;
        pk.u.connect.version = 0;
        if (n > 0) {
            int v = c->level == 3 ? 3 : c->version ? c->version : 4;
            rc = rq_codec_decode(p + used, (size_t)n, v, &pk, &why);
            if (rc == 0) {
                rc = on_packet(c, &pk, &why);
                if (rc == -2)
                    return (long)used; /* suspended: this CONNECT and what follows are kept */
            } else if (!c->connected && pk.type == RQ_CONNECT) {
                if (connect_refused(c, &pk.u.connect, rc, why))
                    return -1;
            }
        }
        if (rc < 0) {
            rq_client_close(c, rc, why);
            return -1;
        }
        used += (size_t)n;
    }
    return c->closing ? -1 : (long)used;
}

void rq_client_on_drained(struct rq_client *c)
{
    if (c->s && c->connected && !c->closing)
        rq_session_pump(c->s);
}

void rq_client_on_closed(struct rq_client *c, const char *why)
{
    rq_timer_cancel(&c->w->wheel, &c->ka_timer);
    if (c->s) {
        struct rq_session *s = c->s;
        rq_client_unbind(c);
        rq_log(RQ_LOG_DEBUG, &c->log, "connection closed: %s", why);
        rq_session_detach(s, !c->graceful);
    }
    rq_client_phase(c, RQ_PH_CLOSING);
    c->connected = false;
}

void rq_client_borrow_id(struct rq_client *c)
{
    if (c->client_id_print && strcmp(c->client_id_print, c->s->cid) == 0) {
        free(c->client_id_print);
        c->client_id_print = NULL;
        c->log.client_id = c->s->cid;
    }
}

void rq_client_unbind(struct rq_client *c)
{
    struct rq_session *s = c->s;
    if (s && c->log.client_id == s->cid) /* the log name was borrowed from the session */
        c->log.client_id = c->client_id_print = strdup(s->cid);
    c->s = NULL;
}

void rq_client_free(struct rq_client *c)
{
    if (c->s)
        rq_client_on_closed(c, "freed");
    rq_stat_delta(RQ_ST_CONNECTED, c->phase == RQ_PH_CONNECTED ? -1 : 0); /* never closed */
    rq_timer_cancel(&c->w->wheel, &c->ka_timer);
    if (c->over_limit)
        atomic_fetch_sub(&c->w->b->connections, 1);
    rq_client_release(c);
}

void rq_client_release(struct rq_client *c)
{
    rq_principal_free(c->principal);
    free(c->auth_method);
    rq_access_free(c->access);
    free(c->client_id_print);
    if (c->alias_in)
        for (uint32_t i = 0; i <= c->alias_in_max; i++)
            free((void *)c->alias_in[i].p);
    free(c->alias_in);
    for (uint16_t i = 0; i < c->alias_out_used; i++)
        free(c->alias_out[i].topic);
    free(c->alias_out);
    rq_buf_free(&c->out);
}
