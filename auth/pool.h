/* The authentication service pool: K threads that run the slow checks of authentication methods
 * (HTTPS calls to a Custom auth server today, TokenReview later) so that no shard ever waits.
 *
 * Threads and flow:
 *  - Any thread (shards) calls rq_auth_pool_submit(pool, job, tag). The job goes through a
 *    bounded lock-free MPSC queue (core/inbox) to one pool thread (round robin), which is woken
 *    through its eventfd only when its queue went from empty to non-empty.
 *  - Each pool thread owns one libcurl multi handle and runs every transfer asynchronously
 *    (epoll + curl_multi_socket_action; no thread blocks on the network). It keeps at most
 *    cfg.max_connections transfers in flight; further jobs wait in a local FIFO and reuse the
 *    connections as they free up (HTTP keep-alive in the multi's connection cache, TLS sessions
 *    in a per-thread CURLSH). So a burst of N jobs opens at most threads * max_connections
 *    connections (TLS handshakes), not N; the price is that a slow auth server is asked at most
 *    threads * max_connections questions at a time (the others wait and may time out).
 *  - Each job has a deadline: submit time + cfg.request_timeout_ms. Time spent waiting in the
 *    FIFO counts; the transfer gets the rest as CURLOPT_TIMEOUT_MS.
 *  - When a job ends, the pool thread calls done(ctx, tag, outcome, last). done() either takes
 *    the outcome (returns 0; it owns it from then on, release it with rq_auth_outcome_release)
 *    or, when its destination is momentarily full (the originating shard's inbox) and last is
 *    false, returns RQ_AUTH_POOL_BUSY(lane) and leaves outcome and tag as they were. The pool
 *    thread then keeps the outcome on a per-lane list (lane: the shard) and calls done() again
 *    with it after each turn of the thread's event loop (at least every 2 ms), in order, until it is taken; a busy lane is not
 *    retried again in the same turn, other lanes go on. Nothing ever waits: one full shard
 *    inbox holds up neither the pool thread nor the verdicts for other shards. Once
 *    cfg.deliver_timeout_ms has passed since submit (the connection's connect timeout has
 *    surely passed), or when the pool stops, done() is called with last = true and must take
 *    the outcome (delivering it if it can, else dropping and counting it). The tag is the
 *    caller's: e.g. a pointer to what the verdict needs (shard, slot, generation), so a late
 *    verdict is recognised and dropped.
 *
 * Bounded: at most cfg.max_pending jobs are accepted and not yet delivered (one atomic counter,
 * exact; an outcome waiting for its lane still counts, so the lanes are bounded too, and the
 * counter drops right after done() took an outcome). Over it submit returns -EBUSY (the broker answers CONNACK 0x89 Server busy / 3.1.1
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_auth_pool_cfg {
    unsigned threads;            /* K pool threads, 1..64 (default 2) */
    uint32_t max_pending;        /* accepted, not yet delivered jobs, 1..1000000 (default 10000) */
    uint32_t request_timeout_ms; /* per job, from submit (default 5000) */
    unsigned max_connections;    /* transfers in flight per pool thread, 1..1024 (default 8) */
    uint32_t deliver_timeout_ms; /* from submit: an outcome whose lane stays busy this long is
                                    handed over with last = true (default 10000) */
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
    struct rq_auth_job *prev; /* in flight: the list is doubly linked */
    CURL *easy;
};

/* Lanes of outcomes waiting for delivery (per pool thread): a lane is typically a shard. */
#define RQ_AUTH_POOL_LANES 256
/* done()'s answer "not now, lane is full" (lane taken modulo RQ_AUTH_POOL_LANES). */
#define RQ_AUTH_POOL_BUSY(lane) (1 + (int)((unsigned)(lane) % RQ_AUTH_POOL_LANES))

/* Returns 0 when it took o (the callee owns it from now on), or RQ_AUTH_POOL_BUSY(lane) when
 * last is false and o cannot be delivered now (o and tag untouched; called again later). Must
 * not block. Called on a pool thread (or the stopping thread, see above). */
typedef int (*rq_auth_pool_done_fn)(void *ctx, uint64_t tag, struct rq_authn_outcome *o,
                                    bool last);

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

/* Accepted jobs not yet delivered (for stats and tests). */
uint32_t rq_auth_pool_pending(const struct rq_auth_pool *p);
/* Of those, outcomes waiting on a busy lane now; and how many times done() answered busy. */
uint32_t rq_auth_pool_waiting(const struct rq_auth_pool *p);
uint64_t rq_auth_pool_busy_total(const struct rq_auth_pool *p);

/* Stops as described above. Idempotent. Must not be called from a done() callback. */
void rq_auth_pool_stop(struct rq_auth_pool *p);
/* Stops, then frees. NULL is fine. */
void rq_auth_pool_free(struct rq_auth_pool *p);

/* rq_authn_outcome_free + free: how the receiver of done() releases the outcome. */
void rq_auth_outcome_release(struct rq_authn_outcome *o);

#endif
