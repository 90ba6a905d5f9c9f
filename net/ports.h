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

/* The startup generation: one port per cfg->ports[] (the shards' listeners, same order). cfg
 * stays main()'s and must outlive the generation. NULL with err naming the port and the problem
 * (certificate, key, CA bundle, unbuilt feature). Logs what each port serves. */
struct rq_gen *rq_ports_first(struct rq_config *cfg, const char *data_dir, char *err,
                              size_t errlen);

/* Reload: a new generation from a freshly loaded snapshot `next` (taken: owned by the new
 * generation, freed on failure). Each running listener is matched by port number; a listener
 * that is gone or changed its protocol or TLS mode refuses the reload (needs a restart), a new
 * port or bind address is logged and left for the restart. Certificates and authentication
 * chains come from `next`; a TLS context built from unchanged inputs is shared with cur.
 * *replaced = ports whose certificate or client CAs changed. NULL with err set: cur stays
 * (a broken certificate: "new certificate refused, keeping the old one: ..."). */
struct rq_gen *rq_ports_reload(const struct rq_gen *cur, struct rq_config *next,
                               const char *data_dir, int *replaced, char *err, size_t errlen);

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
