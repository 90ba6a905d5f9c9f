/* Retained message store: topic name -> one retained message (opaque pointer owned by the
 * caller, e.g. a refcounted message). Single-threaded data structure; the broker locks around
 * it. Lookup by filter walks only the matching part of the topic tree. */
#ifndef RQ_RETAIN_H
#define RQ_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_retain;

struct rq_retain *rq_retain_new(void);
/* Calls drop(msg) for every stored message, then frees the store. drop may be NULL. */
void rq_retain_free(struct rq_retain *r, void (*drop)(void *msg));

/* Stores msg under topic, replacing any previous message, which is returned through *old
 * (NULL if none) for the caller to release. msg == NULL clears the topic (empty payload).
 * Returns 0 or -ENOMEM. */
int rq_retain_set(struct rq_retain *r, const uint8_t *topic, size_t len, void *msg, void **old);

/* Calls fn for every retained message whose topic matches the (non-shared) filter, following
 * the same $-rule as rq_topic_match. fn returns false to remove that entry from the store
 * (e.g. it expired); the removed message is passed to drop. */
typedef bool (*rq_retain_visit_fn)(void *ctx, const uint8_t *topic, size_t len, void *msg);
void rq_retain_match(struct rq_retain *r, const uint8_t *filter, size_t len,
                     rq_retain_visit_fn fn, void *ctx, void (*drop)(void *msg));

size_t rq_retain_count(const struct rq_retain *r);

#endif
