/* Growable byte buffer used by encoders and connection output. Owner: whoever embeds it.
 * Freed small buffers are kept in a per-thread cache (buf.c): a buffer that starts from nothing
 * reuses one, so an idle connection's output costs no allocation per packet. */
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
/* Releases b's memory (into this thread's cache when small) and empties it. */
void rq_buf_free(struct rq_buf *b);
/* Frees this thread's cache (also done at a thread's exit; for the main thread before it
 * returns, so that leak checkers see nothing held). */
void rq_buf_cache_release(void);

static inline void rq_buf_reset(struct rq_buf *b)
{
    b->len = 0;
}

#endif
