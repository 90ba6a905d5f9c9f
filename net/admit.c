/* Admission counters shared by all shards (see admit.h): descriptors, connections before
 * CONNECT and the bytes of their unfinished first packets. Counting is optimistic (add, then
 * undo when over the limit), so concurrent accepts on several shards never overshoot. No
 * sockets, no logging here: the shards decide what to close and say why. */
#include "net/admit.h"

#include <stdatomic.h>
#include <sys/resource.h>

#include "config/config.h"

static struct {
    uint32_t fd_budget;
    uint32_t preconnect_limit;
    uint64_t bytes_limit;
    _Atomic uint32_t fds;        /* connection descriptors open (incl. handed-over ones) */
    _Atomic uint32_t preconnect; /* connections counted at accept, not yet past CONNECT */
    _Atomic uint64_t bytes;      /* first-packet bytes held by those */
} adm = {.fd_budget = UINT32_MAX, .preconnect_limit = UINT32_MAX, .bytes_limit = UINT64_MAX};

/* Descriptors the broker needs besides its connections: stdio, per shard a ring and a listening
 * socket per port, the control thread's ring, and a spare for configuration, certificate and
 * key files read on reload, TLS, and whatever libraries open. The spare is smaller under a small
 * limit so that a few connections still fit. */
static uint64_t fd_reserve(uint64_t limit, int n_shards, size_t n_ports)
{
    uint64_t spare = limit / 8;
    if (spare < 16)
        spare = 16;
    if (spare > 64)
        spare = 64;
    return 4 + (uint64_t)n_shards * (n_ports + 2) + spare;
}

void rq_admit_init(const struct rq_config *cfg, int n_shards, size_t n_ports)
{
    adm.preconnect_limit = cfg->preconnect_conns;
    adm.bytes_limit = cfg->preconnect_bytes;
    struct rlimit rl;
    uint64_t limit = 1u << 20;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < limit)
        limit = rl.rlim_cur;
    uint64_t reserve = fd_reserve(limit, n_shards, n_ports);
    adm.fd_budget = limit > reserve + 1 ? (uint32_t)(limit - reserve) : 1;
    atomic_store(&adm.fds, 0);
    atomic_store(&adm.preconnect, 0);
    atomic_store(&adm.bytes, 0);
}

uint32_t rq_admit_fd_budget(void)
{
    return adm.fd_budget;
}

uint32_t rq_admit_preconnect_limit(void)
{
    return adm.preconnect_limit;
}

uint64_t rq_admit_bytes_limit(void)
{
    return adm.bytes_limit;
}

enum rq_admit_verdict rq_admit_accept(void)
{
    if (atomic_fetch_add(&adm.fds, 1) >= adm.fd_budget) {
        atomic_fetch_sub(&adm.fds, 1);
        return RQ_ADMIT_NO_FD;
    }
    if (atomic_fetch_add(&adm.preconnect, 1) >= adm.preconnect_limit) {
        atomic_fetch_sub(&adm.preconnect, 1);
        atomic_fetch_sub(&adm.fds, 1);
        return RQ_ADMIT_PRECONNECT;
    }
    return RQ_ADMIT_OK;
}

void rq_admit_fd_closed(void)
{
    atomic_fetch_sub(&adm.fds, 1);
}

void rq_admit_preconnect_done(size_t *charged)
{
    atomic_fetch_sub(&adm.preconnect, 1);
    if (*charged)
        atomic_fetch_sub(&adm.bytes, (uint64_t)*charged);
    *charged = 0;
}

bool rq_admit_hold(size_t *charged, size_t held)
{
    if (held <= *charged) {
        if (held < *charged)
            atomic_fetch_sub(&adm.bytes, (uint64_t)(*charged - held));
        *charged = held;
        return true;
    }
    uint64_t add = (uint64_t)(held - *charged);
    uint64_t total = atomic_fetch_add(&adm.bytes, add) + add;
    *charged = held;
    return total <= adm.bytes_limit || held <= RQ_ADMIT_FIRST_PACKET_FREE;
}

bool rq_ratelog_due(struct rq_ratelog *r, uint64_t now_ms, uint64_t *skipped)
{
    if (r->last_ms && now_ms - r->last_ms < RQ_RATELOG_MS) {
        r->skipped++;
        return false;
    }
    *skipped = r->skipped;
    r->skipped = 0;
    r->last_ms = now_ms ? now_ms : 1;
    return true;
}
