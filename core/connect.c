/* CONNECT: the state machine of a connection until its session is attached (rq_client_phase),
 * client identifier (assigned when empty), authentication through the port's methods (a
 * pending verdict suspends the CONNECT until rq_client_auth_resume),
 * the connection limit, finding / taking over / creating the session (or handing the
 * connection to the shard that owns it), the limits that apply to this client, and CONNACK. */
#include "core/broker_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"

/* ---- the CONNECT state machine (enum rq_client_phase in broker.h) ---- */

static const char *const phase_names[] = {
    [RQ_PH_PRECONNECT] = "pre-CONNECT", [RQ_PH_AUTHENTICATING] = "authenticating",
    [RQ_PH_ATTACHING] = "attaching",    [RQ_PH_HANDED_OVER] = "handed over",
    [RQ_PH_CONNECTED] = "connected",    [RQ_PH_CLOSING] = "closing",
};

const char *rq_client_phase_name(int phase)
{
    return phase >= 0 && phase <= RQ_PH_CLOSING ? phase_names[phase] : "?";
}

void rq_client_phase(struct rq_client *c, enum rq_client_phase to)
{
    if (c->phase == to || c->phase == RQ_PH_CLOSING)
        return; /* closing is final */
    /* The suspensions are what an operator looks for when a CONNECT hangs: debug; the rest of
     * every connection's path is trace. */
    bool rare = to == RQ_PH_AUTHENTICATING || to == RQ_PH_HANDED_OVER ||
                c->phase == RQ_PH_AUTHENTICATING || c->phase == RQ_PH_HANDED_OVER;
    rq_log(rare ? RQ_LOG_DEBUG : RQ_LOG_TRACE, &c->log, "phase %s -> %s",
           phase_names[c->phase], phase_names[to]);
    rq_stat_delta(RQ_ST_CONNECTED, (to == RQ_PH_CONNECTED) - (c->phase == RQ_PH_CONNECTED));
    c->phase = (uint8_t)to;
    switch (to) {
    case RQ_PH_AUTHENTICATING: c->log.phase = "authenticating"; break;
    case RQ_PH_ATTACHING: c->log.phase = "connect"; break;
    case RQ_PH_HANDED_OVER: c->log.phase = "connect"; break;
    case RQ_PH_CONNECTED:
        c->connected = true;
        c->log.phase = "session";
        break;
    case RQ_PH_CLOSING: c->closing = true; break; /* lines keep saying what it was doing */
    default: break;
    }
}

bool rq_client_suspended(const struct rq_client *c)
{
    return c->phase == RQ_PH_AUTHENTICATING || c->phase == RQ_PH_HANDED_OVER;
}

/* Refuses a CONNECT: CONNACK with the reason (v5) or the 3.1.1 return code, then close. A v5
 * CONNACK leaves out its Reason String when the client's Maximum Packet Size needs it to, and is
 * not sent at all when even the bare packet is too large [MQTT-3.2.2-19]. */
void rq_client_connack_fail(struct rq_client *c, int version, int rc, const char *why)
{
    rq_log(RQ_LOG_INFO, &c->log, "CONNECT refused: %s (reason 0x%02X %s)", why, rc, rq_rc_name(rc));
    struct rq_connack ca = {0};
    if (version == 5) {
        ca.rc = (uint8_t)rc;
        if (why) {
            ca.props.present |= RQ_PROP_BIT(RQ_PROP_REASON_STRING);
            ca.props.reason_string = (struct rq_str){(const uint8_t *)why, (uint32_t)strlen(why)};
        }
    } else {
        switch (rc) {
        case RQ_RC_UNSUPPORTED_PROTOCOL_VERSION: ca.rc = RQ_RC3_BAD_PROTOCOL; break;
        case RQ_RC_CLIENT_ID_NOT_VALID: ca.rc = RQ_RC3_ID_REJECTED; break;
        case RQ_RC_BAD_USERNAME_OR_PASSWORD: ca.rc = RQ_RC3_BAD_USER_PASS; break;
        case RQ_RC_NOT_AUTHORIZED: ca.rc = RQ_RC3_NOT_AUTHORIZED; break;
        default: ca.rc = RQ_RC3_SERVER_UNAVAILABLE; break;
        }
    }
    size_t start = c->out.len;
    int v = version == 5 ? 5 : 4;
    bool sent = rq_codec_encode_connack(&c->out, v, &ca) == 0;
    if (sent && !rq_client_fits(c, start)) {
        rq_props_drop_optional(&ca.props);
        sent = rq_codec_encode_connack(&c->out, v, &ca) == 0 && rq_client_fits(c, start);
        if (!sent)
            rq_log(RQ_LOG_INFO, &c->log,
                   "CONNACK larger than the client's Maximum Packet Size %u: closed without it "
                   "[MQTT-3.1.2-25]",
                   c->max_packet_out);
    }
    if (sent)
        rq_client_flush(c);
    rq_client_phase(c, RQ_PH_CLOSING);
    c->w->ops->want_close(c->w, c->conn);
}

