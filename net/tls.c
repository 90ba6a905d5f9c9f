/* TLS on wolfSSL, driven from the connection's buffers (see tls.h). The I/O callbacks read the
 * ciphertext chunk the shard just received and append outgoing records to the shard's output
 * buffer; wolfSSL keeps partial records itself, so a chunk may end anywhere. This module does
 * not decide who is authenticated: it exposes the verified peer chain. */
#include "net/tls.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfio.h>

#include "net/metrics.h"
#include "net/tls_path.h"

#ifndef WOLFSSL_ALWAYS_VERIFY_CB
/* X.509 authentication reads the client's chain in the verify callback: tools/wolfssl/build.sh */
#error "ringmq needs wolfSSL built with WOLFSSL_ALWAYS_VERIFY_CB"
#endif
#ifdef WOLFSSL_ALT_CERT_CHAINS
/* It lets unverifiable CA certificates through the handshake: tools/wolfssl/build.sh */
#error "ringmq needs wolfSSL built without --enable-altcertchains"
#endif

#define MAX_PEER_CERTS RQ_TLS_PATH_MAX

/* The client's verified path (DER, leaf first, trust anchor last), or on ports without client
 * CAs the chain as presented: one allocation, made in the handshake. */
struct peer_chain {
    uint32_t n;
    bool verified;
    uint32_t off[MAX_PEER_CERTS + 1]; /* certificate i is der[off[i] .. off[i + 1]) */
    uint8_t der[];
};

struct rq_tls_ctx {
    WOLFSSL_CTX *ctx;
    struct rq_tls_anchors *anchors; /* the trusted client CAs; NULL: no client certificates */
    atomic_int refs;
};

struct rq_tls {
    WOLFSSL *ssl;
    struct rq_tls_ctx *ctx;
    const uint8_t *rx;   /* ciphertext not yet given to wolfSSL */
    size_t rx_len;
    struct rq_buf *wire; /* where records go during this call */
    bool established;
    bool wire_failed;
    struct peer_chain *chain; /* NULL: no client certificate (or not asked for one) */
    const char *path_why;     /* why the client's certificate was refused (static), or NULL */
    char why[200];
};

/* The presented certificate at depth failed only for want of a signer and is, byte for byte,
 * one of the trusted client CAs: a client sending leaf + intermediate where only the
 * intermediate is trusted. wolfSSL goes on to verify the leaf against it. */
static bool trusted_copy(const struct rq_tls *t, const WOLFSSL_X509_STORE_CTX *store)
{
    if (store->error != ASN_NO_SIGNER_E && store->error != ASN_SELF_SIGNED_E)
        return false;
    const WOLFSSL_BUFFER_INFO *c = &store->certs[store->error_depth];
    return rq_tls_anchors_has(t->ctx->anchors, c->buffer, c->length);
}

/* The certificates the client presented, leaf first (at most MAX_PEER_CERTS; pointers valid
 * during the verify callback only). */
static size_t presented_certs(const WOLFSSL_X509_STORE_CTX *store, struct rq_tls_der *out)
{
    size_t np = (size_t)store->totalCerts < MAX_PEER_CERTS ? (size_t)store->totalCerts
                                                            : MAX_PEER_CERTS;
    for (size_t i = 0; i < np; i++)
        out[i] = (struct rq_tls_der){store->certs[i].buffer, store->certs[i].length};
    return np;
}

/* Copies path[0..n) into t->chain. 0 or -1 with t->path_why set. */
static int copy_chain(struct rq_tls *t, const struct rq_tls_der *path, size_t n, bool verified)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += path[i].len;
    struct peer_chain *c = malloc(sizeof *c + total);
    if (!c) {
        t->path_why = "out of memory";
        return -1;
    }
    c->n = (uint32_t)n;
    c->verified = verified;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        c->off[i] = (uint32_t)off;
        memcpy(c->der + off, path[i].der, path[i].len);
        off += path[i].len;
    }
    c->off[n] = (uint32_t)off;
    t->chain = c;
    return 0;
}

/* Copies the verified path (leaf to trust anchor) of the presented certificates. 0 or -1 with
 * t->path_why set. */
static int keep_path(struct rq_tls *t, const WOLFSSL_X509_STORE_CTX *store)
{
    struct rq_tls_der presented[MAX_PEER_CERTS], path[MAX_PEER_CERTS];
    size_t np = presented_certs(store, presented);
    size_t n = rq_tls_path_build(t->ctx->anchors, presented, np, path, &t->path_why);
    if (n == 0)
        return -1;
    return copy_chain(t, path, n, true);
}

