/* The broker's protocol core: sessions, clients, routing. No sockets here: net/ owns the
 * connections and calls in with decoded bytes; core writes outgoing bytes into the client's
 * output buffer and asks net to flush or close through flags and the worker's ops.
 *
 * Threads: one rq_worker per shard. A session belongs to the shard that created it for its whole
 * life (its id encodes that shard); a client that resumes a session on another shard has its
 * connection moved to the owner shard (see net/). Only the owner shard touches a session.
 * Shared by all shards: the client-id registry (mutex, connect path only), the subscription tree
 * (big-reader lock: publishes read, (un)subscribes write) and the retained store (mutex). */
#ifndef RQ_BROKER_H
#define RQ_BROKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/brlock.h"
#include "core/buf.h"
#include "core/access.h"
#include "core/codec.h"
#include "core/log.h"
#include "core/msg.h"
#include "core/principal.h"
#include "core/timer.h"
#include "core/topic.h"

struct rq_config;
struct rq_retain;
struct rq_worker;
struct rq_session;

/* Cross-shard messages (copied by value through the target shard's inbox). */
enum rq_post_kind {
    RQ_POST_DELIVER = 1, /* ptr = struct rq_batch *: messages for sessions of the target */
    RQ_POST_END_SESSION, /* a = session id: a clean-start connect elsewhere took its client id */
    RQ_POST_ADOPT_CONN,  /* ptr = net-specific connection hand-over record */
    RQ_POST_STOP,        /* shutdown */
    /* ptr = struct rq_auth_verdict * (heap, principal.h) for the connection v->conn; posted by
     * any thread (an auth pool thread: net/post.h rq_shard_post_external). The shard looks the
     * connection up by identity and resumes its CONNECT; a verdict for a connection that is
     * gone, whose slot was reused, or that no longer waits is dropped and counted. The
     * receiver (or the inbox's discard at shutdown) frees it. */
    RQ_POST_AUTH_VERDICT,
    /* ptr = net-specific: one method's answer for a pending CONNECT (net/post.h
     * struct rq_authn_reply); the shard goes on with the connection's chain from there. */
    RQ_POST_AUTHN_REPLY,
    RQ_POST_SYS, /* ptr = struct rq_sys_batch * (core/stats_sys.h): $SYS values to publish */
    /* ptr = net-specific record: a connected client and its session moving to the target shard,
     * where most of its messages' deliveries go (core/placement.h, net/move.c) */
    RQ_POST_MOVE_CONN,
};

struct rq_post {
    uint32_t kind;
    uint32_t pad;
    void *ptr;
    uint64_t a;
};

/* Everything one loop iteration of a shard routed to the sessions of another shard: records
 * of (message, its subscription entries on that shard sorted by session id), in publish order.
 * One inbox entry per destination shard per iteration, not one per message. */
struct rq_batch_rec {
    struct rq_msg *msg; /* one reference held by the record */
    uint32_t n;
    uint32_t pad;
    struct rq_sub_entry e[];
};

struct rq_batch {
    size_t len;     /* bytes of records in data */
    size_t cap;
    uint32_t count; /* records */
    int32_t origin; /* the shard that filled it: a delivered batch goes back there for reuse */
    struct rq_batch *next; /* on a list of batches to reuse */
    _Alignas(8) uint8_t data[]; /* records are 8-byte aligned (they hold pointers) */
};

/* Releases a batch that will not be delivered (its messages' references). */
void rq_batch_discard(struct rq_batch *bt);

