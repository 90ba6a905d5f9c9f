/* Runtime state of the configured ports (struct rq_port_rt in xport.h): TLS contexts and
 * authentication chains, built from a config snapshot by the control thread before the shards
 * start, and torn down after they stop. */
#ifndef RQ_PORTS_H
#define RQ_PORTS_H

#include <stddef.h>
#include <stdint.h>

struct rq_config;
struct rq_port_rt;

/* ports: cfg->n_ports zeroed entries. Returns 0, or -1 with err naming the port and the
 * problem (certificate, key, CA bundle, unbuilt feature). Logs what each port serves. */
int rq_ports_setup(const struct rq_config *cfg, const char *data_dir, struct rq_port_rt *ports,
                   char *err, size_t errlen);
/* tls mode Automatic: re-issues certificates whose renewal time has come and swaps them in.
 * Control thread; call periodically. Returns how many were renewed. */
int rq_ports_renew(struct rq_port_rt *ports, size_t n, const char *data_dir, int64_t now);
void rq_ports_teardown(struct rq_port_rt *ports, size_t n);

/* Certificate reload. ports were set up from `cur`; `next` is a freshly loaded snapshot. For each
 * TLS port (matched by port number) whose certificate, key or client CAs changed, a new context
 * is built and swapped in: connected clients keep the context they started with. A broken new
 * certificate is refused with a log line and the old context stays. Returns how many ports got
 * a new certificate. Control thread. */
int rq_ports_reload_certs(struct rq_port_rt *ports, size_t n, const struct rq_config *next);

/* A cheap fingerprint of the files a snapshot came from (YAML files, mounted secrets and
 * configmaps: names, sizes, mtimes), to notice changes by polling. 0 for the embedded default. */
uint64_t rq_ports_files_print(const struct rq_config *cfg);

#endif
