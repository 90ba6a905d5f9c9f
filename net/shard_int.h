/* Private to net/shard*.c: the shard's state, its connections, and the helpers the loop
 * (shard.c) and the lifecycle (shard_setup.c: probe, listeners, ring and buffer setup, thread
 * start and stop) share. */
#ifndef RQ_SHARD_INT_H
#define RQ_SHARD_INT_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/broker.h"
#include "core/log.h"
#include "net/admit.h"
#include "net/metrics.h"
#include "net/xport.h"

struct rq_gen;
struct rq_gens;

#define RING_ENTRIES 1024
#define BUF_COUNT 256 /* provided buffers per shard */
#define BUF_SIZE 16384
#define BUF_GROUP 0
#define INBOX_CAP 65536
#define CLOSE_LINGER_MS 2000
#define CQE_BATCH 64       /* completions handled per loop iteration */
#define BATCH_BUSY 4       /* completions in one iteration that count as busy */
#define BATCH_MAX 32       /* at most this many completions awaited together */
#define BATCH_WAIT_US 100  /* and for at most this long */
/* Kernel 6.12+: io_uring_getevents_arg's pad word is min_wait_usec (liburing 2.3 predates it). */
#define RQ_FEAT_MIN_TIMEOUT (1U << 15)
/* A connection is not read while this much output is held for it (conn_out_held), and is read
 * again once that is below RQ_OUT_HIGH_WATER. Deliveries already stop at RQ_OUT_HIGH_WATER
 * (core); what goes beyond is one large message or replies to the client's own packets (acks,
 * PINGRESP, WebSocket pongs): a client that keeps sending without reading them is not read
 * either, and TCP flow control holds it back. */
#define OUT_READ_PAUSE (2u * RQ_OUT_HIGH_WATER)
/* While its CONNECT is suspended (waiting for an authentication verdict), a connection's input
 * is kept, not parsed; once this much is held it is not read until the CONNECT resumes. Before
 * CONNACK the held bytes also count against preConnectLimit.bytes (admit.c). */
#define IN_HOLD_MAX (64u * 1024u)

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_WAKE, OP_IGNORE };

/* user_data = op:8 | gen:24 | slot:32 */
static inline uint64_t tag(enum op op, uint32_t gen, uint32_t slot)
{
    return ((uint64_t)op << 56) | ((uint64_t)(gen & 0xFFFFFF) << 32) | slot;
}
static inline enum op tag_op(uint64_t t)
{
    return (enum op)(t >> 56);
}
static inline uint32_t tag_gen(uint64_t t)
{
    return (uint32_t)(t >> 32) & 0xFFFFFF;
}
static inline uint32_t tag_slot(uint64_t t)
{
    return (uint32_t)t;
}

/* Log lines written at most every RQ_RATELOG_MS per shard (see rq_ratelog_due). */
enum ratelog_kind {
    RL_ACCEPT,
    RL_ACCEPT_OK,
    RL_TABLE_FULL,
    RL_NO_FD,
    RL_PRECONNECT,
    RL_PRECONNECT_BYTES,
    RL_KINDS
};

/* C_MIGRATING: its CONNECT is handed over to its session's shard (handover.c); C_MOVING: the
 * connected client moves to the shard its messages go to (move.c). Both stop reading and keep
 * what still arrives for the shard they go to. */
enum conn_state { C_OPEN, C_CLOSING, C_SHUTDOWN, C_MIGRATING, C_MOVING };

struct conn {
    struct rq_client cl;
    struct rq_shard *sh;
    uint32_t slot, gen;
    int fd;
    uint16_t port;
    uint32_t port_index;
    uint8_t state;
    bool recv_armed;
    bool send_busy;
    bool dirty;          /* on the flush list */
    bool closing_listed; /* on the close list */
    bool closed_notified;
    bool paused; /* not read (backpressure): its multishot recv was cancelled */
    bool preconnect; /* counted in admit.c as before CONNECT (released once past it) */
    bool out_full; /* not read while its output is over OUT_READ_PAUSE */
    bool in_held;  /* not read: IN_HOLD_MAX held while its CONNECT is suspended */
    uint32_t ops;         /* operations in flight (teardown waits for 0) */
    struct rq_peer peer;  /* 20 bytes; formatted only when a line is logged */
    uint64_t id;          /* stable identity (net/post.h rq_conn_id): shard, slot, serial */
    uint64_t close_deadline;
    uint64_t auth_started_us; /* when its CONNECT's authentication began (metrics) */
    struct rq_buf in;    /* MQTT bytes not yet consumed (a partial packet) */
    size_t pre_bytes;    /* of in, charged to the pre-CONNECT byte budget (admit.c) */
    struct rq_xport *xp; /* TLS / WebSocket layers (and their buffers); NULL for plain TCP */
    struct rq_buf sending;
    size_t send_off;
    struct rq_gen *rt_gen; /* the runtime generation it was accepted under (pinned) */
    struct conn *next_dirty, *next_close;
};

