/* The runtime generation: what a configuration snapshot turns into at run time (per listener:
 * TLS context and authentication chain; later the authorization rules), immutable once
 * published, and the scheme that frees an old one safely.
 *
 * The control thread builds a generation (net/ports.c) and publishes it. Each shard takes the
 * current one at the top of a loop turn (rq_gens_quiesce: a quiescent point, where the shard
 * holds no pointer into any generation but its own current one), and a connection pins the
 * generation it was accepted under for its whole life (pin at accept, unpin when freed; the pin
 * travels with a connection handed to another shard). A published-over generation is retired
 * and freed by the control thread once every shard has passed a quiescent point since the swap
 * and no connection pins it (epoch-based reclamation, RCU style).
 *
 * Cost on the shards: one load of the shared epoch per loop turn (a line written only by a
 * swap), a store into the shard's own line when it changed, and an atomic add on the
 * generation at accept and at close. Nothing on the publish path. */
#ifndef RQ_GEN_H
#define RQ_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_port_rt;
struct rq_gen_snap;

/* The listening sockets of one port: one per shard (SO_REUSEPORT), bound by the control thread
 * when a generation brings the port (so that a port that cannot be bound fails the start or the
 * reload before anything changes), shared by the following generations while the port stays
 * the same (address, number, protocol, TLS mode, authenticationRef). Shard i uses fds[i] and
 * armed[i] only, from the first loop turn whose generation holds the listener; when a turn's
 * new generation no longer holds it, shard i shuts fds[i] down, closes it and sets it to -1
 * (before it passes that quiescent point, so the listener is still alive). What is left open
 * is closed when the last generation holding it is freed. */
struct rq_listen {
    uint32_t id; /* unique: tags the shards' accept SQEs (a stale completion is recognised) */
    int refs;    /* generations holding it (control thread) */
    int n;       /* shards */
    int *fds;    /* [n] */
    bool *armed; /* [n]: shard i's multishot accept is in flight */
};

/* A reload's "disconnect every client of this port" (AIO: a port whose BrokerAuthorization
 * changed disconnects its clients, v5 with DISCONNECT 0x87 and a reason string). Connections
 * of the port accepted under a generation whose serial is below `after` are closed by their
 * shard when it takes a generation carrying it (and refused when handed over later). Each
 * build carries a kept port's kick forward, so that a shard that skips a generation still
 * applies it. */
struct rq_port_kick {
    uint64_t after; /* 0: none */
    uint8_t rc;     /* the v5 DISCONNECT reason code; 3.1.1 clients are just closed */
    char why[120];  /* the v5 reason string, and the log line's */
};

struct rq_gen {
    struct rq_port_rt *ports; /* one per listener */
    struct rq_port_kick *kick; /* [n_ports] */
    struct rq_listen **lis;   /* [n_ports]: ports[i]'s sockets */
    size_t n_ports;
    struct rq_gen_snap *snap; /* the configuration it was built from (owned by its builder) */
    uint64_t serial;          /* 1 for the startup generation, then +1 per build (logs) */
    int n_shards;             /* of every listener's sockets */
    _Atomic uint32_t pins;    /* connections accepted under it and not freed yet */
    /* control thread only, once retired */
    uint64_t retired_epoch;
    struct rq_gen *next_retired;
};

/* Frees a generation nobody can see any more (its ports, contexts, chains, snapshot). */
typedef void (*rq_gen_free_fn)(struct rq_gen *g);

struct rq_gens;

/* n_readers: the shards (reader ids 0..n-1). first becomes the current generation. NULL when
 * out of memory (first is then not taken). Control thread, before the shards start. */
struct rq_gens *rq_gens_new(int n_readers, struct rq_gen *first, rq_gen_free_fn free_gen);
/* Frees every generation, the current one too, pinned or not: only after the shards have
 * stopped (joined). */
void rq_gens_free(struct rq_gens *d);

/* Control thread: the generation in use for new connections. */
struct rq_gen *rq_gens_current(struct rq_gens *d);
/* Control thread: g becomes current (ownership moves in); the previous one is retired. Shards
 * see g at their next loop turn: wake the sleeping ones. */
void rq_gens_publish(struct rq_gens *d, struct rq_gen *g);
/* Control thread: frees the retired generations no shard can reach any more. Returns how many
 * are still waiting (for a shard's loop turn, or for pinned connections to close). */
size_t rq_gens_reclaim(struct rq_gens *d);

/* Reader r (a shard's thread), at the top of a loop turn, holding no other pointer into a
 * generation than cur and the pins of its connections: returns the generation to use now
 * (cur when nothing changed). *seen is the reader's own copy of the epoch (start it at 0). */
struct rq_gen *rq_gens_quiesce(struct rq_gens *d, int r, uint64_t *seen, struct rq_gen *cur);
/* The same in two steps, for a reader that has work to do with both generations when the
 * current one changes (a shard closing the sockets of ports gone): rq_gens_next returns the
 * newer generation (NULL when the epoch is still *seen) without passing the quiescent point,
 * so cur stays alive; rq_gens_passed then passes it. */
struct rq_gen *rq_gens_next(struct rq_gens *d, uint64_t seen, uint64_t *epoch);
void rq_gens_passed(struct rq_gens *d, int r, uint64_t *seen, uint64_t epoch);

/* Reader r leaves for good (its shard stopped): it holds no generation any more and counts as
 * having passed every later quiescent point. Its connections' pins still count. */
void rq_gens_offline(struct rq_gens *d, int r);

/* A connection keeps g alive. Reader thread (at accept) / any thread (unpin, at free). */
static inline void rq_gen_pin(struct rq_gen *g)
{
    atomic_fetch_add_explicit(&g->pins, 1, memory_order_relaxed);
}
static inline void rq_gen_unpin(struct rq_gen *g)
{
    if (g)
        atomic_fetch_sub_explicit(&g->pins, 1, memory_order_release);
}

#endif