/* What net provides to core. Called on the worker's own thread. */
struct rq_worker_ops {
    /* Authenticates a CONNECT on this connection (its port's chain, its TLS certificates).
     * Fills v (zeroed by the caller): OFF, ALLOW (v->principal: heap, core takes it), DENY, or
     * PENDING: the verdict comes later through rq_client_auth_resume, and until then the
     * client's input is not parsed (bytes kept, bounded by net). */
    void (*authenticate)(struct rq_worker *w, void *conn, const struct rq_connect *k,
                         struct rq_auth_verdict *v);
    /* MQTT v5 re-authentication (AUTH 0x19) of a connected client: runs again the method that
     * authenticated it (who->chain_pos, in the chain the connection pinned) with the AUTH
     * packet's Authentication Method and Data (auth). Fills v (zeroed by the caller): ALLOW
     * (v->principal: heap, core takes it and it replaces the client's whole), DENY (v->reason:
     * the DISCONNECT reason), RETRY (undecided now: AUTH 0x18), or PENDING: the verdict comes
     * later through rq_client_reauth_resume, and the client's input goes on being parsed
     * meanwhile. NULL: no client can re-authenticate (DISCONNECT 0x8C). */
    void (*reauthenticate)(struct rq_worker *w, void *conn, const struct rq_principal *who,
                           const struct rq_reason *auth, struct rq_auth_verdict *v);
    /* A suspended CONNECT was resumed (rq_client_auth_resume): parse the input kept for the
     * client again (starting at that CONNECT) and read it again if reading was held. Called
     * from rq_client_auth_resume, never from inside rq_client_on_bytes. */
    void (*resume_input)(struct rq_worker *w, void *conn);
    /* Queue a post to another shard's inbox (and wake it when needed). Returns false when the
     * target inbox is full. */
    bool (*post)(struct rq_worker *from, int shard, const struct rq_post *p);
    /* The client has bytes in its output buffer: flush at the end of this loop iteration. */
    void (*want_flush)(struct rq_worker *w, void *conn);
    /* The client must be closed (after flushing what is queued). */
    void (*want_close)(struct rq_worker *w, void *conn);
    /* Bytes of output held for the client: its out buffer plus what net holds beyond it
     * (transport buffers, the send in flight). NULL: the out buffer only. */
    size_t (*out_held)(struct rq_worker *w, void *conn);
    /* Authorization of an authenticated CONNECT (principal p, may be NULL; client id cid) by
     * the port's rules in the runtime generation the connection pinned. Returns RQ_AUTH_OFF
     * (no authorization on the port: everything allowed), RQ_AUTH_ALLOW (*out: the client's
     * permissions, heap, core owns them), RQ_AUTH_DENY (Connect not allowed; why says so) or
     * -1 (out of memory). NULL: OFF. Also called after re-authentication. */
    int (*authorize)(struct rq_worker *w, void *conn, const struct rq_principal *p,
                     const uint8_t *cid, size_t cid_len, struct rq_access **out, char *why,
                     size_t whylen);
};

struct rq_broker {
    const struct rq_config *cfg;
    int n_shards;
    struct rq_worker **workers;
    struct rq_pending *pending; /* [n_shards] */

    struct rq_brlock tree_lock; /* read: the routing shard's slot; write: all */
    struct rq_subtree *tree;

    pthread_mutex_t retain_lock;
    struct rq_retain *retained;

    pthread_mutex_t reg_lock;
    struct rq_reg *reg; /* client id -> (session id) */

    atomic_ullong next_session; /* session id counter */
    atomic_uint connections;    /* connected clients, all shards */
};

struct rq_worker {
    int id;
    struct rq_broker *b;
    const struct rq_worker_ops *ops;
    void *net; /* the shard owning this worker */
    /* The configuration of the shard's current runtime generation (net sets it at each loop
     * turn's quiescent point; NULL: b->cfg): what a reload changes for new connections and
     * queue limits. Valid on the worker's thread until the next loop turn. */
    const struct rq_config *cfg;
    struct rq_wheel wheel;
    uint64_t now; /* ms, refreshed each loop iteration */
    struct rq_smap *sessions; /* session id -> session (owned here) */
    bool stopping;
    /* scratch for routing */
    struct rq_sub_entry *scratch;
    size_t scratch_n, scratch_cap;
    struct rq_batch **outbox; /* per destination shard, flushed by rq_worker_flush */
    struct rq_batch *batch_free; /* delivered batches back for reuse (broker.c batch_get) */
    uint32_t n_batch_free;
    /* Backpressure (rq_worker_backpressure): this worker's clients are not being read while
     * another shard is too far behind with the messages posted to it. */
    bool throttled;
    uint64_t throttle_count; /* times throttling started */
    uint64_t throttle_logged; /* w->now of the last log line about it */
    /* Where rq_route sent the last message's deliveries (core/placement.h): the one other
     * shard that has all of them, RQ_ROUTE_HERE (none, or some on this shard) or
     * RQ_ROUTE_SPREAD (several other shards). */
    int route_shard;
    /* Moves decided this second (placement.maxMovesPerSecond): second, count. */
    uint64_t place_sec;
    uint32_t place_count;
    /* Rate limit of the line about PUBLISHes refused for their topic ($SYS, $share). */
    uint64_t refused_logged; /* w->now of the last such line */
    uint64_t refused_since;  /* refusals not logged since then */
};

