/* net/autocert: the issuer behind tls.mode Automatic. Everything runs in a fresh mkdtemp
 * directory. Three independent judges check what it writes: openssl (verify, x509 -text,
 * -checkend; skipped loudly when openssl is missing), ringmq's strict DER reader
 * (auth/x509_der, which refuses non-minimal DER), and wolfSSL itself, as the broker's TLS
 * server in a real handshake with a wolfSSL client that trusts only ca.crt.
 * RSA 4096 (and 8192 where the wolfSSL build supports it) take seconds: one call each. */
#include "net/autocert.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "auth/pem.h"
#include "auth/x509_der.h"
#include "net/tls_lib.h"
#include "tests/unit/check.h"

#define DAY 86400
#define DURATION (90 * DAY)
#define RENEW (15 * DAY)

static char root[64]; /* mkdtemp */
static char dir[128]; /* root/data/sub: created by the module */
static bool have_openssl;
static int64_t t0; /* "now" of the first call */

static const char *pathf(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void spill(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Runs a shell command; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `openssl x509 -noout -text` of a file, as a string (caller frees). */
static char *x509_text(const char *path)
{
    char out[256];
    pathf(out, sizeof out, "%s/x509.txt", root);
    if (sh("openssl x509 -in '%s' -noout -text > '%s' 2>&1", path, out) != 0)
        return NULL;
    return slurp(out, NULL);
}

static struct rq_tls_auto spec_of(int alg, char **dns, size_t n_dns, char **ip, size_t n_ip)
{
    struct rq_tls_auto s = {
        .duration_s = DURATION,
        .renew_before_s = RENEW,
        .key_algorithm = alg,
        .rotation_policy = RQ_ROTATE_ALWAYS,
        .dns = dns,
        .n_dns = n_dns,
        .ip = ip,
        .n_ip = n_ip,
    };
    return s;
}

static char *std_dns[] = {"localhost", "broker.example"};
static char *std_ip[] = {"127.0.0.1", "::1"};

static struct rq_tls_auto std_spec(int alg)
{
    return spec_of(alg, std_dns, 2, std_ip, 2);
}

static int ensure(const char *d, const char *id, const struct rq_tls_auto *s, int64_t now,
                  struct rq_autocert *ac, char *err, size_t errlen)
{
    int rc = rq_autocert_ensure(d, id, s, now, ac, err, errlen);
    if (rc != 0)
        fprintf(stderr, "  (rq_autocert_ensure %s: %d %s)\n", id, rc, err);
    return rc;
}

/* The first certificate of a PEM text, parsed by the strict DER reader. */
static bool first_cert(const char *pem, size_t len, struct rq_x509_info *info)
{
    size_t off = 0, der_len;
    uint8_t *der;
    const char *why;
    if (rq_pem_next_cert(pem, len, &off, &der, &der_len, &why) != 1)
        return false;
    int rc = rq_x509_der_parse(der, der_len, info, &why);
    if (rc != 0)
        fprintf(stderr, "  (x509_der: %s)\n", why);
    free(der);
    return rc == 0;
}

static int count_certs(const char *pem)
{
    int n = 0;
    for (const char *p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")); p++)
        n++;
    return n;
}

/* ---- a TLS handshake in memory: wolfSSL server with the issued chain, wolfSSL client that
 * trusts only ca.crt and checks the host name. ---- */

struct pipe {
    unsigned char b[1 << 16];
    size_t len;
};
struct end {
    struct pipe *in, *out;
};

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct end *e = ctx;
    (void)ssl;
    if (e->in->len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = e->in->len < (size_t)sz ? e->in->len : (size_t)sz;
    memcpy(buf, e->in->b, n);
    memmove(e->in->b, e->in->b + n, e->in->len - n);
    e->in->len -= n;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct end *e = ctx;
    (void)ssl;
    if (e->out->len + (size_t)sz > sizeof e->out->b)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    memcpy(e->out->b + e->out->len, buf, (size_t)sz);
    e->out->len += (size_t)sz;
    return sz;
}

static bool would_block(WOLFSSL *ssl, int rc)
{
    int e = wolfSSL_get_error(ssl, rc);
    return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

/* The client's clock during check_tls: the "now" the certificate was issued for. */
static int64_t fake_now;
static time_t fake_time(time_t *t)
{
    if (t)
        *t = (time_t)fake_now;
    return (time_t)fake_now;
}

/* Loads the chain and key as the broker does, then completes a handshake at time `at`. */
static void check_tls_at(const struct rq_autocert *ac, const char *host, int64_t at,
                         const char *what)
{
    static struct pipe c2s, s2c;
    struct end srv = {&c2s, &s2c}, cli = {&s2c, &c2s};
    c2s.len = s2c.len = 0;
    CHECK_EQ(rq_tls_lib_init(), 0);
    fake_now = at;
    wc_SetTimeCb(fake_time);
    WOLFSSL_CTX *sctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    CHECK(sctx && cctx);
    if (!sctx || !cctx)
        return;
    int chain = wolfSSL_CTX_use_certificate_chain_buffer(sctx, (const unsigned char *)ac->cert_pem,
                                                         (long)ac->cert_len);
    int key = wolfSSL_CTX_use_PrivateKey_buffer(sctx, (const unsigned char *)ac->key_pem,
                                                (long)ac->key_len, WOLFSSL_FILETYPE_PEM);
    int match = wolfSSL_CTX_check_private_key(sctx);
    int trust = wolfSSL_CTX_load_verify_locations(cctx, ac->ca_path, NULL);
    CHECK_EQ(chain, WOLFSSL_SUCCESS);
    CHECK_EQ(key, WOLFSSL_SUCCESS);
    CHECK_EQ(match, WOLFSSL_SUCCESS);
    CHECK_EQ(trust, WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(cctx, WOLFSSL_VERIFY_PEER, NULL);
    wolfSSL_CTX_SetIORecv(sctx, io_recv);
    wolfSSL_CTX_SetIOSend(sctx, io_send);
    wolfSSL_CTX_SetIORecv(cctx, io_recv);
    wolfSSL_CTX_SetIOSend(cctx, io_send);
    WOLFSSL *s = wolfSSL_new(sctx), *c = wolfSSL_new(cctx);
    CHECK(s && c);
    bool done = false, failed = !s || !c;
    if (!failed) {
        wolfSSL_SetIOReadCtx(s, &srv);
        wolfSSL_SetIOWriteCtx(s, &srv);
        wolfSSL_SetIOReadCtx(c, &cli);
        wolfSSL_SetIOWriteCtx(c, &cli);
        CHECK_EQ(wolfSSL_check_domain_name(c, host), WOLFSSL_SUCCESS);
    }
    bool c_ok = false, s_ok = false;
    for (int i = 0; i < 50 && !failed && !done; i++) {
        if (!c_ok) {
            int rc = wolfSSL_connect(c);
            c_ok = rc == WOLFSSL_SUCCESS;
            if (!c_ok && !would_block(c, rc)) {
                fprintf(stderr, "  (%s: client: %s)\n", what,
                        wolfSSL_ERR_reason_error_string((unsigned long)wolfSSL_get_error(c, rc)));
                failed = true;
            }
        }
        if (!s_ok && !failed) {
            int rc = wolfSSL_accept(s);
            s_ok = rc == WOLFSSL_SUCCESS;
            if (!s_ok && !would_block(s, rc)) {
                fprintf(stderr, "  (%s: server: %s)\n", what,
                        wolfSSL_ERR_reason_error_string((unsigned long)wolfSSL_get_error(s, rc)));
                failed = true;
            }
        }
        done = c_ok && s_ok;
    }
    if (!done)
        fprintf(stderr, "  (%s: no TLS handshake with host %s)\n", what, host);
    CHECK(done);
    wolfSSL_free(s);
    wolfSSL_free(c);
    wolfSSL_CTX_free(sctx);
    wolfSSL_CTX_free(cctx);
    wc_SetTimeCb(NULL);
}

static void check_tls(const struct rq_autocert *ac, const char *host, const char *what)
{
    check_tls_at(ac, host, t0, what);
}

static void check_openssl_verify_at(const char *d, const char *id, int64_t at)
{
    if (!have_openssl)
        return;
    char ca[256], crt[256];
    pathf(ca, sizeof ca, "%s/ca.crt", d);
    pathf(crt, sizeof crt, "%s/%s.crt", d, id);
    int rc = sh("openssl verify -x509_strict -purpose sslserver -attime %lld -CAfile '%s' '%s' "
                ">/dev/null 2>&1",
                (long long)at, ca, crt);
    if (rc != 0)
        fprintf(stderr, "  (openssl verify %s failed)\n", crt);
    CHECK_EQ(rc, 0);
}

static void check_openssl_verify(const char *d, const char *id)
{
    check_openssl_verify_at(d, id, t0);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_first_issue(void)
{
    struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
    struct rq_autocert ac;
    char err[600], p[256];
    CHECK_EQ(ensure(dir, "default-8883", &s, t0, &ac, err, sizeof err), 0);
    CHECK(ac.issued);
    CHECK_STR(ac.why_issued, "no certificate yet");
    CHECK_EQ(ac.not_after, t0 + DURATION);
    CHECK_EQ(ac.renew_at, t0 + DURATION - RENEW);
    CHECK_STR(ac.ca_path, pathf(p, sizeof p, "%s/ca.crt", dir));
    CHECK_EQ(strlen(ac.serial), 32);
    CHECK_EQ(count_certs(ac.cert_pem), 2);
    CHECK(strncmp(ac.key_pem, "-----BEGIN EC PRIVATE KEY-----", 30) == 0);

    /* Files and modes; the data directory was created 0700 (with its parent). */
    CHECK_EQ(mode_of(dir), 0700);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/data", root)), 0700);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/ca.crt", dir)), 0644);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/ca-ec.crt", dir)), 0644);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/ca-ec.key", dir)), 0600);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/default-8883.crt", dir)), 0644);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/default-8883.key", dir)), 0600);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/default-8883.crt.tmp", dir)), -1);

    /* The files hold what was returned: leaf then CA; the CA is ca-ec.crt. */
    char *crt = slurp(pathf(p, sizeof p, "%s/default-8883.crt", dir), NULL);
    char *key = slurp(pathf(p, sizeof p, "%s/default-8883.key", dir), NULL);
    char *ca = slurp(pathf(p, sizeof p, "%s/ca.crt", dir), NULL);
    CHECK(crt && key && ca);
    if (crt && key && ca) {
        CHECK_STR(crt, ac.cert_pem);
        CHECK_STR(key, ac.key_pem);
        CHECK(strstr(ac.cert_pem, ca) != NULL);
    }
    free(crt);
    free(key);
    free(ca);

    /* The strict DER reader accepts leaf and CA; same key family; CA flag only on the CA. */
    struct rq_x509_info leaf, cai;
    const char *ca_pem = strstr(ac.cert_pem + 1, "-----BEGIN CERTIFICATE-----");
    CHECK(first_cert(ac.cert_pem, ac.cert_len, &leaf));
    CHECK(ca_pem && first_cert(ca_pem, strlen(ca_pem), &cai));
    CHECK_STR(rq_x509_key_alg_name(&leaf), "EC P-256");
    CHECK_STR(rq_x509_key_alg_name(&cai), "EC P-256");
    CHECK(rq_x509_same_key_alg(&leaf, &cai));
    CHECK(!leaf.ca && cai.ca && cai.path_len == 0);
    CHECK_EQ(leaf.not_before, t0 - 300);
    CHECK_EQ(leaf.not_after, t0 + DURATION);
    const struct rq_x509_atv *cn = rq_x509_name_find(&leaf.subject, "CN");
    CHECK(cn && strcmp(cn->value, "localhost") == 0);
    cn = rq_x509_name_find(&cai.subject, "CN");
    CHECK(cn && strcmp(cn->value, "ringmq local CA") == 0);
    rq_x509_info_free(&leaf);
    rq_x509_info_free(&cai);

    check_openssl_verify(dir, "default-8883");
    char *text = have_openssl ? x509_text(pathf(p, sizeof p, "%s/default-8883.crt", dir)) : NULL;
    if (have_openssl) {
        CHECK(text != NULL);
        CHECK(text && strstr(text, "DNS:localhost, DNS:broker.example, IP Address:127.0.0.1, "
                                   "IP Address:0:0:0:0:0:0:0:1"));
        CHECK(text && strstr(text, "TLS Web Server Authentication"));
        CHECK(text && strstr(text, "Key Usage: critical\n                Digital Signature\n"));
        CHECK(text && strstr(text, "Basic Constraints: critical\n                CA:FALSE"));
        CHECK(text && strstr(text, "Subject: CN = localhost"));
        CHECK(text && strstr(text, "Issuer: CN = ringmq local CA"));
        free(text);
        text = x509_text(ac.ca_path);
        CHECK(text && strstr(text, "Basic Constraints: critical\n                CA:TRUE"));
        CHECK(text &&
              strstr(text, "Key Usage: critical\n                Certificate Sign, CRL Sign"));
        CHECK(text && strstr(text, "Subject Key Identifier"));
        free(text);
        /* Validity ~ duration: valid for DURATION - 1 h more, not for DURATION + 1 h. The
         * file was issued for "now" = t0, which is the wall clock here. */
        pathf(p, sizeof p, "%s/default-8883.crt", dir);
        CHECK_EQ(sh("openssl x509 -in '%s' -noout -checkend %d >/dev/null", p, DURATION - 3600), 0);
        CHECK_EQ(sh("openssl x509 -in '%s' -noout -checkend %d >/dev/null", p, DURATION + 3600), 1);
    }
    check_tls(&ac, "broker.example", "Ec256");
    check_tls(&ac, "localhost", "Ec256");
    rq_autocert_free(&ac);
}

