/* Broker-wide state and routing: the client-id registry, the per-shard session maps, the shared
 * subscription tree and retained store, and the path of one publish from its shard to every
 * subscriber's shard. Protocol rules live in client.c, session state in session.c. */
#include "core/broker_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/retain.h"

/* ---- per-worker session map: open addressing on the session id ---- */

struct rq_smap {
    struct rq_session **slots;
    size_t cap, n;
};

static size_t smap_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

static struct rq_session **smap_find(struct rq_smap *m, uint64_t id)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = smap_hash(id) & mask;; i = (i + 1) & mask) {
        if (!m->slots[i] || m->slots[i]->id == id)
            return &m->slots[i];
    }
}

struct rq_session *rq_smap_get(struct rq_smap *m, uint64_t id)
{
    struct rq_session **p = smap_find(m, id);
    return p ? *p : NULL;
}

int rq_smap_put(struct rq_smap *m, struct rq_session *s)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        struct rq_session **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -ENOMEM;
        struct rq_smap nm = {ns, ncap, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                *smap_find(&nm, m->slots[i]->id) = m->slots[i];
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    struct rq_session **p = smap_find(m, s->id);
    if (!*p)
        m->n++;
    *p = s;
    return 0;
}

void rq_smap_del(struct rq_smap *m, uint64_t id)
{
    struct rq_session **p = smap_find(m, id);
    if (!p || !*p)
        return;
    *p = NULL;
    m->n--;
    /* re-insert the rest of the cluster (linear probing deletion) */
    size_t mask = m->cap - 1;
    for (size_t i = ((size_t)(p - m->slots) + 1) & mask; m->slots[i]; i = (i + 1) & mask) {
        struct rq_session *s = m->slots[i];
        m->slots[i] = NULL;
        *smap_find(m, s->id) = s;
    }
}

/* ---- client-id registry: chained hash, guarded by broker->reg_lock ---- */

/* The registry chains the sessions themselves (rq_session.reg_next): no allocation per client.
 * A session is in it from rq_reg_set until rq_reg_del or until a newer session with the same
 * client id replaces it; it is freed only after leaving it (rq_session_end), so the entries read
 * here under reg_lock (id, cid: immutable once created) always belong to live sessions. */
struct rq_reg {
    struct rq_session **b;
    size_t cap, n;
};

static size_t str_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return (size_t)h;
}

static struct rq_session **reg_find(struct rq_reg *r, const uint8_t *cid, size_t len)
{
    struct rq_session **pp = &r->b[str_hash(cid, len) & (r->cap - 1)];
    for (; *pp; pp = &(*pp)->reg_next)
        if ((*pp)->cid_len == len && memcmp((*pp)->cid, cid, len) == 0)
            break;
    return pp;
}

uint64_t rq_reg_get(struct rq_reg *r, const uint8_t *cid, size_t len)
{
    struct rq_session *e = *reg_find(r, cid, len);
    return e ? e->id : 0;
}

struct rq_session *rq_reg_find(struct rq_reg *r, const uint8_t *cid, size_t len)
{
    return *reg_find(r, cid, len);
}

static void reg_grow(struct rq_reg *r)
{
    size_t ncap = r->cap * 2;
    struct rq_session **nb = calloc(ncap, sizeof *nb);
    if (!nb)
        return; /* best effort: chains just get longer */
    for (size_t i = 0; i < r->cap; i++) {
        for (struct rq_session *e = r->b[i], *next; e; e = next) {
            next = e->reg_next;
            size_t h = str_hash((const uint8_t *)e->cid, e->cid_len) & (ncap - 1);
            e->reg_next = nb[h];
            nb[h] = e;
        }
    }
    free(r->b);
    r->b = nb;
    r->cap = ncap;
}

void rq_reg_set(struct rq_reg *r, struct rq_session *s)
{
    struct rq_session **pp = reg_find(r, (const uint8_t *)s->cid, s->cid_len);
    if (*pp) { /* a session with this client id is registered: s replaces it */
        s->reg_next = (*pp)->reg_next;
        (*pp)->reg_next = NULL;
        *pp = s;
        return;
    }
    s->reg_next = NULL;
    *pp = s;
    if (++r->n > r->cap)
        reg_grow(r);
}

