/* ringbench TLS: OpenSSL client sessions driven by the epoll workers (rb_worker.c).
 *
 * Does: one client SSL_CTX (TLS 1.2 and 1.3, or one of them; server verification against
 * --cafile with the --sni name, or none; a client certificate for X.509 authentication), one
 * non-blocking SSL per connection, and the mapping of OpenSSL's results to RB_TLS_* with a
 * readable reason ("certificate verify failed (unable to get local issuer certificate)",
 * "tlsv13 alert certificate required").
 *
 * Batching, so that TLS costs the generator no more syscalls than plain TCP:
 *   - out: the write side of every SSL is a BIO that appends to a buffer of the connection. One
 *     SSL_write of many messages becomes many 16 KB records in that buffer, and the worker sends
 *     them with one send() (a socket BIO would make one write() per record);
 *   - in: the read side is a socket BIO with read-ahead and, for bulk connections, a 128 KB
 *     record buffer, so one read() fetches up to 128 KB of records; rb_tls_pending says when
 *     more is buffered, so the worker stops without a read() that would only say EAGAIN.
 *
 * Does not: resume sessions (every connection makes a full handshake, which is what a connect
 * storm measures), renegotiate, or look at the socket's readiness (the worker does). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rb_tls.h"

#define RB_TLS_READ_BULK (128u << 10) /* read-ahead buffer of subscribers and publishers */

static SSL_CTX *g_ctx;
static BIO_METHOD *g_out_method;
static const struct rb_opts *g_o;

/* ---------------------------------------------------------------------------------------- */
/* the output BIO: appends ciphertext to the connection's buffer */

static int out_write(BIO *bio, const char *data, int len)
{
    struct rq_buf *b = BIO_get_data(bio);
    if (len <= 0)
        return 0;
    if (rq_buf_append(b, data, (size_t)len) != 0)
        return -1;
    return len;
}

static long out_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* the worker sends; nothing else is supported */
}

static int out_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* errors */

/* The oldest queued OpenSSL error as text, with the verification result when that failed. */
static void describe_error(SSL *s, const char *what, char *err, size_t cap)
{
    unsigned long e = ERR_get_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    char code[32];
    if (e && !reason) {
        snprintf(code, sizeof code, "error %08lX", e);
        reason = code;
    }
    long vr = s ? SSL_get_verify_result(s) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(err, cap, "%s: %s (%s)", what, reason ? reason : "failed",
                 X509_verify_cert_error_string(vr));
    else
        snprintf(err, cap, "%s: %s", what, reason ? reason : "failed");
    ERR_clear_error();
}