/* The client id as log lines show it (rq_log_escape: control characters, quotes, backslashes
 * and ambiguous code points escaped), at most 79 bytes, in a heap copy at its exact length.
 * Once the client is bound to its session, an id that needed no escaping (almost all) is not
 * kept twice: log lines borrow the session's copy (rq_client_borrow_id) until the client leaves
 * the session (rq_client_unbind). */
static void client_id_printable(struct rq_client *c, const uint8_t *p, size_t len)
{
    char tmp[80];
    rq_log_escape(tmp, sizeof tmp, p, len);
    free(c->client_id_print);
    c->client_id_print = strdup(tmp);
    c->log.client_id = c->client_id_print; /* NULL (no client id in logs) if out of memory */
}

static struct rq_msg *make_will(struct rq_client *c, const struct rq_connect *k)
{
    struct rq_msg *m =
        rq_msg_new(k->will_topic, k->will_payload, k->version == 5 ? &k->will_props : NULL,
                   k->will_qos, k->will_retain, 0, c->w->now, rq_client_cfg(c)->max_message_expiry);
    return m;
}

/* Closes the connection attached to a session this CONNECT takes over [MQTT-3.1.4-3]. */
static void take_over_client(struct rq_session *old)
{
    struct rq_client *oc = old->client;
    if (!oc)
        return;
    rq_client_close(oc, -RQ_RC_SESSION_TAKEN_OVER, "session taken over");
    rq_client_unbind(oc);
    old->client = NULL;
}

/* Resumes a session of this shard: its connection, if any, is taken over. Returns NULL when
 * the session ended meanwhile (detach ends it while the broker stops). */
static struct rq_session *resume_session(struct rq_worker *w, struct rq_session *old)
{
    uint64_t sid = old->id;
    if (old->client) {
        take_over_client(old);
        rq_session_detach(old, true);        /* will of the old connection per its delay */
        old = rq_smap_get(w->sessions, sid); /* detach may end it */
        if (!old)
            return NULL;
    }
    rq_timer_cancel(&w->wheel, &old->timer); /* [MQTT-3.1.3-9] reconnected in time */
    rq_stat_delta(RQ_ST_WILLS, old->will ? -1 : 0);
    rq_msg_unref(old->will);
    old->will = NULL;
    return old;
}

/* Finds or creates the session for this CONNECT. Returns the session, NULL with *rc set on
 * failure, or NULL with c->migrate_to set when the session lives on another shard.
 * The registry lookup and the registration of a new session are one critical section under
 * reg_lock: two CONNECTs with the same client id handled at once by two shards cannot both
 * create a session; the later one replaces the earlier in the registry, and the replaced
 * session ends (its connection taken over) on the shard that owns it. A resumed session stays
 * registered, so a concurrent CONNECT finds it (and is handed over to this shard, or replaces
 * it with clean start). */
