/* A strict DER reader (X.690) for the X.509 parser: takes TLVs off the front of a byte range,
 * refusing what DER forbids (indefinite or non-minimal lengths, values that overrun their
 * container). Pure, no allocation; a failing call sets *why and returns -1. */
#ifndef RQ_DER_H
#define RQ_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Universal tags (class and constructed bit included) that X.509 uses. */
enum {
    RQ_DER_BOOLEAN = 0x01,
    RQ_DER_INTEGER = 0x02,
    RQ_DER_BIT_STRING = 0x03,
    RQ_DER_OCTET_STRING = 0x04,
    RQ_DER_NULL = 0x05,
    RQ_DER_OID = 0x06,
    RQ_DER_UTF8 = 0x0c,
    RQ_DER_NUMERIC = 0x12,
    RQ_DER_PRINTABLE = 0x13,
    RQ_DER_TELETEX = 0x14,
    RQ_DER_IA5 = 0x16,
    RQ_DER_UTC_TIME = 0x17,
    RQ_DER_GEN_TIME = 0x18,
    RQ_DER_VISIBLE = 0x1a,
    RQ_DER_UNIVERSAL = 0x1c,
    RQ_DER_BMP = 0x1e,
    RQ_DER_SEQUENCE = 0x30,
    RQ_DER_SET = 0x31,
    RQ_DER_CONSTRUCTED = 0x20, /* the bit */
};

/* Bytes not yet read at one nesting level. */
struct rq_der {
    const uint8_t *p;
    size_t len;
};

/* One TLV: its tag and its content. */
struct rq_tlv {
    uint8_t tag;
    const uint8_t *p;
    size_t len;
};

/* Takes the next TLV off the front of *in. Low tag numbers only (X.509 uses no others),
 * definite lengths, long form minimal and at most 4 bytes, content inside *in. */
int rq_der_read(struct rq_der *in, struct rq_tlv *t, const char **why);
/* rq_der_read, then the tag must be `tag`; `bad` is the message when it is not. */
int rq_der_expect(struct rq_der *in, uint8_t tag, struct rq_tlv *t, const char *bad,
                  const char **why);
/* A SEQUENCE (or other container) must hold nothing after its last expected field. */
int rq_der_end(const struct rq_der *in, const char *bad, const char **why);
/* Every TLV in p[0..len) and, recursively, inside each constructed one, is well-formed; at most
 * 32 levels deep counting from `depth`. */
int rq_der_check(const uint8_t *p, size_t len, int depth, const char **why);
/* Number of TLVs in a container that rq_der_check accepted. */
size_t rq_der_count(const struct rq_tlv *t);
/* Is the content of t exactly content[0..len)? */
bool rq_tlv_is(const struct rq_tlv *t, const uint8_t *content, size_t len);

/* Is the next TLV of *in tagged `tag`? (Peeking needs no length check.) */
static inline bool rq_der_peek(const struct rq_der *in, uint8_t tag)
{
    return in->len > 0 && in->p[0] == tag;
}

/* The content of t, to read its TLVs. */
static inline struct rq_der rq_der_of(const struct rq_tlv *t)
{
    return (struct rq_der){t->p, t->len};
}

#endif
