/* The certificate issuer behind BrokerListener `tls.mode: Automatic` (there is no cert-manager
 * here, so the broker issues for itself): a local CA per key family and one server certificate
 * per id, kept in a data directory across restarts and reissued before expiry. See autocert.h
 * for the files and docs/automatic-tls.md for the operator's view.
 *
 * It does not log, schedule renewals or build TLS contexts: it returns the PEMs and the time to
 * call again (renew_at), and the caller (net/ports.c) logs, schedules and loads them.
 *
 * Why the certificates are DER-encoded here rather than by wc_MakeCert_ex: wolfSSL 5.5.4's
 * encoder writes basicConstraints without the critical flag, and RFC 5280 4.2.1.9 says a CA
 * MUST mark it critical; the versions that can (Cert.basicConstCrit, wc_SetCustomExtension)
 * are newer or need WOLFSSL_CUSTOM_OID, which the build does not enable. Encoding the few fixed
 * fields of RFC 5280 4.1 is short and leaves nothing to wolfSSL's defaults (dates from `now`,
 * not the wall clock; serials; SAN IP addresses). wolfCrypt does everything cryptographic: key
 * generation, key and certificate encodings (DER and PEM), hashing, signing, verifying, and
 * parsing back what is on disk (wc_ParseCert).
 *
 * Longer than the 800 lines CONVENTIONS.md aims at: the DER writer, keys, and the file policy
 * are each small but belong to this one module and nothing else uses them. */
#include "net/autocert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/settings.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "net/tls_lib.h"

#define BACKDATE_S 300                 /* notBefore = now - 5 min: tolerate clock skew */
#define CA_LIFETIME_S (3653LL * 86400) /* 10 years */
#define MAX_TIME 253402300799LL        /* 9999-12-31T23:59:59Z, the last X.509 time */
#define MAX_FILE (1 << 20)             /* certificates and keys are a few KiB */
#define SIG_MAX 1100                   /* RSA 8192 signature: 1024 bytes */
#define PUB_MAX 2200                   /* RSA 8192 SubjectPublicKeyInfo: ~1.1 KiB */
#define KEYID_LEN 20                   /* SHA-1, RFC 5280 4.2.1.2 method (1) */
#define MAX_DIR 400                    /* data_dir bytes */
#define PATH_LEN 640                   /* data_dir / id (<= 128) . suffix */

/* wolfSSL decodes IP address SANs only with one of these; without, only DNS names are compared
 * when deciding to reuse a certificate. */
#if defined(WOLFSSL_IP_ALT_NAME) || defined(OPENSSL_ALL) || defined(WOLFSSL_QT)
#define IP_SANS_READABLE 1
#else
#define IP_SANS_READABLE 0
#endif

enum fam { FAM_EC, FAM_RSA, FAM_ED25519, N_FAM };

struct alg {
    const char *name;
    int fam;
    int param; /* EC: wolfCrypt curve id; RSA: modulus bits; Ed25519: 0 */
};

static const struct alg leaf_algs[] = {
    [RQ_KEY_EC256] = {"EC P-256", FAM_EC, ECC_SECP256R1},
    [RQ_KEY_EC384] = {"EC P-384", FAM_EC, ECC_SECP384R1},
    [RQ_KEY_EC521] = {"EC P-521", FAM_EC, ECC_SECP521R1},
    [RQ_KEY_ED25519] = {"Ed25519", FAM_ED25519, 0},
    [RQ_KEY_RSA2048] = {"RSA 2048", FAM_RSA, 2048},
    [RQ_KEY_RSA4096] = {"RSA 4096", FAM_RSA, 4096},
    [RQ_KEY_RSA8192] = {"RSA 8192", FAM_RSA, 8192},
};

/* One CA per family, all at the 128-bit security level and signing with SHA-256 (or Ed25519):
 * one CA serves every key size of its family, so a chain never mixes algorithms. */
static const struct alg ca_algs[N_FAM] = {
    [FAM_EC] = {"EC P-256", FAM_EC, ECC_SECP256R1},
    [FAM_RSA] = {"RSA 3072", FAM_RSA, 3072},
    [FAM_ED25519] = {"Ed25519", FAM_ED25519, 0},
};
static const char *const fam_file[N_FAM] = {"ec", "rsa", "ed25519"};

/* Private keys on disk: "EC PRIVATE KEY" (SEC 1), "RSA PRIVATE KEY" (PKCS#1), "PRIVATE KEY"
 * (Ed25519: PKCS#8 with the public key, RFC 8410). Reading the Ed25519 one as PRIVATEKEY_TYPE
 * would strip the PKCS#8 wrapper and with it the public key, so each family has its types. */
static const int key_pem_out[N_FAM] = {ECC_PRIVATEKEY_TYPE, PRIVATEKEY_TYPE, PKCS8_PRIVATEKEY_TYPE};
static const int key_pem_in[N_FAM] = {PRIVATEKEY_TYPE, PRIVATEKEY_TYPE, PKCS8_PRIVATEKEY_TYPE};

/* AlgorithmIdentifier of the CA's signature: ecdsa-with-SHA256, sha256WithRSAEncryption (NULL
 * parameters), Ed25519 (RFC 8410). And the OID sums wolfSSL reports for them. */