/* Messages other shards have posted to one shard and it has not delivered yet (backpressure).
 * Owned by the broker, so that they outlive every worker; one cache line each. */
struct rq_pending {
    _Alignas(64) _Atomic uint64_t n;
    /* Batches this shard filled, delivered by the others and handed back for reuse (a stack:
     * any shard pushes, this one takes the whole list at once). */
    _Atomic(struct rq_batch *) back;
    /* Percent of the last ~100 ms the shard spent outside its wait for events (written by
     * the shard, read relaxed by others: placement does not move clients onto a busy shard). */
    _Atomic uint32_t busy_pct;
};

/* Where a connection is in its CONNECT: one state machine owned by core, changed only by
 * rq_client_phase (which logs the change).
 *   PRECONNECT -> (CONNECT) -> AUTHENTICATING (the verdict is pending elsewhere) -> ATTACHING
 *   PRECONNECT -> ATTACHING (synchronous verdict, or none) -> CONNECTED
 *   ATTACHING -> HANDED_OVER (the session lives on another shard: the connection moves there,
 *                with its input and its principal; there it resumes in ATTACHING)
 *   any -> CLOSING
 * AUTHENTICATING and HANDED_OVER are suspended: input is not parsed (net keeps the bytes, the
 * CONNECT first, and stops reading at a bound); the connect timer keeps running in
 * AUTHENTICATING. One entry point resumes both: rq_client_auth_resume. Packets the client
 * pipelined after CONNECT are parsed after CONNACK 0x00, in order, and never when the CONNECT
 * is refused [MQTT-3.1.4-5]. */
enum rq_client_phase {
    RQ_PH_PRECONNECT = 0,
    RQ_PH_AUTHENTICATING,
    RQ_PH_ATTACHING,
    RQ_PH_HANDED_OVER,
    RQ_PH_CONNECTED,
    RQ_PH_CLOSING,
};

