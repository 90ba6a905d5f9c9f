/* Certificate building for net/autocert.c (see certgen.h): a DER writer, keys of three
 * families, and X.509 v3 certificates encoded, signed and parsed back. It does not touch files
 * or decide what to issue; autocert.c does.
 *
 * Why the certificates are DER-encoded here rather than by wc_MakeCert_ex: wolfSSL 5.5.4's
 * encoder writes basicConstraints without the critical flag, and RFC 5280 4.2.1.9 says a CA
 * MUST mark it critical; the versions that can (Cert.basicConstCrit, wc_SetCustomExtension)
 * are newer or need WOLFSSL_CUSTOM_OID, which the build does not enable. Encoding the few fixed
 * fields of RFC 5280 4.1 is short and leaves nothing to wolfSSL's defaults (dates from `now`,
 * not the wall clock; serials; SAN IP addresses). wolfCrypt does everything cryptographic: key
 * generation, key and certificate encodings (DER and PEM), hashing, signing, verifying, and
 * parsing back what is on disk (wc_ParseCert). */
#include "net/certgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>

#define MAX_TIME 253402300799LL /* 9999-12-31T23:59:59Z, the last X.509 time */
#define SIG_MAX 1100            /* RSA 8192 signature: 1024 bytes */
#define PUB_MAX 2200            /* RSA 8192 SubjectPublicKeyInfo: ~1.1 KiB */

/* wolfSSL decodes IP address SANs only with one of these; without, only DNS names are compared
 * when deciding to reuse a certificate. */
#if defined(WOLFSSL_IP_ALT_NAME) || defined(OPENSSL_ALL) || defined(WOLFSSL_QT)
#define IP_SANS_READABLE 1
#else
#define IP_SANS_READABLE 0
#endif

/* Private keys on disk: "EC PRIVATE KEY" (SEC 1), "RSA PRIVATE KEY" (PKCS#1), "PRIVATE KEY"
 * (Ed25519: PKCS#8 with the public key, RFC 8410). Reading the Ed25519 one as PRIVATEKEY_TYPE
 * would strip the PKCS#8 wrapper and with it the public key, so each family has its types. */
static const int key_pem_out[RQ_N_FAM] = {ECC_PRIVATEKEY_TYPE, PRIVATEKEY_TYPE,
                                          PKCS8_PRIVATEKEY_TYPE};
static const int key_pem_in[RQ_N_FAM] = {PRIVATEKEY_TYPE, PRIVATEKEY_TYPE, PKCS8_PRIVATEKEY_TYPE};

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
} sigalgs[RQ_N_FAM] = {
    [RQ_FAM_EC] = {sigalg_ec, sizeof sigalg_ec, CTC_SHA256wECDSA},
    [RQ_FAM_RSA] = {sigalg_rsa, sizeof sigalg_rsa, CTC_SHA256wRSA},
    [RQ_FAM_ED25519] = {sigalg_ed, sizeof sigalg_ed, CTC_ED25519},
};

void rq_certgen_free_secret(void *p, size_t len)
{
    if (p)
        explicit_bzero(p, len);
    free(p);
}

/* ---- DER writer ----------------------------------------------------------------------------
 * Appends to a growable buffer. der_open() writes a tag and a one-byte length placeholder;
 * der_close() fills in the length, moving the content when the length needs more bytes. An
 * allocation failure sets oom and turns every later call into a no-op. */

void rq_certgen_der_put(struct rq_der *d, const void *src, size_t n)
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

static size_t der_open(struct rq_der *d, uint8_t tag)
{
    const uint8_t h[2] = {tag, 0};
    rq_certgen_der_put(d, h, 2);
    return d->len;
}

static void der_close(struct rq_der *d, size_t start)
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
    rq_certgen_der_put(d, room, k);
    if (d->oom)
        return;
    memmove(d->p + start + k, d->p + start, n);
    d->p[start - 1] = (uint8_t)(0x80 | k);
    for (size_t i = 0; i < k; i++)
        d->p[start + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
}

static void der_tlv(struct rq_der *d, uint8_t tag, const void *v, size_t n)
{
    size_t s = der_open(d, tag);
    rq_certgen_der_put(d, v, n);
    der_close(d, s);
}

/* Name ::= SEQUENCE OF SET OF { type, value }: one RDN, commonName as UTF8String. */
static void der_name(struct rq_der *d, const char *cn)
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
static void der_time(struct rq_der *d, int64_t t)
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
static void ext_open(struct rq_der *d, const uint8_t oid[3], bool critical, size_t at[2])
{
    static const uint8_t crit[] = {0x01, 0x01, 0xff};
    at[0] = der_open(d, 0x30);
    der_tlv(d, 0x06, oid, 3);
    if (critical)
        rq_certgen_der_put(d, crit, sizeof crit);
    at[1] = der_open(d, 0x04);
}

