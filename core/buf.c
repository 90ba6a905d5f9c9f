/* struct rq_buf: a plain growable byte array. No pooling here; callers that want pools keep
 * their buffers alive and reset them. */
#include "core/buf.h"

#include <errno.h>

int rq_buf_reserve(struct rq_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t want = b->len + extra;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2)
            return -ENOMEM;
        ncap *= 2;
    }
    uint8_t *p = realloc(b->data, ncap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int rq_buf_append(struct rq_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = rq_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void rq_buf_consume(struct rq_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void rq_buf_free(struct rq_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
