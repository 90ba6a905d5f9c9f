/* The ServiceAccountToken method (AIO-INTERFACES.md 4, 5.1, 5.2): a Kubernetes service account
 * token is valid when the API server's TokenReview says so for one of the configured audiences.
 * The requests run on the auth service pool (auth/pool.h); results and flights live in a
 * shared cache (auth/sat_cache.h); messages are in auth/sat_msg.h, the API client in
 * auth/kube.h.
 *
 * Flow of one check (rq_sat_check, on a shard):
 *  - not relevant (rq_sat_relevant): NOT_RELEVANT, next method;
 *  - a token no service account token can be: DENY 0x87;
 *  - key = SHA-256(audiences, token) (the token itself is never a key and never logged);
 *    a live cached result answers at once; a TokenReview for the same key already in flight:
 *    the check joins it (PENDING, single flight); otherwise it opens the flight, submits the
 *    TokenReview job and answers PENDING.
 * When the TokenReview ends (pool thread, rq_sat_pool_done):
 *  - authenticated, audiences intersect, user system:serviceaccount:NS:NAME: the ServiceAccount's
 *    annotations are read (GET, cached sa_cache_s seconds and single-flight too, so 1,000 pods
 *    of one service account cost one lookup); attributes = annotations with prefix aio-broker-auth/
 *    (legacy aio-mq-broker-auth/); expiry = the JWT's exp; ALLOW, cached until exp;
 *  - status.error or not authenticated, wrong audiences, not a service account, or the
 *    ServiceAccount is gone (404): DENY 0x87 (v3.1.1: 5) with the API's reason in why,
 *    cached negative_s seconds;
 *  - the API unreachable or slow, 401/403 (the broker's own RBAC: logged, rate limited, naming
 *    the permission and ClusterRole system:auth-delegator), 5xx: DENY 0x88 Server unavailable
 *    (v3.1.1: 3), never cached, never "not relevant" (only Custom falls through).
 *  Every connection waiting on the flight gets its own copy through ctx->deliver.
 *
 * Re-authentication (v5 AUTH 0x19) is a check like a CONNECT's: the new token is reviewed (or
 * found in the cache) and the answer carries the new principal and expiry. */
#ifndef RQ_SAT_H
#define RQ_SAT_H

#include "auth/authn.h"
#include "auth/kube.h"
#include "auth/pool.h"
#include "auth/sat_cache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the method's flights need besides the method: set up by the broker (net/authn_sat.c),
 * alive until the pool has stopped. */
struct rq_sat_ctx {
    struct rq_auth_pool *pool; /* created with rq_sat_pool_done and this ctx */
    struct rq_sat_cache *cache;
    uint32_t negative_s; /* a DENY stays cached this long (0: not cached) */
    uint32_t sa_cache_s; /* ServiceAccount annotations (default 60) */
    /* Hands an answer to the connection conn that waits at chain position at (reauth: for its
     * re-authentication, already mapped by rq_sat_reauth_outcome); takes o's contents (o is
     * left empty). Any pool thread. */
    void (*deliver)(uint64_t conn, size_t at, bool reauth, struct rq_authn_outcome *o);
};

struct rq_sat_method;

/* Copies the audiences and takes a reference on kube. local_fallback: localVerification
 * Fallback (the issuer's keys are fetched from the first check on, see sat_jwks.c; call
 * rq_sat_method_start to fetch them at once). NULL when out of memory. */
struct rq_sat_method *rq_sat_method_new(struct rq_kube *kube, char *const *auds, size_t n_auds,
                                        bool local_fallback);
/* Starts what the method fetches ahead (the issuer's keys with Fallback). Any thread. */
void rq_sat_method_start(struct rq_sat_method *m, struct rq_sat_ctx *ctx);
void rq_sat_method_release(struct rq_sat_method *m); /* NULL is fine; jobs keep their ref */

/* The check for a CONNECT (reauth false) or a v5 re-authentication (reauth true: the AUTH
 * packet's method and data in c) at chain position `at`, see above. ctx NULL or without a
 * pool: DENY 0x88. A re-authentication is checked exactly like a CONNECT (same cache and
 * flights: a rotated token is a new key), except that its answers go through
 * rq_sat_reauth_outcome, immediate or delivered. */
void rq_sat_check(struct rq_sat_method *m, struct rq_sat_ctx *ctx, const struct rq_authn_creds *c,
                  size_t at, bool reauth, struct rq_authn_outcome *o);
/* A re-authentication's view of an answer: Server unavailable / busy (0x88 / 0x89: the API
 * could not be asked) becomes NOT_RELEVANT, which the re-authentication glue answers with AUTH
 * 0x18 (the connection keeps its credentials); ALLOW and other DENYs stay. */
void rq_sat_reauth_outcome(struct rq_authn_outcome *o);

/* The pool's done() (ctx = the struct rq_sat_ctx). Always takes the outcome (returns 0): one
 * answer fans out to every connection of the flight through ctx->deliver, which waits briefly
 * for a full inbox itself (not yet the pool's busy lanes). */
int rq_sat_pool_done(void *ctx, uint64_t tag, struct rq_authn_outcome *o, bool last);

/* TokenReview and ServiceAccount requests sent (tests, stats). */
uint64_t rq_sat_requests(void);

#endif
