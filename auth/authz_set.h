/* A set of topic filters that one client is allowed to use for one method (Publish or
 * Subscribe), and the two questions asked of it on the hot path:
 *   - does some filter of the set match this topic name (PUBLISH)?
 *   - does some filter of the set cover this requested filter (SUBSCRIBE): every topic the
 *     requested filter can match, that allowed filter matches too?
 * A topic name is a filter without wildcards, so both are one walk: rq_authz_set_covers.
 *
 * The set is a trie of filter levels built once (at CONNECT, after substitution) and then only
 * read. A check walks the levels of the topic once, keeping the trie nodes still alive at that
 * depth (a '+' branch and a literal branch at most per node) in two arrays sized when the set
 * was frozen: no allocation, no lock, no recursion. Not thread-safe: the scratch arrays belong
 * to the set, and the set to one client. */
#ifndef RQ_AUTHZ_SET_H
#define RQ_AUTHZ_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_authz_set;

/* An empty set (matches nothing). NULL when out of memory. */
struct rq_authz_set *rq_authz_set_new(void);
void rq_authz_set_free(struct rq_authz_set *s);

/* One level of a filter being added: bytes (a literal level, which may be empty), or a
 * wildcard. A literal is compared byte for byte: "+" given as a literal never acts as one. */
struct rq_authz_level {
    const uint8_t *p;
    size_t len;
    uint8_t wild; /* 0 literal, '+' or '#' (then p/len are ignored; '#' only as the last) */
};

/* Adds the filter of n levels (n >= 1). 0 or -ENOMEM. Not after rq_authz_set_freeze. */
int rq_authz_set_add(struct rq_authz_set *s, const struct rq_authz_level *lv, size_t n);
/* Done adding: sizes the scratch space of the checks. 0 or -ENOMEM. */
int rq_authz_set_freeze(struct rq_authz_set *s);

/* f[0..len): a valid topic name or a valid filter WITHOUT a $share/ prefix. True when one
 * filter of the set matches every topic f can stand for. A level of f starting with '$' at the
 * top is not matched by a '+' or '#' at the top of the set [MQTT-4.7.2-1]. A frozen set only. */
bool rq_authz_set_covers(struct rq_authz_set *s, const uint8_t *f, size_t len);

/* Filters added (duplicates counted once). */
size_t rq_authz_set_count(const struct rq_authz_set *s);

#endif
