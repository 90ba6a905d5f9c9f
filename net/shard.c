/* The shard loop: one thread, one io_uring ring. It accepts on its own SO_REUSEPORT sockets,
 * receives with multishot recv into a provided buffer ring, hands bytes to core (which writes
 * replies into each client's output buffer), flushes every client that has output with one send
 * per loop iteration, and moves cross-shard work through its inbox, woken by IORING_OP_MSG_RING.
 * No protocol logic here. One loop iteration: drain inbox -> handle CQEs -> run timers -> flush
 * sends -> reap closed connections -> submit and wait. Setup, start and stop are in
 * shard_setup.c. */
#include "net/shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/authz.h"
#include "config/config.h"
#include "core/broker.h"
#include "core/inbox.h"
#include "core/log.h"
#include "core/stats_sys.h"
#include "net/authn_glue.h"
#include "net/gen.h"
#include "net/ports.h"
#include "net/post.h"
#include "net/shard_int.h"
#include "net/xport.h"

/* Transport output waiting for the next send (TLS / WebSocket connections only). */
static size_t wire_len(struct conn *c)
{
    return c->xp ? rq_xport_wire(c->xp)->len : 0;
}

/* The end of a rate-limited line: how many like it were left out, if any. */
static const char *left_out(uint64_t skipped, char *buf, size_t len)
{
    if (!skipped)
        return "";
    snprintf(buf, len, " (%llu such lines left out)", (unsigned long long)skipped);
    return buf;
}

/* ---- SQE helpers ---- */