static struct rq_session *attach_session(struct rq_client *c, const struct rq_connect *k,
                                         const uint8_t *cid, size_t len, bool *present, int *rc)
{
    struct rq_worker *w = c->w;
    struct rq_broker *b = w->b;
    *present = false;
    for (;;) {
        pthread_mutex_lock(&b->reg_lock);
        struct rq_session *reg = rq_reg_find(b->reg, cid, len);
        if (reg && reg->moving) { /* between two shards' maps for one inbox hop */
            pthread_mutex_unlock(&b->reg_lock);
            *rc = RQ_RC_SERVER_BUSY;
            return NULL;
        }
        uint64_t sid = reg ? reg->id : 0;
        int owner = sid ? RQ_SESSION_SHARD(sid) : w->id;
        if (sid && owner != w->id && !k->clean_start) {
            pthread_mutex_unlock(&b->reg_lock);
            if (c->hops >= 3) {
                *rc = RQ_RC_SERVER_BUSY;
                return NULL;
            }
            c->migrate_to = owner;
            return NULL;
        }
        struct rq_session *old = sid && owner == w->id ? rq_smap_get(w->sessions, sid) : NULL;
        /* A connected session with expiry 0 ends when its connection is taken over: then this
         * CONNECT gets a new one, registered below like any other. */
        if (old && !k->clean_start && (!old->client || old->expiry != 0)) {
            pthread_mutex_unlock(&b->reg_lock);
            struct rq_session *s = resume_session(w, old);
            if (!s)
                continue; /* it ended and left the registry: look again */
            *present = true;
            return s;
        }
        struct rq_session *s = rq_session_new(w, cid, len);
        if (s)
            rq_reg_set(b->reg, s); /* replaces old / the other shard's session, if any */
        pthread_mutex_unlock(&b->reg_lock);
        if (!s) {
            *rc = RQ_RC_SERVER_UNAVAILABLE;
            return NULL;
        }
        if (old) { /* this shard's: end it here (it publishes its will) */
            take_over_client(old);
            rq_session_end(old, k->clean_start ? "clean start by a new connection"
                                               : "taken over, session expiry interval 0");
        } else if (sid && owner != w->id) {
            struct rq_post p = {.kind = RQ_POST_END_SESSION, .a = sid};
            w->ops->post(w, owner, &p);
        }
        return s;
    }
}

static int alloc_client_state(struct rq_client *c)
{
    const struct rq_config *cfg = rq_client_cfg(c);
    if (c->version == 5 && cfg->max_topic_alias) {
        c->alias_in = calloc((size_t)cfg->max_topic_alias + 1, sizeof *c->alias_in);
        if (!c->alias_in)
            return -ENOMEM;
        c->alias_in_max = cfg->max_topic_alias;
    }
    return 0;
}

static void send_connack(struct rq_client *c, const struct rq_connect *k, bool present,
                         const uint8_t *assigned, size_t alen, bool ka_changed, uint32_t expiry)
{
    const struct rq_config *cfg = rq_client_cfg(c);
    /* MQTT 3.1 has no Session Present: the first byte of its CONNACK is reserved, 0. */
    struct rq_connack ca = {.session_present = present && c->level != 3, .rc = 0};
    if (c->version == 5) {
        struct rq_props *p = &ca.props;
        p->present |= RQ_PROP_BIT(RQ_PROP_RECEIVE_MAX) | RQ_PROP_BIT(RQ_PROP_MAX_PACKET_SIZE) |
                      RQ_PROP_BIT(RQ_PROP_TOPIC_ALIAS_MAX);
        p->receive_max = cfg->max_inflight;
        /* MQTT's largest packet is 268435455 bytes of remaining length; some clients (paho)
         * refuse a larger advertised value, so the announced size stops there. */
        p->max_packet_size = cfg->max_packet_size < 268435455u ? cfg->max_packet_size : 268435455u;
        p->topic_alias_max = cfg->max_topic_alias;
        if (assigned) {
            p->present |= RQ_PROP_BIT(RQ_PROP_ASSIGNED_CLIENT_ID);
            p->assigned_client_id = (struct rq_str){assigned, (uint32_t)alen};
        }
        if (ka_changed) {
            p->present |= RQ_PROP_BIT(RQ_PROP_SERVER_KEEP_ALIVE);
            p->server_keep_alive = c->keepalive;
        }
        /* The method the CONNECT named decided (a listener without authentication refused it
         * already): the CONNACK names it too [MQTT-3.2.2.3.17] */
        if (RQ_PROP_HAS(&k->props, RQ_PROP_AUTH_METHOD)) {
            p->present |= RQ_PROP_BIT(RQ_PROP_AUTH_METHOD);
            p->auth_method = k->props.auth_method;
        }
        if (RQ_PROP_HAS(&k->props, RQ_PROP_SESSION_EXPIRY) && k->props.session_expiry != expiry) {
            p->present |= RQ_PROP_BIT(RQ_PROP_SESSION_EXPIRY);
            p->session_expiry = expiry;
        }
    }
    size_t start = c->out.len;
    if (rq_codec_encode_connack(&c->out, c->version, &ca) != 0)
        return;
    if (rq_client_fits(c, start)) /* nothing here may be left out [MQTT-3.2.2-19] */
        rq_client_flush(c);
    else
        rq_client_close(c, 0, "CONNACK larger than the client's Maximum Packet Size");
}

