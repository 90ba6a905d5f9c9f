/* Private to core/codec.c and core/props.c: a bounds-checked reader for untrusted bytes, raw
 * writers for encoders that have already reserved room, and the property block entry points.
 * Nothing here allocates. */
#ifndef RQ_CODEC_INT_H
#define RQ_CODEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/codec.h"

#define RQ_VARINT_MAX 268435455u /* largest Variable Byte Integer [MQTT-1.5.5] */
#define RQ_STR_MAX 65535u        /* largest length-prefixed string or binary */

/* ---- Reader. Every getter returns false, consuming nothing, when the bytes run out. ---- */

struct rq_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
};

static inline size_t rd_left(const struct rq_rd *r)
{
    return r->len - r->off;
}

static inline bool rd_u8(struct rq_rd *r, uint8_t *v)
{
    if (rd_left(r) < 1)
        return false;
    *v = r->p[r->off++];
    return true;
}

static inline bool rd_u16(struct rq_rd *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return false;
    *v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
    r->off += 2;
    return true;
}

static inline bool rd_u32(struct rq_rd *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return false;
    const uint8_t *q = r->p + r->off;
    *v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    r->off += 4;
    return true;
}

/* Variable Byte Integer at p[0..len). Returns 0 with *v and *n (bytes used) set, RQ_INCOMPLETE
 * when the bytes end inside it, or -RQ_RC_MALFORMED when a 4th byte still has its continuation
 * bit or the encoding is not the shortest one [MQTT-1.5.5-1]. */
static inline int varint_decode(const uint8_t *p, size_t len, uint32_t *v, size_t *n)
{
    uint32_t val = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return RQ_INCOMPLETE;
        val |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (i > 0 && p[i] == 0)
                return -RQ_RC_MALFORMED; /* trailing zero group: not minimal */
            *v = val;
            *n = i + 1;
            return 0;
        }
    }
    return -RQ_RC_MALFORMED;
}

/* Inside a packet, running out of bytes is as malformed as a bad encoding. */
static inline bool rd_varint(struct rq_rd *r, uint32_t *v)
{
    size_t n;
    if (varint_decode(r->p + r->off, rd_left(r), v, &n) != 0)
        return false;
    r->off += n;
    return true;
}

/* Two-byte length then that many bytes: Binary Data, or a UTF-8 string before validation. */
static inline bool rd_bin(struct rq_rd *r, struct rq_str *s)
{
    uint16_t n;
    size_t save = r->off;
    if (!rd_u16(r, &n))
        return false;
    if (rd_left(r) < n) {
        r->off = save;
        return false;
    }
    s->p = r->p + r->off;
    s->len = n;
    r->off += n;
    return true;
}

/* Stores the static reason text (why may be NULL) and returns the negated reason code. */
static inline int fail(const char **why, int rc, const char *msg)
{
    if (why)
        *why = msg;
    return -rc;
}

/* ---- Writers: the caller has reserved room; each returns the advanced cursor. ---- */

static inline uint8_t *put_u8(uint8_t *w, uint8_t v)
{
    *w = v;
    return w + 1;
}

static inline uint8_t *put_u16(uint8_t *w, uint16_t v)
{
    w[0] = (uint8_t)(v >> 8);
    w[1] = (uint8_t)v;
    return w + 2;
}

static inline uint8_t *put_u32(uint8_t *w, uint32_t v)
{
    w[0] = (uint8_t)(v >> 24);
    w[1] = (uint8_t)(v >> 16);
    w[2] = (uint8_t)(v >> 8);
    w[3] = (uint8_t)v;
    return w + 4;
}

static inline uint8_t *put_varint(uint8_t *w, uint32_t v)
{
    return w + rq_varint_encode(w, v);
}

static inline uint8_t *put_bytes(uint8_t *w, const void *p, size_t n)
{
    if (n)
        memcpy(w, p, n);
    return w + n;
}

/* Length of a string to encode: a NULL pointer means absent, i.e. empty. */
static inline size_t str_len(struct rq_str s)
{
    return s.p ? s.len : 0;
}

static inline uint8_t *put_str(uint8_t *w, struct rq_str s)
{
    size_t n = str_len(s);
    w = put_u16(w, (uint16_t)n);
    return put_bytes(w, s.p, n);
}

/* ---- Property blocks (core/props.c). ---- */

/* Pseudo packet type for the will properties of CONNECT in the allowed-packet table. */
#define RQ_WHERE_WILL 0

/* Decodes a property length and block at r (v5 only) for packet type `where` (or
 * RQ_WHERE_WILL) into *props, which it clears first. n_sub_ids (may be NULL) counts repeated
 * subscription identifiers. Returns 0 or -RQ_RC_* with *why set. */
int rq_props_decode(struct rq_rd *r, int where, struct rq_props *props, uint32_t *n_sub_ids,
                    const char **why);

/* Encoded size of the entries (no length varint). Returns 0, or -EINVAL for a string over
 * 65535 bytes or a subscription identifier outside 1..268435455. props may be NULL. */
int rq_props_measure(const struct rq_props *props, size_t *size);

/* Writes the entries measured above (no length varint); returns the advanced cursor. */
uint8_t *rq_props_write(uint8_t *w, const struct rq_props *props);

#endif