void rq_reg_del(struct rq_reg *r, struct rq_session *s)
{
    struct rq_session **pp = reg_find(r, (const uint8_t *)s->cid, s->cid_len);
    if (*pp == s) {
        *pp = s->reg_next;
        s->reg_next = NULL;
        r->n--;
    }
}

static void reg_free(struct rq_reg *r)
{
    free(r->b); /* the sessions in it are freed by their workers */
    free(r);
}

/* ---- broker ---- */

static void drop_retained(void *m)
{
    rq_msg_unref(m);
}

struct rq_broker *rq_broker_new(const struct rq_config *cfg, int n_shards)
{
    struct rq_broker *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = cfg;
    b->n_shards = n_shards;
    b->workers = calloc((size_t)n_shards, sizeof *b->workers);
    b->pending = aligned_alloc(64, (size_t)n_shards * sizeof *b->pending);
    if (b->pending) {
        for (int i = 0; i < n_shards; i++) {
            atomic_init(&b->pending[i].n, 0);
            atomic_init(&b->pending[i].back, NULL);
            atomic_init(&b->pending[i].busy_pct, 0);
        }
    }
    b->tree = rq_subtree_new();
    b->retained = rq_retain_new();
    b->reg = calloc(1, sizeof *b->reg);
    if (b->reg) {
        b->reg->cap = 1024;
        b->reg->b = calloc(b->reg->cap, sizeof *b->reg->b);
    }
    if (!b->workers || !b->pending || !b->tree || !b->retained || !b->reg || !b->reg->b ||
        rq_brlock_init(&b->tree_lock, n_shards) != 0) {
        rq_broker_free(b);
        return NULL;
    }
    pthread_mutex_init(&b->retain_lock, NULL);
    pthread_mutex_init(&b->reg_lock, NULL);
    atomic_init(&b->next_session, 1);
    return b;
}

static void batch_list_free(struct rq_batch *l)
{
    while (l) {
        struct rq_batch *next = l->next;
        free(l);
        l = next;
    }
}

void rq_broker_free(struct rq_broker *b)
{
    if (!b)
        return;
    if (b->tree)
        rq_subtree_free(b->tree);
    if (b->retained)
        rq_retain_free(b->retained, drop_retained);
    if (b->reg) {
        if (b->reg->b)
            reg_free(b->reg);
        else
            free(b->reg);
    }
    rq_brlock_destroy(&b->tree_lock);
    free(b->workers);
    for (int i = 0; b->pending && i < b->n_shards; i++)
        batch_list_free(atomic_load(&b->pending[i].back));
    free(b->pending);
    free(b);
}

struct rq_worker *rq_worker_new(struct rq_broker *b, int id, const struct rq_worker_ops *ops,
                                void *net)
{
    struct rq_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->id = id;
    w->b = b;
    w->ops = ops;
    w->net = net;
    w->now = rq_now_ms();
    rq_wheel_init(&w->wheel, w->now);
    w->sessions = calloc(1, sizeof *w->sessions);
    w->outbox = calloc((size_t)b->n_shards, sizeof *w->outbox);
    if (!w->sessions || !w->outbox) {
        free(w->sessions);
        free(w->outbox);
        free(w);
        return NULL;
    }
    b->workers[id] = w;
    return w;
}

void rq_worker_free(struct rq_worker *w)
{
    if (!w)
        return;
    /* End the sessions that are left (no client is attached any more). */
    for (size_t i = 0; w->sessions->slots && i < w->sessions->cap; i++) {
        struct rq_session *s = w->sessions->slots[i];
        if (s) {
            rq_session_end(s, "broker stopping");
            i = (size_t)-1; /* the map was modified: restart the scan */
        }
    }
    rq_worker_flush(w); /* wills published while ending sessions */
    free(w->sessions->slots);
    free(w->sessions);
    free(w->scratch);
    for (int i = 0; i < w->b->n_shards; i++)
        if (w->outbox[i])
            rq_batch_discard(w->outbox[i]);
    free(w->outbox);
    batch_list_free(w->batch_free);
    free(w);
}

/* ---- routing ---- */