static struct io_uring_sqe *get_sqe(struct rq_shard *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* Port i of the current generation: its multishot accept, tagged with the listener's id (the
 * port's index may change with the generation; a completion of a listener gone is stale). */
static void arm_accept(struct rq_shard *s, size_t i)
{
    struct rq_listen *l = s->gen->lis[i];
    struct io_uring_sqe *sqe = l->fds[s->id] >= 0 ? get_sqe(s) : NULL;
    if (!sqe)
        return;
    io_uring_prep_multishot_accept(sqe, l->fds[s->id], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tag(OP_ACCEPT, 0, l->id));
    l->armed[s->id] = true;
}

void rq_conn_arm_recv(struct rq_shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return;
    io_uring_prep_recv_multishot(sqe, (int)c->slot, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, tag(OP_RECV, c->gen, c->slot));
    c->recv_armed = true;
    c->ops++;
}

static void start_send(struct rq_shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return;
    io_uring_prep_send(sqe, (int)c->slot, c->sending.data + c->send_off,
                       c->sending.len - c->send_off, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, tag(OP_SEND, c->gen, c->slot));
    c->send_busy = true;
    c->ops++;
    s->sent_this_turn = true;
}

/* Cancels c's multishot recv; its last CQE (-ECANCELED, no F_MORE) says when it has ended.
 * False when no SQE was available. */
bool rq_conn_cancel_recv(struct rq_shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe)
        return false;
    io_uring_prep_cancel64(sqe, tag(OP_RECV, c->gen, c->slot), 0);
    io_uring_sqe_set_data64(sqe, tag(OP_IGNORE, 0, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return true;
}

/* ---- backpressure ---- */

/* Stops reading c: its multishot recv is cancelled (what it already delivered is processed);
 * the kernel's socket buffer fills and TCP flow control slows the client down. */
static void pause_conn(struct rq_shard *s, struct conn *c)
{
    if (s->n_paused == s->cap_paused) {
        size_t ncap = s->cap_paused ? s->cap_paused * 2 : 64;
        uint64_t *nv = realloc(s->paused, ncap * sizeof *nv);
        if (!nv)
            return; /* not paused: memory is short, and this only slows the broker down */
        s->paused = nv;
        s->cap_paused = ncap;
    }
    if (!rq_conn_cancel_recv(s, c))
        return;
    c->paused = true;
    rq_stat_inc(RQ_ST_BACKPRESSURE_PAUSES);
    c->cl.last_rx = s->w->now; /* a paused client is not idle: keepalive counts from here */
    s->paused[s->n_paused++] = (uint64_t)c->gen << 32 | c->slot;
}


static void resume_all(struct rq_shard *s)
{
    for (size_t i = 0; i < s->n_paused; i++) {
        uint32_t slot = (uint32_t)s->paused[i], gen = (uint32_t)(s->paused[i] >> 32);
        struct conn *c = slot < s->n_slots ? s->slots[slot] : NULL;
        if (!c || c->gen != gen || !c->paused)
            continue;
        c->paused = false;
        c->cl.last_rx = s->w->now;
        if (c->state == C_OPEN && !c->recv_armed && !c->out_full && !c->in_held)
            rq_conn_arm_recv(s, c); /* else the cancel has not completed yet: re-armed when it has */
    }
    s->n_paused = 0;
}

/* Stops reading c while its output is over OUT_READ_PAUSE (see shard_int.h); on_send reads it
 * again once the peer has taken enough. Called after its input and its flush. */
static void hold_reading(struct rq_shard *s, struct conn *c)
{
    if (c->state != C_OPEN || c->out_full || conn_out_held(c) < OUT_READ_PAUSE)
        return;
    if (c->recv_armed && !rq_conn_cancel_recv(s, c))
        return;
    c->out_full = true;
    c->cl.last_rx = s->w->now; /* keepalive counts from here (and from each send completed) */
    rq_log(RQ_LOG_DEBUG, &c->cl.log, "%zu bytes of output not taken by the client: not reading"
           " it until they are", conn_out_held(c));
}

/* ---- worker ops (called from core on this thread) ---- */

void rq_conn_mark_dirty(struct rq_shard *s, struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = s->dirty;
    s->dirty = c;
}

void rq_conn_mark_closing(struct rq_shard *s, struct conn *c)
{
    if (c->closing_listed)
        return;
    c->closing_listed = true;
    c->next_close = s->closing;
    s->closing = c;
}

static void op_want_flush(struct rq_worker *w, void *conn)
{
    struct conn *c = conn;
    rq_conn_mark_dirty(c->sh, c);
}

static void op_want_close(struct rq_worker *w, void *conn)
{
    struct conn *c = conn;
    if (c->state == C_OPEN) {
        c->state = C_CLOSING;
        c->close_deadline = w->now + CLOSE_LINGER_MS;
    }
    rq_conn_mark_closing(c->sh, c);
    rq_conn_mark_dirty(c->sh, c);
}

static size_t op_out_held(struct rq_worker *w, void *conn)
{
    return conn_out_held(conn);
}

static void wake_shard(struct rq_shard *from, int target)
{
    struct io_uring_sqe *sqe = get_sqe(from);
    if (!sqe)
        return;
    io_uring_prep_msg_ring(sqe, rq_shards[target]->ring_fd, 0, tag(OP_WAKE, 0, 0), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, tag(OP_IGNORE, 0, 0));
}

static bool push_post(struct rq_shard *from, int target, const struct rq_post *p)
{
    bool wake = false;
    if (!rq_inbox_push(rq_shards[target]->inbox, p, &wake))
        return false;
    if (wake)
        wake_shard(from, target);
    return true;
}

static bool op_post(struct rq_worker *w, int shard, const struct rq_post *p)
{
    struct rq_shard *s = w->net;
    struct backlog *bl = &s->backlog[shard];
    if (bl->n == 0 && push_post(s, shard, p))
        return true;
    /* Inbox full (or older posts waiting): keep order, retry every loop iteration. */
    if (bl->n == bl->cap) {
        size_t ncap = bl->cap ? bl->cap * 2 : 64;
        struct rq_post *nv = realloc(bl->v, ncap * sizeof *nv);
        if (!nv)
            return false;
        bl->v = nv;
        bl->cap = ncap;
    }
    bl->v[bl->n++] = *p;
    return true;
}

static void retry_backlog(struct rq_shard *s)
{
    for (int t = 0; t < rq_n_shards; t++) {
        struct backlog *bl = &s->backlog[t];
        size_t i = 0;
        while (i < bl->n && push_post(s, t, &bl->v[i]))
            i++;
        if (i) {
            memmove(bl->v, bl->v + i, (bl->n - i) * sizeof *bl->v);
            bl->n -= i;
        }
    }
}

static void op_authenticate(struct rq_worker *w, void *conn, const struct rq_connect *k,
                            struct rq_auth_verdict *v)
{
    struct conn *c = conn;
    /* the chain of the generation whose TLS policy let this connection in */
    c->auth_started_us = rq_stats_now_us();
    rq_authn_glue_run(c->rt_gen->ports[c->port_index].authn, rq_xport_tls(c->xp), c->id, k, v);
    rq_metrics_authn_done(c, v);
}

/* MQTT v5 re-authentication: the chain of the generation the connection pinned (the same one
 * that authenticated it, so who->chain_pos still names that method). */
static void op_reauthenticate(struct rq_worker *w, void *conn, const struct rq_principal *who,
                              const struct rq_reason *auth, struct rq_auth_verdict *v)
{
    struct conn *c = conn;
    rq_authn_glue_reauth(c->rt_gen->ports[c->port_index].authn, rq_xport_tls(c->xp), c->id, who,
                         auth, v);
}

/* The rules of the generation the connection pinned: a reload never changes a client's. */
static int op_authorize(struct rq_worker *w, void *conn, const struct rq_principal *p,
                        const uint8_t *cid, size_t cid_len, struct rq_access **out, char *why,
                        size_t whylen)
{
    struct conn *c = conn;
    const struct rq_authz *z = c->rt_gen->ports[c->port_index].authz;
    *out = NULL;
    if (!z)
        return RQ_AUTH_OFF;
    int rc = rq_authz_client(z, p, cid, cid_len, out, why, whylen);
    return rc == RQ_AUTHZ_OK ? RQ_AUTH_ALLOW : rc == RQ_AUTHZ_DENIED ? RQ_AUTH_DENY : -1;
}

static void feed(struct rq_shard *s, struct conn *c, const uint8_t *p, size_t len);
static void move_or_go_on(struct rq_shard *s, struct conn *c);
static void account_first_packet(struct rq_shard *s, struct conn *c);
static void hold_input(struct rq_shard *s, struct conn *c);

/* Core resumed c's CONNECT: parse what was kept (the CONNECT first), read it again. */
static void op_resume_input(struct rq_worker *w, void *conn)
{
    struct conn *c = conn;
    rq_conn_feed_kept(c->sh, c);
}

void rq_conn_feed_kept(struct rq_shard *s, struct conn *c)
{
    if (c->in_held) {
        c->in_held = false;
        rq_conn_mark_dirty(s, c); /* flush_all arms its recv again */
    }
    if (c->state != C_OPEN)
        return;
    feed(s, c, NULL, 0);
    account_first_packet(s, c);
    hold_input(s, c);
}

const struct rq_worker_ops rq_shard_worker_ops = {
    .authenticate = op_authenticate,
    .reauthenticate = op_reauthenticate,
    .resume_input = op_resume_input,
    .post = op_post,
    .want_flush = op_want_flush,
    .want_close = op_want_close,
    .out_held = op_out_held,
    .authorize = op_authorize,
};

/* Puts *fdp (-1: nothing) in the ring's registered file slot. Queued as an SQE rather than
 * an io_uring_register call: two system calls per connection fewer in a connect storm. SQEs
 * run in order at submit, so the recv armed after it sees the file; *fdp is read then, so it
 * must stay valid until the next submit (s->slot_fd, or a static -1). A slot freed and reused
 * before that submit reads the newer descriptor for both updates: the end state is the same,
 * and the freed connection had no SQE on the slot (it is freed only with no op in flight). */
static int set_slot_file(struct rq_shard *s, uint32_t slot, const int *fdp)
{
    struct io_uring_sqe *sqe = get_sqe(s);
    if (!sqe) /* the submission queue is full even after a submit: do it now */
        return io_uring_register_files_update(&s->ring, slot, (int *)fdp, 1) == 1 ? 0 : -1;
    io_uring_prep_files_update(sqe, (int *)fdp, 1, (int)slot);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, tag(OP_IGNORE, 0, 0));
    return 0;
}

/* ---- connections ---- */

struct conn *rq_conn_new(struct rq_shard *s, int fd, struct rq_gen *g, uint32_t port_index,
                         const struct rq_peer *peer)
{
    uint16_t port = g->ports[port_index].cfg->port;
    if (!s->n_free) {
        char name[RQ_PEER_STRLEN], note[64];
        uint64_t skipped;
        if (rq_ratelog_due(&s->rl[RL_TABLE_FULL], s->w->now, &skipped))
            rq_log(RQ_LOG_WARN, NULL, "shard %d: connection table full (%u): refusing %s%s", s->id,
                   s->n_slots, rq_peer_format(peer, name, sizeof name),
                   left_out(skipped, note, sizeof note));
        return NULL;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    uint32_t slot = s->free_slots[--s->n_free];
    s->slot_fd[slot] = fd;
    if (set_slot_file(s, slot, &s->slot_fd[slot]) != 0) {
        s->free_slots[s->n_free++] = slot;
        free(c);
        return NULL;
    }
    c->sh = s;
    c->slot = slot;
    uint64_t serial = ++s->conn_serial;
    c->gen = (uint32_t)serial & 0xFFFFFF; /* tells a stale CQE of the slot's last user apart */
    c->id = rq_conn_id(s->id, slot, serial);
    c->fd = fd;
    c->port = port;
    c->port_index = port_index;
    c->peer = *peer;
    s->slots[slot] = c;
    s->n_conns++;
    rq_client_init(&c->cl, s->w, c, port, &c->peer);
    c->cl.cfg = rq_ports_gen_config(g); /* its limits: g is pinned as long as c lives */
    return c;
}

/* A connection's descriptor is closed: one more fits in the budget, and accepting, if it was
 * waiting for descriptors, tries again now. */
void rq_conn_fd_closed(struct rq_shard *s, int fd)
{
    /* queued like the slot update: one system call per connection fewer; the number is free
     * for the next accept after this turn's submit */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe) {
        io_uring_prep_close(sqe, fd);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, tag(OP_IGNORE, 0, 0));
    } else {
        close(fd);
    }
    rq_admit_fd_closed();
    if (s->accept_retry_at > s->w->now)
        s->accept_retry_at = s->w->now;
}