/* The credentials expire at expiry_unix (0 = never): the client's timer closes it then. */
void rq_client_set_cred_expiry(struct rq_client *c, int64_t expiry_unix)
{
    c->cred_expires = 0;
    if (!expiry_unix)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t left_ms = (expiry_unix - ts.tv_sec) * 1000 - ts.tv_nsec / 1000000;
    if (left_ms < 0)
        left_ms = 0;
    c->cred_expires = c->w->now + (uint64_t)left_ms;
    if (!c->cred_expires)
        c->cred_expires = 1; /* 0 means "never" */
}

/* An allowing verdict: the client takes its principal (an empty one when the method named
 * nobody, so that "authenticated" is always c->principal != NULL). */
static void accept_verdict(struct rq_client *c, struct rq_auth_verdict *v, bool log)
{
    if (v->result != RQ_AUTH_ALLOW)
        return;
    struct rq_principal *p = v->principal;
    v->principal = NULL;
    if (!p)
        p = calloc(1, sizeof *p);
    if (p && !p->method)
        p->method = v->method;
    rq_principal_free(c->principal);
    c->principal = p;
    if (log) {
        rq_stat_inc(RQ_ST_AUTHN_SUCCESS);
        char user[128], what[320];
        rq_log(RQ_LOG_INFO, &c->log, "authenticated by %s as \"%s\": %s",
               v->method ? v->method : "?",
               rq_log_escape_str(user, sizeof user, p ? p->username : NULL), /* a CN, say */
               rq_log_escape_str(what, sizeof what, v->why));
    }
    rq_client_set_cred_expiry(c, p ? p->expiry : 0);
}

static void refuse_verdict(struct rq_client *c, const struct rq_auth_verdict *v)
{
    rq_stats_authn_refused(v->result, v->reason);
    char why[300];
    if (v->result == RQ_AUTH_DENY)
        snprintf(why, sizeof why, "authentication failed (%s): %s",
                 v->method ? v->method : "no method", v->why);
    else
        snprintf(why, sizeof why, "authentication gave no verdict (%s)",
                 v->method ? v->method : "no method");
    int rc = v->result != RQ_AUTH_DENY ? RQ_RC_SERVER_UNAVAILABLE
             : v->reason >= 0x80      ? v->reason
                                      : RQ_RC_NOT_AUTHORIZED;
    /* MQTT 3.1.1 return codes for a denial: 4 for 0x86 (bad user name or password), 3 for
     * 0x88 / 0x89 (server unavailable / busy: e.g. the auth pool is full), 5 (not authorized)
     * for every other reason a method gives. */
    if (c->version != 5 && v->result == RQ_AUTH_DENY && rc != RQ_RC_BAD_USERNAME_OR_PASSWORD &&
        rc != RQ_RC_SERVER_UNAVAILABLE && rc != RQ_RC_SERVER_BUSY)
        rc = RQ_RC_NOT_AUTHORIZED;
    rq_client_connack_fail(c, c->version, rc, why);
}

