/* Moving a connected client, with its session, to the shard its messages go to (placement:
 * core/placement.h decides, docs/design-placement.md has the design). Like the CONNECT
 * hand-over (handover.c) the socket, the transport state, the generation pin and the bytes not
 * yet parsed travel through the target's inbox; unlike it, the client is past CONNECT: its
 * whole protocol state (struct rq_client: principal, permissions, topic aliases, limits, output
 * not sent yet) and its session go along, and the target goes on where this shard stopped,
 * without a CONNECT.
 *
 * Order: a publisher's messages must reach every subscriber in the order it sent them. Those
 * routed here before the move leave in this shard's outbox batches; those routed after it are
 * routed on the target. The record is posted only after this turn's batches are flushed and
 * while no post to any shard waits in a backlog, so every earlier batch is in its target's inbox
 * before the record is in the target's: the target delivers its own share first, and a third
 * shard pops this shard's batch before any the target pushes after adopting the client. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/broker_int.h"
#include "core/log.h"
#include "core/placement.h"
#include "net/admit.h"
#include "net/gen.h"
#include "net/shard_int.h"
#include "net/xport.h"

struct move {
    int fd;
    int from;
    uint32_t port_index;
    struct rq_peer peer;
    struct rq_xport *xp;   /* TLS / WebSocket state, with its unsent output and raw input */
    struct rq_gen *rt_gen; /* the pin moves with the connection */
    struct rq_buf in;      /* MQTT bytes not parsed yet (after the packet that moved it) */
    struct rq_client cl;   /* the protocol state: every pointer in it now belongs here */
};

bool rq_move_start(struct rq_shard *s, struct conn *c)
{
    if (c->recv_armed && !rq_conn_cancel_recv(s, c))
        return false; /* no SQE for the cancel: its recv would never end; it stays */
    c->state = C_MOVING;
    rq_conn_mark_closing(s, c);
    /* Its timer runs on until the record leaves (rq_move_try): a move that waits for a send
     * to a peer that stopped reading must not stop its keep-alive or credential expiry. */
    rq_log(RQ_LOG_DEBUG, &c->cl.log, "not read any more: moves to shard %d once its operations "
           "in flight end", c->cl.move_to);
    return true;
}

/* The move will not happen: the client is closing (core closed it meanwhile: a takeover, the
 * shutdown) or is closed now for why; it is closed here like any other. */
static void move_abandoned(struct rq_shard *s, struct conn *c, int rc, const char *why)
{
    if (!c->cl.closing)
        rq_client_close(&c->cl, rc, why);
    c->cl.move_to = -1;
    c->state = C_CLOSING;
    c->close_deadline = s->w->now + CLOSE_LINGER_MS;
    rq_conn_mark_dirty(s, c);
}

/* Everything the shell keeps pointing at now belongs to the record: rq_conn_free frees the
 * rest (its slot, the send buffer) and counts the client as no longer connected here. */
static void hollow_out(struct conn *c)
{
    c->cl.s = NULL;
    c->cl.principal = NULL;
    c->cl.auth_method = NULL;
    c->cl.access = NULL;
    c->cl.alias_in = NULL;
    c->cl.alias_in_max = 0;
    c->cl.alias_out = NULL;
    c->cl.alias_out_used = 0;
    c->cl.out = (struct rq_buf){0};
    c->cl.client_id_print = NULL;
    c->cl.log.client_id = NULL;
    c->cl.over_limit = false; /* the broker's count of clients does not change */
    c->xp = NULL;
    c->rt_gen = NULL;
    c->in = (struct rq_buf){0};
}

