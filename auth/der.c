/* The DER reader: see der.h. The messages name X.509, its only user. */
#include "auth/der.h"

#include <string.h>

#define MAX_DEPTH 32 /* constructed values nested deeper than this are refused */

static int fail(const char **why, const char *msg)
{
    *why = msg;
    return -1;
}

int rq_der_read(struct rq_der *in, struct rq_tlv *t, const char **why)
{
    const uint8_t *p = in->p;
    size_t n = in->len, len, hl;
    if (n < 2)
        return fail(why, "x509: truncated TLV");
    if ((p[0] & 0x1f) == 0x1f)
        return fail(why, "x509: multi-byte tag");
    if (p[1] < 0x80) {
        len = p[1];
        hl = 2;
    } else if (p[1] == 0x80)
        return fail(why, "x509: indefinite length");
    else {
        size_t k = p[1] & 0x7f;
        if (k > 4)
            return fail(why, "x509: length of more than 4 bytes");
        if (n - 2 < k)
            return fail(why, "x509: truncated length");
        len = 0;
        for (size_t i = 0; i < k; i++)
            len = len << 8 | p[2 + i];
        if (p[2] == 0 || len < 0x80)
            return fail(why, "x509: non-minimal length");
        hl = 2 + k;
    }
    if (len > n - hl)
        return fail(why, "x509: TLV longer than its container");
    *t = (struct rq_tlv){p[0], p + hl, len};
    in->p += hl + len;
    in->len -= hl + len;
    return 0;
}

int rq_der_expect(struct rq_der *in, uint8_t tag, struct rq_tlv *t, const char *bad,
                  const char **why)
{
    if (rq_der_read(in, t, why))
        return -1;
    if (t->tag != tag)
        return fail(why, bad);
    return 0;
}

int rq_der_end(const struct rq_der *in, const char *bad, const char **why)
{
    if (in->len != 0)
        return fail(why, bad);
    return 0;
}

int rq_der_check(const uint8_t *p, size_t len, int depth, const char **why)
{
    struct rq_der d = {p, len};
    struct rq_tlv t;
    while (d.len > 0) {
        if (rq_der_read(&d, &t, why))
            return -1;
        if (!(t.tag & RQ_DER_CONSTRUCTED))
            continue;
        if (depth >= MAX_DEPTH)
            return fail(why, "x509: nested too deep");
        if (rq_der_check(t.p, t.len, depth + 1, why))
            return -1;
    }
    return 0;
}

size_t rq_der_count(const struct rq_tlv *t)
{
    struct rq_der d = rq_der_of(t);
    struct rq_tlv x;
    const char *why;
    size_t n = 0;
    while (d.len > 0 && rq_der_read(&d, &x, &why) == 0)
        n++;
    return n;
}

bool rq_tlv_is(const struct rq_tlv *t, const uint8_t *content, size_t len)
{
    return t->len == len && memcmp(t->p, content, len) == 0;
}
