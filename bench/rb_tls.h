/* ringbench TLS: the client side of TLS 1.2 / 1.3 over OpenSSL, for the epoll workers.
 *
 * One SSL_CTX for the whole run (rb_tls_init, main thread, before the workers start); one SSL
 * per connection, created and used only by the worker that owns the connection. Ciphertext going
 * out is not written to the socket by OpenSSL: it is appended to a buffer the caller owns (one
 * per connection), which the worker sends with one send() per batch, as it does for plain TCP.
 * Ciphertext coming in is read by OpenSSL from the socket with read-ahead, so one read() fetches
 * many records. OpenSSL's types stay out of this header. */
#ifndef RB_TLS_H
#define RB_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "rb.h"

struct ssl_st; /* OpenSSL's SSL */

/* Results of the calls below besides a byte count (> 0) or 1 (handshake done). */
enum {
    RB_TLS_WANT_READ = -1,  /* wait for EPOLLIN, then call again */
    RB_TLS_WANT_WRITE = -2, /* wait for EPOLLOUT (does not happen with the buffered output) */
    RB_TLS_EOF = -3,        /* the peer closed the connection (close_notify or TCP FIN) */
    RB_TLS_FAIL = -4,       /* error: the text is in err */
};

enum { RB_TLS_BULK = 1, RB_TLS_IDLE = 2 }; /* rb_tls_new: big read-ahead, or small footprint */

/* Builds the client context from o->cafile, o->cert/o->key, o->tls_version. 0, or -1 with a
 * message in err. Main thread, once. */
int rb_tls_init(const struct rb_opts *o, char *err, size_t cap);
void rb_tls_done(void);

/* A client TLS session on connected socket fd; ciphertext to send is appended to *out (which
 * must stay at the same address while the session lives). NULL with a message in err. */
struct ssl_st *rb_tls_new(int fd, struct rq_buf *out, int kind, char *err, size_t cap);
void rb_tls_free(struct ssl_st *s);

/* 1 when the handshake is complete, else RB_TLS_*. */
int rb_tls_handshake(struct ssl_st *s, char *err, size_t cap);
/* Plaintext in: bytes read (> 0) or RB_TLS_*. */
long rb_tls_read(struct ssl_st *s, void *buf, size_t n, char *err, size_t cap);
/* Plaintext out: all n bytes are encrypted into the output buffer (returns n) or RB_TLS_*. */
long rb_tls_write(struct ssl_st *s, const void *buf, size_t n, char *err, size_t cap);
/* Whether OpenSSL holds input already read from the socket that rb_tls_read has not returned. */
bool rb_tls_pending(struct ssl_st *s);
/* Queues a close_notify alert in the output buffer. */
void rb_tls_shutdown(struct ssl_st *s);
/* What the handshake negotiated. */
void rb_tls_describe(struct ssl_st *s, struct rb_tls_info *info);

#endif
