/* Broker-wide settings on reload (see reload.h). */
#include "net/reload.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"

/* One restart-only number: logged and kept when it changed. */
static int keep_u64(const char *key, uint64_t run, uint64_t *next_val)
{
    if (run == *next_val)
        return 0;
    rq_log(RQ_LOG_WARN, NULL, "reload: %s changed (%llu -> %llu): needs a restart; %llu stays "
           "in force until then (the rest of the reload applies)", key,
           (unsigned long long)run, (unsigned long long)*next_val, (unsigned long long)run);
    *next_val = run;
    return 1;
}

#define KEEP(key, field)                                                                           \
    do {                                                                                           \
        uint64_t v_ = next->field;                                                                 \
        if (keep_u64(key, run->field, &v_)) {                                                      \
            next->field = run->field;                                                              \
            n++;                                                                                   \
        }                                                                                          \
    } while (0)

static int keep_str(const char *key, const char *run, char *next, size_t len)
{
    if (strcmp(run, next) == 0)
        return 0;
    rq_log(RQ_LOG_WARN, NULL, "reload: %s changed ('%s' -> '%s'): needs a restart; '%s' stays in "
           "force until then (the rest of the reload applies)", key, run, next, run);
    snprintf(next, len, "%s", run);
    return 1;
}

int rq_reload_keep_restart_only(const struct rq_config *run, struct rq_config *next)
{
    int n = 0;
    /* threads and their rings, descriptor tables, admission budgets: sized at start */
    KEEP("spec.ringmq.threads", threads);
    KEEP("spec.ringmq.maxConnections", max_connections);
    KEEP("spec.ringmq.preConnectLimit.connections", preconnect_conns);
    KEEP("spec.ringmq.preConnectLimit.bytes", preconnect_bytes);
    KEEP("spec.ringmq.shardBacklogLimit", shard_backlog);
    KEEP("spec.ringmq.batchWaitMicroseconds", batch_wait_us);
    KEEP("spec.ringmq.setupBatchWaitMicroseconds", setup_batch_wait_us);
    KEEP("spec.ringmq.maxInflight", max_inflight);
    /* the authentication service pools start once */
    KEEP("spec.ringmq.auth.threads", auth_threads);
    KEEP("spec.ringmq.auth.maxPending", auth_max_pending);
    KEEP("spec.ringmq.auth.requestTimeoutSeconds (ms)", auth_request_timeout_ms);
    KEEP("spec.ringmq.auth.cacheEntries", auth_cache_entries);
    KEEP("spec.ringmq.auth.negativeCacheSeconds", auth_negative_cache_s);
    /* the control thread's own endpoints and timers */
    KEEP("spec.diagnostics.metrics.prometheusPort", metrics_port);
    KEEP("spec.ringmq.sysTopics", sys_topics);
    KEEP("spec.ringmq.sysTopicsIntervalSeconds", sys_interval_s);
    KEEP("spec.ringmq.shutdownDelaySeconds", shutdown_delay_s);
    n += keep_str("spec.ringmq.metrics.bindAddress", run->metrics_bind, next->metrics_bind,
                  sizeof next->metrics_bind);
    n += keep_str("spec.ringmq.dataDir", run->data_dir, next->data_dir, sizeof next->data_dir);
    return n;
}

void rq_reload_apply_logging(const struct rq_config *run, const struct rq_config *next,
                             bool verbose_cli)
{
    if (!verbose_cli && run->log_level != next->log_level) {
        /* said at the old level (a quieter new one would hide it) */
        rq_log(RQ_LOG_WARN, NULL, "reload: log level now %s (spec.diagnostics.logs.level)",
               rq_log_level_name(next->log_level));
        /* a plain int that the shards read on every log call: one aligned store */
        __atomic_store_n(&rq_log_level, next->log_level, __ATOMIC_RELAXED);
    } else if (verbose_cli && run->log_level != next->log_level) {
        rq_log(RQ_LOG_INFO, NULL, "reload: spec.diagnostics.logs.level not applied: -v on the "
               "command line sets the log level");
    }
    if (run->log_json != next->log_json)
        __atomic_store_n(&rq_log_json, next->log_json ? 1 : 0, __ATOMIC_RELAXED);
}
