/* The authentication service pool: K threads that run the slow checks of authentication methods
 * (HTTPS calls to a Custom auth server today, TokenReview later) so that no shard ever waits.
 *
 * Threads and flow:
 *  - Any thread (shards) calls rq_auth_pool_submit(pool, job, tag). The job goes through a
 *    bounded lock-free MPSC queue (core/inbox) to one pool thread (round robin), which is woken
 *    with curl_multi_wakeup only when its queue went from empty to non-empty.
 *  - Each pool thread owns one libcurl multi handle and runs every transfer asynchronously
 *    (curl_multi_poll; no thread blocks on the network). It keeps at most
 *    cfg.max_connections transfers in flight; further jobs wait in a local FIFO and reuse the
 *    connections as they free up (HTTP keep-alive in the multi's connection cache, TLS sessions
 *    in a per-thread CURLSH). So a burst of N jobs opens at most threads * max_connections
 *    connections (TLS handshakes), not N; the price is that a slow auth server is asked at most
 *    threads * max_connections questions at a time (the others wait and may time out).
 *  - Each job has a deadline: submit time + cfg.request_timeout_ms. Time spent waiting in the
 *    FIFO counts; the transfer gets the rest as CURLOPT_TIMEOUT_MS.
 *  - When a job ends, the pool thread calls done(ctx, tag, outcome) exactly once per accepted
 *    job. The callee owns the outcome (release it with rq_auth_outcome_release) and must not
 *    block (the broker posts it to the originating shard's inbox). The tag is the caller's: e.g.
 *    (shard, slot, generation) packed into 64 bits, so a late verdict is recognised and dropped.
 *
 * Bounded: at most cfg.max_pending jobs are accepted and not yet completed (one atomic counter,
 * exact). Over it submit returns -EBUSY (the broker answers CONNACK 0x89 Server busy / 3.1.1
 * return code 3).
 *
 * Shutdown: rq_auth_pool_stop (also done by rq_auth_pool_free) makes submit return -ESHUTDOWN,
 * cancels the transfers in flight and completes every outstanding job through done() with a
 * NOT_RELEVANT outcome whose why is "authentication service pool shutting down", joins the
 * threads, and returns; no done() call happens after it returns. The done() calls of a stop come
 * from the pool threads and, for jobs that raced with the stop, from the stopping thread. */
#ifndef RQ_POOL_H
#define RQ_POOL_H

#include "auth/authn.h"

#include <curl/curl.h>

#include <stddef.h>
#include <stdint.h>

struct rq_auth_pool_cfg {
    unsigned threads;            /* K pool threads, 1..64 (default 2) */
    uint32_t max_pending;        /* accepted, not yet completed jobs, 1..1000000 (default 10000) */
    uint32_t request_timeout_ms; /* per job, from submit (default 5000) */
    unsigned max_connections;    /* transfers in flight per pool thread, 1..1024 (default 8) */
};

/* The defaults above. */
void rq_auth_pool_cfg_default(struct rq_auth_pool_cfg *cfg);

struct rq_auth_job;

/* What a method implements for its jobs. Called on the pool thread that runs the job. */
struct rq_auth_job_ops {
    /* Sets the request's options (URL, headers, body, TLS, write/header callbacks) on easy, a
     * fresh or curl_easy_reset handle. Returns 0, or -1 with why set: the job then ends
     * NOT_RELEVANT with that why (finish is not called). The pool sets CURLOPT_TIMEOUT_MS,
     * CURLOPT_NOSIGNAL, CURLOPT_SHARE and CURLOPT_PRIVATE itself afterwards. */
    int (*start)(struct rq_auth_job *job, CURL *easy, char *why, size_t whylen);
    /* The transfer ended with rc (CURLE_OK: a response was read, whatever its status). Fills o
     * (initialised, empty): verdict, reason, why, principal. Must not block. */
    void (*finish)(struct rq_auth_job *job, CURL *easy, CURLcode rc, struct rq_authn_outcome *o);
    /* Releases the job (wipe secrets first). Called once, after finish or instead of it. */
    void (*free)(struct rq_auth_job *job);
};

/* A method's job starts with this header (the method allocates the whole job and sets ops); the
 * other fields belong to the pool. */
struct rq_auth_job {
    const struct rq_auth_job_ops *ops;
    /* private to the pool */
    uint64_t tag;
    int64_t deadline_ms; /* CLOCK_MONOTONIC */
    struct rq_authn_outcome *out;
    struct rq_auth_job *next;
    CURL *easy;
};

/* The callee owns o from now on; must not block. Called on a pool thread (or the stopping
 * thread, see above). */
typedef void (*rq_auth_pool_done_fn)(void *ctx, uint64_t tag, struct rq_authn_outcome *o);

struct rq_auth_pool;

/* Starts the threads. NULL on error with err set. cfg values of 0 mean the default. */
struct rq_auth_pool *rq_auth_pool_new(const struct rq_auth_pool_cfg *cfg, rq_auth_pool_done_fn done,
                                      void *ctx, char *err, size_t errlen);

/* Hands job to the pool. 0: accepted, the pool owns the job and done(ctx, tag, ..) will be
 * called exactly once, possibly on a pool thread before submit has returned (so record what the
 * verdict needs before submitting, or let done() only post to the submitter's own queue). Otherwise
 * the job is still the caller's (free it with job->ops->free): -EBUSY over max_pending, -ESHUTDOWN
 * after stop, -ENOMEM. Any thread, never blocks. */
int rq_auth_pool_submit(struct rq_auth_pool *p, struct rq_auth_job *job, uint64_t tag);

/* Accepted jobs not yet completed (for stats and tests). */
uint32_t rq_auth_pool_pending(const struct rq_auth_pool *p);

/* Stops as described above. Idempotent. Must not be called from a done() callback. */
void rq_auth_pool_stop(struct rq_auth_pool *p);
/* Stops, then frees. NULL is fine. */
void rq_auth_pool_free(struct rq_auth_pool *p);

/* rq_authn_outcome_free + free: how the receiver of done() releases the outcome. */
void rq_auth_outcome_release(struct rq_authn_outcome *o);

#endif