void rq_conn_free(struct rq_shard *s, struct conn *c, bool close_fd)
{
    static const int minus_one = -1;
    set_slot_file(s, c->slot, &minus_one);
    if (close_fd)
        rq_conn_fd_closed(s, c->fd);
    if (c->preconnect)
        rq_admit_preconnect_done(&c->pre_bytes);
    s->slots[c->slot] = NULL;
    s->free_slots[s->n_free++] = c->slot;
    s->n_conns--;
    rq_client_free(&c->cl);
    rq_xport_free(c->xp);
    rq_gen_unpin(c->rt_gen); /* after the TLS state that came from it */
    rq_buf_free(&c->in);
    rq_buf_free(&c->sending);
    free(c);
}

static void peer_name(int fd, struct rq_peer *out)
{
    *out = (struct rq_peer){.family = RQ_PEER_LAZY, .fd = fd};
    rq_peer_fetch(out);
}

/* An accepted connection's address: asked for when a line about it is first written, not per
 * accept (a system call each, 60 % of a plain CONNECT storm's calls). At debug and trace level,
 * where lines about every connection are expected, at once: a line written after the peer
 * reset the connection could no longer get it. */
static void peer_at_accept(int fd, struct rq_peer *out)
{
    if (rq_log_level_now() >= RQ_LOG_DEBUG)
        peer_name(fd, out);
    else
        *out = (struct rq_peer){.family = RQ_PEER_LAZY, .fd = fd};
}


/* Feeds MQTT bytes to core; keeps an incomplete tail in c->in. p == NULL: just c->in. */
static void feed(struct rq_shard *s, struct conn *c, const uint8_t *p, size_t len)
{
    const uint8_t *data = p;
    size_t n = len;
    if (c->in.len || !p) {
        if (p && rq_buf_append(&c->in, p, len) != 0) {
            rq_client_close(&c->cl, -RQ_RC_IMPL_SPECIFIC, "out of memory");
            return;
        }
        data = c->in.data;
        n = c->in.len;
    }
    if (n == 0)
        return;
    long used = rq_client_on_bytes(&c->cl, data, n);
    if (used < 0)
        return; /* closing */
    if (data == c->in.data)
        rq_buf_consume(&c->in, (size_t)used);
    else if ((size_t)used < n)
        rq_buf_append(&c->in, data + used, n - (size_t)used);
    if (c->cl.migrate_to >= 0 && c->cl.phase == RQ_PH_HANDED_OVER)
        rq_handover_start(s, c);
    else if (c->cl.move_to >= 0 && !c->cl.closing)
        move_or_go_on(s, c);
}

