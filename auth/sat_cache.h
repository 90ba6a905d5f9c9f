/* ServiceAccountToken results and flights: a table from a 32-byte key (SHA-256 of what was
 * asked: the audiences and the token, or a ServiceAccount's namespace and name) to either
 *  - a result (an ALLOW or DENY outcome, live until a unix time), or
 *  - a flight: the request for that key is running; who else asks meanwhile waits on it
 *    (single flight: 1,000 CONNECTs with one token make one TokenReview).
 * Shared by every thread (shards look up and join, pool threads land results) under one mutex.
 *
 * Bounded: at most `max` results; when full, the least recently used result goes (LRU list,
 * moved on each hit). Flights are not counted there: each is one pool job (bounded by the pool's
 * maxPending) and each waiter one connection waiting for its CONNACK. */
#ifndef RQ_SAT_CACHE_H
#define RQ_SAT_CACHE_H

#include "auth/authn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_SAT_KEY 32

/* Who waits on a flight: two words the caller gives meaning to (a connection id and its chain
 * position, or a pointer). */
struct rq_sat_waiter {
    uint64_t a, b;
};

struct rq_sat_cache;

struct rq_sat_cache *rq_sat_cache_new(uint32_t max); /* NULL on ENOMEM */
/* Frees results and flights (their waiter lists; what the waiters point at is the caller's). */
void rq_sat_cache_free(struct rq_sat_cache *c);

enum {
    RQ_SAT_HIT = 1,    /* a live result: *o filled (a copy) */
    RQ_SAT_JOINED = 2, /* a flight runs: w waits on it */
    RQ_SAT_LEAD = 3,   /* nothing: a flight is opened with w; the caller must run the request
                          and land it (or abandon it) */
};

/* One of the above, or -ENOMEM. o: initialised and empty. */
int rq_sat_cache_begin(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                       const struct rq_sat_waiter *w, struct rq_authn_outcome *o);
/* Lookup only: 1 and *o on a live result, 0 otherwise (-ENOMEM). */
/* begin, and on RQ_SAT_HIT also *attrs_until: until when the result's attributes are as fresh as
 * its account's annotations (0: never synced, see rq_sat_cache_set_attrs). */
int rq_sat_cache_begin_ex(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                          const struct rq_sat_waiter *w, struct rq_authn_outcome *o,
                          int64_t *attrs_until);
/* The live result under key takes the attributes of from (copies) and is in sync with its
 * account's annotations until `until` (the annotation entry's refresh time): a warm CONNECT
 * before then needs no second lookup. Out of memory: unchanged. */
void rq_sat_cache_set_attrs(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                            const struct rq_principal *from, int64_t until);
int rq_sat_cache_get(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                     struct rq_authn_outcome *o);
/* Ends the flight of key: stores a copy of o (verdict, reason, why, principal) until `until`
 * when until > now (else nothing is stored), and returns the flight's waiters (malloc'd, *n;
 * NULL with *n = 0 when there was no flight). On ENOMEM the result is not stored, the waiters
 * are still returned. */
struct rq_sat_waiter *rq_sat_cache_land(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY],
                                        const struct rq_authn_outcome *o, int64_t now,
                                        int64_t until, size_t *n);

/* Stores a copy of o under key until `until`, replacing a result; nothing when a flight holds
 * the key (its landing decides) or until <= now. For refreshes nobody waits on. */
void rq_sat_cache_put(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY],
                      const struct rq_authn_outcome *o, int64_t now, int64_t until);
/* Stale-while-revalidate: a live result whose principal.expiry (used as "fresh until") is <=
 * now gets principal.expiry = next and true is returned (the caller refreshes it, once);
 * false otherwise. */
bool rq_sat_cache_claim_refresh(struct rq_sat_cache *c, const uint8_t key[RQ_SAT_KEY], int64_t now,
                                int64_t next);

size_t rq_sat_cache_results(struct rq_sat_cache *c);
size_t rq_sat_cache_flights(struct rq_sat_cache *c);

#endif
