/* Builds a port's authentication chain from the configuration, and runs it for core. */
#ifndef RQ_AUTHN_GLUE_H
#define RQ_AUTHN_GLUE_H

#include <stddef.h>

#include "core/broker.h"

struct rq_authn_cfg;
struct rq_buf;
struct rq_config_object;
struct rq_authn_chain;
struct rq_tls;

/* Every PEM block under every key of a ConfigMap (o may be NULL), concatenated into out.
 * 0 or -1 (out of memory). */
int rq_authn_glue_collect_pem(const struct rq_config_object *o, struct rq_buf *out);

/* Control thread. NULL with err set ("BrokerAuthentication x, method 1: ..."). */
struct rq_authn_chain *rq_authn_glue_build(const struct rq_authn_cfg *cfg, char *err,
                                           size_t errlen);
/* Shard thread. ch NULL: authentication disabled on the port (a->enabled false). */
void rq_authn_glue_run(const struct rq_authn_chain *ch, struct rq_tls *tls,
                       const struct rq_connect *k, struct rq_auth_answer *a);

#endif
