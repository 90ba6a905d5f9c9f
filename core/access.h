/* What an authenticated client may do, in core's terms: core asks, auth/ decides (auth/authz.c
 * builds these from a port's BrokerAuthorization), so that core never includes auth/.
 *
 * A client holds at most one (rq_client.access, owned): NULL means no authorization on its port,
 * everything allowed. It is built at CONNECT for the client's principal and client id from the
 * rules of the runtime generation the connection pinned (net/gen.h), so a reload never changes
 * it under the client; it is rebuilt whole when the principal changes (re-authentication,
 * rq_client_reauthorize). The checks run on the client's shard thread only: they may use
 * scratch space inside the object, but allocate nothing and take no lock. */
#ifndef RQ_ACCESS_H
#define RQ_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_access;

struct rq_access_ops {
    /* A PUBLISH (or a will) to topic name t (valid, aliases resolved) is allowed. */
    bool (*publish)(struct rq_access *a, const uint8_t *t, size_t len);
    /* A subscription to filter f (valid; "$share/GROUP/F" is checked on F) is allowed: an
     * allowed filter covers it. */
    bool (*subscribe)(struct rq_access *a, const uint8_t *f, size_t len);
    void (*free)(struct rq_access *a);
};

/* The first member of the implementation's object. */
struct rq_access {
    const struct rq_access_ops *ops;
};

static inline void rq_access_free(struct rq_access *a)
{
    if (a)
        a->ops->free(a);
}

#endif
