/* Builds a port's authentication chain from the configuration, and runs it for core. */
#ifndef RQ_AUTHN_GLUE_H
#define RQ_AUTHN_GLUE_H

#include <stddef.h>
#include <stdint.h>

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
struct rq_authn_outcome;

/* Shard thread: runs the port's chain for a CONNECT on connection conn_id (net/post.h
 * rq_conn_id) and fills core's verdict v. ch NULL: authentication disabled on the port
 * (RQ_AUTH_OFF). PENDING: a method handed the check to another thread, tagged with conn_id; its
 * verdict comes back through RQ_POST_AUTH_VERDICT. */
void rq_authn_glue_run(const struct rq_authn_chain *ch, struct rq_tls *tls, uint64_t conn_id,
                       const struct rq_connect *k, struct rq_auth_verdict *v);
/* Shard thread: the method at pending_at of a CONNECT's chain answered o (posted back by the
 * thread that ran it, RQ_POST_AUTHN_REPLY, net/post.h): allow / deny end the chain, not relevant
 * goes on with the next method, which may answer pending again (then v is PENDING and a new
 * reply is due). k: the CONNECT, decoded again from the connection's kept input; tls: its TLS
 * state. ch NULL (cannot happen while the connection pins its generation): DENY. Fills v as
 * rq_authn_glue_run does; o is consumed (its principal moves into v). */
void rq_authn_glue_resume(const struct rq_authn_chain *ch, size_t pending_at, struct rq_tls *tls,
                          uint64_t conn_id, const struct rq_connect *k,
                          struct rq_authn_outcome *o, struct rq_auth_verdict *v);
/* Shard thread: MQTT v5 re-authentication of connection conn_id (core's ops->reauthenticate):
 * runs only the method that authenticated it (who->chain_pos) of ch, the chain of the generation
 * the connection pinned, with auth's Authentication Method and Data, who's user name and the
 * TLS peer certificates (creds.reauth set). Fills v: ALLOW (a whole new principal), DENY,
 * RETRY (the method could not decide: not relevant), or PENDING (the method's reply comes back
 * as RQ_POST_AUTHN_REPLY with reauth set, then rq_authn_glue_reauth_resume). ch NULL or no
 * chain_pos: DENY 0x8C. */
void rq_authn_glue_reauth(const struct rq_authn_chain *ch, struct rq_tls *tls, uint64_t conn_id,
                          const struct rq_principal *who, const struct rq_reason *auth,
                          struct rq_auth_verdict *v);
/* Shard thread: the pending method at pending_at of a re-authentication answered o (consumed):
 * fills v as rq_authn_glue_reauth does. */
void rq_authn_glue_reauth_resume(const struct rq_authn_chain *ch, size_t pending_at,
                                 uint64_t conn_id, struct rq_authn_outcome *o,
                                 struct rq_auth_verdict *v);
/* The chain's answer (verdict: enum rq_authn_verdict, outcome o) in core's terms: ALLOW moves
 * o's principal into a heap one (v->principal, with the method name), DENY keeps the reason,
 * PENDING stays pending. v->method points at the method's static name. Any thread (an auth
 * pool thread builds the verdict it posts with it; v->conn is left as it is). */
void rq_authn_glue_translate(int verdict, struct rq_authn_outcome *o, struct rq_auth_verdict *v);

#endif
