/* Topic names, topic filters and the subscription tree.
 *
 * The tree is a plain single-threaded data structure: the broker wraps it in its own
 * synchronisation (readers match, writers (un)subscribe). It stores subscriptions of sessions,
 * identified by a 64-bit session id; it never dereferences session memory.
 * Shared subscriptions ($share/<group>/<filter>) are stored per (group, filter); a match yields
 * exactly one member of each matching group, chosen round-robin. */
#ifndef RQ_TOPIC_H
#define RQ_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Topic name for PUBLISH: valid UTF-8 is the codec's job; here: no '+' or '#'.
 * len 0 is invalid (the caller handles topic aliases before asking). */
bool rq_topic_name_valid(const uint8_t *t, size_t len);

/* Topic filter check [MQTT-4.7.1-1..3], including $share/<group>/<filter> (group non-empty,
 * no wildcards in group, a filter after it). max_levels = 0 means no level limit.
 * Returns 0 or a negative MQTT reason code (-RQ_RC_MALFORMED for misplaced wildcards or a
 * broken $share prefix, -RQ_RC_TOPIC_FILTER_INVALID when over max_levels) with *why set. */
int rq_topic_filter_check(const uint8_t *f, size_t len, unsigned max_levels, const char **why);

/* Number of levels in a topic name or filter ("a/b" = 2, "" = 1). */
unsigned rq_topic_levels(const uint8_t *t, size_t len);

/* Does filter f match topic t? Both already valid. Topics starting with '$' are not matched by a
 * filter whose first level is '+' or '#' [MQTT-4.7.2-1]. A $share/ prefix on f is NOT handled
 * here: pass the part after the group. */
bool rq_topic_match(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen);

/* Splits "$share/group/filter": returns true and fills group/filter when f is shared. */
bool rq_topic_split_shared(const uint8_t *f, size_t len, const uint8_t **group, size_t *glen,
                           const uint8_t **filter, size_t *flen);

/* What one subscription delivers to. */
struct rq_sub_entry {
    uint64_t session_id;
    uint32_t sub_id; /* subscription identifier, 0 = none */
    uint8_t opts;    /* options byte as in SUBSCRIBE: QoS | NL<<2 | RAP<<3 | RH<<4 */
};

struct rq_subtree;

struct rq_subtree *rq_subtree_new(void);
void rq_subtree_free(struct rq_subtree *t);

/* Adds or replaces (same session, same full filter string including any $share prefix) a
 * subscription. *replaced (may be NULL) says whether one existed. Returns 0 or -ENOMEM.
 * The filter must have passed rq_topic_filter_check. */
int rq_subtree_add(struct rq_subtree *t, const uint8_t *filter, size_t len,
                   const struct rq_sub_entry *e, bool *replaced);

/* Removes the subscription of session_id on exactly this filter string. 0 or -ENOENT. */
int rq_subtree_remove(struct rq_subtree *t, const uint8_t *filter, size_t len,
                      uint64_t session_id);

/* Calls fn once per matching subscription: every matching non-shared subscription, and for each
 * matching shared group one member (shared = true). May be called by several readers at once as
 * long as no writer runs (round-robin counters are updated with relaxed atomics). */
typedef void (*rq_subtree_match_fn)(void *ctx, const struct rq_sub_entry *e, bool shared);
void rq_subtree_match(struct rq_subtree *t, const uint8_t *topic, size_t len,
                      rq_subtree_match_fn fn, void *ctx);

/* Number of subscriptions stored (shared members included). */
size_t rq_subtree_count(const struct rq_subtree *t);

#endif
