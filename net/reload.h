/* What a reload does with the broker-wide settings of a new configuration snapshot (the ports,
 * certificates and authentication chains are net/ports.c's): the log level applies at once;
 * settings fixed at start (threads, data dir, pools, table sizes, the metrics endpoint) are
 * logged as needing a restart and keep their running values in the new snapshot, so that the
 * rest of the reload applies and nothing reads a value that is not in force. */
#ifndef RQ_RELOAD_H
#define RQ_RELOAD_H

#include <stdbool.h>

struct rq_config;

/* Control thread, after next validated and before it is published: every restart-only key that
 * differs from run is logged ("needs a restart") and copied back from run into next. Returns
 * how many were. */
int rq_reload_keep_restart_only(const struct rq_config *run, struct rq_config *next);

/* Control thread, once next is in force: spec.diagnostics.logs.level (unless -v set it on the
 * command line: verbose_cli) and the JSON log format. */
void rq_reload_apply_logging(const struct rq_config *run, const struct rq_config *next,
                             bool verbose_cli);

#endif