/* Runs the port's authentication. Returns 0 (go on: ATTACHING), -1 (refused, connection
 * closing) or -2 (the verdict is pending: AUTHENTICATING, suspended until
 * rq_client_auth_resume). A resumed CONNECT (ATTACHING) has its verdict already. */
static int authenticate(struct rq_client *c, const struct rq_connect *k)
{
    if (c->phase == RQ_PH_ATTACHING)
        return 0;
    struct rq_worker *w = c->w;
    struct rq_auth_verdict v = {0};
    if (w->ops->authenticate)
        w->ops->authenticate(w, c->conn, k, &v);
    switch (v.result) {
    case RQ_AUTH_OFF:
        if (c->version == 5 && RQ_PROP_HAS(&k->props, RQ_PROP_AUTH_METHOD)) {
            rq_client_connack_fail(c, 5, RQ_RC_BAD_AUTH_METHOD,
                                   "enhanced authentication is not configured on this listener");
            return -1;
        }
        break;
    case RQ_AUTH_PENDING:
        rq_client_phase(c, RQ_PH_AUTHENTICATING); /* the connect timer keeps running */
        return -2;
    case RQ_AUTH_ALLOW:
        accept_verdict(c, &v, true);
        break;
    default:
        rq_principal_free(v.principal);
        refuse_verdict(c, &v);
        return -1;
    }
    rq_client_phase(c, RQ_PH_ATTACHING);
    return 0;
}

bool rq_client_auth_resume(struct rq_client *c, struct rq_auth_verdict *v)
{
    if (!rq_client_suspended(c))
        return false;
    bool arrived = c->phase == RQ_PH_HANDED_OVER; /* authenticated on the shard it came from */
    if (v->result != RQ_AUTH_ALLOW && v->result != RQ_AUTH_OFF) {
        refuse_verdict(c, v);
        return true;
    }
    accept_verdict(c, v, !arrived);
    rq_client_phase(c, RQ_PH_ATTACHING);
    c->w->ops->resume_input(c->w, c->conn); /* the CONNECT again, then what followed it */
    return true;
}

void rq_client_handover_arrived(struct rq_client *c, struct rq_principal *principal)
{
    struct rq_auth_verdict v = {.result = principal ? RQ_AUTH_ALLOW : RQ_AUTH_OFF,
                                .method = principal ? principal->method : NULL,
                                .principal = principal};
    rq_client_phase(c, RQ_PH_HANDED_OVER);
    rq_client_auth_resume(c, &v);
    rq_principal_free(v.principal); /* taken unless the client was closing */
}

/* ---- authorization (the port's rules, decided by auth/ through ops->authorize) ---- */

/* A message may reach c only on a topic one of its Subscribe filters covers. */
static bool may_receive(void *arg, const struct rq_msg *m)
{
    struct rq_access *a = arg;
    return a->ops->subscribe(a, m->topic, m->topic_len);
}

/* Removes the session's subscriptions that c's permissions do not cover: a session resumed
 * under another principal, or a principal replaced by re-authentication, keeps no subscription
 * its rules do not grant (retained messages and routing only ever go through allowed ones).
 * The messages already queued through such a subscription go too (and, resumed, the in-flight
 * ones the previous connection did not acknowledge: they would be resent to this client). */
static void prune_subscriptions(struct rq_client *c, bool resumed)
{
    struct rq_session *s = c->s;
    if (!c->access || !s)
        return;
    for (uint32_t i = 0; i < s->n_subs;) {
        struct rq_sub *sub = &s->subs[i];
        if (c->access->ops->subscribe(c->access, sub->filter, sub->len)) {
            i++;
            continue;
        }
        char f[128];
        rq_log(RQ_LOG_INFO, &c->log, "subscription \"%s\" removed: not authorized for this "
               "principal", rq_log_escape(f, sizeof f, sub->filter, sub->len));
        rq_session_unsubscribe(s, sub->filter, sub->len); /* moves the last one to i */
    }
    uint32_t n = rq_session_drop_unless(s, resumed, may_receive, c->access);
    if (n)
        rq_log(RQ_LOG_INFO, &c->log, "%u undelivered message(s) dropped: their topics are not "
               "authorized for this principal", n);
}