static int map_result(SSL *s, int rc, const char *what, char *err, size_t cap)
{
    int saved = errno;
    switch (SSL_get_error(s, rc)) {
    case SSL_ERROR_WANT_READ: return RB_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return RB_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return RB_TLS_EOF;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (saved == 0)
                return RB_TLS_EOF;
            snprintf(err, cap, "%s: %s", what, strerror(saved));
            return RB_TLS_FAIL;
        }
        describe_error(s, what, err, cap);
        return RB_TLS_FAIL;
    default: describe_error(s, what, err, cap); return RB_TLS_FAIL;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* context */

int rb_tls_init(const struct rb_opts *o, char *err, size_t cap)
{
    g_o = o;
    g_ctx = SSL_CTX_new(TLS_client_method());
    g_out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringbench-out");
    if (!g_ctx || !g_out_method || !BIO_meth_set_write(g_out_method, out_write) ||
        !BIO_meth_set_ctrl(g_out_method, out_ctrl) ||
        !BIO_meth_set_create(g_out_method, out_create)) {
        describe_error(NULL, "TLS context", err, cap);
        return -1;
    }
    int lo = o->tls_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int hi = o->tls_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(g_ctx, lo);
    SSL_CTX_set_max_proto_version(g_ctx, hi);
    /* a full handshake per connection: no session cache, so no resumption */
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    /* a broker that closes without close_notify is "closed by the broker", as over TCP */
    SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(g_ctx, 1);
    if (o->cafile) {
        if (SSL_CTX_load_verify_locations(g_ctx, o->cafile, NULL) != 1) {
            describe_error(NULL, o->cafile, err, cap);
            return -1;
        }
        SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert) {
        if (SSL_CTX_use_certificate_chain_file(g_ctx, o->cert) != 1) {
            describe_error(NULL, o->cert, err, cap);
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(g_ctx, o->key, SSL_FILETYPE_PEM) != 1) {
            describe_error(NULL, o->key, err, cap);
            return -1;
        }
        if (SSL_CTX_check_private_key(g_ctx) != 1) {
            describe_error(NULL, "--key does not match --cert", err, cap);
            return -1;
        }
    }
    return 0;
}

void rb_tls_done(void)
{
    SSL_CTX_free(g_ctx);
    g_ctx = NULL;
    BIO_meth_free(g_out_method);
    g_out_method = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* sessions */

static bool is_ip(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

struct ssl_st *rb_tls_new(int fd, struct rq_buf *out, int kind, char *err, size_t cap)
{
    ERR_clear_error();
    SSL *s = SSL_new(g_ctx);
    BIO *rbio = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *wbio = BIO_new(g_out_method);
    if (!s || !rbio || !wbio) {
        describe_error(NULL, "TLS session", err, cap);
        SSL_free(s);
        BIO_free(rbio);
        BIO_free(wbio);
        return NULL;
    }
    BIO_set_data(wbio, out);
    SSL_set_bio(s, rbio, wbio); /* s owns both */
    if (kind == RB_TLS_BULK)
        SSL_set_default_read_buffer_len(s, RB_TLS_READ_BULK);
    else
        SSL_set_mode(s, SSL_MODE_RELEASE_BUFFERS); /* idle connections keep no record buffers */
    const char *name = g_o->sni;
    bool ip = is_ip(name);
    int ok = ip ? 1 : SSL_set_tlsext_host_name(s, name); /* SNI never carries an address */
    if (ok == 1 && g_o->cafile)
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name) : SSL_set1_host(s, name);
    if (ok != 1) {
        describe_error(NULL, "TLS server name", err, cap);
        SSL_free(s);
        return NULL;
    }
    SSL_set_connect_state(s);
    return s;
}

void rb_tls_free(struct ssl_st *s)
{
    SSL_free(s);
}

int rb_tls_handshake(struct ssl_st *s, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s);
    if (rc == 1)
        return 1;
    return map_result(s, rc, "TLS handshake", err, cap);
}

long rb_tls_read(struct ssl_st *s, void *buf, size_t n, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read(s, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (rc > 0)
        return rc;
    return map_result(s, rc, "TLS read", err, cap);
}

long rb_tls_write(struct ssl_st *s, const void *buf, size_t n, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write(s, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (rc > 0)
        return rc;
    return map_result(s, rc, "TLS write", err, cap);
}

bool rb_tls_pending(struct ssl_st *s)
{
    return SSL_has_pending(s) == 1;
}

void rb_tls_shutdown(struct ssl_st *s)
{
    ERR_clear_error();
    if (SSL_is_init_finished(s))
        (void)SSL_shutdown(s); /* close_notify goes into the output buffer; no wait for theirs */
    ERR_clear_error();
}

void rb_tls_describe(struct ssl_st *s, struct rb_tls_info *info)
{
    const char *cipher = SSL_get_cipher_name(s);
    int nid = (int)SSL_get_negotiated_group(s);
    const char *group = nid > 0 ? OBJ_nid2sn(nid) : NULL;
    snprintf(info->version, sizeof info->version, "%s", SSL_get_version(s));
    snprintf(info->cipher, sizeof info->cipher, "%s", cipher ? cipher : "?");
    snprintf(info->group, sizeof info->group, "%s", group ? group : "?");
}