static void collect(void *ctx, const struct rq_sub_entry *e, bool shared)
{
    struct rq_worker *w = ctx;
    if (w->scratch_n == w->scratch_cap) {
        size_t ncap = w->scratch_cap ? w->scratch_cap * 2 : 64;
        struct rq_sub_entry *n = realloc(w->scratch, ncap * sizeof *n);
        if (!n)
            return; /* ENOMEM: this subscriber misses the message; counted below */
        w->scratch = n;
        w->scratch_cap = ncap;
    }
    w->scratch[w->scratch_n++] = *e;
}

static int by_session(const void *a, const void *b)
{
    const struct rq_sub_entry *x = a, *y = b;
    return (x->session_id > y->session_id) - (x->session_id < y->session_id);
}

/* Merges the entries of one session (overlapping subscriptions) into one delivery:
 * highest granted QoS, every subscription identifier, retain per Retain As Published. */
static bool merge_delivery(struct rq_msg *m, const struct rq_sub_entry *e, size_t n,
                           struct rq_delivery *d)
{
    memset(d, 0, sizeof *d);
    uint8_t qos = 0;
    bool any = false, retain = false;
    uint32_t nids = 0;
    for (size_t i = 0; i < n; i++) {
        if ((e[i].opts & RQ_SUBOPT_NO_LOCAL) && m->origin == e[i].session_id)
            continue; /* [MQTT-3.8.3-3] */
        any = true;
        if (RQ_SUBOPT_QOS(e[i].opts) > qos)
            qos = RQ_SUBOPT_QOS(e[i].opts);
        if ((e[i].opts & RQ_SUBOPT_RAP) && m->retain)
            retain = true;
        if (e[i].sub_id)
            nids++;
    }
    if (!any)
        return false;
    d->qos = qos < m->qos ? qos : m->qos;
    d->retain = retain;
    if (nids > 1)
        d->ids = malloc(nids * sizeof *d->ids);
    for (size_t i = 0; i < n; i++) {
        if (!e[i].sub_id || ((e[i].opts & RQ_SUBOPT_NO_LOCAL) && m->origin == e[i].session_id))
            continue;
        if (d->ids)
            d->ids[d->n_ids++] = e[i].sub_id;
        else if (!d->n_ids) {
            d->id0 = e[i].sub_id;
            d->n_ids = 1;
        }
    }
    d->msg = rq_msg_ref(m);
    return true;
}

/* Delivers m to the sessions listed in e[0..n) (sorted by session id), all on this worker. */
static void deliver_local(struct rq_worker *w, struct rq_msg *m, const struct rq_sub_entry *e,
                          size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && e[j].session_id == e[i].session_id)
            j++;
        struct rq_session *s = rq_smap_get(w->sessions, e[i].session_id);
        struct rq_delivery d;
        if (s && merge_delivery(m, e + i, j - i, &d))
            rq_session_deliver(s, &d);
        i = j;
    }
}

#define REC_SIZE(n) ((sizeof(struct rq_batch_rec) + (n) * sizeof(struct rq_sub_entry) + 7) & ~7ul)

/* Batches: at a moderate rate a loop turn routes one or two messages, so each cross-shard
 * delivery would cost a batch's malloc on this shard and its free on the other. A delivered
 * batch of the standard size goes back to the shard that filled it (rq_pending.back, a stack
 * every shard may push onto and its owner empties at once, so no ABA), which keeps up to
 * BATCH_KEEP of them; larger (grown) ones are freed. Batches alive are bounded by those in
 * flight plus BATCH_KEEP per shard. */
#define BATCH_CAP 4096
#define BATCH_KEEP 16

static struct rq_batch *batch_get(struct rq_worker *w)
{
    if (!w->batch_free) {
        struct rq_batch *l = atomic_exchange_explicit(&w->b->pending[w->id].back, NULL,
                                                      memory_order_acquire);
        while (l) {
            struct rq_batch *next = l->next;
            if (w->n_batch_free < BATCH_KEEP) {
                l->next = w->batch_free;
                w->batch_free = l;
                w->n_batch_free++;
            } else {
                free(l);
            }
            l = next;
        }
    }
    struct rq_batch *bt = w->batch_free;
    if (bt) {
        w->batch_free = bt->next;
        w->n_batch_free--;
    } else {
        bt = malloc(sizeof *bt + BATCH_CAP);
        if (!bt)
            return NULL;
        bt->cap = BATCH_CAP;
    }
    bt->len = bt->count = 0;
    bt->origin = w->id;
    bt->next = NULL;
    return bt;
}