/* Core chose to move c after the packet it just parsed. Only a connection in its plain state
 * moves: not one paused by backpressure or for its output, nor a transport still in its
 * handshake; otherwise it stays and parsing goes on. */
static void move_or_go_on(struct rq_shard *s, struct conn *c)
{
    if (c->state == C_OPEN && !c->paused && !c->out_full && !c->in_held &&
        (!c->xp || rq_xport_ready(c->xp)) && rq_move_start(s, c))
        return;
    c->cl.move_to = -1;
    if (c->state == C_OPEN)
        feed(s, c, NULL, 0);
}

/* c's CONNECT is suspended (its verdict is pending) and IN_HOLD_MAX of its input is held: stop
 * reading it (as hold_reading does for output) until op_resume_input. */
static void hold_input(struct rq_shard *s, struct conn *c)
{
    if (c->state != C_OPEN || c->in_held || !rq_client_suspended(&c->cl) ||
        c->in.len < IN_HOLD_MAX)
        return;
    if (c->recv_armed && !rq_conn_cancel_recv(s, c))
        return;
    c->in_held = true;
    rq_log(RQ_LOG_DEBUG, &c->cl.log, "%zu bytes received while its CONNECT waits: not reading "
           "it until the CONNECT goes on", c->in.len);
}

/* Before CONNECT a connection is anonymous: what it holds of its first packet counts against
 * preConnectLimit.bytes (admit.c). Past CONNECT it no longer counts. */
static void account_first_packet(struct rq_shard *s, struct conn *c)
{
    if (!c->preconnect)
        return;
    if (c->cl.connected) {
        c->preconnect = false;
        rq_admit_preconnect_done(&c->pre_bytes);
        return;
    }
    if (rq_admit_hold(&c->pre_bytes, c->in.cap) || c->cl.closing)
        return;
    uint64_t skipped;
    if (rq_ratelog_due(&s->rl[RL_PRECONNECT_BYTES], s->w->now, &skipped)) {
        char name[RQ_PEER_STRLEN], note[64];
        rq_log(RQ_LOG_WARN, NULL, "shard %d: preConnectLimit.bytes (%llu) reached by connections "
               "that have not completed CONNECT: closing %s, which holds %zu bytes of its first "
               "packet%s", s->id, (unsigned long long)rq_admit_bytes_limit(),
               rq_peer_format(&c->peer, name, sizeof name), c->in.len,
               left_out(skipped, note, sizeof note));
    }
    rq_client_close(&c->cl, 0, "preConnectLimit.bytes reached");
}

void rq_conn_input(struct rq_shard *s, struct conn *c, const uint8_t *p, size_t len)
{
    if (c->state == C_MIGRATING || c->state == C_MOVING) {
        /* travels with the connection: MQTT bytes for plain TCP, wire bytes otherwise */
        rq_buf_append(c->xp ? rq_xport_raw(c->xp) : &c->in, p, len);
        return;
    }
    if (c->state != C_OPEN)
        return;
    if (!c->xp) {
        feed(s, c, p, len);
        account_first_packet(s, c);
        hold_input(s, c);
        return;
    }
    const char *why = "transport error";
    struct rq_buf *wire = rq_xport_wire(c->xp);
    size_t before = wire->len;
    int rc = rq_xport_rx(c->xp, p, len, &c->in, wire, &why);
    if (wire->len != before)
        rq_conn_mark_dirty(s, c);
    if (rc == -1)
        rq_log(RQ_LOG_INFO, &c->cl.log, "%s: closing connection: %s", rq_xport_name(c->xp),
               why);
    if (!c->cl.version && rq_xport_ready(c->xp))
        c->cl.log.phase = "connect";
    feed(s, c, NULL, 0); /* what arrived before a close still counts (e.g. a DISCONNECT) */
    if (rc < 0 && !c->cl.closing)
        rq_client_close(&c->cl, 0, why);
    account_first_packet(s, c);
    hold_input(s, c);
}

/* ---- completions ---- */

/* Accepting failed. A multishot accept that ended (no F_MORE) is re-armed by the loop, but not
 * before s->accept_retry_at: EMFILE and its kin last until connections close, and re-arming at
 * once would fail again every loop turn. */
static void accept_failed(struct rq_shard *s, uint32_t li, int err, bool ended)
{
    s->accept_failures++;
    if (ended) {
        uint32_t ms = s->accept_backoff_ms ? s->accept_backoff_ms * 2 : 100;
        s->accept_backoff_ms = ms > 1000 ? 1000 : ms;
        s->accept_retry_at = s->w->now + s->accept_backoff_ms;
    }
    uint64_t skipped;
    char note[64];
    if (rq_ratelog_due(&s->rl[RL_ACCEPT], s->w->now, &skipped))
        rq_log(RQ_LOG_WARN, NULL, "shard %d: accept on port %u: %s%s%s", s->id,
               s->gen->ports[li].cfg->port,
               strerror(err),
               err == EMFILE || err == ENFILE
                   ? ": out of descriptors: accepting again as connections close"
                   : "",
               left_out(skipped, note, sizeof note));
}

static void accept_recovered(struct rq_shard *s)
{
    uint64_t skipped;
    char note[64];
    if (rq_ratelog_due(&s->rl[RL_ACCEPT_OK], s->w->now, &skipped))
        rq_log(RQ_LOG_INFO, NULL, "shard %d: accepting again after %llu failed attempts%s", s->id,
               (unsigned long long)s->accept_failures, left_out(skipped, note, sizeof note));
    s->accept_failures = 0;
    s->accept_backoff_ms = 0;
}

