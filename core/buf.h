/* Growable byte buffer used by encoders and connection output. Owner: whoever embeds it. */
#ifndef RQ_BUF_H
#define RQ_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct rq_buf {
    uint8_t *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

/* Makes room for `extra` more bytes. Returns 0 or -ENOMEM (buffer unchanged on failure). */
int rq_buf_reserve(struct rq_buf *b, size_t extra);
int rq_buf_append(struct rq_buf *b, const void *p, size_t n);
/* Drops the first n bytes (n <= len). */
void rq_buf_consume(struct rq_buf *b, size_t n);
void rq_buf_free(struct rq_buf *b);

static inline void rq_buf_reset(struct rq_buf *b)
{
    b->len = 0;
}

#endif
