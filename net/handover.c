/* Moving a connection to the shard that owns its session: the CONNECT state machine's
 * HANDED_OVER step (core/broker.h enum rq_client_phase). The accepting shard suspends the
 * connection (core stopped parsing at its CONNECT), stops reading it, and once its receive has
 * ended passes the socket, the TLS state, the generation pin, the unconsumed input (the CONNECT
 * first, then whatever the client pipelined), and the principal the connection was
 * authenticated as there, through the owner's inbox (RQ_POST_ADOPT_CONN). The owner resumes it
 * through core's one resume entry point (rq_client_handover_arrived -> rq_client_auth_resume),
 * so it never authenticates the connection again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "net/admit.h"
#include "net/gen.h"
#include "net/shard_int.h"
#include "net/xport.h"

/* The session of this connection lives on another shard: stop reading here, wait for the recv
 * to end, then pass the socket and the unconsumed input (the CONNECT) to the owner. */
void rq_handover_start(struct rq_shard *s, struct conn *c)
{
    c->state = C_MIGRATING;
    /* its connect timer runs on until the hand-over leaves (rq_conn_free cancels it): a send
     * to a peer that stopped reading can hold the hand-over up, and the connect timeout still
     * ends it (reap closes a client closed meanwhile) */
    if (c->recv_armed)
        (void)rq_conn_cancel_recv(s, c);
    rq_conn_mark_closing(s, c);
    rq_log(RQ_LOG_DEBUG, &c->cl.log, "session lives on shard %d: handing the connection over",
           c->cl.migrate_to);
}

void rq_handover_finish(struct rq_shard *s, struct conn *c)
{
    struct rq_buf *raw = c->xp ? rq_xport_raw(c->xp) : NULL;
    size_t raw_len = raw ? raw->len : 0;
    struct handover *h = malloc(sizeof *h + c->in.len + raw_len);
    if (!h) {
        rq_conn_free(s, c, true);
        return;
    }
    h->fd = c->fd;
    h->port = c->port;
    h->port_index = c->port_index;
    h->xp = c->xp;
    c->xp = NULL;
    h->rt_gen = c->rt_gen;
    c->rt_gen = NULL;
    h->principal = c->cl.principal; /* the owner shard does not authenticate it again */
    c->cl.principal = NULL;
    snprintf(h->cid, sizeof h->cid, "%s", c->cl.log.client_id ? c->cl.log.client_id : "");
    h->raw_len = raw_len;
    if (raw_len) {
        memcpy(h->data + c->in.len, raw->data, raw_len);
        rq_buf_free(raw);
    }
    h->hops = (uint8_t)(c->cl.hops + 1);
    h->peer = c->peer;
    h->len = c->in.len;
    if (c->in.len)
        memcpy(h->data, c->in.data, c->in.len);
    int target = c->cl.migrate_to;
    rq_conn_free(s, c, false);
    struct rq_post p = {.kind = RQ_POST_ADOPT_CONN, .ptr = h};
    s->w->ops->post(s->w, target, &p); /* kept in order if the inbox is full */
}

void rq_handover_adopt(struct rq_shard *s, struct handover *h)
{
    /* before its CONNACK: a port a reload closed meanwhile just closes it */
    bool gone = s->stopping || rq_shard_port_closed(s, h->rt_gen, h->port_index);
    struct conn *c = gone ? NULL : rq_conn_new(s, h->fd, h->rt_gen, h->port_index, &h->peer);
    if (!c) {
        rq_xport_free(h->xp);
        rq_gen_unpin(h->rt_gen);
        rq_principal_free(h->principal);
        rq_conn_fd_closed(s, h->fd);
        free(h);
        return;
    }
    c->cl.hops = h->hops;
    c->xp = h->xp;
    c->rt_gen = h->rt_gen;
    rq_conn_arm_recv(s, c);
    if (c->xp && rq_xport_wire(c->xp)->len)
        rq_conn_mark_dirty(s, c);
    rq_buf_append(&c->in, h->data, h->len);
    if (h->cid[0] && (c->cl.client_id_print = strdup(h->cid)))
        c->cl.log.client_id = c->cl.client_id_print; /* its lines name it from the start */
    /* the same resume as an authentication verdict's: parses the CONNECT in c->in again */
    rq_client_handover_arrived(&c->cl, h->principal);
    if (c->xp && h->raw_len)
        rq_conn_input(s, c, h->data + h->len, h->raw_len); /* decrypts, then feeds */
    free(h);
}

void rq_handover_discard(struct handover *h)
{
    rq_gen_unpin(h->rt_gen);
    rq_principal_free(h->principal);
    rq_xport_free(h->xp);
    close(h->fd);
    rq_admit_fd_closed();
    free(h);
}