/* The will is checked as a PUBLISH: the broker publishes it on the client's behalf. */
static bool will_allowed(const struct rq_client *c, const uint8_t *t, size_t len)
{
    return !c->access || c->access->ops->publish(c->access, t, len);
}

/* Asks for this client's permissions and keeps them. Returns -1 when the CONNECT is refused
 * (CONNACK 0x87, 3.1.1 return code 5; out of memory: 0x88 / 3), its will topic included. */
static int authorize(struct rq_client *c, const struct rq_connect *k, const uint8_t *cid,
                     size_t len)
{
    struct rq_worker *w = c->w;
    if (!w->ops->authorize)
        return 0;
    struct rq_access *a = NULL;
    char why[300] = "", t[128];
    int r = w->ops->authorize(w, c->conn, c->principal, cid, len, &a, why, sizeof why);
    rq_access_free(c->access);
    c->access = a;
    if (r < 0) {
        rq_client_connack_fail(c, c->version, RQ_RC_SERVER_UNAVAILABLE,
                               "authorization: out of memory");
        return -1;
    }
    if (r == RQ_AUTH_DENY) {
        rq_stat_inc(RQ_ST_AUTHZ_DENY);
        rq_client_connack_fail(c, c->version, RQ_RC_NOT_AUTHORIZED, why);
        return -1;
    }
    if (k->will && !will_allowed(c, k->will_topic.p, k->will_topic.len)) {
        rq_stat_inc(RQ_ST_AUTHZ_DENY);
        snprintf(why, sizeof why, "not authorized: the will topic \"%s\" is not one this client "
                 "may publish to", rq_log_escape(t, sizeof t, k->will_topic.p, k->will_topic.len));
        rq_client_connack_fail(c, c->version, RQ_RC_NOT_AUTHORIZED, why);
        return -1;
    }
    return 0; /* counted as allowed once connected: a handed-over CONNECT comes here twice */
}

int rq_client_reauthorize(struct rq_client *c)
{
    struct rq_worker *w = c->w;
    struct rq_session *s = c->s;
    if (!w->ops->authorize || !s || c->closing)
        return 0;
    struct rq_access *a = NULL;
    char why[300] = "", t[128];
    int r = w->ops->authorize(w, c->conn, c->principal, (const uint8_t *)s->cid, s->cid_len, &a,
                              why, sizeof why);
    rq_access_free(c->access);
    c->access = a;
    if (r < 0 || r == RQ_AUTH_DENY) {
        if (r == RQ_AUTH_DENY)
            rq_stat_inc(RQ_ST_AUTHZ_DENY);
        rq_client_close(c, r < 0 ? -RQ_RC_SERVER_UNAVAILABLE : -RQ_RC_NOT_AUTHORIZED,
                        r < 0 ? "authorization: out of memory" : why);
        return -1;
    }
    if (s->will && !will_allowed(c, s->will->topic, s->will->topic_len)) {
        rq_log(RQ_LOG_INFO, &c->log, "will dropped: its topic \"%s\" is not authorized for the "
               "new principal", rq_log_escape(t, sizeof t, s->will->topic, s->will->topic_len));
        rq_msg_unref(s->will);
        s->will = NULL;
    }
    prune_subscriptions(c, false);
    return 0;
}

void rq_client_will_recheck(struct rq_client *c, rq_will_allowed_fn allowed, void *ctx)
{
    struct rq_session *s = c->s;
    char t[128];
    if (!s || !s->will || c->closing)
        return;
    if (allowed(ctx, c->principal, (const uint8_t *)s->cid, s->cid_len, s->will->topic,
                s->will->topic_len))
        return;
    rq_stat_inc(RQ_ST_AUTHZ_DENY);
    rq_log(RQ_LOG_INFO, &c->log, "will dropped: its topic \"%s\" is not authorized by the "
           "port's new rules", rq_log_escape(t, sizeof t, s->will->topic, s->will->topic_len));
    rq_msg_unref(s->will);
    s->will = NULL;
}