static void ext_close(struct rq_der *d, const size_t at[2])
{
    der_close(d, at[1]);
    der_close(d, at[0]);
}

static void ext_raw(struct rq_der *d, const uint8_t oid[3], bool critical, const void *v, size_t n)
{
    size_t at[2];
    ext_open(d, oid, critical, at);
    rq_certgen_der_put(d, v, n);
    ext_close(d, at);
}

/* keyUsage BIT STRING with named bits 0..7 in one byte: DER drops trailing zero bits. */
static void ext_key_usage(struct rq_der *d, uint8_t bits)
{
    static const uint8_t oid[3] = {0x55, 0x1d, 0x0f};
    uint8_t unused = 0;
    while (unused < 7 && !(bits & (1u << unused)))
        unused++;
    const uint8_t v[4] = {0x03, 0x02, unused, bits};
    ext_raw(d, oid, true, v, sizeof v);
}

/* ---- SANs ---------------------------------------------------------------------------------- */

static void ext_sans(struct rq_der *d, const struct rq_sans *s)
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

bool rq_certgen_sans_match(const struct rq_sans *s, const DNS_entry *names)
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

void rq_certgen_key_free(struct rq_key *k)
{
    if (!k)
        return;
    if (k->live && k->fam == RQ_FAM_EC)
        wc_ecc_free(&k->u.ec);
    else if (k->live && k->fam == RQ_FAM_RSA)
        wc_FreeRsaKey(&k->u.rsa);
    else if (k->live)
        wc_ed25519_free(&k->u.ed);
    rq_certgen_free_secret(k, sizeof *k);
}

static struct rq_key *key_new(int fam)
{
    struct rq_key *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->fam = fam;
    int rc = fam == RQ_FAM_EC    ? wc_ecc_init(&k->u.ec)
             : fam == RQ_FAM_RSA ? wc_InitRsaKey(&k->u.rsa, NULL)
                                 : wc_ed25519_init(&k->u.ed);
    k->live = rc == 0;
    if (!k->live) {
        free(k);
        return NULL;
    }
    return k;
}

int rq_certgen_key_generate(const struct rq_alg *a, WC_RNG *rng, struct rq_key **out,
                            const char **why)
{
    *out = NULL;
    struct rq_key *k = key_new(a->fam);
    if (!k) {
        *why = "out of memory";
        return -ENOMEM;
    }
    int rc = a->fam == RQ_FAM_EC ? wc_ecc_make_key_ex(rng, wc_ecc_get_curve_size_from_id(a->param),
                                                      &k->u.ec, a->param)
             : a->fam == RQ_FAM_RSA ? wc_MakeRsaKey(&k->u.rsa, a->param, WC_RSA_EXPONENT, rng)
                                    : wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &k->u.ed);
    if (rc != 0) {
        *why = wc_GetErrorString(rc);
        rq_certgen_key_free(k);
        return -EIO;
    }
    k->param = a->param;
    *out = k;
    return 0;
}

/* The subjectPublicKey BIT STRING's content, which SKIDs hash: the EC point (X9.63), the
 * PKCS#1 RSAPublicKey, the raw Ed25519 key. */
static int key_public_bits(struct rq_key *k, uint8_t *buf, word32 cap, word32 *len)
{
    int rc;
    *len = cap;
    if (k->fam == RQ_FAM_EC)
        return wc_ecc_export_x963(&k->u.ec, buf, len);
    if (k->fam == RQ_FAM_ED25519)
        return wc_ed25519_export_public(&k->u.ed, buf, len);
    rc = wc_RsaKeyToPublicDer_ex(&k->u.rsa, buf, cap, 0);
    *len = rc > 0 ? (word32)rc : 0;
    return rc > 0 ? 0 : rc;
}

static int key_spki(struct rq_key *k, uint8_t *buf, word32 cap)
{
    return k->fam == RQ_FAM_EC    ? wc_EccPublicKeyToDer(&k->u.ec, buf, cap, 1)
           : k->fam == RQ_FAM_RSA ? wc_RsaKeyToPublicDer(&k->u.rsa, buf, cap)
                                  : wc_Ed25519PublicKeyToDer(&k->u.ed, buf, cap, 1);
}

