/* Posts from threads that own no shard (see post.h): a small io_uring per posting thread for
 * the MSG_RING wake-up, and, on the shard, the connection lookup by identity and the handling
 * of authentication verdicts. Nothing here runs on the publish path. */
#include "net/post.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/inbox.h"
#include "core/log.h"
#include "net/authn_glue.h"
#include "net/gen.h"
#include "net/shard.h"
#include "net/shard_int.h"

/* ---- the posting thread's ring ---- */

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static bool ring_key_ok;
static _Thread_local struct io_uring *tl_ring;

static void ring_destroy(void *r)
{
    io_uring_queue_exit(r);
    free(r);
}

static void make_key(void)
{
    ring_key_ok = pthread_key_create(&ring_key, ring_destroy) == 0;
}

/* This thread's ring, created on first use: 8 entries are plenty, as a post submits at once. */
static struct io_uring *thread_ring(void)
{
    if (tl_ring)
        return tl_ring;
    pthread_once(&ring_once, make_key);
    struct io_uring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER};
    if (io_uring_queue_init_params(8, r, &p) != 0) {
        free(r);
        return NULL;
    }
    tl_ring = r;
    if (ring_key_ok)
        pthread_setspecific(ring_key, r); /* freed at thread exit */
    return r;
}

void rq_shard_post_thread_exit(void)
{
    if (!tl_ring)
        return;
    if (ring_key_ok)
        pthread_setspecific(ring_key, NULL);
    ring_destroy(tl_ring);
    tl_ring = NULL;
}

/* A wake-up that failed (its CQE: successes post none) goes the control thread's way. */
static void reap_failures(struct io_uring *r)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(r, &cqe) == 0) {
        int target = (int)cqe->user_data - 1;
        if (cqe->res < 0 && target >= 0 && target < rq_n_shards && rq_shards[target])
            rq_shard_wake(rq_shards[target]);
        io_uring_cqe_seen(r, cqe);
    }
}

static void wake(struct rq_shard *t)
{
    struct io_uring *r = thread_ring();
    struct io_uring_sqe *sqe = r ? io_uring_get_sqe(r) : NULL;
    if (!sqe) {
        rq_shard_wake(t);
        return;
    }
    io_uring_prep_msg_ring(sqe, t->ring_fd, 0, tag(OP_WAKE, 0, 0), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, (uint64_t)t->id + 1);
    if (io_uring_submit(r) < 0)
        rq_shard_wake(t);
    reap_failures(r);
}

int rq_shard_post_external(int shard, const struct rq_post *p)
{
    struct rq_shard *t = rq_shards && shard >= 0 && shard < rq_n_shards ? rq_shards[shard] : NULL;
    if (!t || t->ring_fd < 0)
        return -ENOENT;
    bool need_wake = false;
    if (!rq_inbox_push(t->inbox, p, &need_wake))
        return -EAGAIN;
    if (need_wake)
        wake(t);
    return 0;
}

int rq_shard_post_verdict(struct rq_auth_verdict *v)
{
    struct rq_post p = {.kind = RQ_POST_AUTH_VERDICT, .ptr = v};
    return rq_shard_post_external(rq_conn_id_shard(v->conn), &p);
}

int rq_shard_post_authn_reply(struct rq_authn_reply *r)
{
    struct rq_post p = {.kind = RQ_POST_AUTHN_REPLY, .ptr = r};
    return rq_shard_post_external(rq_conn_id_shard(r->conn), &p);
}

int rq_shard_post_authn_reply_always(struct rq_authn_reply *r)
{
    int rc = rq_shard_post_authn_reply(r);
    if (rc != -EAGAIN)
        return rc;
    int shard = rq_conn_id_shard(r->conn);
    struct rq_shard *t = rq_shards && shard >= 0 && shard < rq_n_shards ? rq_shards[shard] : NULL;
    if (!t || t->ring_fd < 0)
        return -ENOENT;
    struct rq_authn_reply *head = atomic_load_explicit(&t->reply_overflow, memory_order_relaxed);
    do
        r->next = head;
    while (!atomic_compare_exchange_weak_explicit(&t->reply_overflow, &head, r,
                                                  memory_order_release, memory_order_relaxed));
    /* Always: the shard may have drained its inbox and looked at this stack just before. */
    wake(t);
    return 0;
}

void rq_authn_reply_free(struct rq_authn_reply *r)
{
    if (!r)
        return;
    rq_authn_outcome_free(&r->o);
    free(r);
}

/* ---- on the shard ---- */