/* The client identifier: the CONNECT's, or one assigned by the broker when it is empty (a v5
 * client learns it from CONNACK). Returns -1 when an empty id is not allowed (CONNACK sent). */
static int client_id(struct rq_client *c, const struct rq_connect *k, char *assigned, size_t n,
                     const uint8_t **cid, size_t *len)
{
    *cid = k->client_id.p;
    *len = k->client_id.len;
    if (*len)
        return 0;
    if (c->level == 3) { /* MQTT 3.1 knows no assigned identifiers: 1 to 23 characters */
        rq_client_connack_fail(c, 4, RQ_RC_CLIENT_ID_NOT_VALID,
                               "empty client identifier (MQTT 3.1 requires one)");
        return -1;
    }
    if (c->version != 5 && !k->clean_start) {
        rq_client_connack_fail(c, 4, RQ_RC_CLIENT_ID_NOT_VALID,
                               "empty client identifier needs clean session [MQTT-3.1.3-8]");
        return -1;
    }
    uint64_t id = atomic_fetch_add(&c->w->b->next_session, 1);
    snprintf(assigned, n, "ringmq-%d-%016llx", c->w->id,
             (unsigned long long)(id * 0x9E3779B97F4A7C15ULL));
    *cid = (const uint8_t *)assigned;
    *len = strlen(assigned);
    return 0;
}

/* Counts the connection against maxConnections (once: a connection handed over from another
 * shard was counted there). Returns -1 when over the limit (CONNACK sent). */
static int count_connection(struct rq_client *c)
{
    if (c->over_limit)
        return 0;
    unsigned now_conns = atomic_fetch_add(&c->w->b->connections, 1) + 1;
    c->over_limit = true; /* counted: released in rq_client_free */
    if (now_conns > rq_client_cfg(c)->max_connections) {
        rq_client_connack_fail(c, c->version, RQ_RC_QUOTA_EXCEEDED, "maxConnections reached");
        return -1;
    }
    return 0;
}

/* What this client asked for, within the broker's limits: session expiry (returned), keep
 * alive (*ka_changed when the broker's differs), Receive Maximum and Topic Alias Maximum toward
 * the client (its Maximum Packet Size is taken first thing, for the CONNACK too). */
