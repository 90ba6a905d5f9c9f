/* The Custom method's verdict cache: see custom_cache.h.
 *
 * What it does: a chained hash table (buckets: a power of two >= max; a SHA-256 key's first bytes
 * are the hash) under one mutex, entries owning deep copies of what a verdict carries. What it
 * does not do: decide what may be cached or for how long (custom.c), compute keys, evict live
 * entries.
 */
#include "auth/custom_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* snprintf for a text that may be cut short on purpose (no truncation warning). */
__attribute__((format(printf, 3, 4))) static void textf(char *out, size_t size, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

struct cache_entry {
    uint8_t key[RQ_CUSTOM_CACHE_KEY];
    int64_t until; /* unix seconds: the entry is dead from then on */
    int verdict;   /* RQ_AUTHN_ALLOW or RQ_AUTHN_DENY */
    uint8_t reason;
    int64_t expiry;
    size_t n_attrs;
    char **keys, **values;
    char why[160];
    struct cache_entry *next;
};

struct rq_custom_cache {
    pthread_mutex_t mu;
    struct cache_entry **buckets;
    size_t mask;
    size_t n, max;
    int64_t last_sweep;
};

struct rq_custom_cache *rq_custom_cache_new(uint32_t max)
{
    struct rq_custom_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t nb = 16;
    while (nb < max && nb < (1u << 24))
        nb <<= 1;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->mask = nb - 1;
    c->max = max;
    return c;
}

static void entry_free(struct cache_entry *e)
{
    for (size_t i = 0; i < e->n_attrs; i++) {
        free(e->keys[i]);
        free(e->values[i]);
    }
    free(e->keys);
    free(e->values);
    free(e);
}

void rq_custom_cache_free(struct rq_custom_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i <= c->mask; i++) {
        struct cache_entry *e = c->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static struct cache_entry **bucket(struct rq_custom_cache *c,
                                   const uint8_t key[RQ_CUSTOM_CACHE_KEY])
{
    uint64_t h;
    memcpy(&h, key, sizeof h); /* a SHA-256 output: its first bytes are a fine hash */
    return &c->buckets[h & c->mask];
}

/* Removes entries dead at now. Called with the lock held. */
static void cache_sweep(struct rq_custom_cache *c, int64_t now)
{
    for (size_t i = 0; i <= c->mask; i++) {
        for (struct cache_entry **pp = &c->buckets[i]; *pp;) {
            struct cache_entry *e = *pp;
            if (e->until <= now) {
                *pp = e->next;
                entry_free(e);
                c->n--;
            } else {
                pp = &e->next;
            }
        }
    }
    c->last_sweep = now;
}

static struct cache_entry *entry_from(const struct rq_authn_outcome *o, const uint8_t *key,
                                      int64_t until)
{
    struct cache_entry *e = calloc(1, sizeof *e);
    const struct rq_principal *p = &o->principal;
    if (!e)
        return NULL;
    memcpy(e->key, key, RQ_CUSTOM_CACHE_KEY);
    e->until = until;
    e->verdict = o->verdict;
    e->reason = o->reason;
    e->expiry = p->expiry;
    textf(e->why, sizeof e->why, "%s (cached)", o->why);
    if (p->n_attrs) {
        e->keys = calloc(p->n_attrs, sizeof *e->keys);
        e->values = calloc(p->n_attrs, sizeof *e->values);
        if (!e->keys || !e->values)
            goto fail;
    }
    for (size_t i = 0; i < p->n_attrs; i++, e->n_attrs++) {
        e->keys[i] = strdup(p->keys[i]);
        e->values[i] = strdup(p->values[i]);
        if (!e->keys[i] || !e->values[i]) {
            e->n_attrs++;
            goto fail;
        }
    }
    return e;
fail:
    entry_free(e);
    return NULL;
}

/* Stores (or replaces) a verdict until `until`. Refused when full of live entries. */
void rq_custom_cache_put(struct rq_custom_cache *c, const uint8_t key[RQ_CUSTOM_CACHE_KEY],
                         const struct rq_authn_outcome *o, int64_t now, int64_t until)
{
    struct cache_entry *e = entry_from(o, key, until);
    if (!e)
        return;
    pthread_mutex_lock(&c->mu);
    struct cache_entry **b = bucket(c, key);
    for (struct cache_entry **pp = b; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->key, key, RQ_CUSTOM_CACHE_KEY) == 0) {
            struct cache_entry *old = *pp;
            e->next = old->next;
            *pp = e;
            entry_free(old);
            e = NULL;
            break;
        }
    }
    if (e && c->n >= c->max && now > c->last_sweep)
        cache_sweep(c, now);
    if (e && c->n < c->max) {
        e->next = *b;
        *b = e;
        c->n++;
        e = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (e)
        entry_free(e); /* full: refused */
}

static int entry_copy(const struct cache_entry *e, const char *username, size_t ulen,
                      struct rq_authn_outcome *o)
{
    o->verdict = e->verdict;
    o->reason = e->reason;
    o->method = "Custom";
    snprintf(o->why, sizeof o->why, "%s", e->why);
    if (e->verdict != RQ_AUTHN_ALLOW)
        return 0;
    o->principal.expiry = e->expiry;
    if (username && !(o->principal.username = strndup(username, ulen)))
        return -ENOMEM;
    for (size_t i = 0; i < e->n_attrs; i++)
        if (rq_principal_add_attr(&o->principal, e->keys[i], e->values[i]) != 0)
            return -ENOMEM;
    return 0;
}

int rq_custom_cache_get(struct rq_custom_cache *c, const uint8_t key[RQ_CUSTOM_CACHE_KEY],
                        const char *username, size_t ulen, int64_t now, struct rq_authn_outcome *o)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (struct cache_entry **pp = bucket(c, key); *pp; pp = &(*pp)->next) {
        struct cache_entry *e = *pp;
        if (memcmp(e->key, key, RQ_CUSTOM_CACHE_KEY) != 0)
            continue;
        if (e->until <= now) {
            *pp = e->next;
            entry_free(e);
            c->n--;
        } else {
            rc = entry_copy(e, username, ulen, o) == 0 ? 1 : -ENOMEM;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        rq_authn_outcome_free(o);
        rq_authn_outcome_init(o);
    }
    return rc;
}

size_t rq_custom_cache_count(struct rq_custom_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}