/* Per-connection protocol state. net embeds it in its connection. */
struct rq_client {
    /* Every connection holds one of these: keep it small (fields ordered to leave no holes). */
    struct rq_worker *w;
    void *conn; /* net's connection, passed back through ops */
    /* The configuration this connection was accepted under (its limits; net sets it and keeps
     * it alive), NULL: the worker's (rq_client_cfg). */
    const struct rq_config *cfg;
    struct rq_session *s;
    uint64_t last_rx;
    uint64_t cred_expires;    /* w->now-based ms when the credentials expire; 0 = never */
    struct rq_timer ka_timer; /* connect timeout, then keepalive and credential expiry */
    struct rq_principal *principal; /* owned; NULL: not authenticated (none on the port) */
    uint8_t *auth_method; /* v5 CONNECT's Authentication Method (heap copy), NULL: none; AUTH
                             packets must name it [MQTT-4.12.0-5] (core/reauth.c) */
    struct rq_access *access; /* owned; NULL: no authorization on the port (core/access.h) */
    struct rq_str *alias_in;  /* [alias_in_max + 1], heap copies */
    struct rq_alias_out *alias_out;
    struct rq_buf out;
    struct rq_log_ctx log;
    char *client_id_print; /* the client id sanitised for logs (heap), NULL before CONNECT */
    uint32_t max_packet_out; /* client's Maximum Packet Size */
    /* Connection hand-over: CONNECT resumed a session owned by another shard. net moves the
     * connection there with its unconsumed input (starting at that CONNECT). -1 = none. */
    int migrate_to;
    uint16_t keepalive;
    uint16_t recv_max_out; /* client's Receive Maximum: our QoS>0 sends in flight */
    uint16_t alias_in_max;
    uint16_t alias_out_max;
    uint16_t alias_out_used;
    uint16_t auth_method_len;
    uint8_t version; /* 0 until CONNECT; 4 for MQTT 3.1 and 3.1.1, 5 */
    uint8_t level;   /* the CONNECT's protocol level: 3 (MQTT 3.1), 4 or 5 */
    uint8_t hops;    /* how many times this connection was handed over */
    uint8_t phase;   /* enum rq_client_phase; connected / closing mirror it */
    bool connected;
    bool closing;
    bool graceful;   /* DISCONNECT 0x00 received: no will */
    bool over_limit; /* counted in broker connections */
    bool reauth_pending; /* a re-authentication's verdict is awaited (rq_client_reauth_resume) */
    /* Placement (core/placement.h): the shard this client moves to after the packet being
     * parsed (-1: none; parsing stops there, net moves it), and the current window. */
    int8_t move_to;
    uint8_t pl_cand;  /* the other shard the window's first remote message went to */
    uint8_t pl_agreed; /* 1 + the shard the last window chose, 0: none */
    uint16_t pl_n, pl_hits; /* messages routed in the window, of them all to pl_cand */
    uint32_t pl_start; /* (uint32_t)w->now when the window began */
    uint32_t pl_moved; /* (uint32_t)w->now of its last move; 0: never moved */
    uint64_t reauth_since; /* w->now when it began: an answer lost on the way (dropped after the
                              pool's delivery deadline) does not block the client forever */
};

/* Creates the broker for a config snapshot (not owned) and n shards. */
struct rq_broker *rq_broker_new(const struct rq_config *cfg, int n_shards);
void rq_broker_free(struct rq_broker *b);

/* Worker (one per shard). */
struct rq_worker *rq_worker_new(struct rq_broker *b, int id, const struct rq_worker_ops *ops,
                                void *net);
void rq_worker_free(struct rq_worker *w);
/* Sends what this iteration routed to other shards: one post per destination. Call at the end
 * of every loop iteration (and before the worker stops). */
void rq_worker_flush(struct rq_worker *w);
/* Call after rq_worker_flush: whether this worker should stop reading its clients because a
 * shard it posts to is more than cfg->shard_backlog (spec.ringmq.shardBacklogLimit, default
 * 32768: ~20 ms of work at ~1.5 M messages/s per shard) messages behind; stays true until that
 * is below a quarter of it. TCP flow control then slows the publishers down. Updates
 * w->throttled. */
bool rq_worker_backpressure(struct rq_worker *w);
/* Handles one post popped from this worker's inbox. */
void rq_worker_on_post(struct rq_worker *w, const struct rq_post *p);
/* Shutdown: v5 clients get DISCONNECT 0x8B (net closes them), sessions end, wills go out. */
void rq_worker_shutdown(struct rq_worker *w);

/* Client lifecycle, called by net on the worker thread. */
void rq_client_init(struct rq_client *c, struct rq_worker *w, void *conn, int port,
                    const struct rq_peer *peer);
/* Processes as many complete packets from p[0..len) as there are. Returns bytes consumed
 * (the rest is an incomplete packet to keep, or, while the CONNECT is suspended
 * (rq_client_suspended: waiting for a verdict, or HANDED_OVER to c->migrate_to), the input from
 * that CONNECT on, which net keeps and feeds again when ops->resume_input asks), or -1 when the
 * client is now closing. Returns 0 at once while suspended. */
long rq_client_on_bytes(struct rq_client *c, const uint8_t *p, size_t len);
/* The connection is gone (peer closed, error, or our close completed). Publishes the will
 * when due, detaches the session. Idempotent. */
void rq_client_on_closed(struct rq_client *c, const char *why);
void rq_client_free(struct rq_client *c);
/* Frees only what the client owns (principal, permissions, alias tables, output, names): for
 * a client whose worker is gone (a move discarded at shutdown). */
