/* SHA-1 (FIPS 180-4), only for the WebSocket opening handshake (RFC 6455 section 4.2.2
 * Sec-WebSocket-Accept). SHA-1 is broken for collision resistance; do not use it for anything
 * that needs a secure hash. Pure: no I/O, no globals. */
#ifndef RQ_SHA1_H
#define RQ_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define RQ_SHA1_LEN 20

/* Incremental state. Plain data: copy it to fork a hash. */
struct rq_sha1 {
    uint32_t h[5];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* partial block */
    size_t fill;       /* bytes in block */
};

void rq_sha1_init(struct rq_sha1 *c);
void rq_sha1_update(struct rq_sha1 *c, const void *p, size_t len);
/* Writes the digest; the state must be re-initialised before reuse. */
void rq_sha1_final(struct rq_sha1 *c, uint8_t out[RQ_SHA1_LEN]);
/* One-shot digest of p[0..len). */
void rq_sha1(const void *p, size_t len, uint8_t out[RQ_SHA1_LEN]);

#endif
