/* Authorization (BrokerAuthorization, AIO-INTERFACES 3): a port's allow-only rules compiled once
 * per configuration, and per client the effective permissions core asks about (core/access.h).
 *
 * Compile (control thread, when a runtime generation is built): patterns are split into levels
 * (topics) or segments (Connect client ids) with their substitution tokens resolved to a kind;
 * rules are indexed by the usernames and client ids their principals list (sorted arrays), and
 * the rules that match on attributes are listed apart.
 *
 * Per client (its shard, at CONNECT and after re-authentication): the rules whose principals
 * match are collected through the index; Connect is decided then (a Connect resource without
 * clientIds allows any client id; a client id pattern may end in '*'); every Publish and
 * Subscribe topic of those rules is substituted ({principal.username}, {principal.clientId},
 * {principal.attributes.NAME}) and added to the client's two filter sets (auth/authz_set.h).
 * A token whose value is missing or empty makes its pattern match nothing; so does a value
 * holding '/', '+' or '#' in a topic: such a value could only ever be one literal level, and no
 * topic level equals it, so it never acts as a separator or wildcard (CVE-2017-7650); and a value
 * starting with '$' in a pattern's first level (it would reach $SYS/...). In a
 * client id pattern a substituted '*' is literal. All comparisons are case-sensitive.
 *
 * Not here: the configuration checks with positions (config/schema_authz.c), what core does
 * with a denial (core/client.c, core/connect.c). `cache: Enabled` needs no decision cache: the
 * per-client sets are the precomputed decisions, rebuilt whole when the principal changes. */
#ifndef RQ_AUTHZ_H
#define RQ_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/access.h"
#include "core/principal.h"

struct rq_authz_cfg;
struct rq_authz;

/* Compiles cfg, which must outlive the result (both live in one runtime generation). NULL with
 * err set ("BrokerAuthorization x, rule at f:l:c: ...", or out of memory). */
struct rq_authz *rq_authz_compile(const struct rq_authz_cfg *cfg, char *err, size_t errlen);
void rq_authz_free(struct rq_authz *z);
/* The BrokerAuthorization's name, for log lines. */
const char *rq_authz_name(const struct rq_authz *z);

/* Whether two policies (either may be NULL: no authorization) decide everything alike: same
 * name, cache setting and rules in order (positions in files do not count). A reload
 * disconnects the clients of a port whose policy is not the same (net/ports.c). */
bool rq_authz_cfg_same(const struct rq_authz_cfg *a, const struct rq_authz_cfg *b);

enum rq_authz_result {
    RQ_AUTHZ_OK = 0,     /* Connect allowed: *out holds the client's permissions */
    RQ_AUTHZ_DENIED = 1, /* Connect not allowed (why says so) */
    RQ_AUTHZ_NOMEM = -1,
};

/* The permissions of a client with principal p (NULL: no attributes, no username) and client
 * id cid[0..cid_len) under z. *out (heap, the caller owns it; free with rq_access_free) only
 * with RQ_AUTHZ_OK. Any thread; z is only read. */
int rq_authz_client(const struct rq_authz *z, const struct rq_principal *p, const uint8_t *cid,
                    size_t cid_len, struct rq_access **out, char *why, size_t whylen);

#endif