/* A delivered batch: back to the shard that filled it when it is of the standard size. */
static void batch_put(struct rq_broker *b, struct rq_batch *bt)
{
    if (bt->cap != BATCH_CAP || bt->origin < 0 || bt->origin >= b->n_shards) {
        free(bt);
        return;
    }
    _Atomic(struct rq_batch *) *head = &b->pending[bt->origin].back;
    struct rq_batch *old = atomic_load_explicit(head, memory_order_relaxed);
    do
        bt->next = old;
    while (!atomic_compare_exchange_weak_explicit(head, &old, bt, memory_order_release,
                                                  memory_order_relaxed));
}

/* Appends (m, e[0..n) of one shard) to the outbox of that shard. */
static void outbox_add(struct rq_worker *w, int shard, struct rq_msg *m,
                       const struct rq_sub_entry *e, size_t n, size_t cnt)
{
    struct rq_batch *bt = w->outbox[shard];
    size_t need = REC_SIZE(cnt);
    if (!bt && !(w->outbox[shard] = bt = batch_get(w)))
        return; /* ENOMEM: those subscribers miss this message */
    if (bt->cap - bt->len < need) {
        size_t cap = bt->cap * 2;
        while (cap < bt->len + need)
            cap *= 2;
        struct rq_batch *nb = realloc(bt, sizeof *nb + cap);
        if (!nb)
            return; /* ENOMEM: those subscribers miss this message */
        nb->cap = cap;
        w->outbox[shard] = bt = nb;
    }
    struct rq_batch_rec *r = (struct rq_batch_rec *)(bt->data + bt->len);
    r->msg = rq_msg_ref(m);
    r->n = 0;
    for (size_t i = 0; i < n; i++)
        if (RQ_SESSION_SHARD(e[i].session_id) == shard)
            r->e[r->n++] = e[i];
    bt->len += need;
    bt->count++;
}

void rq_worker_flush(struct rq_worker *w)
{
    for (int shard = 0; shard < w->b->n_shards; shard++) {
        struct rq_batch *bt = w->outbox[shard];
        if (!bt || !bt->count)
            continue;
        w->outbox[shard] = NULL;
        struct rq_post p = {.kind = RQ_POST_DELIVER, .ptr = bt};
        _Atomic uint64_t *pending = &w->b->pending[shard].n;
        atomic_fetch_add_explicit(pending, bt->count, memory_order_relaxed);
        if (!w->ops->post(w, shard, &p)) {
            atomic_fetch_sub_explicit(pending, bt->count, memory_order_relaxed);
            rq_batch_discard(bt);
        }
    }
}

bool rq_worker_backpressure(struct rq_worker *w)
{
    uint64_t worst = 0;
    int worst_shard = -1;
    for (int t = 0; t < w->b->n_shards; t++) {
        if (t == w->id)
            continue;
        uint64_t v = atomic_load_explicit(&w->b->pending[t].n, memory_order_relaxed);
        if (v > worst) {
            worst = v;
            worst_shard = t;
        }
    }
    uint64_t high = w->b->cfg->shard_backlog, low = high / 4;
    if (!w->throttled && worst > high) {
        w->throttled = true;
        w->throttle_count++;
        if (w->now - w->throttle_logged >= 10000 || !w->throttle_logged) {
            w->throttle_logged = w->now;
            rq_log(RQ_LOG_INFO, NULL,
                   "shard %d: shard %d is %llu messages behind: pausing reads from this shard's "
                   "clients until it catches up (%llu times so far; logged at most every 10 s)",
                   w->id, worst_shard, (unsigned long long)worst,
                   (unsigned long long)w->throttle_count);
        }
    } else if (w->throttled && worst < low) {
        w->throttled = false;
    }
    return w->throttled;
}

void rq_batch_discard(struct rq_batch *bt)
{
    for (size_t off = 0; off < bt->len;) {
        struct rq_batch_rec *r = (struct rq_batch_rec *)(bt->data + off);
        rq_msg_unref(r->msg);
        off += REC_SIZE(r->n);
    }
    free(bt);
}

/* Subscriptions that take m: all matches but the publisher's own No Local ones. */
static size_t takers(const struct rq_msg *m, const struct rq_sub_entry *e, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += !((e[i].opts & RQ_SUBOPT_NO_LOCAL) && m->origin == e[i].session_id);
    return k;
}

