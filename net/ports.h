/* Runtime state of the configured ports (struct rq_port_rt in xport.h): TLS contexts and
 * authentication chains, built from a config snapshot by the control thread before the shards
 * start, and torn down after they stop. */
#ifndef RQ_PORTS_H
#define RQ_PORTS_H

#include <stddef.h>

struct rq_config;
struct rq_port_rt;

/* ports: cfg->n_ports zeroed entries. Returns 0, or -1 with err naming the port and the
 * problem (certificate, key, CA bundle, unbuilt feature). Logs what each port serves. */
int rq_ports_setup(const struct rq_config *cfg, struct rq_port_rt *ports, char *err,
                   size_t errlen);
void rq_ports_teardown(struct rq_port_rt *ports, size_t n);

#endif
