/* See stub_net.h. No CHECKs here: check.h's counters are per test file. */
#include "tests/unit/core/stub_net.h"

#include <string.h>

int stub_close_calls;

void stub_flush(struct rq_worker *w, void *conn)
{
}

void stub_close(struct rq_worker *w, void *conn)
{
    stub_close_calls++;
}

bool stub_post(struct rq_worker *from, int shard, const struct rq_post *p)
{
    return true;
}

void stub_config(struct rq_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->connect_timeout_ms = 1000;
    cfg->max_connections = 100;
    cfg->max_inflight = 16;
    cfg->max_packet_size = 1 << 20;
    cfg->max_keepalive = 65535;
    cfg->max_receive_max = 65535;
    cfg->max_session_expiry = 3600;
    cfg->queue_limit = 100;
    cfg->shard_backlog = 1000;
}

struct rq_worker *stub_worker_new(const struct rq_config *cfg, const struct rq_worker_ops *ops)
{
    struct rq_broker *b = rq_broker_new(cfg, 1);
    struct rq_worker *w = b ? rq_worker_new(b, 0, ops, NULL) : NULL;
    if (!w) {
        rq_broker_free(b);
        return NULL;
    }
    w->now = w->wheel.now; /* the worker's clock and its wheel's agree */
    return w;
}

void stub_worker_free(struct rq_worker *w)
{
    struct rq_broker *b = w->b;
    rq_worker_shutdown(w);
    rq_worker_free(w);
    rq_broker_free(b);
}
