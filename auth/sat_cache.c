/* ServiceAccountToken results and flights: see sat_cache.h.
 *
 * A chained hash table (buckets: a power of two >= max, the key's first bytes are the hash)
 * plus a doubly linked LRU list over the results, under one mutex. An entry is a result or a
 * flight, never both: landing a flight turns it into a result (or removes it). */
#include "auth/sat_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    uint8_t key[RQ_SAT_KEY];
    struct entry *next;                /* bucket chain */
    struct entry *lru_prev, *lru_next; /* results only; head = most recent */
    bool flight;
    /* result */
    int64_t until;
    int64_t attrs_until; /* its attributes are as fresh as the account's annotations until then
                            (rq_sat_cache_set_attrs); 0: never synced */
    struct rq_authn_outcome o;
    /* flight */
    struct rq_sat_waiter *w;
    size_t n_w, cap_w;
};

struct rq_sat_cache {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t mask;
    size_t n_results, n_flights, max;
    struct entry *lru_head, *lru_tail;
};

struct rq_sat_cache *rq_sat_cache_new(uint32_t max)
{
    struct rq_sat_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t nb = 16;
    while (nb < max && nb < (1u << 22))
        nb <<= 1;
    if (!(c->buckets = calloc(nb, sizeof *c->buckets))) {
        free(c);
        return NULL;
    }
    /* Adaptive: shards that hit one popular token at once spin briefly instead of sleeping in
     * the kernel (the critical sections are short: a lookup and a copy). */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&c->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    c->mask = nb - 1;
    c->max = max ? max : 1;
    return c;
}

static void entry_free(struct entry *e)
{
    rq_authn_outcome_free(&e->o);
    free(e->w);
    free(e);
}

void rq_sat_cache_free(struct rq_sat_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i <= c->mask; i++)
        for (struct entry *e = c->buckets[i], *n; e; e = n) {
            n = e->next;
            entry_free(e);
        }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static struct entry **bucket(struct rq_sat_cache *c, const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return &c->buckets[h & c->mask];
}