int rq_certgen_key_id(struct rq_key *k, uint8_t id[RQ_KEYID_LEN])
{
    uint8_t buf[PUB_MAX];
    word32 len;
    int rc = key_public_bits(k, buf, sizeof buf, &len);
    return rc == 0 ? wc_ShaHash(buf, len, id) : rc;
}

/* Signs msg the way the CA's AlgorithmIdentifier says (SHA-256 with ECDSA or RSA PKCS#1 v1.5,
 * or pure Ed25519). Returns the signature length or a negative wolfCrypt error. */
static int key_sign(struct rq_key *k, const uint8_t *msg, size_t len, WC_RNG *rng, uint8_t *sig)
{
    uint8_t hash[WC_SHA256_DIGEST_SIZE], enc[MAX_ENCODED_SIG_SZ];
    word32 n = SIG_MAX;
    int rc = 0;
    if (k->fam == RQ_FAM_ED25519) {
        rc = wc_ed25519_sign_msg(msg, (word32)len, sig, &n, &k->u.ed);
        return rc == 0 ? (int)n : rc;
    }
    if ((rc = wc_Sha256Hash(msg, (word32)len, hash)) != 0)
        return rc;
    if (k->fam == RQ_FAM_EC) {
        rc = wc_ecc_sign_hash(hash, sizeof hash, sig, &n, rng, &k->u.ec);
        return rc == 0 ? (int)n : rc;
    }
    word32 elen = wc_EncodeSignature(enc, hash, sizeof hash, SHA256h);
    return wc_RsaSSL_Sign(enc, elen, sig, SIG_MAX, &k->u.rsa, rng);
}

static bool key_verify(struct rq_key *k, const uint8_t *msg, size_t len, const uint8_t *sig,
                       size_t siglen)
{
    uint8_t hash[WC_SHA256_DIGEST_SIZE], enc[MAX_ENCODED_SIG_SZ], dec[SIG_MAX];
    int res = 0;
    if (k->fam == RQ_FAM_ED25519)
        return wc_ed25519_verify_msg(sig, (word32)siglen, msg, (word32)len, &res, &k->u.ed) == 0 &&
               res == 1;
    if (wc_Sha256Hash(msg, (word32)len, hash) != 0)
        return false;
    if (k->fam == RQ_FAM_EC)
        return wc_ecc_verify_hash(sig, (word32)siglen, hash, sizeof hash, &res, &k->u.ec) == 0 &&
               res == 1;
    word32 elen = wc_EncodeSignature(enc, hash, sizeof hash, SHA256h);
    int n = wc_RsaSSL_Verify(sig, (word32)siglen, dec, sizeof dec, &k->u.rsa);
    return n > 0 && (word32)n == elen && memcmp(dec, enc, elen) == 0;
}

int rq_certgen_key_to_pem(struct rq_key *k, char **pem, size_t *pem_len)
{
    const word32 cap = 16384;
    uint8_t *der = malloc(cap);
    int n, type = key_pem_out[k->fam], rc = MEMORY_E;
    *pem = NULL;
    if (!der)
        return MEMORY_E;
    n = k->fam == RQ_FAM_EC    ? wc_EccKeyToDer(&k->u.ec, der, cap)
        : k->fam == RQ_FAM_RSA ? wc_RsaKeyToDer(&k->u.rsa, der, cap)
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
            rq_certgen_free_secret(*pem, (size_t)n * 2 + 128);
            *pem = NULL;
        }
    }
    rq_certgen_free_secret(der, cap);
    return rc;
}

int rq_certgen_key_from_pem(const char *pem, size_t len, int fam, WC_RNG *rng, struct rq_key **out,
                            const char **why)
{
    DerBuffer *der = NULL;
    struct rq_key *k = NULL;
    word32 idx = 0;
    *out = NULL;
    *why = "not a PEM private key";
    int rc =
        wc_PemToDer((const unsigned char *)pem, (long)len, key_pem_in[fam], &der, NULL, NULL, NULL);
    if (rc == 0 && !(k = key_new(fam))) {
        rc = MEMORY_E;
        *why = "out of memory";
    } else if (rc == 0) {
        *why = fam == RQ_FAM_EC    ? "not an EC private key"
               : fam == RQ_FAM_RSA ? "not an RSA private key"
                                   : "not an Ed25519 private key";
        rc = fam == RQ_FAM_EC ? wc_EccPrivateKeyDecode(der->buffer, &idx, &k->u.ec, der->length)
             : fam == RQ_FAM_RSA
                 ? wc_RsaPrivateKeyDecode(der->buffer, &idx, &k->u.rsa, der->length)
                 : wc_Ed25519PrivateKeyDecode(der->buffer, &idx, &k->u.ed, der->length);
    }
    wc_FreeDer(&der);
    if (rc == 0) {
        k->param = fam == RQ_FAM_EC    ? wc_ecc_get_curve_id(k->u.ec.idx)
                   : fam == RQ_FAM_RSA ? wc_RsaEncryptSize(&k->u.rsa) * 8
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
        rq_certgen_key_free(k);
        return -EIO;
    }
    *out = k;
    return 0;
}

