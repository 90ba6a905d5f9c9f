/* Admission: what the shards together let peers make the broker hold before a client has
 * identified itself, and the descriptors every connection costs. One process-wide set of
 * counters (atomics), shared by all shards:
 *   - descriptors: one budget for the whole process, from RLIMIT_NOFILE less what the broker
 *     needs for itself (listeners, rings, files), so that accepting stops at a count instead of
 *     at EMFILE;
 *   - connections accepted and not yet past CONNECT (spec.ringmq.preConnectLimit.connections),
 *     counted at accept;
 *   - bytes held for their unfinished first packets (spec.ringmq.preConnectLimit.bytes).
 * Also the rate limiter for log lines that peers or storms can repeat. No sockets here. */
#ifndef RQ_ADMIT_H
#define RQ_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_config;

/* A connection holding at most this many bytes of its first packet is never closed for the
 * byte budget: ordinary CONNECTs (a few hundred bytes) pass while a flood of large unfinished
 * ones holds the budget. More than this is held only when the CONNECT's fixed header announces
 * a larger packet, and then counts against the budget. */
#define RQ_ADMIT_FIRST_PACKET_FREE 4096u

/* Sets the limits from cfg (spec.ringmq.preConnectLimit) and the descriptor budget from
 * RLIMIT_NOFILE for n_shards shards listening on n_ports ports. Call once, before any shard
 * accepts (main thread). */
void rq_admit_init(const struct rq_config *cfg, int n_shards, size_t n_ports);
/* The process-wide descriptor budget for connections (what each shard's table is sized to). */
uint32_t rq_admit_fd_budget(void);

enum rq_admit_verdict {
    RQ_ADMIT_OK = 0,
    RQ_ADMIT_NO_FD,      /* the descriptor budget is in use */
    RQ_ADMIT_PRECONNECT, /* preConnectLimit.connections connections wait for CONNECT */
};

/* A connection was just accepted (its descriptor is open). OK: counted as a descriptor and as
 * a connection before CONNECT (release both). Otherwise nothing is counted; close it. */
enum rq_admit_verdict rq_admit_accept(void);
/* A connection's descriptor was closed. */
void rq_admit_fd_closed(void);
/* A connection counted by rq_admit_accept is past CONNECT (or gone): releases its place and the
 * bytes charged to it (*charged, set to 0). */
void rq_admit_preconnect_done(size_t *charged);
/* A connection before CONNECT now holds `held` bytes of its first packet; *charged is what was
 * counted for it so far and becomes held. Returns false when the broker-wide byte budget is
 * exceeded and this connection holds more than RQ_ADMIT_FIRST_PACKET_FREE: close it. */
bool rq_admit_hold(size_t *charged, size_t held);
/* The configured limits, for log lines. */
uint32_t rq_admit_preconnect_limit(void);
uint64_t rq_admit_bytes_limit(void);

/* A log line that a peer or a storm can repeat: written at most once per interval, saying how
 * many were left out. One per kind of line and thread (not shared between threads). */
struct rq_ratelog {
    uint64_t last_ms; /* when the last one was written (0: never) */
    uint64_t skipped; /* left out since */
};
#define RQ_RATELOG_MS 10000u
/* True when a line is due now (then *skipped = how many were left out before it); false: leave
 * this one out. */
bool rq_ratelog_due(struct rq_ratelog *r, uint64_t now_ms, uint64_t *skipped);

#endif