/* Refuses a connection at accept because a broker-wide limit is reached (admit.c). */
static void refuse_at_accept(struct rq_shard *s, int fd, enum rq_admit_verdict v)
{
    struct rq_peer peer;
    uint64_t skipped;
    enum ratelog_kind k = v == RQ_ADMIT_NO_FD ? RL_NO_FD : RL_PRECONNECT;
    if (rq_ratelog_due(&s->rl[k], s->w->now, &skipped)) {
        char name[RQ_PEER_STRLEN], note[64];
        peer_name(fd, &peer);
        rq_peer_format(&peer, name, sizeof name);
        left_out(skipped, note, sizeof note);
        if (v == RQ_ADMIT_NO_FD)
            rq_log(RQ_LOG_WARN, NULL, "shard %d: refusing %s: all %u connection descriptors "
                   "the broker may use (RLIMIT_NOFILE) are in use%s", s->id, name,
                   rq_admit_fd_budget(), skipped ? note : "");
        else
            rq_log(RQ_LOG_WARN, NULL, "shard %d: refusing %s: preConnectLimit.connections (%u) "
                   "connections have not completed CONNECT%s", s->id, name,
                   rq_admit_preconnect_limit(), skipped ? note : "");
    }
    close(fd);
}

static void on_accept(struct rq_shard *s, struct io_uring_cqe *cqe)
{
    uint32_t li = 0, id = tag_slot(cqe->user_data);
    while (li < s->gen->n_ports && s->gen->lis[li]->id != id)
        li++;
    bool ended = !(cqe->flags & IORING_CQE_F_MORE);
    if (li == s->gen->n_ports) { /* a listener a reload removed: its last completions */
        if (cqe->res >= 0)
            close(cqe->res);
        return;
    }
    if (ended)
        s->gen->lis[li]->armed[s->id] = false; /* re-armed at the end of the iteration */
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && !s->stopping)
            accept_failed(s, li, -cqe->res, ended);
        return;
    }
    int fd = cqe->res;
    if (s->stopping) {
        close(fd);
        return;
    }
    enum rq_admit_verdict v = rq_admit_accept();
    if (v != RQ_ADMIT_OK) {
        refuse_at_accept(s, fd, v);
        return;
    }
    if (s->accept_failures)
        accept_recovered(s);
    struct rq_peer peer; /* TCP_NODELAY: inherited from the listening socket */
    peer_at_accept(fd, &peer);
    bool failed;
    struct rq_xport *xp = rq_xport_new(&s->gen->ports[li], &failed);
    struct conn *c = failed ? NULL : rq_conn_new(s, fd, s->gen, li, &peer);
    if (!c) {
        size_t none = 0;
        rq_xport_free(xp);
        rq_conn_fd_closed(s, fd);
        rq_admit_preconnect_done(&none);
        return;
    }
    c->preconnect = true;
    c->xp = xp;
    c->rt_gen = s->gen; /* pinned until rq_conn_free: its TLS context and chain stay valid */
    rq_gen_pin(c->rt_gen);
    if (xp)
        c->cl.log.phase = "transport handshake"; /* a stalled one ends at the connect timeout */
    rq_log(RQ_LOG_TRACE, &c->cl.log, "accepted");
    rq_conn_arm_recv(s, c);
}

static void recycle_buffer(struct rq_shard *s, uint16_t bid)
{
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(s->br, 1);
}

static void conn_peer_gone(struct rq_shard *s, struct conn *c, const char *why)
{
    if (c->state == C_OPEN) {
        rq_log(RQ_LOG_DEBUG, &c->cl.log, "connection lost: %s", why);
        c->state = C_SHUTDOWN;
    } else if (c->state == C_CLOSING) {
        c->state = C_SHUTDOWN;
    }
    rq_conn_mark_closing(s, c);
}

static void on_recv(struct rq_shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) {
        c->recv_armed = false;
        c->ops--;
    }
    if (cqe->res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        rq_stat_add(RQ_ST_NET_BYTES_RECEIVED, (uint64_t)cqe->res);
        rq_conn_input(s, c, s->bufs + (size_t)bid * BUF_SIZE, (size_t)cqe->res);
        recycle_buffer(s, bid);
        hold_reading(s, c); /* its answers are not taken: read no more of it */
        if (!more && c->state == C_OPEN)
            rq_conn_mark_dirty(s, c); /* re-armed in the flush phase */
        else if (more && s->w->throttled && c->state == C_OPEN && !c->paused)
            pause_conn(s, c);
        return;
    }
    if (cqe->res == -ENOBUFS) {
        if (c->state == C_OPEN)
            rq_conn_mark_dirty(s, c); /* buffers are back after this batch: re-arm then */
        return;
    }
    if (c->state == C_MIGRATING || c->state == C_MOVING)
        return; /* the shard it goes to reads it again (and finds an EOF there) */
    if (cqe->res == -ECANCELED && c->state == C_OPEN) {
        rq_conn_mark_dirty(s, c); /* paused, or resumed before the cancel completed: flush decides */
        return;
    }
    if (cqe->res == 0)
        conn_peer_gone(s, c, "peer closed the connection");
    else if (cqe->res != -ECANCELED)
        conn_peer_gone(s, c, strerror(-cqe->res));
    else
        rq_conn_mark_closing(s, c);
}