void rq_client_release(struct rq_client *c);
/* The client leaves its session (c->s = NULL); log lines keep naming the client id. */
void rq_client_unbind(struct rq_client *c);
/* The one transition function of the CONNECT state machine (see enum rq_client_phase): sets
 * c->phase, keeps c->connected / c->closing and the log's phase name in step, logs the change. */
void rq_client_phase(struct rq_client *c, enum rq_client_phase to);
const char *rq_client_phase_name(int phase);
/* Input is not parsed now (AUTHENTICATING or HANDED_OVER): net keeps what arrives. */
bool rq_client_suspended(const struct rq_client *c);
/* Resumes a suspended CONNECT with its verdict: the one entry point for an asynchronous
 * authentication verdict (from AUTHENTICATING) and for a connection handed over from another
 * shard (see rq_client_handover_arrived). ALLOW / OFF: the client takes v->principal and the
 * CONNECT goes on (ops->resume_input parses it again, then what followed it); DENY: CONNACK with
 * v->reason (3.1.1: its return code) and close, nothing after the CONNECT is parsed. Returns
 * false, touching nothing, when the client is not waiting for a verdict (closing, or already
 * resumed): the caller drops the verdict and frees it. Worker thread; never from inside
 * rq_client_on_bytes. */
bool rq_client_auth_resume(struct rq_client *c, struct rq_auth_verdict *v);
/* The verdict of a pending re-authentication (MQTT v5 AUTH 0x19, core/reauth.c): ALLOW replaces
 * the principal and the credential expiry and answers AUTH 0x00; RETRY answers AUTH 0x18 and
 * keeps both; DENY sends DISCONNECT with v->reason and closes [MQTT-4.12.1-2]. v->principal is
 * taken on ALLOW (the caller frees what is left). Returns false, touching nothing, when the
 * client awaits no re-authentication (closing, or the verdict is stale): the caller drops and
 * counts it. Worker thread; never from inside rq_client_on_bytes. */
bool rq_client_reauth_resume(struct rq_client *c, struct rq_auth_verdict *v);
/* A connection handed over from another shard, its input (the CONNECT first) in place: resumes
 * it with the principal it was authenticated as there (taken; NULL when the port has no
 * authentication), so this shard never authenticates it again. */
void rq_client_handover_arrived(struct rq_client *c, struct rq_principal *principal);
/* The client's principal was replaced (re-authentication): its permissions are computed again
 * from the new principal (ops->authorize, the rules of its pinned generation), and
 * subscriptions the new permissions no longer cover are removed (logged). When Connect is no
 * longer allowed (or out of memory) the client is closed (v5: DISCONNECT 0x87) and -1
 * returned; 0 otherwise. Worker thread, connected clients. */
int rq_client_reauthorize(struct rq_client *c);
/* A reload replaced the rules of c's port and is about to disconnect c: its will, allowed by
 * the rules it connected under, stays only if allowed(ctx, principal, client id, topic) says
 * the new rules let this principal publish to its topic; otherwise it is dropped (logged), so
 * a disconnect caused by tighter rules never publishes what they deny. Worker thread. */
typedef bool (*rq_will_allowed_fn)(void *ctx, const struct rq_principal *p, const uint8_t *cid,
                                   size_t cid_len, const uint8_t *topic, size_t len);
void rq_client_will_recheck(struct rq_client *c, rq_will_allowed_fn allowed, void *ctx);
/* Closes the client: rc is 0 or -RQ_RC_*; v5 clients past CONNECT get DISCONNECT with that
 * reason (and `why` as Reason String), then net closes after flushing. Logs why. */
void rq_client_close(struct rq_client *c, int rc, const char *why);
/* Output was sent (or part of it): more queued messages may go out now. */
void rq_client_on_drained(struct rq_client *c);

/* The output high-water mark: while this much output is held for a client (out buffer,
 * transport buffers and the send in flight: ops->out_held), deliveries stay queued in its
 * session, under subscriberQueueLimit. */
#define RQ_OUT_HIGH_WATER (1024u * 1024u)

#endif