static const uint8_t sigalg_ec[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                    0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t sigalg_rsa[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                     0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
static const uint8_t sigalg_ed[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
static const struct {
    const uint8_t *der;
    size_t len;
    unsigned oid_sum;
} sigalgs[N_FAM] = {
    [FAM_EC] = {sigalg_ec, sizeof sigalg_ec, CTC_SHA256wECDSA},
    [FAM_RSA] = {sigalg_rsa, sizeof sigalg_rsa, CTC_SHA256wRSA},
    [FAM_ED25519] = {sigalg_ed, sizeof sigalg_ed, CTC_ED25519},
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static void free_secret(void *p, size_t len)
{
    if (p)
        explicit_bzero(p, len);
    free(p);
}

/* ---- DER writer ----------------------------------------------------------------------------
 * Appends to a growable buffer. der_open() writes a tag and a one-byte length placeholder;
 * der_close() fills in the length, moving the content when the length needs more bytes. An
 * allocation failure sets oom and turns every later call into a no-op. */

struct der {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void der_put(struct der *d, const void *src, size_t n)
{
    if (d->oom || n == 0)
        return;
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 1024;
        while (cap < d->len + n)
            cap *= 2;
        uint8_t *p = realloc(d->p, cap);
        if (!p) {
            d->oom = true;
            return;
        }
        d->p = p;
        d->cap = cap;
    }
    memcpy(d->p + d->len, src, n);
    d->len += n;
}

static size_t der_open(struct der *d, uint8_t tag)
{
    const uint8_t h[2] = {tag, 0};
    der_put(d, h, 2);
    return d->len;
}

static void der_close(struct der *d, size_t start)
{
    if (d->oom)
        return;
    size_t n = d->len - start, k = 0;
    if (n < 0x80) {
        d->p[start - 1] = (uint8_t)n;
        return;
    }
    for (size_t v = n; v; v >>= 8)
        k++;
    const uint8_t room[sizeof(size_t)] = {0};
    der_put(d, room, k);
    if (d->oom)
        return;
    memmove(d->p + start + k, d->p + start, n);
    d->p[start - 1] = (uint8_t)(0x80 | k);
    for (size_t i = 0; i < k; i++)
        d->p[start + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
}

static void der_tlv(struct der *d, uint8_t tag, const void *v, size_t n)
{
    size_t s = der_open(d, tag);
    der_put(d, v, n);
    der_close(d, s);
}

/* Name ::= SEQUENCE OF SET OF { type, value }: one RDN, commonName as UTF8String. */
static void der_name(struct der *d, const char *cn)
{
    static const uint8_t oid_cn[] = {0x55, 0x04, 0x03};
    size_t name = der_open(d, 0x30), rdn = der_open(d, 0x31), atv = der_open(d, 0x30);
    der_tlv(d, 0x06, oid_cn, sizeof oid_cn);
    der_tlv(d, 0x0c, cn, strlen(cn));
    der_close(d, atv);
    der_close(d, rdn);
    der_close(d, name);
}

/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always Zulu, seconds. */
static void der_time(struct der *d, int64_t t)
{
    t = t < 0 ? 0 : t > MAX_TIME ? MAX_TIME : t;
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int y = tm.tm_year + 1900;
    char s[48];
    int n;
    if (y < 2050)
        n = snprintf(s, sizeof s, "%02d%02d%02d%02d%02d%02dZ", y % 100, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        n = snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02dZ", y, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    der_tlv(d, y < 2050 ? 0x17 : 0x18, s, (size_t)n);
}

/* Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }.
 * The value is written between ext_open and ext_close. */
static void ext_open(struct der *d, const uint8_t oid[3], bool critical, size_t at[2])
{
    static const uint8_t crit[] = {0x01, 0x01, 0xff};
    at[0] = der_open(d, 0x30);
    der_tlv(d, 0x06, oid, 3);
    if (critical)
        der_put(d, crit, sizeof crit);
    at[1] = der_open(d, 0x04);
}

static void ext_close(struct der *d, const size_t at[2])
{
    der_close(d, at[1]);
    der_close(d, at[0]);
}

static void ext_raw(struct der *d, const uint8_t oid[3], bool critical, const void *v, size_t n)
{
    size_t at[2];
    ext_open(d, oid, critical, at);
    der_put(d, v, n);
    ext_close(d, at);
}

/* keyUsage BIT STRING with named bits 0..7 in one byte: DER drops trailing zero bits. */
static void ext_key_usage(struct der *d, uint8_t bits)
{
    static const uint8_t oid[3] = {0x55, 0x1d, 0x0f};
    uint8_t unused = 0;
    while (unused < 7 && !(bits & (1u << unused)))
        unused++;
    const uint8_t v[4] = {0x03, 0x02, unused, bits};
    ext_raw(d, oid, true, v, sizeof v);
}

enum {
    KU_DIGITAL_SIGNATURE = 0x80, /* bit 0 */
    KU_KEY_ENCIPHERMENT = 0x20,  /* bit 2 */
    KU_KEY_CERT_SIGN = 0x04,     /* bit 5 */
    KU_CRL_SIGN = 0x02,          /* bit 6 */
};

/* ---- SANs ---------------------------------------------------------------------------------- */

struct san_ip {
    uint8_t b[16];
    uint8_t len; /* 4 or 16 */
};

struct sans {
    const char **dns; /* point into the spec */
    size_t n_dns;
    struct san_ip *ip;
    size_t n_ip;
};

static void sans_free(struct sans *s)
{
    free(s->dns);
    free(s->ip);
    memset(s, 0, sizeof *s);
}

/* A DNS SAN is an IA5String (RFC 5280 4.2.1.6): letters, digits, '-', '.', and a leading "*."
 * wildcard label; at most 253 bytes. */
static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || (c == '*' && i == 0 && s[1] == '.');
        if (!ok)
            return false;
    }
    return true;
}

/* The spec's SANs, validated and with duplicates dropped (DNS names compare without case). */
static int sans_from_spec(const struct rq_tls_auto *spec, struct sans *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->dns = calloc(spec->n_dns + 1, sizeof *s->dns);
    s->ip = calloc(spec->n_ip + 1, sizeof *s->ip);
    if (!s->dns || !s->ip) {
        sans_free(s);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < spec->n_dns; i++) {
        const char *n = spec->dns[i];
        if (!n || !dns_name_ok(n)) {
            sans_free(s);
            return fail(err, errlen, -EINVAL, "san.dns '%.253s' is not a DNS name", n ? n : "");
        }
        size_t j = 0;
        while (j < s->n_dns && strcasecmp(s->dns[j], n) != 0)
            j++;
        if (j == s->n_dns)
            s->dns[s->n_dns++] = n;
    }
    for (size_t i = 0; i < spec->n_ip; i++) {
        struct san_ip a = {.len = 4};
        const char *n = spec->ip[i] ? spec->ip[i] : "";
        if (inet_pton(AF_INET, n, a.b) != 1) {
            a.len = 16;
            if (inet_pton(AF_INET6, n, a.b) != 1) {
                sans_free(s);
                return fail(err, errlen, -EINVAL, "san.ip '%.64s' is not an IP address", n);
            }
        }
        size_t j = 0;
        while (j < s->n_ip && (s->ip[j].len != a.len || memcmp(s->ip[j].b, a.b, a.len) != 0))
            j++;
        if (j == s->n_ip)
            s->ip[s->n_ip++] = a;
    }
    return 0;
}

/* The subject CN: the first DNS SAN that fits X.520's 64-character bound, else "localhost".
 * Clients match SANs, not the CN (RFC 6125); the CN is for people reading the certificate. */
static const char *sans_cn(const struct sans *s)
{
    for (size_t i = 0; i < s->n_dns; i++)
        if (strlen(s->dns[i]) <= 64)
            return s->dns[i];
    return "localhost";
}

static void ext_sans(struct der *d, const struct sans *s)
{
    static const uint8_t oid[3] = {0x55, 0x1d, 0x11};
    if (s->n_dns + s->n_ip == 0)
        return; /* an empty SAN extension is not allowed (RFC 5280 4.2.1.6) */
    size_t at[2];
    ext_open(d, oid, false, at);
    size_t seq = der_open(d, 0x30);
    for (size_t i = 0; i < s->n_dns; i++)
        der_tlv(d, 0x82, s->dns[i], strlen(s->dns[i])); /* [2] dNSName */
    for (size_t i = 0; i < s->n_ip; i++)
        der_tlv(d, 0x87, s->ip[i].b, s->ip[i].len); /* [7] iPAddress */
    der_close(d, seq);
    ext_close(d, at);
}

/* True when the certificate's SANs are exactly the requested set, in any order. */
static bool sans_match(const struct sans *s, const DNS_entry *names)
{
    size_t seen_dns = 0, seen_ip = 0;
    for (const DNS_entry *e = names; e; e = e->next) {
        bool found = false;
        if (e->type == ASN_DNS_TYPE) {
            for (size_t i = 0; i < s->n_dns && !found; i++)
                found = strlen(s->dns[i]) == (size_t)e->len &&
                        strncasecmp(s->dns[i], e->name, (size_t)e->len) == 0;
            seen_dns++;
        } else if (e->type == ASN_IP_TYPE) {
            for (size_t i = 0; i < s->n_ip && !found; i++)
                found = s->ip[i].len == e->len && memcmp(s->ip[i].b, e->name, s->ip[i].len) == 0;
            seen_ip++;
        }
        if (!found)
            return false;
    }
    /* Every entry was requested and the requested ones are distinct: equal counts mean equal
     * sets (unless the certificate repeats a name, which ours never do). */
    return seen_dns == s->n_dns && (!IP_SANS_READABLE || seen_ip == s->n_ip);
}

/* ---- keys ---------------------------------------------------------------------------------- */

struct key {
    int fam;
    int param; /* as struct alg */
    bool live; /* u holds an initialised key */
    union {
        ecc_key ec;
        RsaKey rsa;
        ed25519_key ed;
    } u;
};

static void key_free(struct key *k)
{
    if (!k)
        return;
    if (k->live && k->fam == FAM_EC)
        wc_ecc_free(&k->u.ec);
    else if (k->live && k->fam == FAM_RSA)
        wc_FreeRsaKey(&k->u.rsa);
    else if (k->live)
        wc_ed25519_free(&k->u.ed);
    free_secret(k, sizeof *k);
}

static struct key *key_new(int fam)
{
    struct key *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->fam = fam;
    int rc = fam == FAM_EC    ? wc_ecc_init(&k->u.ec)
             : fam == FAM_RSA ? wc_InitRsaKey(&k->u.rsa, NULL)
                              : wc_ed25519_init(&k->u.ed);
    k->live = rc == 0;
    if (!k->live) {
        free(k);
        return NULL;
    }
    return k;
}

static int key_generate(const struct alg *a, WC_RNG *rng, struct key **out, const char **why)
{
    *out = NULL;
    struct key *k = key_new(a->fam);
    if (!k) {
        *why = "out of memory";
        return -ENOMEM;
    }
    int rc = a->fam == FAM_EC    ? wc_ecc_make_key_ex(rng, wc_ecc_get_curve_size_from_id(a->param),
                                                      &k->u.ec, a->param)
             : a->fam == FAM_RSA ? wc_MakeRsaKey(&k->u.rsa, a->param, WC_RSA_EXPONENT, rng)
                                 : wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &k->u.ed);
    if (rc != 0) {
        *why = wc_GetErrorString(rc);
        key_free(k);
        return -EIO;
    }
    k->param = a->param;
    *out = k;
    return 0;
}

/* The subjectPublicKey BIT STRING's content, which SKIDs hash: the EC point (X9.63), the
 * PKCS#1 RSAPublicKey, the raw Ed25519 key. */
static int key_public_bits(struct key *k, uint8_t *buf, word32 cap, word32 *len)
{
    int rc;
    *len = cap;
    if (k->fam == FAM_EC)
        return wc_ecc_export_x963(&k->u.ec, buf, len);
    if (k->fam == FAM_ED25519)
        return wc_ed25519_export_public(&k->u.ed, buf, len);
    rc = wc_RsaKeyToPublicDer_ex(&k->u.rsa, buf, cap, 0);
    *len = rc > 0 ? (word32)rc : 0;
    return rc > 0 ? 0 : rc;
}

static int key_spki(struct key *k, uint8_t *buf, word32 cap)
{
    return k->fam == FAM_EC    ? wc_EccPublicKeyToDer(&k->u.ec, buf, cap, 1)
           : k->fam == FAM_RSA ? wc_RsaKeyToPublicDer(&k->u.rsa, buf, cap)
                               : wc_Ed25519PublicKeyToDer(&k->u.ed, buf, cap, 1);
}

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
static int key_id(struct key *k, uint8_t id[KEYID_LEN])
{
    uint8_t buf[PUB_MAX];
    word32 len;
    int rc = key_public_bits(k, buf, sizeof buf, &len);
    return rc == 0 ? wc_ShaHash(buf, len, id) : rc;
}

/* Signs msg the way the CA's AlgorithmIdentifier says (SHA-256 with ECDSA or RSA PKCS#1 v1.5,
 * or pure Ed25519). Returns the signature length or a negative wolfCrypt error. */
static int key_sign(struct key *k, const uint8_t *msg, size_t len, WC_RNG *rng, uint8_t *sig)
{
    uint8_t hash[WC_SHA256_DIGEST_SIZE], enc[MAX_ENCODED_SIG_SZ];
    word32 n = SIG_MAX;
    int rc = 0;
    if (k->fam == FAM_ED25519) {
        rc = wc_ed25519_sign_msg(msg, (word32)len, sig, &n, &k->u.ed);
        return rc == 0 ? (int)n : rc;
    }
    if ((rc = wc_Sha256Hash(msg, (word32)len, hash)) != 0)
        return rc;
    if (k->fam == FAM_EC) {
        rc = wc_ecc_sign_hash(hash, sizeof hash, sig, &n, rng, &k->u.ec);
        return rc == 0 ? (int)n : rc;
    }
    word32 elen = wc_EncodeSignature(enc, hash, sizeof hash, SHA256h);
    return wc_RsaSSL_Sign(enc, elen, sig, SIG_MAX, &k->u.rsa, rng);
}

static bool key_verify(struct key *k, const uint8_t *msg, size_t len, const uint8_t *sig,
                       size_t siglen)
{
    uint8_t hash[WC_SHA256_DIGEST_SIZE], enc[MAX_ENCODED_SIG_SZ], dec[SIG_MAX];
    int res = 0;
    if (k->fam == FAM_ED25519)
        return wc_ed25519_verify_msg(sig, (word32)siglen, msg, (word32)len, &res, &k->u.ed) == 0 &&
               res == 1;
    if (wc_Sha256Hash(msg, (word32)len, hash) != 0)
        return false;
    if (k->fam == FAM_EC)
        return wc_ecc_verify_hash(sig, (word32)siglen, hash, sizeof hash, &res, &k->u.ec) == 0 &&
               res == 1;
    word32 elen = wc_EncodeSignature(enc, hash, sizeof hash, SHA256h);
    int n = wc_RsaSSL_Verify(sig, (word32)siglen, dec, sizeof dec, &k->u.rsa);
    return n > 0 && (word32)n == elen && memcmp(dec, enc, elen) == 0;
}

/* Returns 0 with a malloc'd NUL-terminated PEM (see key_pem_out), or a wolfCrypt error. */
static int key_to_pem(struct key *k, char **pem, size_t *pem_len)
{
    const word32 cap = 16384;
    uint8_t *der = malloc(cap);
    int n, type = key_pem_out[k->fam], rc = MEMORY_E;
    *pem = NULL;
    if (!der)
        return MEMORY_E;
    n = k->fam == FAM_EC    ? wc_EccKeyToDer(&k->u.ec, der, cap)
        : k->fam == FAM_RSA ? wc_RsaKeyToDer(&k->u.rsa, der, cap)
                            : wc_Ed25519KeyToDer(&k->u.ed, der, cap);
    if (n <= 0) {
        rc = n;
    } else if ((*pem = malloc((size_t)n * 2 + 128)) != NULL) {
        rc = wc_DerToPem(der, (word32)n, (uint8_t *)*pem, (word32)n * 2 + 127, type);
        if (rc > 0) {
            (*pem)[rc] = '\0';
            *pem_len = (size_t)rc;
            rc = 0;
        } else {
            free_secret(*pem, (size_t)n * 2 + 128);
            *pem = NULL;
        }
    }
    free_secret(der, cap);
    return rc;
}

/* Reads a private key of family fam, then proves it whole: a signature made with it verifies
 * with its public half (a damaged private part would otherwise only show as failed
 * handshakes, or for a CA as certificates no client accepts). */
static int key_from_pem(const char *pem, size_t len, int fam, WC_RNG *rng, struct key **out,
                        const char **why)
{
    DerBuffer *der = NULL;
    struct key *k = NULL;
    word32 idx = 0;
    *out = NULL;
    *why = "not a PEM private key";
    int rc =
        wc_PemToDer((const unsigned char *)pem, (long)len, key_pem_in[fam], &der, NULL, NULL, NULL);
    if (rc == 0 && !(k = key_new(fam))) {
        rc = MEMORY_E;
        *why = "out of memory";
    } else if (rc == 0) {
        *why = fam == FAM_EC    ? "not an EC private key"
               : fam == FAM_RSA ? "not an RSA private key"
                                : "not an Ed25519 private key";
        rc = fam == FAM_EC ? wc_EccPrivateKeyDecode(der->buffer, &idx, &k->u.ec, der->length)
             : fam == FAM_RSA
                 ? wc_RsaPrivateKeyDecode(der->buffer, &idx, &k->u.rsa, der->length)
                 : wc_Ed25519PrivateKeyDecode(der->buffer, &idx, &k->u.ed, der->length);
    }
    wc_FreeDer(&der);
    if (rc == 0) {
        k->param = fam == FAM_EC    ? wc_ecc_get_curve_id(k->u.ec.idx)
                   : fam == FAM_RSA ? wc_RsaEncryptSize(&k->u.rsa) * 8
                                    : 0;
        static const uint8_t probe[] = "ringmq autocert pairwise test";
        uint8_t sig[SIG_MAX];
        int n = key_sign(k, probe, sizeof probe, rng, sig);
        if (n <= 0 || !key_verify(k, probe, sizeof probe, sig, (size_t)n)) {
            rc = -1;
            *why = "the private and public halves of the key do not match";
        }
    }
    if (rc != 0) {
        key_free(k);
        return -EIO;
    }
    *out = k;
    return 0;
}

/* ---- certificates ------------------------------------------------------------------------- */

struct tbs {
    uint8_t serial[16];
    const char *issuer_cn, *subject_cn;
    int64_t not_before, not_after;
    const uint8_t *skid, *akid; /* akid NULL: the self-signed CA */
    const struct sans *sans;    /* NULL: the CA */
    int key_usage;
};

/* TBSCertificate (RFC 5280 4.1), v3, signed by a key of family fam. */
static void der_tbs(struct der *d, const struct tbs *t, int fam, const uint8_t *spki,
                    size_t spki_len)
{
    static const uint8_t v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
    static const uint8_t oid_bc[3] = {0x55, 0x1d, 0x13}, oid_eku[3] = {0x55, 0x1d, 0x25},
                         oid_skid[3] = {0x55, 0x1d, 0x0e}, oid_akid[3] = {0x55, 0x1d, 0x23};
    static const uint8_t bc_ca[] = {0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00}; /* pathlen 0 */
    static const uint8_t bc_leaf[] = {0x30, 0x00};                                   /* cA FALSE */
    static const uint8_t eku_server[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06,
                                         0x01, 0x05, 0x05, 0x07, 0x03, 0x01}; /* id-kp-serverAuth */
    size_t tbs = der_open(d, 0x30);
    der_put(d, v3, sizeof v3);
    der_tlv(d, 0x02, t->serial, sizeof t->serial);
    der_put(d, sigalgs[fam].der, sigalgs[fam].len);
    der_name(d, t->issuer_cn);
    size_t validity = der_open(d, 0x30);
    der_time(d, t->not_before);
    der_time(d, t->not_after);
    der_close(d, validity);
    der_name(d, t->subject_cn);
    der_put(d, spki, spki_len);
    size_t exts = der_open(d, 0xa3), seq = der_open(d, 0x30);
    if (t->sans)
        ext_raw(d, oid_bc, true, bc_leaf, sizeof bc_leaf);
    else
        ext_raw(d, oid_bc, true, bc_ca, sizeof bc_ca);
    ext_key_usage(d, (uint8_t)t->key_usage);
    if (t->sans) {
        ext_raw(d, oid_eku, false, eku_server, sizeof eku_server);
        ext_sans(d, t->sans);
    }
    size_t at[2];
    ext_open(d, oid_skid, false, at);
    der_tlv(d, 0x04, t->skid, KEYID_LEN);
    ext_close(d, at);
    if (t->akid) {
        ext_open(d, oid_akid, false, at);
        size_t aki = der_open(d, 0x30);
        der_tlv(d, 0x80, t->akid, KEYID_LEN); /* [0] keyIdentifier */
        der_close(d, aki);
        ext_close(d, at);
    }
    der_close(d, seq);
    der_close(d, exts);
    der_close(d, tbs);
}

/* Encodes and signs a certificate for subject_key with signer (the CA key; itself for the
 * CA), then checks the signature with the signer's public half. Returns 0 with a malloc'd DER,
 * or a negative wolfCrypt error. */
static int cert_make(const struct tbs *t, struct key *subject_key, struct key *signer, WC_RNG *rng,
                     uint8_t **der_out, size_t *der_len)
{
    uint8_t spki[PUB_MAX], sig[SIG_MAX];
    struct der tbs = {0}, cert = {0};
    int rc = key_spki(subject_key, spki, sizeof spki), n = 0;
    *der_out = NULL;
    if (rc > 0) {
        der_tbs(&tbs, t, signer->fam, spki, (size_t)rc);
        rc = tbs.oom ? MEMORY_E : 0;
    }
    if (rc == 0 && (n = key_sign(signer, tbs.p, tbs.len, rng, sig)) <= 0)
        rc = n < 0 ? n : SIG_VERIFY_E;
    if (rc == 0 && !key_verify(signer, tbs.p, tbs.len, sig, (size_t)n))
        rc = SIG_VERIFY_E;
    if (rc == 0) {
        size_t c = der_open(&cert, 0x30);
        der_put(&cert, tbs.p, tbs.len);
        der_put(&cert, sigalgs[signer->fam].der, sigalgs[signer->fam].len);
        size_t bits = der_open(&cert, 0x03);
        der_put(&cert, "", 1); /* no unused bits */
        der_put(&cert, sig, (size_t)n);
        der_close(&cert, bits);
        der_close(&cert, c);
        rc = cert.oom ? MEMORY_E : 0;
    }
    free(tbs.p);
    if (rc != 0) {
        free(cert.p);
        return rc;
    }
    *der_out = cert.p;
    *der_len = cert.len;
    return 0;
}

static char *der_to_pem(const uint8_t *der, size_t len, size_t *pem_len)
{
    size_t cap = len * 2 + 128;
    char *pem = malloc(cap);
    int n = pem ? wc_DerToPem(der, (word32)len, (uint8_t *)pem, (word32)cap - 1, CERT_TYPE) : -1;
    if (n <= 0) {
        free(pem);
        return NULL;
    }
    pem[n] = '\0';
    *pem_len = (size_t)n;
    return pem;
}

/* A certificate as read back from disk: its DER and wolfSSL's decoding of it. */
struct cert {
    uint8_t *der;
    size_t der_len;
    DecodedCert *dc;
    int64_t not_before, not_after;
};

static void cert_free(struct cert *c)
{
    if (c->dc) {
        wc_FreeDecodedCert(c->dc);
        free(c->dc);
    }
    free(c->der);
    memset(c, 0, sizeof *c);
}

static int64_t cert_time(const byte *tlv, int len)
{
    const byte *date;
    byte format;
    int dlen;
    struct tm tm;
    if (!tlv || wc_GetDateInfo(tlv, len, &date, &format, &dlen) != 0 ||
        wc_GetDateAsCalendarTime(date, dlen, format, &tm) != 0)
        return -1;
    return (int64_t)timegm(&tm);
}

/* Decodes the first certificate of a PEM text (no signature or date checks here). */
static int cert_from_pem(const char *pem, size_t len, struct cert *c, const char **why)
{
    memset(c, 0, sizeof *c);
    *why = "no PEM certificate wolfSSL can parse";
    c->der = malloc(len + 1);
    c->dc = calloc(1, sizeof *c->dc);
    if (!c->der || !c->dc) {
        cert_free(c);
        *why = "out of memory";
        return -ENOMEM;
    }
    int n = wc_CertPemToDer((const unsigned char *)pem, (int)len, c->der, (int)len, CERT_TYPE);
    if (n <= 0) {
        free(c->dc);
        c->dc = NULL;
        cert_free(c);
        return -EIO;
    }
    c->der_len = (size_t)n;
    wc_InitDecodedCert(c->dc, c->der, (word32)n, NULL);
    if (wc_ParseCert(c->dc, CERT_TYPE, NO_VERIFY, NULL) != 0 || !c->dc->extSubjKeyIdSet) {
        cert_free(c);
        return -EIO;
    }
    c->not_before = cert_time(c->dc->beforeDate, c->dc->beforeDateLen);
    c->not_after = cert_time(c->dc->afterDate, c->dc->afterDateLen);
    if (c->not_before < 0 || c->not_after < 0) {
        *why = "unreadable validity dates";
        cert_free(c);
        return -EIO;
    }
    return 0;
}

/* True when signer's key made c's signature, with the algorithm the CA uses. */
static bool cert_signed_by(const struct cert *c, struct key *signer)
{
    const DecodedCert *dc = c->dc;
    return dc->signatureOID == sigalgs[signer->fam].oid_sum && dc->sigIndex > dc->certBegin &&
           key_verify(signer, dc->source + dc->certBegin, dc->sigIndex - dc->certBegin,
                      dc->signature, dc->sigLength);
}

/* ---- files --------------------------------------------------------------------------------- */

/* Reads a whole (small) file into a NUL-terminated buffer. Returns 0, -ENOENT, or -errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE)
        rc = -EFBIG;
    else if (!(*buf = malloc((size_t)st.st_size + 1)))
        rc = -ENOMEM;
    while (rc == 0 && *len < (size_t)st.st_size) {
        ssize_t n = read(fd, *buf + *len, (size_t)st.st_size - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else
            *len += (size_t)n;
    }
    close(fd);
    if (rc != 0) {
        free_secret(*buf, *len);
        *buf = NULL;
        *len = 0;
        return rc;
    }
    (*buf)[*len] = '\0';
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Replaces path atomically: a temporary file in the same directory with the final mode, data,
 * fsync, rename over path, fsync of the directory. A crash leaves the old or the new file. */
static int write_atomic(const char *dir, const char *path, const void *data, size_t len,
                        mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp); /* left over from a crash; we hold the directory lock */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode), rc = 0;
    if (fd < 0)
        return fail(err, errlen, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    if (fchmod(fd, mode) != 0) /* the umask must not widen or narrow what we promise */
        rc = -errno;
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return fail(err, errlen, rc, "%s: cannot write: %s", path, strerror(-rc));
    }
    if ((rc = fsync_dir(dir)) != 0)
        return fail(err, errlen, rc, "%s: cannot sync: %s", dir, strerror(-rc));
    return 0;
}

/* mkdir -p: missing components are created 0700; existing ones are left as they are. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char p[PATH_LEN];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p)
        return fail(err, errlen, -EINVAL, "data directory '%.200s': empty or too long", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return fail(err, errlen, -errno, "%s: cannot create directory: %s", p, strerror(errno));
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(err, errlen, -ENOTDIR, "%s: not a directory", dir);
    return 0;
}

/* ---- the CA -------------------------------------------------------------------------------- */

struct ca {
    struct key *key;
    struct cert cert;
    char *pem; /* normalised from cert.der */
    size_t pem_len;
    uint8_t skid[KEYID_LEN];
};

static void ca_free(struct ca *ca)
{
    key_free(ca->key);
    cert_free(&ca->cert);
    free(ca->pem);
    memset(ca, 0, sizeof *ca);
}

struct run {
    const char *dir;
    const struct rq_tls_auto *spec;
    int64_t now;
    WC_RNG rng;
    char *err;
    size_t errlen;
};

static int ca_error(struct run *r, const char *path, const char *what)
{
    return fail(r->err, r->errlen, -EIO,
                "%s: %s; the CA is never replaced automatically: to start over, remove "
                "%s/ca-*.crt and %s/ca-*.key (see docs/automatic-tls.md), then give clients the "
                "new %s/ca.crt",
                path, what, r->dir, r->dir, r->dir);
}

/* Issues the self-signed CA certificate for ca->key and writes it. */
static int ca_issue(struct run *r, struct ca *ca, const char *crt_path)
{
    struct tbs t = {
        .issuer_cn = "ringmq local CA",
        .subject_cn = "ringmq local CA",
        .not_before = r->now - BACKDATE_S,
        .not_after = r->now + CA_LIFETIME_S,
        .skid = ca->skid,
        .key_usage = KU_KEY_CERT_SIGN | KU_CRL_SIGN,
    };
    uint8_t *der;
    size_t der_len, pem_len;
    int rc = wc_RNG_GenerateBlock(&r->rng, t.serial, sizeof t.serial);
    t.serial[0] = (uint8_t)((t.serial[0] & 0x7f) | 0x40); /* positive, 16 bytes, minimal DER */
    if (rc == 0)
        rc = cert_make(&t, ca->key, ca->key, &r->rng, &der, &der_len);
    if (rc != 0)
        return fail(r->err, r->errlen, -EIO, "%s: cannot issue the CA certificate (wolfCrypt: %s)",
                    crt_path, wc_GetErrorString(rc));
    char *pem = der_to_pem(der, der_len, &pem_len);
    free(der);
    if (!pem)
        return fail(r->err, r->errlen, -ENOMEM, "%s: cannot encode the CA certificate", crt_path);
    rc = write_atomic(r->dir, crt_path, pem, pem_len, 0644, r->err, r->errlen);
    free(pem);
    return rc;
}

/* Loads the CA of family fam, creating it when neither of its files exists. */
static int ca_load(struct run *r, int fam, struct ca *ca)
{
    char crt_path[PATH_LEN], key_path[PATH_LEN], *crt = NULL, *keypem = NULL;
    size_t crt_len, key_len;
    const char *why;
    snprintf(crt_path, sizeof crt_path, "%s/ca-%s.crt", r->dir, fam_file[fam]);
    snprintf(key_path, sizeof key_path, "%s/ca-%s.key", r->dir, fam_file[fam]);
    int crc = read_file(crt_path, &crt, &crt_len), krc = read_file(key_path, &keypem, &key_len);
    int rc = 0;
    if (krc != 0 && krc != -ENOENT)
        rc = ca_error(r, key_path, strerror(-krc));
    else if (crc != 0 && crc != -ENOENT)
        rc = ca_error(r, crt_path, strerror(-crc));
    else if (krc == -ENOENT && crc == 0)
        rc = ca_error(r, key_path, "missing, but the CA certificate next to it exists");
    else if (krc == -ENOENT) { /* a new CA */
        char *pem = NULL;
        size_t pem_len = 0;
        rc = key_generate(&ca_algs[fam], &r->rng, &ca->key, &why);
        if (rc != 0)
            rc = fail(r->err, r->errlen, rc, "%s: cannot generate a %s key: %s", key_path,
                      ca_algs[fam].name, why);
        else if ((rc = key_to_pem(ca->key, &pem, &pem_len)) != 0)
            rc = fail(r->err, r->errlen, -EIO, "%s: cannot encode the key (wolfCrypt: %s)",
                      key_path, wc_GetErrorString(rc));
        else
            rc = write_atomic(r->dir, key_path, pem, pem_len, 0600, r->err, r->errlen);
        free_secret(pem, pem_len);
    } else if (key_from_pem(keypem, key_len, fam, &r->rng, &ca->key, &why) != 0)
        rc = ca_error(r, key_path, why);
    free_secret(keypem, key_len);
    if (rc == 0 && key_id(ca->key, ca->skid) != 0)
        rc = ca_error(r, key_path, "cannot compute the key identifier");
    /* A key without a certificate is a CA no client can trust yet (a crash between writing the
     * two files): issuing its certificate now is safe. */
    if (rc == 0 && crc == -ENOENT && (rc = ca_issue(r, ca, crt_path)) == 0)
        rc = read_file(crt_path, &crt, &crt_len) == 0 ? 0 : ca_error(r, crt_path, "unreadable");
    if (rc == 0 && cert_from_pem(crt, crt_len, &ca->cert, &why) != 0)
        rc = ca_error(r, crt_path, why);
    free(crt);
    if (rc != 0)
        return rc;
    const DecodedCert *dc = ca->cert.dc;
    if (!dc->isCA || memcmp(dc->extSubjKeyId, ca->skid, KEYID_LEN) != 0 ||
        !cert_signed_by(&ca->cert, ca->key))
        return ca_error(r, crt_path, "not the CA certificate of the key next to it");
    if (r->now < ca->cert.not_before ||
        ca->cert.not_after - r->now <= (int64_t)r->spec->renew_before_s)
        return ca_error(r, crt_path,
                        "not valid now, or expiring before a server certificate "
                        "could be renewed");
    if (!(ca->pem = der_to_pem(ca->cert.der, ca->cert.der_len, &ca->pem_len)))
        return fail(r->err, r->errlen, -ENOMEM, "%s: cannot encode the CA certificate", crt_path);
    return 0;
}

/* ca.crt: every family's CA certificate, the one file clients need. Rewritten when it differs. */
static int ca_bundle(struct run *r, char *path, size_t pathlen)
{
    struct der all = {0};
    char p[PATH_LEN], *buf;
    size_t len;
    for (int f = 0; f < N_FAM; f++) {
        snprintf(p, sizeof p, "%s/ca-%s.crt", r->dir, fam_file[f]);
        if (read_file(p, &buf, &len) == 0) {
            der_put(&all, buf, len);
            free(buf);
        }
    }
    snprintf(path, pathlen, "%s/ca.crt", r->dir);
    int rc = all.oom ? fail(r->err, r->errlen, -ENOMEM, "out of memory") : 0;
    bool same = rc == 0 && read_file(path, &buf, &len) == 0 && len == all.len &&
                memcmp(buf, all.p, len) == 0;
    if (rc == 0)
        free(buf);
    if (rc == 0 && !same)
        rc = write_atomic(r->dir, path, all.p, all.len, 0644, r->err, r->errlen);
    free(all.p);
    return rc;
}

/* ---- the server certificate --------------------------------------------------------------- */

/* Why the certificate in crt cannot be kept, or NULL when it can. */
static const char *leaf_stale(struct run *r, const struct ca *ca, struct key *key,
                              const struct alg *alg, const struct sans *sans, const char *crt,
                              size_t crt_len, struct cert *c)
{
    const char *why;
    uint8_t id[KEYID_LEN];
    if (cert_from_pem(crt, crt_len, c, &why) != 0)
        return "the certificate file is unreadable";
    const DecodedCert *dc = c->dc;
    if (!dc->extAuthKeyIdSet || memcmp(dc->extAuthKeyId, ca->skid, KEYID_LEN) != 0 ||
        memcmp(dc->issuerHash, ca->cert.dc->subjectHash, sizeof dc->issuerHash) != 0 ||
        !cert_signed_by(c, ca->key))
        return "not signed by the current CA";
    if (!key || key->param != alg->param)
        return "the key is missing, unreadable or of another algorithm";
    if (key_id(key, id) != 0 || memcmp(dc->extSubjKeyId, id, KEYID_LEN) != 0)
        return "the key does not belong to the certificate";
    if (!sans_match(sans, dc->altNames))
        return "the SANs changed";
    uint64_t lifetime = (uint64_t)(c->not_after - c->not_before);
    if (lifetime != r->spec->duration_s + BACKDATE_S && c->not_after != ca->cert.not_after)
        return "the duration changed";
    if (r->now < c->not_before)
        return "not valid yet (the clock went back)";
    if (r->now >= c->not_after - (int64_t)r->spec->renew_before_s)
        return "renewal is due";
    return NULL;
}

/* Issues a certificate for key, signed by ca; returns 0 with the leaf's DER in *c. */
static int leaf_issue(struct run *r, const struct ca *ca, struct key *key, const struct sans *sans,
                      const char *crt_path, struct cert *c)
{
    uint8_t skid[KEYID_LEN], *der = NULL;
    size_t der_len;
    struct tbs t = {
        .issuer_cn = "ringmq local CA",
        .subject_cn = sans_cn(sans),
        .not_before = r->now - BACKDATE_S,
        .skid = skid,
        .akid = ca->skid,
        .sans = sans,
        .key_usage = KU_DIGITAL_SIGNATURE | (key->fam == FAM_RSA ? KU_KEY_ENCIPHERMENT : 0),
    };
    /* Never past the CA's notAfter; ca_load made sure that leaves room for renewBefore. */
    uint64_t ca_left = (uint64_t)(ca->cert.not_after - r->now);
    t.not_after =
        r->spec->duration_s >= ca_left ? ca->cert.not_after : r->now + (int64_t)r->spec->duration_s;
    int rc = key_id(key, skid);
    if (rc == 0)
        rc = wc_RNG_GenerateBlock(&r->rng, t.serial, sizeof t.serial);
    t.serial[0] = (uint8_t)((t.serial[0] & 0x7f) | 0x40);
    if (rc == 0)
        rc = cert_make(&t, key, ca->key, &r->rng, &der, &der_len);
    if (rc != 0)
        return fail(r->err, r->errlen, -EIO, "%s: cannot issue the certificate (wolfCrypt: %s)",
                    crt_path, wc_GetErrorString(rc));
    size_t pem_len;
    char *pem = der_to_pem(der, der_len, &pem_len);
    free(der);
    if (!pem)
        return fail(r->err, r->errlen, -ENOMEM, "%s: cannot encode the certificate", crt_path);
    const char *why;
    rc = cert_from_pem(pem, pem_len, c, &why);
    free(pem);
    return rc == 0 ? 0
                   : fail(r->err, r->errlen, -EIO, "%s: cannot read back the new certificate",
                          crt_path);
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    if (strcmp(id, "ca") == 0)
        return false;
    for (int f = 0; f < N_FAM; f++)
        if (strncmp(id, "ca-", 3) == 0 && strcmp(id + 3, fam_file[f]) == 0)
            return false;
    return true;
}

static int check_args(const char *data_dir, const char *id, const struct rq_tls_auto *spec,
                      char *err, size_t errlen)
{
    if (!data_dir || !id || !spec)
        return fail(err, errlen, -EINVAL, "autocert: missing argument");
    if (strlen(data_dir) > MAX_DIR) /* so every path fits PATH_LEN and rq_autocert.ca_path */
        return fail(err, errlen, -ENAMETOOLONG, "data directory '%.64s...': longer than %d bytes",
                    data_dir, MAX_DIR);
    if (!id_ok(id))
        return fail(err, errlen, -EINVAL,
                    "certificate name '%.128s': use 1-128 of A-Z a-z 0-9 . _ -, not starting with "
                    "'.', and not ca or ca-ec/ca-rsa/ca-ed25519",
                    id);
    if (spec->key_algorithm < 0 ||
        (size_t)spec->key_algorithm >= sizeof leaf_algs / sizeof leaf_algs[0])
        return fail(err, errlen, -EINVAL, "privateKey.algorithm %d is unknown",
                    spec->key_algorithm);
    const struct alg *a = &leaf_algs[spec->key_algorithm];
    if (a->fam == FAM_RSA && a->param > RSA_MAX_SIZE) /* wc_MakeRsaKey would refuse it */
        return fail(err, errlen, -EINVAL,
                    "privateKey.algorithm %s: this wolfSSL supports RSA keys up to %d bits "
                    "(see docs/automatic-tls.md)",
                    a->name, (int)RSA_MAX_SIZE);
    if (spec->duration_s == 0 || spec->renew_before_s >= spec->duration_s)
        return fail(err, errlen, -EINVAL,
                    "duration (%llus) must be longer than renewBefore (%llus)",
                    (unsigned long long)spec->duration_s, (unsigned long long)spec->renew_before_s);
    return 0;
}

/* Fills out from the (kept or new) leaf, its key and the CA. */
static int fill_out(struct run *r, const struct ca *ca, struct key *key, const struct cert *c,
                    struct rq_autocert *out)
{
    size_t leaf_len;
    char *leaf = der_to_pem(c->der, c->der_len, &leaf_len);
    out->cert_pem = leaf ? malloc(leaf_len + ca->pem_len + 1) : NULL;
    int rc = out->cert_pem ? key_to_pem(key, &out->key_pem, &out->key_len) : MEMORY_E;
    if (out->cert_pem) {
        memcpy(out->cert_pem, leaf, leaf_len);
        memcpy(out->cert_pem + leaf_len, ca->pem, ca->pem_len + 1);
        out->cert_len = leaf_len + ca->pem_len;
    }
    free(leaf);
    if (rc != 0)
        return fail(r->err, r->errlen, -ENOMEM, "cannot encode the certificate or key");
    out->not_after = c->not_after;
    out->renew_at = c->not_after - (int64_t)r->spec->renew_before_s;
    for (int i = 0; i < c->dc->serialSz && i < 16; i++)
        snprintf(out->serial + 2 * i, 3, "%02x", c->dc->serial[i]);
    return 0;
}

/* With the lock held: the CA, then the kept or newly issued server certificate. */
static int ensure_locked(struct run *r, const char *id, struct rq_autocert *out)
{
    const struct alg *alg = &leaf_algs[r->spec->key_algorithm];
    char crt_path[PATH_LEN], key_path[PATH_LEN], *crt = NULL, *keypem = NULL, *pem = NULL;
    size_t crt_len = 0, key_len = 0, pem_len = 0;
    struct ca ca = {0};
    struct sans sans;
    struct cert c = {0};
    struct key *key = NULL;
    const char *why;
    snprintf(crt_path, sizeof crt_path, "%s/%s.crt", r->dir, id);
    snprintf(key_path, sizeof key_path, "%s/%s.key", r->dir, id);
    int rc = sans_from_spec(r->spec, &sans, r->err, r->errlen);
    if (rc != 0)
        return rc;
    if ((rc = ca_load(r, alg->fam, &ca)) == 0)
        rc = ca_bundle(r, out->ca_path, sizeof out->ca_path);
    if (rc == 0 && read_file(key_path, &keypem, &key_len) == 0 &&
        key_from_pem(keypem, key_len, alg->fam, &r->rng, &key, &why) != 0)
        key = NULL; /* unreadable or another family: replaced below */
    free_secret(keypem, key_len);
    if (rc == 0 && read_file(crt_path, &crt, &crt_len) != 0)
        out->why_issued = "no certificate yet";
    else if (rc == 0)
        out->why_issued = leaf_stale(r, &ca, key, alg, &sans, crt, crt_len, &c);
    out->issued = rc == 0 && out->why_issued != NULL;
    if (out->issued) {
        cert_free(&c);
        bool keep = key && key->param == alg->param && r->spec->rotation_policy == RQ_ROTATE_NEVER;
        if (!keep) { /* rotationPolicy Always, or no usable key: a new one */
            key_free(key);
            rc = key_generate(alg, &r->rng, &key, &why);
            if (rc != 0)
                rc = fail(r->err, r->errlen, rc, "%s: cannot generate a %s key: %s", key_path,
                          alg->name, why);
            else if ((rc = key_to_pem(key, &pem, &pem_len)) != 0)
                rc = fail(r->err, r->errlen, -EIO, "%s: cannot encode the key (wolfCrypt: %s)",
                          key_path, wc_GetErrorString(rc));
            else /* the key first: a crash before the certificate only causes a reissue */
                rc = write_atomic(r->dir, key_path, pem, pem_len, 0600, r->err, r->errlen);
            free_secret(pem, pem_len);
        }
        if (rc == 0)
            rc = leaf_issue(r, &ca, key, &sans, crt_path, &c);
        if (rc == 0 && (rc = fill_out(r, &ca, key, &c, out)) == 0)
            rc = write_atomic(r->dir, crt_path, out->cert_pem, out->cert_len, 0644, r->err,
                              r->errlen);
    } else if (rc == 0 && (rc = fill_out(r, &ca, key, &c, out)) == 0 &&
               (crt_len != out->cert_len || memcmp(crt, out->cert_pem, crt_len) != 0)) {
        /* Same leaf, but the CA after it in the file is not the current CA's PEM (the CA
         * certificate was re-issued for the same key): keep the file what we serve. */
        rc = write_atomic(r->dir, crt_path, out->cert_pem, out->cert_len, 0644, r->err, r->errlen);
    }
    free(crt);
    cert_free(&c);
    key_free(key);
    ca_free(&ca);
    sans_free(&sans);
    return rc;
}

int rq_autocert_ensure(const char *data_dir, const char *id, const struct rq_tls_auto *spec,
                       int64_t now, struct rq_autocert *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = check_args(data_dir, id, spec, err, errlen);
    if (rc == 0 && rq_tls_lib_init() != 0)
        rc = fail(err, errlen, -EIO, "wolfSSL failed to initialise");
    if (rc == 0)
        rc = make_dirs(data_dir, err, errlen);
    if (rc != 0)
        return rc;
    char lock_path[PATH_LEN];
    snprintf(lock_path, sizeof lock_path, "%s/.lock", data_dir);
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0)
        return fail(err, errlen, -errno, "%s: %s", lock_path, strerror(errno));
    while ((rc = flock(lock, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        rc = fail(err, errlen, -errno, "%s: cannot lock: %s", lock_path, strerror(errno));
        close(lock);
        return rc;
    }
    struct run r = {.dir = data_dir, .spec = spec, .now = now, .err = err, .errlen = errlen};
    if (wc_InitRng(&r.rng) != 0) {
        close(lock);
        return fail(err, errlen, -EIO, "cannot initialise wolfCrypt's random generator");
    }
    rc = ensure_locked(&r, id, out);
    wc_FreeRng(&r.rng);
    close(lock); /* releases the flock */
    if (rc != 0)
        rq_autocert_free(out);
    return rc;
}

void rq_autocert_free(struct rq_autocert *ac)
{
    if (!ac)
        return;
    free(ac->cert_pem);
    free_secret(ac->key_pem, ac->key_len);
    memset(ac, 0, sizeof *ac);
}