static void on_send(struct rq_shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
    c->send_busy = false;
    c->ops--;
    if (cqe->res < 0) {
        rq_buf_reset(&c->sending);
        c->send_off = 0;
        conn_peer_gone(s, c, strerror(-cqe->res));
        return;
    }
    c->send_off += (size_t)cqe->res;
    rq_stat_add(RQ_ST_NET_BYTES_SENT, (uint64_t)cqe->res);
    if (c->out_full) {
        c->cl.last_rx = s->w->now; /* not read, but taking its output: alive */
        if (conn_out_held(c) < RQ_OUT_HIGH_WATER) {
            c->out_full = false;
            rq_conn_mark_dirty(s, c); /* flush_all reads it again */
        }
    }
    if (c->send_off < c->sending.len) {
        start_send(s, c); /* partial send: the rest, from the same buffer */
        if (c->state == C_OPEN && cqe->res > 0)
            rq_client_on_drained(&c->cl); /* room again for queued messages */
        return;
    }
    rq_buf_reset(&c->sending);
    c->send_off = 0;
    if (c->state == C_OPEN)
        rq_client_on_drained(&c->cl);
    if (c->cl.out.len == 0 && wire_len(c) == 0) {
        /* Nothing more to send: an idle connection keeps no output buffers (nor an empty
         * input one: TLS and WebSocket connections pass every packet through it). A busy one
         * has more queued by now and keeps reusing them. */
        rq_buf_free(&c->sending);
        rq_buf_free(&c->cl.out);
        if (c->xp)
            rq_buf_free(rq_xport_wire(c->xp));
        if (c->in.len == 0)
            rq_buf_free(&c->in);
    }
    rq_conn_mark_dirty(s, c);
}

static void handle_cqe(struct rq_shard *s, struct io_uring_cqe *cqe)
{
    uint64_t t = cqe->user_data;
    enum op op = tag_op(t);
    if (op == OP_ACCEPT) {
        on_accept(s, cqe);
        return;
    }
    if (op == OP_WAKE || op == OP_IGNORE)
        return;
    uint32_t slot = tag_slot(t);
    struct conn *c = slot < s->n_slots ? s->slots[slot] : NULL;
    if (!c || c->gen != tag_gen(t)) {
        s->stale_cqes++;
        if (op == OP_RECV && cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER))
            recycle_buffer(s, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        return;
    }
    if (op == OP_RECV)
        on_recv(s, c, cqe);
    else if (op == OP_SEND)
        on_send(s, c, cqe);
}

/* ---- end-of-iteration phases ---- */

static void flush_all(struct rq_shard *s)
{
    while (s->dirty) {
        struct conn *c = s->dirty;
        s->dirty = c->next_dirty;
        c->dirty = false;
        if (c->state == C_MIGRATING || c->state == C_MOVING || c->state == C_SHUTDOWN)
            continue; /* what a moving client has to send goes out on its new shard */
        if (c->state == C_OPEN && !c->recv_armed && !c->paused && !c->out_full && !c->in_held)
            rq_conn_arm_recv(s, c);
        struct rq_buf *src = &c->cl.out;
        if (c->xp) {
            /* MQTT bytes through WebSocket framing and/or TLS records into the wire buffer */
            const char *why = "transport error";
            src = rq_xport_wire(c->xp);
            if (c->cl.out.len && rq_xport_ready(c->xp)) {
                if (rq_xport_tx(c->xp, c->cl.out.data, c->cl.out.len, src, &why) != 0)
                    rq_client_close(&c->cl, 0, why);
                rq_buf_reset(&c->cl.out);
            }
        }
        if (!c->send_busy && src->len) {
            /* swap: the producer keeps appending to an empty buffer while this one is sent */
            struct rq_buf tmp = c->sending;
            c->sending = *src;
            *src = tmp;
            c->send_off = 0;
            start_send(s, c);
        }
        hold_reading(s, c);
    }
}

static void reap(struct rq_shard *s)
{
    struct conn **pp = &s->closing;
    while (*pp) {
        struct conn *c = *pp;
        if (c->state == C_MIGRATING && c->cl.closing) {
            /* closed while its hand-over waited (connect timeout, a reload, the shutdown):
             * closed here like any other */
            c->state = C_CLOSING;
            c->close_deadline = s->w->now + CLOSE_LINGER_MS;
            rq_conn_mark_dirty(s, c);
        }
        if (c->state == C_MOVING && !rq_move_try(s, c)) {
            pp = &c->next_close; /* tried again next turn, or closing now */
            continue;
        }
        if (!c->closed_notified && c->state != C_MIGRATING && c->state != C_MOVING) {
            c->closed_notified = true;
            rq_client_on_closed(&c->cl, c->state == C_SHUTDOWN ? "connection lost" : "closed");
        }
        if (c->state == C_CLOSING) {
            bool flushed = !c->send_busy && c->cl.out.len == 0 && wire_len(c) == 0;
            if (flushed || s->w->now >= c->close_deadline) {
                shutdown(c->fd, SHUT_RDWR); /* ends the multishot recv */
                c->state = C_SHUTDOWN;
            }
        } else if (c->state == C_SHUTDOWN && c->ops) {
            shutdown(c->fd, SHUT_RDWR);
        }
        if (c->ops == 0 &&
            (c->state == C_SHUTDOWN || c->state == C_MIGRATING || c->state == C_MOVING)) {
            *pp = c->next_close;
            if (c->dirty) { /* unlink from the flush list */
                for (struct conn **dp = &s->dirty; *dp; dp = &(*dp)->next_dirty)
                    if (*dp == c) {
                        *dp = c->next_dirty;
                        break;
                    }
            }
            if (c->state == C_MIGRATING)
                rq_handover_finish(s, c);
            else
                rq_conn_free(s, c, c->state != C_MOVING); /* moved: its fd lives on */
            continue;
        }
        pp = &c->next_close;
    }
}