/* Verify callback: wolfSSL calls it for the client's leaf certificate once every presented
 * certificate has been verified (WOLFSSL_ALWAYS_VERIFY_CB), and on any verification error. The
 * certificates' buffers are valid only during the call. wolfSSL's verdict stands, with two
 * changes: a presented copy of a trust anchor needs no signer (trusted_copy), and a leaf whose
 * verified path cannot be rebuilt here (tls_path.h) is refused. */
static int keep_chain(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct rq_tls *t = store ? store->userCtx : NULL;
    if (!t || !store->certs || store->totalCerts <= store->error_depth || store->error_depth < 0)
        return preverify;
    if (store->error_depth > 0)
        return preverify || trusted_copy(t, store);
    if (!preverify || t->chain)
        return preverify;
    return keep_path(t, store) == 0;
}

/* Verify callback on ports without client CAs that ask for a certificate for Custom: whatever
 * wolfSSL thinks of the chain (it has no CA to verify it against), the handshake goes on and the
 * chain is kept as presented, for the auth server to judge. wolfSSL still checks that the
 * client holds the leaf's key (CertificateVerify). Called for each certificate that fails
 * verification and for the leaf (WOLFSSL_ALWAYS_VERIFY_CB); the leaf's call keeps the chain. */
static int keep_presented(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    (void)preverify;
    struct rq_tls *t = store ? store->userCtx : NULL;
    if (!t || !store->certs || store->totalCerts <= 0 || store->error_depth != 0 || t->chain)
        return 1;
    struct rq_tls_der presented[MAX_PEER_CERTS];
    return copy_chain(t, presented, presented_certs(store, presented), false) == 0;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct rq_tls *t = arg;
    if (t->rx_len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < t->rx_len ? (size_t)sz : t->rx_len;
    memcpy(buf, t->rx, n);
    t->rx += n;
    t->rx_len -= n;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct rq_tls *t = arg;
    if (!t->wire || rq_buf_append(t->wire, buf, (size_t)sz) != 0) {
        t->wire_failed = true;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    return sz;
}

static void lib_error(char *err, size_t errlen, const char *what, int code)
{
    char reason[80];
    wolfSSL_ERR_error_string_n((unsigned long)code, reason, sizeof reason);
    snprintf(err, errlen, "%s: %s (%d)", what, reason, code);
}

/* On ports that take client certificates: a resumed session presents no certificate, and every
 * connection's certificate (and its validity period) is to be checked. */
static void no_resumption(WOLFSSL_CTX *ctx)
{
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    wolfSSL_CTX_NoTicketTLSv12(ctx);
    wolfSSL_CTX_no_ticket_TLSv13(ctx);
}

struct rq_tls_ctx *rq_tls_ctx_new(const struct rq_tls_ctx_opts *o, char *err, size_t errlen)
{
    static atomic_int inited;
    if (atomic_exchange(&inited, 1) == 0)
        wolfSSL_Init();
    struct rq_tls_anchors *anchors = NULL;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context (out of memory?)");
        return NULL;
    }
    int rc = wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2);
    if (rc != WOLFSSL_SUCCESS) {
        lib_error(err, errlen, "TLS 1.2 minimum", rc);
        goto fail;
    }
    rc = wolfSSL_CTX_use_certificate_chain_buffer(ctx, o->cert_pem, (long)o->cert_len);
    if (rc != WOLFSSL_SUCCESS) {
        lib_error(err, errlen, "server certificate chain (tls.crt)", rc);
        goto fail;
    }
    rc = wolfSSL_CTX_use_PrivateKey_buffer(ctx, o->key_pem, (long)o->key_len,
                                           WOLFSSL_FILETYPE_PEM);
    if (rc != WOLFSSL_SUCCESS) {
        lib_error(err, errlen, "server private key (tls.key)", rc);
        goto fail;
    }
    rc = wolfSSL_CTX_check_private_key(ctx);
    if (rc != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "server private key (tls.key) does not match the certificate");
        goto fail;
    }
    if (o->ca_pem) {
        rc = wolfSSL_CTX_load_verify_buffer(ctx, o->ca_pem, (long)o->ca_len,
                                            WOLFSSL_FILETYPE_PEM);
        if (rc != WOLFSSL_SUCCESS) {
            lib_error(err, errlen, "trusted client CA certificates", rc);
            goto fail;
        }
        char why[200];
        if (!(anchors = rq_tls_anchors_new(o->ca_pem, o->ca_len, why, sizeof why))) {
            snprintf(err, errlen, "trusted client CA certificates: %s", why);
            goto fail;
        }
        /* With other methods on the port a client without a certificate still completes the
         * handshake and goes on to them. */
        int mode = WOLFSSL_VERIFY_PEER;
        if (o->require_client_cert)
            mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        wolfSSL_CTX_set_verify(ctx, mode, keep_chain);
        no_resumption(ctx);
    } else if (o->want_client_cert) {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, keep_presented);
        no_resumption(ctx);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    struct rq_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->ctx = ctx;
    c->anchors = anchors;
    atomic_init(&c->refs, 1);
    return c;