struct conn *rq_conn_lookup(struct rq_shard *s, uint64_t id)
{
    if (rq_conn_id_shard(id) != s->id)
        return NULL;
    uint32_t slot = rq_conn_id_slot(id);
    struct conn *c = slot < s->n_slots ? s->slots[slot] : NULL;
    return c && c->id == id ? c : NULL;
}

static void dropped(struct rq_shard *s, struct conn *c, uint64_t id, const char *what);

void rq_post_on_verdict(struct rq_shard *s, struct rq_auth_verdict *v)
{
    struct conn *c = rq_conn_lookup(s, v->conn);
    if (c && c->state == C_OPEN && c->cl.phase == RQ_PH_AUTHENTICATING)
        rq_metrics_authn_done(c, v);
    if (c && c->state == C_OPEN && rq_client_auth_resume(&c->cl, v)) {
        s->verdicts_applied++;
    } else {
        dropped(s, c, v->conn, "authentication verdict");
    }
    rq_auth_verdict_free(v);
}

static void dropped(struct rq_shard *s, struct conn *c, uint64_t id, const char *what)
{
    s->verdicts_dropped++;
    /* rq_log names the shard through c's context; without one, say it */
    rq_log(RQ_LOG_DEBUG, c ? &c->cl.log : NULL,
           "%s%s for connection %016llx dropped: %s (%llu dropped so far on this shard)",
           c ? "" : "shard: ", what, (unsigned long long)id,
           !c ? "the connection is gone" : "it no longer waits for one",
           (unsigned long long)s->verdicts_dropped);
}

/* The CONNECT at the start of c's kept input (it stays there while the CONNECT is suspended). */
static bool held_connect(struct conn *c, struct rq_packet *pk)
{
    const char *why = "";
    size_t hdr;
    long n = rq_codec_frame(c->in.data, c->in.len, UINT32_MAX, &hdr, &why);
    if (n <= 0 || (size_t)n > c->in.len)
        return false;
    int version = c->cl.level == 3 ? 3 : c->cl.version ? c->cl.version : 4;
    return rq_codec_decode(c->in.data, (size_t)n, version, pk, &why) == 0 && pk->type == RQ_CONNECT;
}

/* A method's answer to a re-authentication (r->reauth): only the method that authenticated the
 * connection ran, so the answer settles it (no fall-through), in the chain the connection
 * pinned. */
static void on_reauth_reply(struct rq_shard *s, struct rq_authn_reply *r)
{
    struct conn *c = rq_conn_lookup(s, r->conn);
    if (!c || c->state != C_OPEN || !c->cl.reauth_pending) {
        dropped(s, c, r->conn, "re-authentication reply");
        rq_authn_reply_free(r);
        return;
    }
    struct rq_auth_verdict v;
    rq_authn_glue_reauth_resume(c->rt_gen->ports[c->port_index].authn, r->pending_at, c->id,
                                &r->o, &v);
    if (rq_client_reauth_resume(&c->cl, &v))
        s->verdicts_applied++;
    else
        dropped(s, c, r->conn, "re-authentication reply");
    rq_principal_free(v.principal); /* taken by the client on ALLOW */
    rq_authn_reply_free(r);
}

void rq_post_on_authn_reply(struct rq_shard *s, struct rq_authn_reply *r)
{
    if (r->reauth) {
        on_reauth_reply(s, r);
        return;
    }
    struct conn *c = rq_conn_lookup(s, r->conn);
    struct rq_packet pk;
    if (!c || c->state != C_OPEN || c->cl.phase != RQ_PH_AUTHENTICATING) {
        dropped(s, c, r->conn, "authentication reply");
        rq_authn_reply_free(r);
        return;
    }
    struct rq_auth_verdict v;
    if (held_connect(c, &pk)) {
        rq_authn_glue_resume(c->rt_gen->ports[c->port_index].authn, r->pending_at,
                             rq_xport_tls(c->xp), c->id, &pk.u.connect, &r->o, &v);
    } else { /* cannot happen: the CONNECT was decoded before it was suspended */
        memset(&v, 0, sizeof v);
        v.result = RQ_AUTH_DENY;
        v.reason = 0x83; /* Implementation specific error */
        snprintf(v.why, sizeof v.why, "the suspended CONNECT could not be read again");
    }
    s->verdicts_applied++;
    rq_metrics_authn_done(c, &v);
    if (v.result != RQ_AUTH_PENDING) /* else the next method is pending: a new reply is due */
        rq_client_auth_resume(&c->cl, &v);
    rq_principal_free(v.principal); /* taken by the client unless refused */
    rq_authn_reply_free(r);
}
