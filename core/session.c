/* Session state (MQTT 5.0 section 4.1): subscriptions, messages queued for the client, QoS 1/2
 * messages in flight toward it, the will, and the session's lifetime. A session lives on one
 * worker and is touched only by that worker's thread. What goes on the wire is client.c's job. */
#include "core/broker_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"


struct rq_session *rq_session_new(struct rq_worker *w, const uint8_t *cid, size_t len)
{
    struct rq_session *s = calloc(1, sizeof *s + len + 1);
    if (!s)
        return NULL;
    memcpy(s->cid, cid, len);
    s->cid[len] = 0;
    s->cid_len = (uint16_t)len;
    s->w = w;
    uint64_t seq = atomic_fetch_add(&w->b->next_session, 1);
    s->id = (seq << RQ_SHARD_BITS) | (uint64_t)w->id;
    s->next_pid = 1; /* qos2_in is allocated at the first QoS 2 PUBLISH (client.c) */
    if (rq_smap_put(w->sessions, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void rq_delivery_release(struct rq_delivery *d)
{
    rq_msg_unref(d->msg);
    free(d->ids);
    d->msg = NULL;
    d->ids = NULL;
}

void rq_session_publish_will(struct rq_session *s)
{
    struct rq_msg *m = s->will;
    if (!m)
        return;
    s->will = NULL;
    rq_stat_delta(RQ_ST_WILLS, -1);
    char id[80], t[128];
    rq_log(RQ_LOG_DEBUG, NULL, "publishing will of \"%s\" on \"%s\"",
           rq_log_escape_str(id, sizeof id, s->cid),
           rq_log_escape(t, sizeof t, m->topic, m->topic_len));
    if (m->retain)
        rq_retain_store(s->w, m);
    rq_route(s->w, m);
    rq_msg_unref(m);
}

void rq_session_end(struct rq_session *s, const char *why)
{
    struct rq_worker *w = s->w;
    struct rq_broker *b = w->b;
    char id[80];
    rq_log(RQ_LOG_DEBUG, NULL, "session \"%s\" ended: %s", rq_log_escape_str(id, sizeof id, s->cid),
           why);
    if (s->client) {
        rq_client_unbind(s->client);
        s->client = NULL;
    }
    rq_timer_cancel(&w->wheel, &s->timer);
    rq_session_publish_will(s); /* [MQTT-3.1.3-9]: session end comes before the will delay */
    rq_stat_delta(RQ_ST_SUBSCRIPTIONS, -(int64_t)s->n_subs);
    rq_stats_session_version(&s->stat_version, 0);

    rq_brlock_write_lock(&b->tree_lock);
    for (uint32_t i = 0; i < s->n_subs; i++)
        rq_subtree_remove(b->tree, s->subs[i].filter, s->subs[i].len, s->id);
    rq_brlock_write_unlock(&b->tree_lock);
    rq_smap_del(w->sessions, s->id);
    rq_session_free(b, s);
}

void rq_session_free(struct rq_broker *b, struct rq_session *s)
{
    for (uint32_t i = 0; i < s->n_subs; i++)
        free(s->subs[i].filter);
    free(s->subs);

    pthread_mutex_lock(&b->reg_lock);
    rq_reg_del(b->reg, s);
    pthread_mutex_unlock(&b->reg_lock);

    for (uint32_t i = 0; i < s->q_len; i++)
        rq_delivery_release(&s->q[(s->q_head + i) % s->q_cap]);
    free(s->q);
    for (uint32_t i = 0; i < s->inf_cap; i++)
        if (s->inf[i].state != INF_FREE)
            rq_delivery_release(&s->inf[i].d);
    free(s->inf);
    free(s->resend);
    free(s->qos2_in);
    free(s);
}

/* Offline timer: the session's end (which publishes a pending will first), or the will delay
 * running out before it. */
static void on_offline_timer(struct rq_timer *t, void *arg)
{
    struct rq_session *s = arg;
    if (s->client)
        return;
    if (s->expires_at && s->w->now >= s->expires_at) {
        rq_session_end(s, "session expired");
        return;
    }
    rq_session_publish_will(s);
    if (s->expires_at)
        rq_timer_add(&s->w->wheel, &s->timer, s->expires_at, on_offline_timer, s);
}

/* The client went away. The will goes out now, after its delay, or at session end, whichever
 * is first [MQTT-3.1.2-8], [MQTT-3.1.3-9]; the session lives on for its expiry interval. */
void rq_session_detach(struct rq_session *s, bool publish_will)
{
    struct rq_worker *w = s->w;
    s->client = NULL;
    if (!publish_will) {
        rq_stat_delta(RQ_ST_WILLS, s->will ? -1 : 0);
        rq_msg_unref(s->will);
        s->will = NULL;
    }
    if (s->expiry == 0 || w->stopping) {
        rq_session_end(s, w->stopping ? "broker stopping" : "session expiry interval 0");
        return;
    }
    s->expires_at = s->expiry == RQ_EXPIRY_NEVER ? 0 : w->now + (uint64_t)s->expiry * 1000;
    uint64_t at = s->expires_at;
    if (s->will) {
        if (s->will_delay == 0)
            rq_session_publish_will(s);
        else if (s->expiry == RQ_EXPIRY_NEVER || s->will_delay < s->expiry)
            at = w->now + (uint64_t)s->will_delay * 1000;
    }
    rq_timer_cancel(&w->wheel, &s->timer);
    if (at)
        rq_timer_add(&w->wheel, &s->timer, at, on_offline_timer, s);
}

/* ---- subscriptions ---- */

int rq_session_subscribe(struct rq_session *s, const uint8_t *f, size_t len, uint8_t opts,
                         uint32_t sub_id, bool *existed)
{
    struct rq_broker *b = s->w->b;
    struct rq_sub_entry e = {.session_id = s->id, .sub_id = sub_id, .opts = opts};
    uint32_t i;
    for (i = 0; i < s->n_subs; i++)
        if (s->subs[i].len == len && memcmp(s->subs[i].filter, f, len) == 0)
            break;
    if (i == s->n_subs) {
        if (s->n_subs == s->cap_subs) {
            uint32_t ncap = s->cap_subs ? s->cap_subs * 2 : 4;
            struct rq_sub *ns = realloc(s->subs, ncap * sizeof *ns);
            if (!ns)
                return -ENOMEM;
            s->subs = ns;
            s->cap_subs = ncap;
        }
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, f, len);
        s->subs[i] = (struct rq_sub){.filter = copy, .len = (uint16_t)len};
    }
    rq_brlock_write_lock(&b->tree_lock);
    int rc = rq_subtree_add(b->tree, f, len, &e, existed);
    rq_brlock_write_unlock(&b->tree_lock);
    if (rc != 0) {
        if (i == s->n_subs)
            free(s->subs[i].filter);
        return rc;
    }
    s->subs[i].opts = opts;
    s->subs[i].sub_id = sub_id;
    if (i == s->n_subs && ++s->n_subs)
        rq_stat_inc(RQ_ST_SUBSCRIPTIONS);
    return 0;
}

int rq_session_unsubscribe(struct rq_session *s, const uint8_t *f, size_t len)
{
    struct rq_broker *b = s->w->b;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        if (s->subs[i].len != len || memcmp(s->subs[i].filter, f, len) != 0)
            continue;
        rq_brlock_write_lock(&b->tree_lock);
        rq_subtree_remove(b->tree, f, len, s->id);
        rq_brlock_write_unlock(&b->tree_lock);
        free(s->subs[i].filter);
        s->subs[i] = s->subs[--s->n_subs];
        rq_stat_delta(RQ_ST_SUBSCRIPTIONS, -1);
        return 0;
    }
    return -ENOENT;
}

/* ---- outgoing QoS window ---- */

static int inflight_grow(struct rq_session *s, uint32_t want)
{
    uint32_t cap = 16;
    while (cap < want)
        cap *= 2;
    if (cap <= s->inf_cap)
        return 0;
    struct rq_inflight *n = calloc(cap, sizeof *n);
    if (!n)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->inf_cap; i++)
        if (s->inf[i].state != INF_FREE)
            n[s->inf[i].pid & (cap - 1)] = s->inf[i]; /* distinct pids stay distinct mod 2^k */
    free(s->inf);
    s->inf = n;
    s->inf_cap = cap;
    return 0;
}