/* Every byte of output held for c: the MQTT bytes core queued, transport output not yet sent
 * (TLS records, WebSocket frames) and the unsent part of the send in flight. The one count that
 * limits deliveries (core's rq_client_writable against RQ_OUT_HIGH_WATER, whatever the
 * transport) and reading (OUT_READ_PAUSE). */
static inline size_t conn_out_held(const struct conn *c)
{
    size_t wire = c->xp ? rq_xport_wire(c->xp)->len : 0;
    return c->cl.out.len + wire + (c->sending.len - c->send_off);
}

/* A connection on its way to the shard that owns its session. */
struct handover {
    int fd;
    uint16_t port;
    uint8_t hops;
    uint32_t port_index;
    struct rq_xport *xp;   /* moves with the connection (TLS state) */
    struct rq_gen *rt_gen; /* its pin moves with it too */
    struct rq_principal *principal; /* authenticated here (owned), NULL: no authentication */
    char cid[80]; /* the client id as logs print it, until the CONNECT is parsed there again */
    struct rq_peer peer;
    size_t len;     /* MQTT bytes (starting with the CONNECT) */
    size_t raw_len; /* then wire bytes received since, not yet through the transport */
    uint8_t data[];
};

struct backlog {
    struct rq_post *v;
    size_t n, cap;
};

struct rq_shard {
    int id;
    struct rq_broker *b;
    const struct rq_config *cfg;
    struct rq_worker *w;
    pthread_t thread;
    bool started;
    sem_t ready;
    int start_err;
    char start_msg[256];

    struct io_uring ring;
    int ring_fd;
    const char *ring_mode;
    bool reg_ring; /* the ring's fd is registered (io_uring_register_ring_fd): enter skips fget */
    bool min_wait; /* the kernel honours io_uring_getevents_arg.min_wait_usec (6.12+) */
    /* PUBLISHes received and sent by this shard's clients as last seen (its stats block), and
     * when that number last moved: a shard without them for RQ_SETUP_QUIET_MS batches its
     * wake-ups longer (setupBatchWaitMicroseconds, wait_events). */
    uint64_t msgs_seen, msgs_moved_at;
    /* Busy fraction (b->pending[id].busy_pct, read by placement on other shards): the time
     * spent waiting for events since busy_since_us, both in microseconds. */
    uint64_t busy_since_us, waited_us;
    /* A send was queued this turn: it is submitted (and, on loopback and with room in the
     * socket, completes) before the shard waits, so that its completion does not end the
     * wait by itself (rq_shard_loop). */
    bool sent_this_turn;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;

    struct rq_gens *gens; /* runtime generations (ports, TLS contexts, authentication) */
    struct rq_gen *gen;   /* the current one, as of the top of this loop turn */
    uint64_t gen_epoch;   /* its epoch (rq_gens_quiesce) */
    /* Accepting failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
     * no listener is re-armed before accept_retry_at; the wait doubles up to a second, and a
     * connection this shard closes ends it early. */
    uint64_t accept_retry_at;
    uint32_t accept_backoff_ms;
    uint64_t accept_failures; /* since accepting last worked */

    struct conn **slots;
    uint32_t n_slots;
    uint32_t *free_slots;
    int *slot_fd; /* what a queued IORING_OP_FILES_UPDATE installs in a slot (read at submit) */
    uint32_t n_free;
    uint32_t n_conns;

    struct rq_inbox *inbox;
    /* Authentication answers that found the inbox full (rq_shard_post_authn_reply_always): a
     * lock-free stack pushed by any thread, taken whole by this shard after each inbox drain.
     * Bounded by the connections waiting for an answer (one each). */
    _Atomic(struct rq_authn_reply *) reply_overflow;
    uint64_t *paused; /* (gen << 32 | slot) of connections paused by backpressure */
    size_t n_paused, cap_paused;
    struct backlog *backlog; /* per target shard, posts that found the inbox full */
    struct conn *dirty, *closing;
    atomic_bool stop_requested; /* set by the control thread (rq_shard_stop) */
    bool stopping;
    uint64_t stop_deadline;
    uint64_t stale_cqes;
    struct rq_ratelog rl[RL_KINDS]; /* lines peers and storms can repeat */
    /* Connection serials: never reused (36 bits in a connection's identity, see net/post.h);
     * the low 24 bits tag its CQEs (conn.gen). */
    uint64_t conn_serial;
    uint64_t verdicts_applied; /* RQ_POST_AUTH_VERDICT / _AUTHN_REPLY that reached a CONNECT */
    uint64_t verdicts_dropped; /* ... for a connection gone, reused or no longer waiting */
    uint64_t overflow_replies; /* authentication answers taken from reply_overflow */
};

/* Connection helpers of the loop (shard.c) that the hand-over (handover.c) uses. */
/* A connection on port port_index of generation g (its port number and limits come from there;
 * the caller pins g for it, or moves a pin in). */
struct conn *rq_conn_new(struct rq_shard *s, int fd, struct rq_gen *g, uint32_t port_index,
                         const struct rq_peer *peer);