static void begin_stop(struct rq_shard *s)
{
    s->stopping = true;
    s->stop_deadline = s->w->now + 3000;
    for (size_t i = 0; i < s->gen->n_ports; i++)
        rq_shard_listener_close(s, s->gen->lis[i]);
    rq_worker_shutdown(s->w);
    /* Connections still before CONNECT have no session: close them too. */
    for (uint32_t i = 0; i < s->n_slots; i++) {
        struct conn *c = s->slots[i];
        if (c && c->state == C_OPEN)
            rq_client_close(&c->cl, -RQ_RC_SERVER_SHUTTING_DOWN, "server shutting down");
    }
}

/* Handles at most CQE_BATCH completions: what they route to other shards leaves at the end of
 * the iteration, so a bound here bounds the bursts other shards receive. */
static unsigned handle_cqes(struct rq_shard *s)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        handle_cqe(s, cqe);
        if (++n == CQE_BATCH)
            break;
    }
    io_uring_cq_advance(&s->ring, n);
    return n;
}

static void drain_inbox(struct rq_shard *s)
{
    struct rq_post p;
    while (rq_inbox_pop(s->inbox, &p)) {
        if (p.kind == RQ_POST_STOP) {
            if (!s->stopping)
                begin_stop(s);
        } else if (p.kind == RQ_POST_ADOPT_CONN) {
            /* What the client sent on its old connection before it reconnected (acks, a
             * DISCONNECT) may still be pending task work here: run it first, so the session
             * sees those packets before the takeover. */
            io_uring_get_events(&s->ring);
            handle_cqes(s);
            rq_handover_adopt(s, p.ptr);
        } else if (p.kind == RQ_POST_MOVE_CONN) {
            rq_move_adopt(s, p.ptr);
        } else if (p.kind == RQ_POST_AUTH_VERDICT) {
            rq_post_on_verdict(s, p.ptr);
        } else if (p.kind == RQ_POST_AUTHN_REPLY) {
            rq_post_on_authn_reply(s, p.ptr);
        } else if (p.kind == RQ_POST_SYS) {
            rq_sys_apply(s->w, p.ptr);
        } else {
            rq_worker_on_post(s->w, &p);
        }
    }
    struct rq_authn_reply *r = atomic_exchange_explicit(&s->reply_overflow, NULL,
                                                         memory_order_acquire);
    struct rq_authn_reply *fifo = NULL; /* the stack is newest first */
    while (r) {
        struct rq_authn_reply *next = r->next;
        r->next = fifo;
        fifo = r;
        r = next;
    }
    while (fifo) {
        struct rq_authn_reply *next = fifo->next;
        s->overflow_replies++;
        rq_post_on_authn_reply(s, fifo);
        fifo = next;
    }
}

/* Sleeps until completions arrive or `ms` passes (-1: no limit), submitting what is queued.
 *
 * Waking costs more than the MQTT work of a message (a context switch each time; at 10,000
 * msg/s that was half of the broker's CPU, bench/README.md). With a 6.12+ kernel the wait asks
 * for a batch and sets min_wait_usec = batchWaitMicroseconds: the kernel wakes the shard when
 * BATCH_MAX completions are in, or once that time has passed since the wait began and at least
 * one is. A completion that arrives after a long idle wait therefore wakes at once; one that
 * arrives early in the wait waits at most batchWaitMicroseconds. Older kernels: after a busy
 * iteration wait for a batch for at most BATCH_WAIT_US, else wake on the first completion. */
/* A shard that moved no PUBLISH for this long only opens and closes connections. */
#define RQ_SETUP_QUIET_MS 100

/* The wait's min_wait: batchWaitMicroseconds while messages flow through the shard (their
 * latency is what the bound is for), setupBatchWaitMicroseconds when none moved for
 * RQ_SETUP_QUIET_MS. A reconnect storm then costs fewer wake-ups per connection (each one a
 * context switch, the largest cost of a CONNECT on this kind of VM, bench/README.md), and the
 * first message after the quiet spell waits at most that long, once. */
static uint32_t wait_min_us(struct rq_shard *s)
{
    const struct rq_stats *st = rq_stats_block(s->id);
    uint64_t n = atomic_load_explicit(&st->v[RQ_ST_PUBLISHES_RECEIVED], memory_order_relaxed) +
                 atomic_load_explicit(&st->v[RQ_ST_PUBLISHES_SENT], memory_order_relaxed);
    if (n != s->msgs_seen) {
        s->msgs_seen = n;
        s->msgs_moved_at = s->w->now;
    }
    uint32_t us = s->cfg->batch_wait_us;
    if (s->cfg->setup_batch_wait_us > us && s->w->now - s->msgs_moved_at >= RQ_SETUP_QUIET_MS)
        us = s->cfg->setup_batch_wait_us;
    return us;
}