static struct rq_inflight *inflight_find(struct rq_session *s, uint16_t pid)
{
    if (!s->inf_cap)
        return NULL;
    struct rq_inflight *f = &s->inf[pid & (s->inf_cap - 1)];
    return f->state != INF_FREE && f->pid == pid ? f : NULL;
}

/* Picks a packet id whose slot is free. Called only when inf_count < inf_cap. */
static struct rq_inflight *inflight_alloc(struct rq_session *s)
{
    for (;;) {
        uint16_t pid = s->next_pid++;
        if (s->next_pid == 0)
            s->next_pid = 1;
        if (pid == 0)
            continue;
        struct rq_inflight *f = &s->inf[pid & (s->inf_cap - 1)];
        if (f->state == INF_FREE) {
            f->pid = pid;
            return f;
        }
    }
}

static uint32_t window(const struct rq_session *s)
{
    const struct rq_client *c = s->client;
    uint32_t win = c->recv_max_out;
    uint32_t cap = s->w->b->cfg->max_inflight;
    return win < cap ? win : cap;
}

/* Sends d now. Takes d's references. Returns false if the window is full (d untouched). */
static bool send_now(struct rq_session *s, struct rq_delivery *d)
{
    struct rq_client *c = s->client;
    if (d->qos == 0) {
        rq_client_write_publish(c, d, 0, false);
        rq_delivery_release(d);
        return true;
    }
    if (s->inf_count >= window(s) || s->inf_resend)
        return false; /* resends of older messages go first [MQTT-4.6.0-1] */
    if (s->inf_cap <= s->inf_count * 2 && inflight_grow(s, window(s) * 2) != 0)
        return false;
    struct rq_inflight *f = inflight_alloc(s);
    if (!rq_client_write_publish(c, d, f->pid, false)) {
        rq_delivery_release(d); /* dropped for this client (too large or expired) */
        return true;
    }
    f->d = *d;
    f->state = INF_PUBLISHED;
    f->seq = s->send_seq++;
    f->resend = false;
    s->inf_count++;
    return true;
}