/* Frees c (its descriptor too when close_fd). */
void rq_conn_free(struct rq_shard *s, struct conn *c, bool close_fd);
/* Closes a connection's descriptor and lets accepting go on if it waited for descriptors. */
void rq_conn_fd_closed(struct rq_shard *s, int fd);
void rq_conn_arm_recv(struct rq_shard *s, struct conn *c);
/* Cancels c's multishot recv; false when no SQE was available. */
bool rq_conn_cancel_recv(struct rq_shard *s, struct conn *c);
void rq_conn_mark_dirty(struct rq_shard *s, struct conn *c);
void rq_conn_mark_closing(struct rq_shard *s, struct conn *c);
/* Bytes received for c (wire bytes: through its transport, then to core). */
void rq_conn_input(struct rq_shard *s, struct conn *c, const uint8_t *p, size_t len);

/* shard_gen.c: at the loop's quiescent point, the shard takes the newer generation ng (its
 * current one, s->gen, still alive until it passes the point): closes its sockets of the ports
 * ng no longer has, disconnects their clients and those of the ports ng kicks; new connections
 * get ng's limits; the loop arms ng's new ports. */
void rq_shard_gen_follow(struct rq_shard *s, struct rq_gen *ng);
/* This shard's socket of l: shut down (ends its multishot accept) and closed for good. */
struct rq_listen;
void rq_shard_listener_close(struct rq_shard *s, struct rq_listen *l);
/* Whether this shard's generation has closed port pi of generation cg (removed, or its clients
 * disconnected by a reload since cg): a connection of it handed over now is not adopted. */
bool rq_shard_port_closed(struct rq_shard *s, const struct rq_gen *cg, uint32_t pi);

/* handover.c: c's CONNECT is HANDED_OVER: stop reading it, close-list it. */
void rq_handover_start(struct rq_shard *s, struct conn *c);
/* Its receive ended (reap): pass it to the owner shard; c is freed here. */
void rq_handover_finish(struct rq_shard *s, struct conn *c);
/* On the owner shard (RQ_POST_ADOPT_CONN): a connection from h, resumed. Frees h. */
void rq_handover_adopt(struct rq_shard *s, struct handover *h);
/* A hand-over that will not be adopted (shutdown): everything it holds released. */
void rq_handover_discard(struct handover *h);

/* move.c: placement moves a connected client (core decided: c->cl.move_to). start: stop
 * reading it, close-list it (false: it cannot stop reading now, and stays); its timer runs on.
 * try (reap, each turn): a client closed meanwhile is closed now; else, with no operation in
 * flight, flushes this turn's routed messages and, once nothing waits in a backlog, hands the
 * client and its session to the target: true, and c is an empty shell for
 * rq_conn_free(s, c, false); false: not yet (tried again next turn) or not at all (then c is
 * closing). adopt: on the target. discard: shutdown, the record reached a shard that stopped. */
bool rq_move_start(struct rq_shard *s, struct conn *c);
bool rq_move_try(struct rq_shard *s, struct conn *c);
void rq_move_adopt(struct rq_shard *s, void *record);
void rq_move_discard(struct rq_broker *b, void *record);
/* Parses what is kept in c->in (after a move, or a resumed CONNECT) and reads c again. */
void rq_conn_feed_kept(struct rq_shard *s, struct conn *c);
/* shard_gen.c: c arrived under generation c->rt_gen: when this shard's generation has closed
 * its port or kicked its clients since, it is disconnected as the reload did to the others. */
void rq_shard_gen_recheck(struct rq_shard *s, struct conn *c);

/* The connection with identity id on this shard, or NULL when it is gone or its slot now
 * holds another connection (net/post.c). Shard thread. */
struct conn *rq_conn_lookup(struct rq_shard *s, uint64_t id);
/* Handles RQ_POST_AUTH_VERDICT on this shard: resumes the connection's CONNECT, or drops the
 * verdict and counts it. Frees v. */
void rq_post_on_verdict(struct rq_shard *s, struct rq_auth_verdict *v);
/* Handles RQ_POST_AUTHN_REPLY (struct rq_authn_reply, net/post.h): goes on with the
 * connection's chain from the method that answered, then resumes the CONNECT (or leaves it
 * suspended when the next method is pending too); dropped and counted like a verdict. Frees r. */
struct rq_authn_reply;
void rq_post_on_authn_reply(struct rq_shard *s, struct rq_authn_reply *r);

/* Every shard by id, for cross-shard wake-ups (ring fds and inboxes); set up by the first
 * rq_shard_new, freed with the last shard. */
extern struct rq_shard **rq_shards;
extern int rq_n_shards;

/* The loop (shard.c), run by the shard's thread until it has stopped. */
void rq_shard_loop(struct rq_shard *s);
/* What core calls on this shard's thread: flush, close, cross-shard posts, authentication. */
extern const struct rq_worker_ops rq_shard_worker_ops;

#endif
