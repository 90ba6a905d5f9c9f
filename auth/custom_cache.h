/* The Custom method's verdict cache (custom.h describes when verdicts are cached): a bounded
 * hash table from a 32-byte key (SHA-256 of the endpoint and every credential) to an ALLOW or
 * DENY outcome and the unix time it dies. One mutex; any thread.
 *
 * Bounded: at most `max` entries. When full, dead entries are swept (at most once a second) and
 * if it is still full the new verdict is not stored: live verdicts are never evicted, and no LRU
 * bookkeeping runs on the lookup path. */
#ifndef RQ_CUSTOM_CACHE_H
#define RQ_CUSTOM_CACHE_H

#include "auth/authn.h"

#include <stddef.h>
#include <stdint.h>

#define RQ_CUSTOM_CACHE_KEY 32

struct rq_custom_cache;

/* NULL on ENOMEM. */
struct rq_custom_cache *rq_custom_cache_new(uint32_t max);
void rq_custom_cache_free(struct rq_custom_cache *c);

/* Stores a copy of o (verdict, reason, why, attributes and expiry; not the username) until
 * `until`, replacing an entry of the same key. Silently not stored when full or out of memory. */
void rq_custom_cache_put(struct rq_custom_cache *c, const uint8_t key[RQ_CUSTOM_CACHE_KEY],
                         const struct rq_authn_outcome *o, int64_t now, int64_t until);

/* A live entry: 1 and *o filled (o initialised and empty; principal.username = a copy of
 * username/ulen, NULL when username is NULL). 0 when absent or dead (a dead one is dropped),
 * -ENOMEM (o left empty). */
int rq_custom_cache_get(struct rq_custom_cache *c, const uint8_t key[RQ_CUSTOM_CACHE_KEY],
                        const char *username, size_t ulen, int64_t now, struct rq_authn_outcome *o);

size_t rq_custom_cache_count(struct rq_custom_cache *c);

#endif