/* ---- queue of undelivered messages ---- */

static struct rq_delivery *q_at(struct rq_session *s, uint32_t i)
{
    return &s->q[(s->q_head + i) % s->q_cap];
}

static void q_remove(struct rq_session *s, uint32_t i)
{
    rq_delivery_release(q_at(s, i));
    if (i == 0) { /* the oldest: O(1) */
        s->q_head = (s->q_head + 1) % s->q_cap;
        s->q_len--;
        return;
    }
    for (; i + 1 < s->q_len; i++)
        *q_at(s, i) = *q_at(s, i + 1);
    s->q_len--;
}

/* Makes room for one more under subscriberQueueLimit. QoS 0 goes first: a new QoS 0 message is
 * dropped (strategy None) or the oldest queued QoS 0 one is (DropOldest); a new QoS 1/2 message
 * displaces the oldest queued QoS 0 one, else (DropOldest) the oldest message. Returns false
 * when the new message must be dropped instead. */
static bool q_make_room(struct rq_session *s, const struct rq_delivery *d)
{
    const struct rq_config *cfg = s->w->cfg ? s->w->cfg : s->w->b->cfg; /* reloaded: live */
    if (s->q_len < cfg->queue_limit)
        return true;
    bool drop_oldest = cfg->queue_strategy == RQ_QUEUE_DROP_OLDEST;
    if (d->qos == 0 && !drop_oldest)
        return false;
    for (uint32_t i = 0; i < s->q_len; i++) {
        if (q_at(s, i)->qos == 0) {
            q_remove(s, i);
            rq_stats_drop(RQ_ST_DROP_QUEUE_LIMIT, 0, false);
            return true;
        }
    }
    if (d->qos > 0 && drop_oldest) {
        q_remove(s, 0);
        rq_stats_drop(RQ_ST_DROP_QUEUE_LIMIT, 1, false);
        return true;
    }
    return false;
}

