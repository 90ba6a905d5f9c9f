/* A shard: one pinned thread with its own io_uring ring, listening sockets (SO_REUSEPORT), a
 * provided-buffer ring for multishot recv, a registered file table, its connections and the
 * core worker (sessions, timers) that runs on it. */
#ifndef RQ_SHARD_H
#define RQ_SHARD_H

#include <stdbool.h>
#include <stddef.h>

struct rq_broker;
struct rq_config;
struct rq_shard;

/* Checks that io_uring can be set up here with the features the shards need. Returns 0, or
 * -errno with a message naming the cause and the fix in err. Main thread, before any shard. */
int rq_net_probe(char *err, size_t errlen);

/* Opens this shard's listening sockets (one per configured port, SO_REUSEPORT) so bind errors
 * surface before threads start. Returns NULL with err set. */
struct rq_gens;
/* gens: the runtime generations of cfg->ports[] (net/gen.h); the shard is reader `id` of it.
 * Shared by all shards, outliving them. */
struct rq_shard *rq_shard_new(int id, struct rq_broker *b, const struct rq_config *cfg,
                              struct rq_gens *gens, char *err, size_t errlen);
/* Starts the thread (pinned to CPU id % online CPUs); waits until its ring is up. 0 or -errno,
 * with err set. */
int rq_shard_start(struct rq_shard *s, char *err, size_t errlen);
/* Lets every started shard enter its loop (and so accept connections). Called once by the
 * control thread after all shards have started, or failed to: a shard that accepted while a
 * later one was still creating its ring could take the descriptors that ring needs (EMFILE at
 * setup under a low RLIMIT_NOFILE). Idempotent. */
void rq_shards_go(void);
/* Asks the shard to stop: close listeners, DISCONNECT 0x8B to v5 clients, wills, exit. */
void rq_shard_stop(struct rq_shard *s);
/* Wakes the shard's loop so that it takes a newly published generation (control thread). */
void rq_shard_wake(struct rq_shard *s);
void rq_shard_join(struct rq_shard *s);
void rq_shard_free(struct rq_shard *s);

#endif