static void wait_events(struct rq_shard *s, unsigned batch, int64_t ms)
{
    uint32_t min_us = s->min_wait ? wait_min_us(s) : 0;
    struct __kernel_timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    if (s->min_wait && min_us) {
        /* liburing 2.3 has no call for min_wait: publish the queued SQEs and enter directly */
        struct io_uring_sq *sq = &s->ring.sq;
        if (sq->sqe_head != sq->sqe_tail) {
            sq->sqe_head = sq->sqe_tail;
            io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
        }
        unsigned to_submit = sq->sqe_tail - IO_URING_READ_ONCE(*sq->khead);
        /* Always with an overall timeout: without one the kernel (6.18) ends the whole wait
         * when min_wait passes, events or not, and an idle shard would wake every
         * batchWaitMicroseconds. One second when nothing is due is a harmless idle turn. */
        if (ms < 0)
            ts = (struct __kernel_timespec){.tv_sec = 1};
        struct io_uring_getevents_arg arg = {
            .pad = min_us, /* min_wait_usec */
            .ts = (uint64_t)(uintptr_t)&ts,
        };
        unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
        int fd = s->ring.ring_fd;
        if (s->reg_ring) {
            flags |= IORING_ENTER_REGISTERED_RING;
            fd = s->ring.enter_ring_fd;
        }
        int rc = io_uring_enter2((unsigned)fd, to_submit, BATCH_MAX, flags, (sigset_t *)&arg,
                                 sizeof arg);
        if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY)
            return;
        s->min_wait = false; /* refused (a kernel without it): the classic wait from now on */
        rq_log(RQ_LOG_WARN, NULL, "shard %d: io_uring min_wait refused (%s); waking per completion",
               s->id, strerror(-rc));
    }
    struct io_uring_cqe *cqe;
    unsigned want = 1;
    if (batch >= BATCH_BUSY) {
        want = batch < BATCH_MAX ? batch : BATCH_MAX;
        if (ms < 0 || ms * 1000 > BATCH_WAIT_US)
            ts = (struct __kernel_timespec){0, BATCH_WAIT_US * 1000};
        ms = 0;
    }
    io_uring_submit_and_wait_timeout(&s->ring, &cqe, want, ms >= 0 ? &ts : NULL, NULL);
}

/* Every RQ_BUSY_PERIOD_US the share of it the shard did not spend waiting for events. */
#define RQ_BUSY_PERIOD_US 100000
static void busy_sample(struct rq_shard *s, uint64_t now_us)
{
    uint64_t span = now_us - s->busy_since_us;
    if (span < RQ_BUSY_PERIOD_US)
        return;
    uint64_t waited = s->waited_us < span ? s->waited_us : span;
    atomic_store_explicit(&s->b->pending[s->id].busy_pct,
                          (uint32_t)((span - waited) * 100 / span), memory_order_relaxed);
    s->busy_since_us = now_us;
    s->waited_us = 0;
}

void rq_shard_loop(struct rq_shard *s)
{
    struct rq_worker *w = s->w;
    s->busy_since_us = rq_stats_now_us(); /* else the first sample spans the uptime */
    for (;;) {
        w->now = rq_now_ms();
        busy_sample(s, rq_stats_now_us());
        rq_stats_turn(w->now, s->n_conns); /* heartbeat for /healthz */
        rq_metrics_test_stall(s->id);
        /* quiescent point: no pointer into a generation is held here but s->gen and pins */
        uint64_t epoch;
        struct rq_gen *ng = rq_gens_next(s->gens, s->gen_epoch, &epoch);
        if (ng) {
            rq_shard_gen_follow(s, ng);
            rq_gens_passed(s->gens, s->id, &s->gen_epoch, epoch);
        }
        if (atomic_load_explicit(&s->stop_requested, memory_order_relaxed) && !s->stopping)
            begin_stop(s);
        drain_inbox(s);
        unsigned batch = handle_cqes(s);
        rq_wheel_run(&w->wheel, w->now);
        flush_all(s);
        reap(s);
        rq_worker_flush(w); /* one inbox post per destination shard for this iteration */
        retry_backlog(s);
        if (!rq_worker_backpressure(w) && s->n_paused)
            resume_all(s);
        if (s->stopping && (s->n_conns == 0 || w->now >= s->stop_deadline)) {
            io_uring_submit(&s->ring); /* queued closes and slot updates */
            break;
        }
        bool accept_waits = false;
        for (size_t i = 0; !s->stopping && i < s->gen->n_ports; i++) {
            if (s->gen->lis[i]->armed[s->id])
                continue;
            if (w->now >= s->accept_retry_at)
                arm_accept(s, i);
            else
                accept_waits = true;
        }

        bool submitted = s->sent_this_turn;
        if (submitted) {
            /* Submit this turn's sends now and take their completions in another turn rather
             * than in the wait: a wait that finds a completion already there ends after
             * batchWaitMicroseconds whether or not anything arrived, and each such wake-up is
             * a context switch (at 10,000 msg/s: a quarter fewer switches, ~3 % less CPU). */
            s->sent_this_turn = false;
            io_uring_submit_and_get_events(&s->ring);
        }
        bool busy = io_uring_cq_ready(&s->ring) > 0 || s->dirty;
        for (int t = 0; t < rq_n_shards; t++)
            busy |= s->backlog[t].n > 0;
        if (!busy && rq_inbox_sleep(s->inbox))
            busy = true;
        int64_t ms = rq_wheel_next(&w->wheel, w->now);
        if (s->closing && (ms < 0 || ms > 50))
            ms = 50; /* closing connections poll their linger deadline */
        if (s->stopping && (ms < 0 || ms > 50))
            ms = 50;
        if (accept_waits && (ms < 0 || (uint64_t)ms > s->accept_retry_at - w->now))
            ms = (int64_t)(s->accept_retry_at - w->now); /* accepting waits for descriptors */
        if (ms < 0 || ms > RQ_METRICS_TURN_MS)
            ms = RQ_METRICS_TURN_MS; /* an idle shard turns too: its heartbeat says it is alive */
        if (s->n_paused && (ms < 0 || ms > 1))
            ms = 1; /* clients paused by backpressure: nothing wakes us when the shard we wait
                       for catches up, so look again every millisecond */
        if (busy) {
            /* submit and collect completions without sleeping (with DEFER_TASKRUN they are
             * only posted when the kernel is entered with GETEVENTS); done already when this
             * turn's sends were submitted above */
            if (!submitted)
                io_uring_submit_and_get_events(&s->ring);
            continue;
        }
        rq_stats_connections(s->n_conns);
        uint64_t t0 = rq_stats_now_us();
        wait_events(s, batch, ms);
        s->waited_us += rq_stats_now_us() - t0;
    }
}
