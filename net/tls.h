/* TLS over the connection's own buffers: wolfSSL reads ciphertext handed to rq_tls_rx and writes
 * ciphertext into the caller's output buffer through custom I/O callbacks. It never touches the
 * socket, so handshakes and records travel the same io_uring recv/send path as plain TCP.
 * TLS 1.2 and 1.3 only.
 *
 * Threads: a context is created by the control thread and shared read-only by shards (wolfSSL
 * contexts are reference counted: a connection keeps the context it started with alive, so a
 * certificate reload swaps in a new context without touching connected clients). A connection's
 * rq_tls is used by its shard only. */
#ifndef RQ_TLS_H
#define RQ_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct rq_tls_ctx;
struct rq_tls;

struct rq_tls_ctx_opts {
    const uint8_t *cert_pem; /* server certificate chain: leaf first, then intermediates */
    size_t cert_len;
    const uint8_t *key_pem;
    size_t key_len;
    const uint8_t *ca_pem; /* trusted client CAs (PEM bundle); NULL: no client certificates */
    size_t ca_len;
    bool require_client_cert; /* X509 is the port's only method: no certificate, no handshake */
    /* The port's chain has Custom: ask for an optional client certificate so that Custom can
     * forward it. With ca_pem (X509 on the port too) it is verified as above; without, the
     * presented chain is kept as is, unverified (the auth server decides). */
    bool want_client_cert;
};

/* NULL on error with err set (which file/what is wrong; never key material). */
struct rq_tls_ctx *rq_tls_ctx_new(const struct rq_tls_ctx_opts *o, char *err, size_t errlen);
void rq_tls_ctx_ref(struct rq_tls_ctx *c);
void rq_tls_ctx_unref(struct rq_tls_ctx *c);

struct rq_tls *rq_tls_new(struct rq_tls_ctx *c);
void rq_tls_free(struct rq_tls *t);

#define RQ_TLS_CLOSED (-2) /* the peer closed the TLS session in order (close_notify) */

/* Ciphertext in; decrypted application bytes appended to app, handshake/alert records to wire.
 * Returns 0, RQ_TLS_CLOSED, or -1 when the connection must close (*why says why; static or
 * owned by t). */
int rq_tls_rx(struct rq_tls *t, const uint8_t *p, size_t len, struct rq_buf *app,
              struct rq_buf *wire, const char **why);
/* Application bytes in; records appended to wire. 0 or -1. */
int rq_tls_tx(struct rq_tls *t, const uint8_t *p, size_t len, struct rq_buf *wire,
              const char **why);
bool rq_tls_established(const struct rq_tls *t);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256" for logs. */
const char *rq_tls_describe(const struct rq_tls *t, char *buf, size_t len);

/* The client's certificates (DER), leaf first. On a port with trusted client CAs: the verified
 * path, each certificate's key having verified the one before it, ending with a trusted client
 * CA (net/tls_path.h); certificates the client presented that are not on this path are not
 * here. On a port without them that asked for a certificate (want_client_cert): the chain as
 * presented, at most RQ_TLS_PATH_MAX certificates, NOT verified (only the client's possession
 * of the leaf's key is, by the handshake). Empty without a client certificate. */
size_t rq_tls_peer_count(struct rq_tls *t);
bool rq_tls_peer_der(struct rq_tls *t, size_t i, const uint8_t **der, size_t *len);
/* True when the certificates above are a verified path (false without any). */
bool rq_tls_peer_verified(const struct rq_tls *t);

#endif