static struct entry **find(struct rq_sat_cache *c, const uint8_t *key)
{
    struct entry **pp = bucket(c, key);
    while (*pp && memcmp((*pp)->key, key, RQ_SAT_KEY) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void lru_unlink(struct rq_sat_cache *c, struct entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_front(struct rq_sat_cache *c, struct entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

/* Removes a result entry (it is in the table and the LRU list). */
static void drop_result(struct rq_sat_cache *c, struct entry *e)
{
    struct entry **pp = find(c, e->key);
    *pp = e->next;
    lru_unlink(c, e);
    c->n_results--;
    entry_free(e);
}

/* Deep copy of a cached outcome. */
static int copy_outcome(const struct rq_authn_outcome *src, struct rq_authn_outcome *dst)
{
    dst->verdict = src->verdict;
    dst->reason = src->reason;
    dst->method = src->method;
    memcpy(dst->why, src->why, sizeof dst->why);
    const struct rq_principal *p = &src->principal;
    dst->principal.expiry = p->expiry;
    dst->principal.method = p->method;
    if (p->username && !(dst->principal.username = strdup(p->username)))
        return -ENOMEM;
    for (size_t i = 0; i < p->n_attrs; i++)
        if (rq_principal_add_attr(&dst->principal, p->keys[i], p->values[i]) != 0)
            return -ENOMEM;
    return 0;
}

/* A live result for key (moved to the LRU front) or NULL; a dead one is dropped. Lock held. */
static struct entry *live(struct rq_sat_cache *c, const uint8_t *key, int64_t now)
{
    struct entry *e = *find(c, key);
    if (!e || e->flight)
        return e;
    if (e->until <= now) {
        drop_result(c, e);
        return NULL;
    }
    lru_unlink(c, e);
    lru_front(c, e);
    return e;
}

static int add_waiter(struct entry *e, const struct rq_sat_waiter *w)
{
    if (e->n_w == e->cap_w) {
        size_t cap = e->cap_w ? e->cap_w * 2 : 4;
        struct rq_sat_waiter *nw = realloc(e->w, cap * sizeof *nw);
        if (!nw)
            return -ENOMEM;
        e->w = nw;
        e->cap_w = cap;
    }
    e->w[e->n_w++] = *w;
    return 0;
}

int rq_sat_cache_begin(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                       const struct rq_sat_waiter *w, struct rq_authn_outcome *o)
{
    return rq_sat_cache_begin_ex(c, key, now, w, o, NULL);
}

int rq_sat_cache_begin_ex(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                          const struct rq_sat_waiter *w, struct rq_authn_outcome *o,
                          int64_t *attrs_until)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    struct entry *e = live(c, key, now);
    if (e && !e->flight) {
        rc = copy_outcome(&e->o, o) == 0 ? RQ_SAT_HIT : -ENOMEM;
        if (attrs_until)
            *attrs_until = e->attrs_until;
    } else if (e) {
        rc = add_waiter(e, w) == 0 ? RQ_SAT_JOINED : -ENOMEM;
    } else if (!(e = calloc(1, sizeof *e)) || add_waiter(e, w) != 0) {
        free(e);
        rc = -ENOMEM;
    } else {
        memcpy(e->key, key, RQ_SAT_KEY);
        e->flight = true;
        struct entry **b = bucket(c, key);
        e->next = *b;
        *b = e;
        c->n_flights++;
        rc = RQ_SAT_LEAD;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == -ENOMEM) {
        rq_authn_outcome_free(o);
        rq_authn_outcome_init(o);
    }
    return rc;
}

int rq_sat_cache_get(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                     struct rq_authn_outcome *o)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    struct entry *e = live(c, key, now);
    if (e && !e->flight)
        rc = copy_outcome(&e->o, o) == 0 ? 1 : -ENOMEM;
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        rq_authn_outcome_free(o);
        rq_authn_outcome_init(o);
    }
    return rc;
}

/* Turns flight e into a result (lock held); false when the copy failed (e stays a flight). */
static bool store(struct rq_sat_cache *c, struct entry *e, const struct rq_authn_outcome *o,
                  int64_t until)
{
    struct rq_authn_outcome copy;
    rq_authn_outcome_init(&copy);
    if (copy_outcome(o, &copy) != 0) {
        rq_authn_outcome_free(&copy);
        return false;
    }
    while (c->n_results >= c->max && c->lru_tail)
        drop_result(c, c->lru_tail);
    e->o = copy;
    e->until = until;
    e->flight = false;
    c->n_flights--;
    c->n_results++;
    lru_front(c, e);
    return true;
}

struct rq_sat_waiter *rq_sat_cache_land(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY],
                                        const struct rq_authn_outcome *o, int64_t now,
                                        int64_t until, size_t *n)
{
    struct rq_sat_waiter *w = NULL;
    *n = 0;
    pthread_mutex_lock(&c->mu);
    struct entry **pp = find(c, key);
    struct entry *e = *pp;
    if (e && e->flight) {
        w = e->w;
        *n = e->n_w;
        e->w = NULL;
        e->n_w = e->cap_w = 0;
        if (until <= now || !store(c, e, o, until)) {
            *pp = e->next;
            c->n_flights--;
            entry_free(e);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return w;
}

void rq_sat_cache_put(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY],
                      const struct rq_authn_outcome *o, int64_t now, int64_t until)
{
    if (until <= now)
        return;
    pthread_mutex_lock(&c->mu);
    struct entry *e = *find(c, key);
    struct entry *n = e && e->flight ? NULL : calloc(1, sizeof *n);
    if (n) {
        if (e)
            drop_result(c, e);
        memcpy(n->key, key, RQ_SAT_KEY);
        n->flight = true; /* store() turns a flight into a result */
        c->n_flights++;
        if (store(c, n, o, until)) {
            struct entry **b = bucket(c, key);
            n->next = *b;
            *b = n;
        } else {
            c->n_flights--;
            free(n);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void rq_sat_cache_set_attrs(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                            const struct rq_principal *from, int64_t until)
{
    pthread_mutex_lock(&c->mu);
    struct entry *e = *find(c, key);
    if (e && !e->flight && e->until > now) {
        struct rq_principal *p = &e->o.principal;
        struct rq_principal fresh = {0};
        bool oom = false;
        for (size_t i = 0; !oom && i < from->n_attrs; i++)
            oom = rq_principal_add_attr(&fresh, from->keys[i], from->values[i]) != 0;
        if (!oom) { /* swap the attribute arrays; the rest of the principal stays */
            for (size_t i = 0; i < p->n_attrs; i++) {
                free(p->keys[i]);
                free(p->values[i]);
            }
            free(p->keys);
            free(p->values);
            p->keys = fresh.keys;
            p->values = fresh.values;
            p->n_attrs = fresh.n_attrs;
            e->attrs_until = until;
        } else {
            rq_principal_clear(&fresh);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

bool rq_sat_cache_claim_refresh(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                                int64_t next)
{
    bool claimed = false;
    pthread_mutex_lock(&c->mu);
    struct entry *e = *find(c, key);
    if (e && !e->flight && e->until > now && e->o.principal.expiry <= now) {
        e->o.principal.expiry = next;
        claimed = true;
    }
    pthread_mutex_unlock(&c->mu);
    return claimed;
}

size_t rq_sat_cache_results(struct rq_sat_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n_results;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t rq_sat_cache_flights(struct rq_sat_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n_flights;
    pthread_mutex_unlock(&c->mu);
    return n;
}