size_t rq_route(struct rq_worker *w, struct rq_msg *m)
{
    struct rq_broker *b = w->b;
    w->scratch_n = 0;
    rq_brlock_read_lock(&b->tree_lock, w->id);
    rq_subtree_match(b->tree, m->topic, m->topic_len, collect, w);
    rq_brlock_read_unlock(&b->tree_lock, w->id);
    size_t n = w->scratch_n;
    w->route_shard = RQ_ROUTE_HERE;
    if (!n)
        return 0;
    struct rq_sub_entry *e = w->scratch;
    size_t taken = takers(m, e, n);
    if (n > 1)
        qsort(e, n, sizeof *e, by_session);
    /* Few shards (= cores): one pass per shard that has entries. Entries of this shard are
     * delivered now; the others go into that shard's outbox for the end of the iteration. */
    bool local_only = true;
    for (size_t i = 0; i < n && local_only; i++)
        local_only = RQ_SESSION_SHARD(e[i].session_id) == w->id;
    if (local_only) {
        deliver_local(w, m, e, n);
        return taken;
    }
    int others = 0;
    for (int shard = 0; shard < b->n_shards; shard++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n && shard != w->id; i++)
            cnt += RQ_SESSION_SHARD(e[i].session_id) == shard;
        if (cnt) {
            outbox_add(w, shard, m, e, n, cnt);
            w->route_shard = others++ ? RQ_ROUTE_SPREAD : shard;
            if (cnt < n)
                w->route_shard = RQ_ROUTE_SPREAD; /* some here too: moving would not help */
        }
    }
    /* The other shards' entries are copied into their outboxes: compact this shard's in place
     * (order kept) and deliver them. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (RQ_SESSION_SHARD(e[i].session_id) == w->id)
            e[k++] = e[i];
    if (k)
        deliver_local(w, m, e, k);
    return taken;
}

void rq_retain_store(struct rq_worker *w, struct rq_msg *m)
{
    struct rq_broker *b = w->b;
    void *old = NULL;
    pthread_mutex_lock(&b->retain_lock);
    int rc = rq_retain_set(b->retained, m->topic, m->topic_len,
                           m->payload_len ? rq_msg_ref(m) : NULL, &old);
    pthread_mutex_unlock(&b->retain_lock);
    if (rc != 0 && m->payload_len)
        rq_msg_unref(m); /* not stored */
    rq_stat_delta(RQ_ST_RETAINED_BYTES, (rc == 0 ? (int64_t)m->payload_len : 0) -
                                            (old ? (int64_t)((struct rq_msg *)old)->payload_len : 0));
    if (old)
        rq_msg_unref(old);
}

/* ---- posts from other shards ---- */

void rq_worker_on_post(struct rq_worker *w, const struct rq_post *p)
{
    switch (p->kind) {
    case RQ_POST_DELIVER: {
        struct rq_batch *bt = p->ptr;
        for (size_t off = 0; off < bt->len;) {
            struct rq_batch_rec *r = (struct rq_batch_rec *)(bt->data + off);
            deliver_local(w, r->msg, r->e, r->n);
            rq_msg_unref(r->msg);
            off += REC_SIZE(r->n);
        }
        atomic_fetch_sub_explicit(&w->b->pending[w->id].n, bt->count, memory_order_relaxed);
        batch_put(w->b, bt);
        break;
    }
    case RQ_POST_END_SESSION: {
        struct rq_session *s = rq_smap_get(w->sessions, p->a);
        if (s) {
            if (s->client)
                rq_client_close(s->client, -RQ_RC_SESSION_TAKEN_OVER,
                                "session taken over by a clean-start connection");
            s = rq_smap_get(w->sessions, p->a);
            if (s)
                rq_session_end(s, "taken over with clean start");
        }
        break;
    }
    default:
        break;
    }
}

void rq_worker_shutdown(struct rq_worker *w)
{
    w->stopping = true;
    for (size_t i = 0; w->sessions->slots && i < w->sessions->cap; i++) {
        struct rq_session *s = w->sessions->slots[i];
        if (s && s->client && !s->client->closing)
            rq_client_close(s->client, -RQ_RC_SERVER_SHUTTING_DOWN, "server shutting down");
    }
}