/* ---- certificates ------------------------------------------------------------------------- */

/* TBSCertificate (RFC 5280 4.1), v3, signed by a key of family fam. */
static void der_tbs(struct rq_der *d, const struct rq_tbs *t, int fam, const uint8_t *spki,
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
    rq_certgen_der_put(d, v3, sizeof v3);
    der_tlv(d, 0x02, t->serial, sizeof t->serial);
    rq_certgen_der_put(d, sigalgs[fam].der, sigalgs[fam].len);
    der_name(d, t->issuer_cn);
    size_t validity = der_open(d, 0x30);
    der_time(d, t->not_before);
    der_time(d, t->not_after);
    der_close(d, validity);
    der_name(d, t->subject_cn);
    rq_certgen_der_put(d, spki, spki_len);
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
    der_tlv(d, 0x04, t->skid, RQ_KEYID_LEN);
    ext_close(d, at);
    if (t->akid) {
        ext_open(d, oid_akid, false, at);
        size_t aki = der_open(d, 0x30);
        der_tlv(d, 0x80, t->akid, RQ_KEYID_LEN); /* [0] keyIdentifier */
        der_close(d, aki);
        ext_close(d, at);
    }
    der_close(d, seq);
    der_close(d, exts);
    der_close(d, tbs);
}

int rq_certgen_cert_make(const struct rq_tbs *t, struct rq_key *subject_key, struct rq_key *signer,
                         WC_RNG *rng, uint8_t **der_out, size_t *der_len)
{
    uint8_t spki[PUB_MAX], sig[SIG_MAX];
    struct rq_der tbs = {0}, cert = {0};
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
        rq_certgen_der_put(&cert, tbs.p, tbs.len);
        rq_certgen_der_put(&cert, sigalgs[signer->fam].der, sigalgs[signer->fam].len);
        size_t bits = der_open(&cert, 0x03);
        rq_certgen_der_put(&cert, "", 1); /* no unused bits */
        rq_certgen_der_put(&cert, sig, (size_t)n);
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

char *rq_certgen_der_to_pem(const uint8_t *der, size_t len, size_t *pem_len)
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

void rq_certgen_cert_free(struct rq_cert *c)
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

int rq_certgen_cert_from_pem(const char *pem, size_t len, struct rq_cert *c, const char **why)
{
    memset(c, 0, sizeof *c);
    *why = "no PEM certificate wolfSSL can parse";
    c->der = malloc(len + 1);
    c->dc = calloc(1, sizeof *c->dc);
    if (!c->der || !c->dc) {
        rq_certgen_cert_free(c);
        *why = "out of memory";
        return -ENOMEM;
    }
    int n = wc_CertPemToDer((const unsigned char *)pem, (int)len, c->der, (int)len, CERT_TYPE);
    if (n <= 0) {
        free(c->dc);
        c->dc = NULL;
        rq_certgen_cert_free(c);
        return -EIO;
    }
    c->der_len = (size_t)n;
    wc_InitDecodedCert(c->dc, c->der, (word32)n, NULL);
    if (wc_ParseCert(c->dc, CERT_TYPE, NO_VERIFY, NULL) != 0 || !c->dc->extSubjKeyIdSet) {
        rq_certgen_cert_free(c);
        return -EIO;
    }
    c->not_before = cert_time(c->dc->beforeDate, c->dc->beforeDateLen);
    c->not_after = cert_time(c->dc->afterDate, c->dc->afterDateLen);
    if (c->not_before < 0 || c->not_after < 0) {
        *why = "unreadable validity dates";
        rq_certgen_cert_free(c);
        return -EIO;
    }
    return 0;
}

bool rq_certgen_cert_signed_by(const struct rq_cert *c, struct rq_key *signer)
{
    const DecodedCert *dc = c->dc;
    return dc->signatureOID == sigalgs[signer->fam].oid_sum && dc->sigIndex > dc->certBegin &&
           key_verify(signer, dc->source + dc->certBegin, dc->sigIndex - dc->certBegin,
                      dc->signature, dc->sigLength);
}