fail:
    rq_tls_anchors_free(anchors);
    wolfSSL_CTX_free(ctx);
    return NULL;
}

void rq_tls_ctx_ref(struct rq_tls_ctx *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void rq_tls_ctx_unref(struct rq_tls_ctx *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        wolfSSL_CTX_free(c->ctx);
        rq_tls_anchors_free(c->anchors);
        free(c);
    }
}

struct rq_tls *rq_tls_new(struct rq_tls_ctx *c)
{
    struct rq_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ssl = wolfSSL_new(c->ctx);
    if (!t->ssl) {
        free(t);
        return NULL;
    }
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    wolfSSL_SetCertCbCtx(t->ssl, t); /* keep_chain's store->userCtx */
    rq_tls_ctx_ref(c);
    t->ctx = c;
    return t;
}

void rq_tls_free(struct rq_tls *t)
{
    if (!t)
        return;
    wolfSSL_free(t->ssl);
    rq_tls_ctx_unref(t->ctx);
    free(t->chain);
    free(t);
}

static int fail(struct rq_tls *t, int ret, const char *what, const char **why)
{
    int e = wolfSSL_get_error(t->ssl, ret);
    char reason[80];
    wolfSSL_ERR_error_string_n((unsigned long)e, reason, sizeof reason);
    snprintf(t->why, sizeof t->why, "%s: %s (%d)%s%s", what,
             t->wire_failed ? "out of memory" : reason, e, t->path_why ? ": " : "",
             t->path_why ? t->path_why : "");
    *why = t->why;
    return -1;
}

int rq_tls_rx(struct rq_tls *t, const uint8_t *p, size_t len, struct rq_buf *app,
              struct rq_buf *wire, const char **why)
{
    t->rx = p;
    t->rx_len = len;
    t->wire = wire;
    int result = 0;
    if (!t->established) {
        int ret = wolfSSL_accept(t->ssl);
        if (ret != WOLFSSL_SUCCESS) {
            if (wolfSSL_get_error(t->ssl, ret) != WOLFSSL_ERROR_WANT_READ) {
                rq_metrics_tls_failure(t->ssl, wolfSSL_get_error(t->ssl, ret), p, len);
                result = fail(t, ret, "TLS handshake failed", why);
            }
            goto out;
        }
        t->established = true;
    }
    for (;;) {
        if (rq_buf_reserve(app, 16384) != 0) {
            *why = "out of memory";
            result = -1;
            break;
        }
        int n = wolfSSL_read(t->ssl, app->data + app->len, 16384);
        if (n > 0) {
            app->len += (size_t)n;
            continue;
        }
        int e = wolfSSL_get_error(t->ssl, n);
        if (e == WOLFSSL_ERROR_WANT_READ)
            break;
        if (e == WOLFSSL_ERROR_ZERO_RETURN) {
            *why = "TLS close_notify from the client";
            result = RQ_TLS_CLOSED;
            break;
        }
        result = fail(t, n, "TLS read failed", why);
        break;
    }
out:
    t->wire = NULL;
    t->rx = NULL;
    t->rx_len = 0;
    return result;
}

int rq_tls_tx(struct rq_tls *t, const uint8_t *p, size_t len, struct rq_buf *wire,
              const char **why)
{
    if (!t->established || len == 0)
        return 0;
    t->wire = wire;
    int result = 0;
    while (len) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = wolfSSL_write(t->ssl, p, chunk);
        if (n <= 0) {
            result = fail(t, n, "TLS write failed", why);
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    t->wire = NULL;
    return result;
}

bool rq_tls_established(const struct rq_tls *t)
{
    return t->established;
}

const char *rq_tls_describe(const struct rq_tls *t, char *buf, size_t len)
{
    const char *v = wolfSSL_get_version(t->ssl);
    const char *c = wolfSSL_get_cipher_name(t->ssl);
    snprintf(buf, len, "%s %s", v ? v : "?", c ? c : "?");
    return buf;
}

size_t rq_tls_peer_count(struct rq_tls *t)
{
    return t->chain ? t->chain->n : 0;
}

bool rq_tls_peer_der(struct rq_tls *t, size_t i, const uint8_t **der, size_t *len)
{
    if (!t->chain || i >= t->chain->n)
        return false;
    *der = t->chain->der + t->chain->off[i];
    *len = t->chain->off[i + 1] - t->chain->off[i];
    return true;
}

bool rq_tls_peer_verified(const struct rq_tls *t)
{
    return t->chain && t->chain->verified;
}
