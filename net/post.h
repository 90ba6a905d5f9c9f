/* Posting into a shard from threads that own no shard (the auth service pool, tests), and the
 * stable identity of a connection that such posts name.
 *
 * Connection identity: 64 bits = serial:36 | slot:20 | shard:8. The serial comes from a
 * per-shard counter and is never reused (2^36 connections on one shard: about 19 hours at a
 * million connections a second, far beyond any verdict's lifetime); the slot is the
 * connection's index in its shard's table (at most 2^20, net/shard_setup.c). A post that names
 * a connection is applied only when the slot still holds that serial: a verdict for a client
 * that left, or whose slot now holds another client, is dropped and counted, never applied to
 * another client.
 *
 * Wake path: rq_inbox_push (core/inbox.c) is safe from any thread and says atomically whether
 * the shard must be woken; the wake is an IORING_OP_MSG_RING sent from a small io_uring owned
 * by the posting thread (8 entries, SINGLE_ISSUER, IOSQE_CQE_SKIP_SUCCESS), created on the
 * thread's first post and freed when the thread exits (or by rq_shard_post_thread_exit).
 * Rule: every thread that posts is joined (or stops posting) before the shards are freed
 * (rq_shard_free closes the rings and the inboxes it posts to).
 *
 * How an asynchronous method uses this (the auth service pool): its check() runs on the shard,
 * gets creds->conn_id, copies what it needs of the borrowed creds, queues the work and answers
 * RQ_AUTHN_PENDING; the CONNECT is then suspended (core: AUTHENTICATING; input kept and bounded;
 * the connect timer running). When the work is done, the pool thread posts either
 *  - the method's own answer: rq_shard_post_authn_reply (the shard continues the chain: the
 *    usual case, since a "not relevant" must fall through to the next method), or
 *  - a final verdict in core's terms: rq_shard_post_verdict (rq_authn_glue_translate builds it
 *    from a chain outcome).
 * Either is dropped and counted on the shard if the connection has gone meanwhile.
 *
 * Re-authentication (MQTT v5 AUTH 0x19 of a connected client) uses the same path: the method's
 * check() sees creds->reauth, answers PENDING, and its thread posts rq_shard_post_authn_reply
 * with reply->reauth = true; see struct rq_authn_reply. The connection is not suspended
 * meanwhile (it keeps publishing and receiving); a second AUTH while one is pending is refused
 * by core (DISCONNECT 0x82), so at most one re-authentication reply per connection is due. */
#ifndef RQ_POST_H
#define RQ_POST_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/authn.h"
#include "core/broker.h"

#define RQ_CONN_SHARD_BITS 8
#define RQ_CONN_SLOT_BITS 20
#define RQ_CONN_SERIAL_BITS 36

static inline uint64_t rq_conn_id(int shard, uint32_t slot, uint64_t serial)
{
    return (serial << (RQ_CONN_SLOT_BITS + RQ_CONN_SHARD_BITS)) |
           ((uint64_t)(slot & ((1u << RQ_CONN_SLOT_BITS) - 1)) << RQ_CONN_SHARD_BITS) |
           (uint64_t)(shard & ((1 << RQ_CONN_SHARD_BITS) - 1));
}
static inline int rq_conn_id_shard(uint64_t id)
{
    return (int)(id & ((1u << RQ_CONN_SHARD_BITS) - 1));
}
static inline uint32_t rq_conn_id_slot(uint64_t id)
{
    return (uint32_t)(id >> RQ_CONN_SHARD_BITS) & ((1u << RQ_CONN_SLOT_BITS) - 1);
}
static inline uint64_t rq_conn_id_serial(uint64_t id)
{
    return id >> (RQ_CONN_SLOT_BITS + RQ_CONN_SHARD_BITS);
}

/* Queues p in shard `shard`'s inbox and wakes the shard when its inbox was empty. Any thread
 * that is not a shard (a shard posts through its worker ops). Ownership of p->ptr moves to the
 * shard on success only. Returns 0; -EAGAIN when the inbox is full (retry later, or give up and
 * free p->ptr); -ENOENT when there is no such running shard. A failed wake-up falls back to the
 * control path (rq_shard_wake), so a queued post is never stranded. */
int rq_shard_post_external(int shard, const struct rq_post *p);

/* Posts an authentication verdict (heap, core/principal.h) to the shard of v->conn as
 * RQ_POST_AUTH_VERDICT. Same threads and errors as rq_shard_post_external; on success the shard
 * owns v, on failure the caller still does. For a CONNECT only: a re-authentication's answer
 * always goes through rq_shard_post_authn_reply with reply->reauth set. */
int rq_shard_post_verdict(struct rq_auth_verdict *v);

/* One method's answer for a pending CONNECT, as the thread that ran the method has it: the shard
 * of `conn` goes on with the connection's chain from method pending_at (rq_authn_chain_resume
 * there, with the CONNECT decoded again from the connection's kept input), so the thread never
 * touches the chain after its method answered and a "not relevant" falls through to the next
 * method on the shard [AIO chain rule]. Heap (malloc), o owned (rq_authn_outcome_init'ed and
 * filled by the method's code). */
struct rq_authn_reply {
    uint64_t conn;     /* creds->conn_id of the pending check */
    size_t pending_at; /* the method that answered: the chain index rq_authn_chain_run gave */
    /* creds->reauth of the pending check: the answer is for a re-authentication (MQTT v5 AUTH
     * 0x19) of a connected client, not for a CONNECT. The shard then applies it to that
     * connection's pending re-authentication only (rq_authn_glue_reauth_resume, then core's
     * rq_client_reauth_resume: ALLOW -> AUTH 0x00 and the principal replaced, DENY ->
     * DISCONNECT, NOT_RELEVANT -> AUTH 0x18) and never continues the chain with another
     * method; it is dropped and counted like a CONNECT's when the connection left, was taken
     * over, or awaits no re-authentication. A method that re-authenticates (auth/authn.h,
     * "Re-authentication") sets it from the creds and otherwise posts exactly as for a
     * CONNECT. */
    bool reauth;
    struct rq_authn_outcome o;
    struct rq_authn_reply *next; /* the shard's overflow stack (rq_shard_post_authn_reply_always) */
};

/* Posts r to the shard of r->conn (RQ_POST_AUTHN_REPLY). Same threads and errors as
 * rq_shard_post_external; on success the shard owns r (and frees it, dropping and counting it
 * when the connection is gone or no longer waits), on failure the caller still does. */
int rq_shard_post_authn_reply(struct rq_authn_reply *r);
/* The same for a thread that must not wait and cannot keep r for a later try (one answer for
 * many waiting connections): a full inbox puts r on the shard's overflow stack, which the shard
 * takes after its next inbox drain, and wakes the shard. Never -EAGAIN: 0, or -ENOENT when the
 * shard is not running (the caller still owns r then). */
int rq_shard_post_authn_reply_always(struct rq_authn_reply *r);
/* Frees a reply and its outcome (NULL is fine). */
void rq_authn_reply_free(struct rq_authn_reply *r);

/* Frees this thread's posting ring now (it is freed at thread exit anyway). */
void rq_shard_post_thread_exit(void);

#endif