static void enqueue(struct rq_session *s, struct rq_delivery *d)
{
    if (!q_make_room(s, d)) {
        rq_stats_drop(RQ_ST_DROP_QUEUE_LIMIT, d->qos, false);
        char id[80];
        rq_log(RQ_LOG_DEBUG, NULL, "queue of \"%s\" full: message dropped",
               rq_log_escape_str(id, sizeof id, s->cid));
        rq_delivery_release(d);
        return;
    }
    if (s->q_len == s->q_cap) {
        uint32_t ncap = s->q_cap ? s->q_cap * 2 : 8;
        struct rq_delivery *nq = malloc(ncap * sizeof *nq);
        if (!nq) {
            rq_delivery_release(d);
            return;
        }
        for (uint32_t i = 0; i < s->q_len; i++)
            nq[i] = *q_at(s, i);
        free(s->q);
        s->q = nq;
        s->q_cap = ncap;
        s->q_head = 0;
    }
    *q_at(s, s->q_len++) = *d;
}

void rq_session_deliver(struct rq_session *s, struct rq_delivery *d)
{
    struct rq_client *c = s->client;
    if (!c || c->closing || !c->connected) {
        if (d->qos == 0) { /* offline sessions keep QoS 1 and 2 only */
            rq_delivery_release(d);
            return;
        }
        enqueue(s, d);
        return;
    }
    if (s->q_len == 0 && rq_client_writable(c) && send_now(s, d))
        return;
    enqueue(s, d);
}

/* ---- resending on a resumed connection ---- */

static void inflight_free(struct rq_session *s, struct rq_inflight *f)
{
    if (f->state == INF_PUBLISHED)
        rq_delivery_release(&f->d);
    if (f->resend)
        s->inf_resend--;
    f->state = INF_FREE;
    f->resend = false;
    s->inf_count--;
}

/* Resends one in-flight entry with its packet id [MQTT-4.4.0-1]. A PUBLISH that no longer fits
 * the client's (new) Maximum Packet Size is discarded as if sent [MQTT-3.1.2-25]: QoS 1 frees
 * its slot; QoS 2 goes on with PUBREL, which releases any state the client kept for that
 * packet id (it got the PUBLISH on an earlier connection) so that reusing the id later cannot
 * make it drop a new message as a duplicate; a client that never got it answers PUBCOMP 0x92.
 * An expired message is resent all the same (rq_client_write_publish): its onward delivery
 * started with the first send, and only a message whose delivery has not started is deleted
 * at expiry [MQTT-3.3.2-5]. */
static void resend_one(struct rq_session *s, struct rq_inflight *f)
{
    struct rq_client *c = s->client;
    if (f->state == INF_PUBLISHED && rq_client_write_publish(c, &f->d, f->pid, true))
        return;
    if (f->state == INF_PUBLISHED && f->d.qos == 1) {
        inflight_free(s, f);
        return;
    }
    if (f->state == INF_PUBLISHED) {
        f->state = INF_RELEASED;
        rq_delivery_release(&f->d);
    }
    rq_client_write_ack(c, RQ_PUBREL, f->pid, 0);
}

/* Sends the entries still to resend, oldest first, while the window of the connection (its
 * Receive Maximum, counting what is outstanding on it) and its output allow. Returns true when
 * none is left. */
static bool resend_pending(struct rq_session *s)
{
    struct rq_client *c = s->client;
    while (s->resend_head < s->resend_n) {
        if (c->closing || s->inf_count - s->inf_resend >= window(s) || !rq_client_writable(c))
            return false;
        struct rq_inflight *f = inflight_find(s, s->resend[s->resend_head++].pid);
        if (!f || !f->resend)
            continue; /* acknowledged meanwhile (the client had it from before) */
        f->resend = false;
        s->inf_resend--;
        resend_one(s, f);
    }
    free(s->resend);
    s->resend = NULL;
    s->resend_n = s->resend_head = 0;
    return true;
}

void rq_session_pump(struct rq_session *s)
{
    struct rq_client *c = s->client;
    if (!c || !c->connected || c->closing || !resend_pending(s))
        return;
    while (s->q_len && !c->closing && rq_client_writable(c)) {
        struct rq_delivery d = *q_at(s, 0);
        if (!send_now(s, &d))
            break;
        s->q_head = (s->q_head + 1) % s->q_cap;
        s->q_len--;
    }
}

