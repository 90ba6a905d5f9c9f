/* Runtime generations of the configured ports (struct rq_gen in gen.h, struct rq_port_rt in
 * xport.h): per listener, its TLS context and its authentication chain, all built from one
 * configuration snapshot by the control thread, so that a port's TLS verify policy and its
 * chain always agree. Publishing and freeing them safely is net/gen.c's job. */
#ifndef RQ_PORTS_H
#define RQ_PORTS_H

#include <stddef.h>
#include <stdint.h>

struct rq_config;
struct rq_gen;

/* The startup generation: one port per cfg->ports[], its listening sockets bound (one per
 * shard, n_shards). cfg stays main()'s and must outlive the generation. NULL with err naming
 * the port and the problem (cannot listen, certificate, key, CA bundle, unbuilt feature). Logs
 * what each port serves. */
struct rq_gen *rq_ports_first(struct rq_config *cfg, const char *data_dir, int n_shards,
                              char *err, size_t errlen);

/* Reload: a new generation from a freshly loaded snapshot `next` (taken: owned by the new
 * generation, freed on failure), one port per next->ports[]. A port that is the same listener
 * as a running one (address, number, protocol, TLS mode, authenticationRef) keeps its sockets
 * and connections; any other is new and bound now on every shard (the shards start accepting
 * on it at their next loop turn); a running port that no new one keeps is removed (its shards
 * close it and disconnect its clients). Certificates and authentication chains come from
 * `next`; a TLS context built from unchanged inputs is shared with cur. *replaced = ports
 * whose certificate or client CAs changed. NULL with err set and nothing changed (sockets
 * bound here closed): a port that cannot be bound, a broken certificate ("new certificate
 * refused, keeping the old one: ..."). */
struct rq_gen *rq_ports_reload(const struct rq_gen *cur, struct rq_config *next,
                               const char *data_dir, int *replaced, char *err, size_t errlen);

/* Control thread, on a generation built by rq_ports_reload and not yet published: every client
 * of port i connected before it (any older generation) is disconnected, v5 with DISCONNECT rc
 * and the reason string why (net/gen.h struct rq_port_kick). For a reload that changes what a
 * connected client may do (BrokerAuthorization). */
void rq_ports_kick(struct rq_gen *g, size_t i, uint8_t rc, const char *why);

/* tls mode Automatic: when a port's renewal time has come, a new generation from cur's
 * snapshot with a re-issued certificate for it (a failed issue keeps the current one and
 * retries in a minute). NULL when nothing is due (or out of memory, logged). */
struct rq_gen *rq_ports_renew(const struct rq_gen *cur, const char *data_dir, int64_t now);

/* The snapshot g was built from (lives as long as g). */
const struct rq_config *rq_ports_gen_config(const struct rq_gen *g);
/* The rq_gen_free_fn for net/gen.c. */
void rq_ports_gen_free(struct rq_gen *g);

/* A cheap fingerprint of the files a snapshot came from (YAML files, mounted secrets and
 * configmaps: names, sizes, mtimes), to notice changes by polling. 0 for the embedded default. */
uint64_t rq_ports_files_print(const struct rq_config *cfg);

#endif