bool rq_move_try(struct rq_shard *s, struct conn *c)
{
    struct rq_client *cl = &c->cl;
    if (cl->closing || s->stopping) {
        move_abandoned(s, c, -RQ_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        return false;
    }
    if (c->ops)
        return false; /* a send in flight: tried again when it ends */
    rq_worker_flush(s->w); /* this turn's messages leave before the client does */
    for (int t = 0; t < rq_n_shards; t++)
        if (s->backlog[t].n)
            return false; /* earlier posts wait: the record would overtake them */
    struct move *m = malloc(sizeof *m);
    if (!m)
        return false; /* tried again next turn */
    int target = cl->move_to;
    if (!rq_place_session_leave(cl->s, target)) {
        free(m);
        move_abandoned(s, c, -RQ_RC_SESSION_TAKEN_OVER,
                       "session taken over by a clean-start connection");
        return false;
    }
    rq_timer_cancel(&s->w->wheel, &cl->ka_timer); /* the target arms its own */
    rq_log(RQ_LOG_DEBUG, &cl->log, "moving to shard %d, where its messages go", target);
    *m = (struct move){.fd = c->fd, .from = s->id, .port_index = c->port_index,
                       .peer = c->peer, .xp = c->xp, .rt_gen = c->rt_gen, .in = c->in,
                       .cl = *cl};
    hollow_out(c);
    struct rq_post p = {.kind = RQ_POST_MOVE_CONN, .ptr = m};
    s->w->ops->post(s->w, target, &p); /* kept in order if the inbox is full */
    return true;
}

/* The record's client could not be given a connection here (table full, or this shard is
 * stopping): the connection is lost, the session stays as after any lost connection (its
 * will per its delay, its expiry). */
static void arrive_lost(struct rq_shard *s, struct move *m, const char *why)
{
    struct rq_session *ss = m->cl.s;
    m->cl.w = s->w;
    m->cl.log.shard = s->id;
    m->cl.log.peer = &m->peer;
    rq_log(RQ_LOG_WARN, &m->cl.log, "moved from shard %d, but %s: connection closed", m->from,
           why);
    rq_client_unbind(&m->cl); /* its log name no longer borrowed from the session */
    if (!rq_place_session_arrive(s->w, ss))
        rq_place_session_drop(s->b, ss); /* out of memory: in no map */
    else
        rq_session_detach(ss, true); /* lost, not a DISCONNECT: its will per its delay */
    if (m->cl.over_limit)
        atomic_fetch_sub(&s->b->connections, 1);
    rq_client_release(&m->cl);
    rq_xport_free(m->xp);
    rq_gen_unpin(m->rt_gen);
    rq_buf_free(&m->in);
    rq_conn_fd_closed(s, m->fd);
    free(m);
}

void rq_move_adopt(struct rq_shard *s, void *record)
{
    struct move *m = record;
    struct conn *c = s->stopping ? NULL : rq_conn_new(s, m->fd, m->rt_gen, m->port_index, &m->peer);
    if (!c) {
        arrive_lost(s, m, s->stopping ? "this shard is stopping" : "no connection slot here");
        return;
    }
    rq_timer_cancel(&s->w->wheel, &c->cl.ka_timer); /* rq_conn_new's connect timer */
    c->cl = m->cl;
    c->cl.w = s->w;
    c->cl.conn = c;
    c->cl.ka_timer = (struct rq_timer){0};
    c->cl.move_to = -1;
    c->cl.log.shard = s->id;
    c->cl.log.peer = &c->peer;
    c->xp = m->xp;
    c->rt_gen = m->rt_gen;
    c->in = m->in;
    struct rq_session *ss = c->cl.s;
    ss->client = &c->cl;
    if (!rq_place_session_arrive(s->w, ss)) {
        free(m);
        c->cl.s = NULL;
        ss->client = NULL;
        rq_place_session_drop(s->b, ss);
        rq_client_close(&c->cl, -RQ_RC_IMPL_SPECIFIC, "out of memory after a move");
        return;
    }
    rq_stat_delta(RQ_ST_CONNECTED, 1); /* the shard it left counted it out */
    rq_stat_inc(RQ_ST_MOVES_IN);
    rq_log(RQ_LOG_DEBUG, &c->cl.log, "moved here from shard %d", m->from);
    free(m);
    rq_client_arm_timer(&c->cl);
    rq_conn_arm_recv(s, c);
    rq_conn_mark_dirty(s, c); /* output it had not sent yet goes out first */
    rq_shard_gen_recheck(s, c); /* a reload this shard applied meanwhile applies to it too */
    if (c->cl.closing)
        return;
    rq_conn_feed_kept(s, c); /* what it sent during the move, parsed here in order */
    struct rq_buf *raw = c->xp ? rq_xport_raw(c->xp) : NULL;
    if (raw && raw->len && c->state == C_OPEN) {
        struct rq_buf wire = *raw; /* rq_conn_input may append to raw again */
        *raw = (struct rq_buf){0};
        rq_conn_input(s, c, wire.data, wire.len);
        rq_buf_free(&wire);
    }
}

void rq_move_discard(struct rq_broker *b, void *record)
{
    struct move *m = record;
    rq_place_session_drop(b, m->cl.s);
    rq_client_release(&m->cl);
    rq_xport_free(m->xp);
    rq_gen_unpin(m->rt_gen);
    rq_buf_free(&m->in);
    close(m->fd);
    rq_admit_fd_closed();
    free(m);
}