static uint32_t apply_limits(struct rq_client *c, const struct rq_connect *k, bool *ka_changed)
{
    const struct rq_config *cfg = rq_client_cfg(c);
    /* Session expiry: v5 property (default 0); 3.1.1 clean session 0 = never expires. */
    uint32_t expiry =
        c->version == 5
            ? (RQ_PROP_HAS(&k->props, RQ_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0)
            : (k->clean_start ? 0 : RQ_EXPIRY_NEVER);
    if (expiry > cfg->max_session_expiry)
        expiry = cfg->max_session_expiry;
    /* Keep alive, capped at maxKeepAliveSeconds (v5: told through Server Keep Alive). */
    c->keepalive = k->keepalive;
    *ka_changed = false;
    if (cfg->max_keepalive < 65535 && (k->keepalive == 0 || k->keepalive > cfg->max_keepalive)) {
        c->keepalive = cfg->max_keepalive;
        *ka_changed = true;
    }
    /* The client's Receive Maximum, honoured up to maxReceiveMaximum (as AIO does). */
    c->recv_max_out = RQ_PROP_HAS(&k->props, RQ_PROP_RECEIVE_MAX) ? k->props.receive_max : 65535;
    if (c->recv_max_out > cfg->max_receive_max)
        c->recv_max_out = cfg->max_receive_max;
    c->alias_out_max =
        RQ_PROP_HAS(&k->props, RQ_PROP_TOPIC_ALIAS_MAX) ? k->props.topic_alias_max : 0;
    if (c->alias_out_max > 1024)
        c->alias_out_max = 1024;
    return expiry;
}

int rq_client_on_connect(struct rq_client *c, const struct rq_connect *k)
{
    c->version = k->version == 5 ? 5 : 4;
    c->level = k->version;
    /* Bounds every packet sent from now on, a refusing CONNACK included [MQTT-3.1.2-25]. */
    c->max_packet_out = c->version == 5 && RQ_PROP_HAS(&k->props, RQ_PROP_MAX_PACKET_SIZE)
                            ? k->props.max_packet_size
                            : UINT32_MAX;
    char assigned[40];
    const uint8_t *cid;
    size_t cid_len;
    if (client_id(c, k, assigned, sizeof assigned, &cid, &cid_len) != 0)
        return -1;
    client_id_printable(c, cid, cid_len);
    int auth = authenticate(c, k);
    if (auth != 0)
        return auth; /* -1 refused, -2 pending: suspended with the CONNECT kept */
    if (authorize(c, k, cid, cid_len) != 0)
        return -1;
    if (count_connection(c) != 0)
        return -1;
    const char *reserved = k->will ? rq_topic_reserved(k->will_topic.p, k->will_topic.len) : NULL;
    if (reserved) { /* a will is a PUBLISH made later on the client's behalf */
        char why[120];
        snprintf(why, sizeof why, "will topic not allowed: %s", reserved);
        rq_client_connack_fail(c, c->version, RQ_RC_NOT_AUTHORIZED, why);
        return -1;
    }

    bool present = false;
    int rc = 0;
    struct rq_session *s = attach_session(c, k, cid, cid_len, &present, &rc);
    if (!s) {
        if (c->migrate_to >= 0) {
            rq_client_phase(c, RQ_PH_HANDED_OVER); /* net moves it, resumed on the owner */
            return -2;
        }
        rq_client_connack_fail(c, c->version, rc,
                               rc == RQ_RC_SERVER_BUSY
                                   ? "its session is moving between shards, or was handed over "
                                     "too often: try again"
                                   : "could not create the session");
        return -1;
    }
    if (alloc_client_state(c) != 0) {
        rq_client_connack_fail(c, c->version, RQ_RC_SERVER_UNAVAILABLE, "out of memory");
        if (!present)
            rq_session_end(s, "out of memory");
        return -1;
    }
    bool ka_changed;
    uint32_t expiry = apply_limits(c, k, &ka_changed);
    s->expiry = expiry;
    if (k->will) {
        s->will = make_will(c, k);
        rq_stat_delta(RQ_ST_WILLS, s->will ? 1 : 0);
        s->will_delay = c->version == 5 && RQ_PROP_HAS(&k->will_props, RQ_PROP_WILL_DELAY)
                            ? k->will_props.will_delay
                            : 0;
    }
    s->client = c;
    rq_stats_session_version(&s->stat_version, c->version == 5 ? 5 : 4);
    c->s = s;
    rq_client_borrow_id(c);
    rq_client_keep_auth_method(c, k); /* for re-authentication */
    if (present)
        prune_subscriptions(c, true);
    if (c->access)
        rq_stat_inc(RQ_ST_AUTHZ_ALLOW); /* the Connect (and its will) */
    rq_client_phase(c, RQ_PH_CONNECTED);
    c->last_rx = c->w->now;
    rq_client_arm_timer(c);
    send_connack(c, k, present, k->client_id.len == 0 && c->version == 5 ? cid : NULL, cid_len,
                 ka_changed, expiry);
    rq_log(RQ_LOG_DEBUG, &c->log, "connected: MQTT %s, keepalive %u, clean start %d, session %s",
           c->version == 5 ? "5.0"
           : c->level == 3 ? "3.1"
                           : "3.1.1",
           c->keepalive, k->clean_start, present ? "resumed" : "new");
    if (present) {
        rq_session_resend(s);
        rq_session_pump(s);
    }
    return 0;
}