static double ms_since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Every privateKey.algorithm: the key it names, signed by the CA of its family; the chain
 * verifies against the shared ca.crt (which now holds three CAs) in openssl and wolfSSL. */
static void test_algorithms(void)
{
    static const struct {
        int alg;
        const char *id, *x509_name, *openssl_key, *openssl_sig;
    } cases[] = {
        {RQ_KEY_EC256, "alg-ec256", "EC P-256", "NIST CURVE: P-256", "ecdsa-with-SHA256"},
        {RQ_KEY_EC384, "alg-ec384", "EC P-384", "NIST CURVE: P-384", "ecdsa-with-SHA256"},
        {RQ_KEY_EC521, "alg-ec521", "EC P-521", "NIST CURVE: P-521", "ecdsa-with-SHA256"},
        {RQ_KEY_ED25519, "alg-ed25519", "Ed25519", "Public Key Algorithm: ED25519", "ED25519"},
        {RQ_KEY_RSA2048, "alg-rsa2048", "RSA 2048", "Public-Key: (2048 bit)",
         "sha256WithRSAEncryption"},
        {RQ_KEY_RSA4096, "alg-rsa4096", "RSA 4096", "Public-Key: (4096 bit)",
         "sha256WithRSAEncryption"},
        {RQ_KEY_RSA8192, "alg-rsa8192", "RSA 8192", "Public-Key: (8192 bit)",
         "sha256WithRSAEncryption"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rq_tls_auto s = std_spec(cases[i].alg);
        struct rq_autocert ac;
        char err[600], p[256];
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int rc = rq_autocert_ensure(dir, cases[i].id, &s, t0, &ac, err, sizeof err);
        double ms = ms_since(&t);
        if (cases[i].alg == RQ_KEY_RSA8192 && RSA_MAX_SIZE < 8192) {
            /* This wolfSSL cannot make (or serve) such a key: a clear error, nothing written. */
            fprintf(stderr,
                    "test_autocert: RSA 8192 unsupported by this wolfSSL (RSA_MAX_SIZE "
                    "%d): expecting the error\n",
                    (int)RSA_MAX_SIZE);
            CHECK_EQ(rc, -EINVAL);
            CHECK(strstr(err, "RSA 8192") && strstr(err, "up to 4096 bits"));
            CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/%s.crt", dir, cases[i].id)), -1);
            continue;
        }
        CHECK_EQ(rc, 0);
        if (rc != 0)
            continue;
        fprintf(stderr, "test_autocert: %-8s issued in %7.1f ms\n", cases[i].x509_name, ms);
        struct rq_x509_info leaf;
        CHECK(first_cert(ac.cert_pem, ac.cert_len, &leaf));
        CHECK_STR(rq_x509_key_alg_name(&leaf), cases[i].x509_name);
        rq_x509_info_free(&leaf);
        check_openssl_verify(dir, cases[i].id);
        char *text =
            have_openssl ? x509_text(pathf(p, sizeof p, "%s/%s.crt", dir, cases[i].id)) : NULL;
        if (have_openssl) {
            CHECK(text && strstr(text, cases[i].openssl_key));
            CHECK(text && strstr(text, cases[i].openssl_sig));
            CHECK(text && strstr(text, "IP Address:127.0.0.1"));
            bool rsa = strncmp(cases[i].id, "alg-rsa", 7) == 0;
            CHECK(text && (strstr(text, "Digital Signature, Key Encipherment") != NULL) == rsa);
        }
        free(text);
        check_tls(&ac, "broker.example", cases[i].id);
        rq_autocert_free(&ac);
    }
    /* One CA per family, all in ca.crt. */
    char p[256];
    char *bundle = slurp(pathf(p, sizeof p, "%s/ca.crt", dir), NULL);
    CHECK(bundle && count_certs(bundle) == 3);
    free(bundle);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/ca-rsa.key", dir)), 0600);
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/ca-ed25519.key", dir)), 0600);
}

/* A later call keeps the certificate until the renewal window, then issues a new one from the
 * same CA; rotationPolicy decides whether the key changes. */
static void test_reuse_and_renewal(void)
{
    struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
    struct rq_autocert a, b, c;
    char err[600], p[256];
    CHECK_EQ(ensure(dir, "default-8883", &s, t0 + 60, &a, err, sizeof err), 0);
    CHECK(!a.issued && a.why_issued == NULL);
    char *ca_before = slurp(pathf(p, sizeof p, "%s/ca.crt", dir), NULL);

    /* Just before renew_at: still kept. */
    CHECK_EQ(ensure(dir, "default-8883", &s, a.renew_at - 1, &b, err, sizeof err), 0);
    CHECK(!b.issued);
    CHECK_STR(b.serial, a.serial);
    CHECK_STR(b.cert_pem, a.cert_pem);
    CHECK_STR(b.key_pem, a.key_pem);
    rq_autocert_free(&b);

    /* In the window: a new certificate and (Always) a new key, same CA. */
    int64_t later = a.renew_at + 10;
    CHECK_EQ(ensure(dir, "default-8883", &s, later, &b, err, sizeof err), 0);
    CHECK(b.issued);
    CHECK_STR(b.why_issued, "renewal is due");
    CHECK(strcmp(b.serial, a.serial) != 0);
    CHECK(strcmp(b.key_pem, a.key_pem) != 0);
    CHECK_EQ(b.not_after, later + DURATION);
    CHECK_EQ(b.renew_at, later + DURATION - RENEW);
    char *ca_after = slurp(pathf(p, sizeof p, "%s/ca.crt", dir), NULL);
    CHECK(ca_before && ca_after && strcmp(ca_before, ca_after) == 0);
    free(ca_before);
    free(ca_after);
    check_openssl_verify_at(dir, "default-8883", later);
    check_tls_at(&b, "localhost", later, "renewed");

    /* Kept again at the same "later". */
    CHECK_EQ(ensure(dir, "default-8883", &s, later + 1, &c, err, sizeof err), 0);
    CHECK(!c.issued);
    CHECK_STR(c.serial, b.serial);
    rq_autocert_free(&c);

    /* rotationPolicy Never: the next renewal keeps the key. */
    s.rotation_policy = RQ_ROTATE_NEVER;
    CHECK_EQ(ensure(dir, "default-8883", &s, b.renew_at + 10, &c, err, sizeof err), 0);
    CHECK(c.issued);
    CHECK(strcmp(c.serial, b.serial) != 0);
    CHECK_STR(c.key_pem, b.key_pem);
    check_tls_at(&c, "localhost", b.renew_at + 10, "renewed, same key");
    rq_autocert_free(&a);
    rq_autocert_free(&b);
    rq_autocert_free(&c);
}

/* What the spec asks for changed: SANs, algorithm, duration. Reordering is no change. */
static void test_spec_changes(void)
{
    char *dns2[] = {"localhost", "broker.example", "mqtt.example.org"};
    char *dns_swapped[] = {"broker.example", "localhost"};
    char *ip_swapped[] = {"::1", "127.0.0.1"};
    char err[600], p[256];
    struct rq_autocert a, b;
    struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
    CHECK_EQ(ensure(dir, "spec", &s, t0, &a, err, sizeof err), 0);

    s = spec_of(RQ_KEY_EC256, dns_swapped, 2, ip_swapped, 2);
    CHECK_EQ(ensure(dir, "spec", &s, t0, &b, err, sizeof err), 0);
    CHECK(!b.issued);
    rq_autocert_free(&b);

    s = spec_of(RQ_KEY_EC256, dns2, 3, std_ip, 2);
    CHECK_EQ(ensure(dir, "spec", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued && strcmp(b.why_issued, "the SANs changed") == 0);
    CHECK(strcmp(b.serial, a.serial) != 0);
    char *text = have_openssl ? x509_text(pathf(p, sizeof p, "%s/spec.crt", dir)) : NULL;
    CHECK(!have_openssl || (text && strstr(text, "DNS:mqtt.example.org")));
    free(text);
    check_tls(&b, "mqtt.example.org", "new SAN");
    rq_autocert_free(&b);

    s = spec_of(RQ_KEY_EC256, dns2, 3, std_ip, 1); /* an IP dropped */
    CHECK_EQ(ensure(dir, "spec", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued && strcmp(b.why_issued, "the SANs changed") == 0);
    rq_autocert_free(&b);

    /* Another algorithm: a new key even with rotationPolicy Never. */
    s.key_algorithm = RQ_KEY_EC384;
    s.rotation_policy = RQ_ROTATE_NEVER;
    CHECK_EQ(ensure(dir, "spec", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued &&
          strcmp(b.why_issued, "the key is missing, unreadable or of another algorithm") == 0);
    struct rq_x509_info leaf;
    CHECK(first_cert(b.cert_pem, b.cert_len, &leaf));
    CHECK_STR(rq_x509_key_alg_name(&leaf), "EC P-384");
    rq_x509_info_free(&leaf);
    rq_autocert_free(&b);

    /* Another family for the same name: the RSA CA signs it now. */
    s.key_algorithm = RQ_KEY_RSA2048;
    CHECK_EQ(ensure(dir, "spec", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued);
    check_openssl_verify(dir, "spec");
    check_tls(&b, "localhost", "family change");
    rq_autocert_free(&b);

    s.duration_s = 30 * DAY;
    CHECK_EQ(ensure(dir, "spec", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued && strcmp(b.why_issued, "the duration changed") == 0);
    CHECK_EQ(b.not_after, t0 + 30 * DAY);
    rq_autocert_free(&b);
    rq_autocert_free(&a);
}

/* Damaged server files are replaced; damaged CA files are errors that name the file. */
static void test_damage(void)
{
    char d[160], err[600], p[256], q[256];
    struct rq_autocert a, b;
    struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
    pathf(d, sizeof d, "%s/damage", root);
    CHECK_EQ(ensure(d, "one", &s, t0, &a, err, sizeof err), 0);

    spill(pathf(p, sizeof p, "%s/one.crt", d), "-----BEGIN CERTIFICATE-----\nAAAA\n");
    CHECK_EQ(ensure(d, "one", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued &&
          strcmp(b.why_issued, "the certificate file is unreadable") == 0);
    CHECK(strcmp(b.serial, a.serial) != 0);
    check_openssl_verify(d, "one");
    rq_autocert_free(&b);

    /* Another valid key of the same algorithm in one.key. */
    struct rq_autocert other;
    CHECK_EQ(ensure(d, "two", &s, t0, &other, err, sizeof err), 0);
    spill(pathf(p, sizeof p, "%s/one.key", d), other.key_pem);
    s.rotation_policy = RQ_ROTATE_NEVER;
    CHECK_EQ(ensure(d, "one", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued &&
          strcmp(b.why_issued, "the key does not belong to the certificate") == 0);
    CHECK_STR(b.key_pem, other.key_pem); /* Never: the (usable) key on disk is kept */
    check_tls(&b, "localhost", "after key swap");
    rq_autocert_free(&b);

    /* A garbage key file: a new key. */
    spill(pathf(p, sizeof p, "%s/one.key", d), "garbage\n");
    CHECK_EQ(ensure(d, "one", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && strncmp(b.key_pem, "-----BEGIN EC PRIVATE KEY-----", 30) == 0);
    check_tls(&b, "localhost", "after garbage key");
    rq_autocert_free(&b);

    /* A leaf signed by another CA (from another directory) is replaced. */
    char d2[160];
    struct rq_autocert foreign;
    pathf(d2, sizeof d2, "%s/foreign", root);
    CHECK_EQ(ensure(d2, "one", &s, t0, &foreign, err, sizeof err), 0);
    spill(pathf(p, sizeof p, "%s/one.crt", d), foreign.cert_pem);
    spill(pathf(p, sizeof p, "%s/one.key", d), foreign.key_pem);
    CHECK_EQ(ensure(d, "one", &s, t0, &b, err, sizeof err), 0);
    CHECK(b.issued && b.why_issued && strcmp(b.why_issued, "not signed by the current CA") == 0);
    check_openssl_verify(d, "one");
    rq_autocert_free(&b);

    /* CA key garbage: an error naming it, nothing replaced. */
    char *ca_key = slurp(pathf(q, sizeof q, "%s/ca-ec.key", d), NULL);
    char *ca_crt = slurp(pathf(p, sizeof p, "%s/ca-ec.crt", d), NULL);
    spill(q, "-----BEGIN EC PRIVATE KEY-----\nbroken\n-----END EC PRIVATE KEY-----\n");
    memset(&b, 0x5a, sizeof b);
    err[0] = '\0';
    CHECK_EQ(rq_autocert_ensure(d, "one", &s, t0, &b, err, sizeof err), -EIO);
    CHECK(strstr(err, q) == err); /* starts with the path */
    CHECK(strstr(err, "not an EC private key") || strstr(err, "not a PEM private key"));
    CHECK(b.cert_pem == NULL && b.key_pem == NULL && !b.issued);
    char *now_crt = slurp(p, NULL);
    CHECK(now_crt && ca_crt && strcmp(now_crt, ca_crt) == 0);
    free(now_crt);

    /* Another EC key in its place: the CA certificate does not match it. */
    spill(q, other.key_pem);
    CHECK_EQ(rq_autocert_ensure(d, "one", &s, t0, &b, err, sizeof err), -EIO);
    CHECK(strstr(err, p) == err && strstr(err, "not the CA certificate of the key next to it"));

    /* The key missing while the certificate exists. */
    unlink(q);
    CHECK_EQ(rq_autocert_ensure(d, "one", &s, t0, &b, err, sizeof err), -EIO);
    CHECK(strstr(err, q) == err && strstr(err, "missing"));

    /* The key back, its certificate gone (a crash between the two writes): the certificate is
     * re-issued for the same key, so leaves it signed still verify. */
    spill(q, ca_key);
    unlink(p);
    CHECK_EQ(ensure(d, "one", &s, t0, &b, err, sizeof err), 0);
    CHECK(!b.issued);
    check_openssl_verify(d, "one");
    rq_autocert_free(&b);
    free(ca_key);
    free(ca_crt);
    rq_autocert_free(&a);
    rq_autocert_free(&other);
    rq_autocert_free(&foreign);
}

/* The CA lives 10 years; a server certificate never outlives it, and an ageing CA is an error
 * rather than a renewal loop. */
static void test_ca_lifetime(void)
{
    char d[160], err[600], p[256];
    struct rq_autocert a;
    struct rq_tls_auto s = std_spec(RQ_KEY_ED25519);
    pathf(d, sizeof d, "%s/ageing", root);
    CHECK_EQ(ensure(d, "x", &s, t0, &a, err, sizeof err), 0);
    rq_autocert_free(&a);
    size_t len;
    char *pem = slurp(pathf(p, sizeof p, "%s/ca-ed25519.crt", d), &len);
    struct rq_x509_info ca;
    CHECK(pem && first_cert(pem, len, &ca));
    free(pem);
    CHECK_EQ(ca.not_before, t0 - 300);
    CHECK(ca.not_after - t0 >= 3652LL * DAY && ca.not_after - t0 <= 3653LL * DAY);

    int64_t late = ca.not_after - 30 * DAY; /* 30 days left, duration 90 */
    CHECK_EQ(ensure(d, "x", &s, late, &a, err, sizeof err), 0);
    CHECK(a.issued);
    CHECK_EQ(a.not_after, ca.not_after);
    CHECK_EQ(a.renew_at, ca.not_after - RENEW);
    check_openssl_verify_at(d, "x", late);
    check_tls_at(&a, "localhost", late, "clamped to the CA");
    rq_autocert_free(&a);
    CHECK_EQ(ensure(d, "x", &s, late + DAY, &a, err, sizeof err), 0);
    CHECK(!a.issued); /* clamped, not "the duration changed" every time */
    rq_autocert_free(&a);

    CHECK_EQ(rq_autocert_ensure(d, "x", &s, ca.not_after - RENEW, &a, err, sizeof err), -EIO);
    CHECK(strstr(err, pathf(p, sizeof p, "%s/ca-ed25519.crt", d)) == err);
    CHECK(strstr(err, "expiring"));
    rq_x509_info_free(&ca);
}

/* Two processes issuing into one fresh directory at once: the lock file serialises them, so
 * there is one CA and the second process keeps the first one's certificate. */
static void test_concurrent(void)
{
    char d[160], p[256];
    pathf(d, sizeof d, "%s/race", root);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
            struct rq_autocert a;
            char err[600], out[256];
            int rc = rq_autocert_ensure(d, "same", &s, t0, &a, err, sizeof err);
            FILE *f = rc == 0 ? fopen(pathf(out, sizeof out, "%s/serial-%d", root, i), "w") : NULL;
            if (f) {
                fputs(a.serial, f);
                fclose(f);
            }
            rq_autocert_free(&a);
            _exit(f ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int st = -1;
        CHECK(pids[i] > 0 && waitpid(pids[i], &st, 0) == pids[i]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    char *s0 = slurp(pathf(p, sizeof p, "%s/serial-0", root), NULL);
    char *s1 = slurp(pathf(p, sizeof p, "%s/serial-1", root), NULL);
    CHECK(s0 && s1 && strlen(s0) == 32 && strcmp(s0, s1) == 0);
    free(s0);
    free(s1);
    char *bundle = slurp(pathf(p, sizeof p, "%s/ca.crt", d), NULL);
    CHECK(bundle && count_certs(bundle) == 1);
    free(bundle);
    check_openssl_verify(d, "same");
}

/* Times from 2050 on are GeneralizedTime (RFC 5280 4.1.2.5): a CA made in 2045 ends in 2055. */
static void test_far_future(void)
{
    char d[160], err[600], p[256];
    struct rq_autocert a;
    struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
    const int64_t y2045 = 2366841600LL; /* 2045-01-01T00:00:00Z */
    pathf(d, sizeof d, "%s/future", root);
    CHECK_EQ(ensure(d, "x", &s, y2045, &a, err, sizeof err), 0);
    size_t len;
    char *pem = slurp(pathf(p, sizeof p, "%s/ca-ec.crt", d), &len);
    struct rq_x509_info ca;
    CHECK(pem && first_cert(pem, len, &ca));
    CHECK_EQ(ca.not_after, y2045 + 3653LL * DAY);
    rq_x509_info_free(&ca);
    free(pem);
    check_openssl_verify_at(d, "x", y2045);
    check_tls_at(&a, "localhost", y2045, "2045");
    char *text = have_openssl ? x509_text(p) : NULL;
    CHECK(!have_openssl || (text && strstr(text, "Not After : Jan  2 00:00:00 2055 GMT")));
    free(text);
    rq_autocert_free(&a);
    CHECK_EQ(ensure(d, "x", &s, y2045 + DAY, &a, err, sizeof err), 0);
    CHECK(!a.issued); /* the 2055 GeneralizedTime read back */
    rq_autocert_free(&a);
}

static void test_bad_arguments(void)
{
    char err[600], p[256];
    struct rq_autocert a;
    struct rq_tls_auto s = std_spec(RQ_KEY_EC256);
    static const char *const bad_ids[] = {"",      ".hidden", "../x",       "a/b",   "ca",
                                          "ca-ec", "ca-rsa",  "ca-ed25519", "sp ace"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        CHECK_EQ(rq_autocert_ensure(dir, bad_ids[i], &s, t0, &a, err, sizeof err), -EINVAL);
        CHECK(strstr(err, "certificate name"));
    }
    CHECK_EQ(ensure(dir, "ca-other", &s, t0, &a, err, sizeof err), 0); /* only those four */
    rq_autocert_free(&a);

    struct rq_tls_auto bad = s;
    bad.renew_before_s = bad.duration_s;
    CHECK_EQ(rq_autocert_ensure(dir, "x", &bad, t0, &a, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "renewBefore"));
    bad = s;
    bad.key_algorithm = 99;
    CHECK_EQ(rq_autocert_ensure(dir, "x", &bad, t0, &a, err, sizeof err), -EINVAL);
    char *bad_ip[] = {"300.1.1.1"};
    bad = spec_of(RQ_KEY_EC256, std_dns, 2, bad_ip, 1);
    CHECK_EQ(rq_autocert_ensure(dir, "x", &bad, t0, &a, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "300.1.1.1"));
    char *bad_dns[] = {"bad name"};
    bad = spec_of(RQ_KEY_EC256, bad_dns, 1, NULL, 0);
    CHECK_EQ(rq_autocert_ensure(dir, "x", &bad, t0, &a, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "bad name"));
    CHECK_EQ(mode_of(pathf(p, sizeof p, "%s/x.crt", dir)), -1);

    char longdir[500];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = '\0';
    CHECK_EQ(rq_autocert_ensure(longdir, "x", &s, t0, &a, err, sizeof err), -ENAMETOOLONG);

    /* The data directory is a file. */
    pathf(p, sizeof p, "%s/plainfile", root);
    spill(p, "x");
    CHECK(rq_autocert_ensure(p, "x", &s, t0, &a, err, sizeof err) < 0);
    CHECK(strstr(err, p) != NULL);

    /* No SANs at all (a hand-built spec): CN localhost and no SAN extension. */
    bad = spec_of(RQ_KEY_EC256, NULL, 0, NULL, 0);
    CHECK_EQ(ensure(dir, "nosans", &bad, t0, &a, err, sizeof err), 0);
    struct rq_x509_info leaf;
    CHECK(first_cert(a.cert_pem, a.cert_len, &leaf));
    const struct rq_x509_atv *cn = rq_x509_name_find(&leaf.subject, "CN");
    CHECK(cn && strcmp(cn->value, "localhost") == 0);
    rq_x509_info_free(&leaf);
    rq_autocert_free(&a);
    CHECK_EQ(ensure(dir, "nosans", &bad, t0, &a, err, sizeof err), 0);
    CHECK(!a.issued);
    rq_autocert_free(&a);
}

static int remove_tree(const char *path)
{
    return sh("rm -rf '%s'", path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/autocert-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/data/sub", root);
    have_openssl = sh("openssl version >/dev/null 2>&1") == 0;
    if (!have_openssl)
        fprintf(stderr, "test_autocert: openssl not found: SKIPPING the openssl checks "
                        "(wolfSSL and the DER reader still check everything)\n");
    t0 = (int64_t)time(NULL);

    test_first_issue();
    test_algorithms();
    test_reuse_and_renewal();
    test_spec_changes();
    test_damage();
    test_ca_lifetime();
    test_far_future();
    test_concurrent();
    test_bad_arguments();

    if (check_failures == 0)
        remove_tree(root);
    else
        fprintf(stderr, "test_autocert: files kept in %s\n", root);
    return check_exit("test_autocert");
}
