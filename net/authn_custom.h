/* The Custom authentication method in a port's chain (auth/custom.h does the HTTPS exchange):
 * its chain entry (check on the shard, answer PENDING and hand the request to the auth service
 * pool), the pool that runs the requests, and the pool's done() that posts each answer back to
 * the connection's shard (RQ_POST_AUTHN_REPLY, net/post.h).
 *
 * Threads and lifetime:
 *  - The control thread starts the pool (rq_authn_custom_pool_start) before the shards run, or
 *    later on a reload that first brings a Custom method, and stops it
 *    (rq_authn_custom_pool_stop) at shutdown before the shards are stopped and freed: stopping
 *    completes every outstanding request as "not relevant" (posted while the shards still run)
 *    and joins the pool threads, which then post nothing more (net/post.h rule).
 *  - check() runs on a shard: a verdict cache hit answers at once; otherwise it copies what the
 *    request needs (the creds are borrowed), submits a job tagged with a small heap record
 *    (connection id, the method's index in the chain) and answers PENDING. The job holds a
 *    reference on the method state (auth/custom.h), so a reload that frees the chain meanwhile
 *    is safe.
 *  - Re-authentication (creds->reauth, MQTT v5 AUTH 0x19; auth/authn.h): the method is added
 *    with rq_authn_chain_add_reauth; check() sends {"type":"auth","enhancedAuthentication":
 *    {method, data}} (rq_custom_job_auth), never uses the verdict cache, and a full pool is
 *    "not relevant" (AUTH 0x18) rather than 0x89; the reply carries reauth = true.
 *  - done() runs on a pool thread: it posts the answer; an inbox that stays full is retried for
 *    up to 2 s (1 ms sleeps), then the answer is dropped and counted, as it is when the shard
 *    is gone. */
#ifndef RQ_AUTHN_CUSTOM_H
#define RQ_AUTHN_CUSTOM_H

#include <stddef.h>
#include <stdint.h>

struct rq_authn_chain;
struct rq_authn_custom;
struct rq_config;

/* Control thread. Starts the pool from cfg's spec.ringmq.auth (threads_override > 0: the
 * --auth-threads value instead) unless it runs already. 0, or -1 with err set. */
int rq_authn_custom_pool_start(const struct rq_config *cfg, unsigned threads_override, char *err,
                               size_t errlen);
/* Control thread, at shutdown, while the shards still run: stops the pool (every outstanding
 * request is answered "not relevant" and posted; the pool threads are joined; later submits fail
 * and the method answers "not relevant"). Idempotent; nothing when not started. */
void rq_authn_custom_pool_stop(void);
/* Control thread, once the shards are joined and before they are freed: frees the pool. */
void rq_authn_custom_pool_free(void);
/* True when some BrokerAuthentication used by a port of cfg has a Custom method. */
int rq_authn_custom_needed(const struct rq_config *cfg);

/* Answers dropped because their connection's shard was gone or its inbox stayed full. */
uint64_t rq_authn_custom_dropped(void);

/* Control thread (chain build): appends the Custom method of settings s to ch. 0, or -1 with err
 * set. */
int rq_authn_custom_add(struct rq_authn_chain *ch, const struct rq_authn_custom *s, char *err,
                        size_t errlen);

#endif
