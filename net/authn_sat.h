/* The ServiceAccountToken method in a port's chain (auth/sat.h does the checks): where the
 * Kubernetes API is (resolved from each configuration, the startup log names the source), the
 * auth service pool and shared cache its requests and results use, its chain entry, and the
 * delivery of answers to the connections' shards (RQ_POST_AUTHN_REPLY, net/post.h).
 *
 * Shaped like net/authn_custom.h: the check runs on the shard and answers at once (cache hit,
 * bad token) or PENDING; answers come back through rq_shard_post_authn_reply. The pool is its
 * own instance of auth/pool (same settings as Custom's: spec.ringmq.auth, --auth-threads); the
 * cache (spec.ringmq.auth.cacheEntries, negativeCacheSeconds) lives as long as the pool, so it
 * survives reloads.
 *
 * Threads and lifetime, control thread:
 *  - rq_authn_sat_start(cfg) before the chains of cfg are built (startup, every reload): when
 *    some port uses ServiceAccountToken, resolves the Kubernetes API source (error: no source,
 *    unreadable files) and makes it current for the chains built next, and starts the pool
 *    and cache unless they run;
 *  - rq_authn_sat_pool_stop at shutdown while the shards still run (every waiting check is
 *    answered Server unavailable), rq_authn_sat_pool_free once the shards are joined. */
#ifndef RQ_AUTHN_SAT_H
#define RQ_AUTHN_SAT_H

#include <stddef.h>
#include <stdint.h>

struct rq_authn_chain;
struct rq_authn_sat;
struct rq_config;

/* True when some BrokerAuthentication used by a port of cfg has a ServiceAccountToken method. */
int rq_authn_sat_needed(const struct rq_config *cfg);
/* See above. 0, or -1 with err set. Nothing when cfg needs no ServiceAccountToken. */
int rq_authn_sat_start(const struct rq_config *cfg, unsigned threads_override, char *err,
                       size_t errlen);
void rq_authn_sat_pool_stop(void);
void rq_authn_sat_pool_free(void);

/* Chain build: appends the method of settings s (using the current Kubernetes API source) to
 * ch. 0, or -1 with err set. */
int rq_authn_sat_add(struct rq_authn_chain *ch, const struct rq_authn_sat *s, char *err,
                     size_t errlen);

/* Answers dropped because their connection's shard was gone or its inbox stayed full. */
uint64_t rq_authn_sat_dropped(void);

#endif
