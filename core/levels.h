/* Topic-level tries, the parts the subscription tree (core/topic.c) and the retained store
 * (core/retain.c) share: walking the levels of a topic or filter, a seeded level hash, and the
 * table that holds a node's literal children.
 *
 * The children table is open addressing with linear probing over a power-of-two array; a removed
 * child leaves a tombstone, so the slot order a walk follows never moves under it (only an
 * explicit shrink rehashes). Load (live + tombstones) stays at or below 3/4, so every probe chain
 * ends at an empty slot. The hash is seeded per tree, so that peers cannot aim many levels at one
 * probe chain without knowing the seed.
 *
 * RQ_LEVEL_TABLE(T) defines, for a node type T that has the fields
 *     T *parent; T **kids; uint32_t nkids, ntomb, kcap, slot; uint64_t hval; uint32_t nlen;
 *     uint8_t name[];
 * and a tombstone pointer TOMB (a T * that is never a real node, defined before the macro),
 * these static functions:
 *     T *kid_find(const T *n, uint64_t h, const uint8_t *s, size_t len)  child named s, or NULL
 *     int kid_insert(T *n, T *k)          0, or -ENOMEM (n unchanged)
 *     void kid_remove(T *n, T *k, bool may_shrink)  may_shrink: rehash a sparse table (moves
 *                                         other children: not during a walk)
 *     T *kid_next(const T *n, uint32_t from)  first child in slot order at or after from
 *     T *level_node_new(T *parent, const uint8_t *name, size_t len, uint64_t h)  zeroed node */
#ifndef RQ_LEVELS_H
#define RQ_LEVELS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* End (index of '/' or len) of the level that starts at pos <= len. */
static inline size_t rq_level_end(const uint8_t *s, size_t len, size_t pos)
{
    const uint8_t *e = pos < len ? memchr(s + pos, '/', len - pos) : NULL;
    return e ? (size_t)(e - s) : len;
}

/* Start of the level whose end is pos - 1 (pos is one past that level's end, pos >= 1). */
static inline size_t rq_level_start_before(const uint8_t *s, size_t pos)
{
    size_t q = pos - 1;
    while (q > 0 && s[q - 1] != '/')
        q--;
    return q;
}

/* The level lv[0..n) is the single wildcard character w ('+' or '#'). */
static inline bool rq_level_is_wild(const uint8_t *lv, size_t n, uint8_t w)
{
    return n == 1 && lv[0] == w;
}

static inline uint64_t rq_level_mix64(uint64_t x)
{
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return x;
}

static inline uint64_t rq_level_hash(uint64_t seed, const uint8_t *s, size_t n)
{
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull), w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = rq_level_mix64(h ^ w) * 0x94d049bb133111ebull;
    }
    if (n) {
        w = 0;
        memcpy(&w, s, n);
        h = rq_level_mix64(h ^ w) * 0x94d049bb133111ebull;
    }
    return rq_level_mix64(h);
}

#define RQ_LEVEL_TABLE(T)                                                                          \
    static T *kid_find(const T *n, uint64_t h, const uint8_t *s, size_t len)                       \
    {                                                                                              \
        if (!n->kids)                                                                              \
            return NULL;                                                                           \
        size_t mask = n->kcap - 1;                                                                 \
        for (size_t i = h & mask;; i = (i + 1) & mask) {                                           \
            T *k = n->kids[i];                                                                     \
            if (!k)                                                                                \
                return NULL;                                                                       \
            if (k != TOMB && k->hval == h && k->nlen == len && memcmp(k->name, s, len) == 0)       \
                return k;                                                                          \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* First free slot of k's probe chain gets k; true when it was a tombstone. */                 \
    static bool kid_place(T **tab, uint32_t cap, T *k)                                             \
    {                                                                                              \
        size_t mask = cap - 1, i = k->hval & mask;                                                 \
        while (tab[i] && tab[i] != TOMB)                                                           \
            i = (i + 1) & mask;                                                                    \
        bool tomb = tab[i] == TOMB;                                                                \
        tab[i] = k;                                                                                \
        k->slot = (uint32_t)i;                                                                     \
        return tomb;                                                                               \
    }                                                                                              \
                                                                                                   \
    static int kid_rehash(T *n, uint32_t cap)                                                      \
    {                                                                                              \
        T **tab = calloc(cap, sizeof *tab);                                                        \
        if (!tab)                                                                                  \
            return -ENOMEM;                                                                        \
        for (uint32_t i = 0; i < n->kcap; i++)                                                     \
            if (n->kids[i] && n->kids[i] != TOMB)                                                  \
                (void)kid_place(tab, cap, n->kids[i]);                                             \
        free(n->kids);                                                                             \
        n->kids = tab;                                                                             \
        n->kcap = cap;                                                                             \
        n->ntomb = 0;                                                                              \
        return 0;                                                                                  \
    }                                                                                              \
                                                                                                   \
    static int kid_insert(T *n, T *k)                                                              \
    {                                                                                              \
        if ((size_t)(n->nkids + n->ntomb + 1) * 4 > (size_t)n->kcap * 3) {                         \
            uint32_t cap = 4;                                                                      \
            while (cap < (n->nkids + 1) * 2)                                                       \
                cap *= 2;                                                                          \
            if (kid_rehash(n, cap))                                                                \
                return -ENOMEM;                                                                    \
        }                                                                                          \
        n->ntomb -= kid_place(n->kids, n->kcap, k);                                                \
        n->nkids++;                                                                                \
        return 0;                                                                                  \
    }                                                                                              \
                                                                                                   \
    static void kid_remove(T *n, T *k, bool may_shrink)                                            \
    {                                                                                              \
        n->kids[k->slot] = TOMB;                                                                   \
        n->ntomb++;                                                                                \
        if (--n->nkids == 0) {                                                                     \
            free(n->kids);                                                                         \
            n->kids = NULL;                                                                        \
            n->kcap = n->ntomb = 0;                                                                \
        } else if (may_shrink && n->kcap > 16 && n->nkids * 8 < n->kcap) {                         \
            (void)kid_rehash(n, n->kcap / 4); /* optional: the table stays on failure */           \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static T *kid_next(const T *n, uint32_t from)                                                  \
    {                                                                                              \
        for (uint32_t i = from; i < n->kcap; i++)                                                  \
            if (n->kids[i] && n->kids[i] != TOMB)                                                  \
                return n->kids[i];                                                                 \
        return NULL;                                                                               \
    }                                                                                              \
                                                                                                   \
    static T *level_node_new(T *parent, const uint8_t *name, size_t len, uint64_t h)               \
    {                                                                                              \
        T *n = calloc(1, sizeof *n + len);                                                         \
        if (!n)                                                                                    \
            return NULL;                                                                           \
        n->parent = parent;                                                                        \
        if (len)                                                                                   \
            memcpy(n->name, name, len);                                                            \
        n->nlen = (uint32_t)len;                                                                   \
        n->hval = h;                                                                               \
        return n;                                                                                  \
    }

#endif