static int by_age(const void *a, const void *b)
{
    uint32_t x = ((const struct rq_resend *)a)->age, y = ((const struct rq_resend *)b)->age;
    return x < y ? -1 : x > y;
}

/* Resumed: every in-flight entry is to be resent, in the order first sent [MQTT-4.6.0-1] (a
 * server's PUBLISHes of one topic keep their order [MQTT-4.6.0-6]), and at most the resumed
 * connection's Receive Maximum of them at once: rq_session_pump sends them as the window
 * allows, before any newer message. */
void rq_session_resend(struct rq_session *s)
{
    free(s->resend);
    s->resend = NULL;
    s->resend_n = s->resend_head = 0;
    s->inf_resend = 0;
    for (uint32_t i = 0; i < s->inf_cap; i++) {
        s->inf[i].resend = s->inf[i].state != INF_FREE;
        s->inf_resend += s->inf[i].resend;
    }
    if (!s->inf_resend)
        return;
    s->resend = malloc(s->inf_resend * sizeof *s->resend);
    if (!s->resend) {
        rq_client_close(s->client, -RQ_RC_SERVER_UNAVAILABLE, "out of memory for resends");
        return;
    }
    for (uint32_t i = 0; i < s->inf_cap; i++) {
        struct rq_inflight *f = &s->inf[i];
        if (f->resend)
            s->resend[s->resend_n++] = (struct rq_resend){f->seq - s->send_seq, f->pid};
    }
    qsort(s->resend, s->resend_n, sizeof *s->resend, by_age);
}

int rq_session_on_ack(struct rq_session *s, int type, uint16_t pid, uint8_t reason)
{
    struct rq_inflight *f = inflight_find(s, pid);
    switch (type) {
    case RQ_PUBACK:
    case RQ_PUBCOMP:
        if (!f || (type == RQ_PUBACK) != (f->d.qos == 1) ||
            (type == RQ_PUBCOMP && f->state != INF_RELEASED))
            return 0; /* unknown packet id: nothing to release */
        break;
    case RQ_PUBREC:
        if (!f || f->d.qos != 2) {
            rq_client_write_ack(s->client, RQ_PUBREL, pid, RQ_RC_PACKET_ID_NOT_FOUND);
            return 0;
        }
        if (reason < 0x80) {
            if (f->resend) { /* PUBREC for the send of an earlier connection: PUBREL is sent */
                f->resend = false;
                s->inf_resend--;
            }
            f->state = INF_RELEASED;
            rq_delivery_release(&f->d); /* the message itself is no longer needed */
            rq_client_write_ack(s->client, RQ_PUBREL, pid, 0);
            return 0;
        }
        break;
    default:
        return 0;
    }
    inflight_free(s, f);
    rq_session_pump(s);
    return 0;
}

/* ---- authorization ---- */

uint32_t rq_session_drop_unless(struct rq_session *s, bool inflight,
                                bool (*keep)(void *arg, const struct rq_msg *m), void *arg)
{
    uint32_t kept = 0, len = s->q_len, dropped = 0;
    for (uint32_t i = 0; i < len; i++) { /* one pass, order kept */
        struct rq_delivery *d = q_at(s, i);
        if (keep(arg, d->msg)) {
            if (kept != i)
                *q_at(s, kept) = *d;
            kept++;
            continue;
        }
        rq_stats_drop(RQ_ST_DROP_NOT_AUTHORIZED, d->qos, false);
        rq_delivery_release(d);
    }
    dropped = len - kept;
    s->q_len = kept;
    for (uint32_t i = 0; inflight && i < s->inf_cap; i++) {
        struct rq_inflight *f = &s->inf[i];
        if (f->state != INF_PUBLISHED || keep(arg, f->d.msg))
            continue;
        rq_stats_drop(RQ_ST_DROP_NOT_AUTHORIZED, f->d.qos, false);
        dropped++;
        if (f->d.qos == 1) {
            inflight_free(s, f);
            continue;
        }
        /* QoS 2 goes on with PUBREL, as in resend_one: it releases any state the client kept
         * for the packet id, so that reusing the id cannot make it drop a new message */
        f->state = INF_RELEASED;
        rq_delivery_release(&f->d);
    }
    return dropped;
}
