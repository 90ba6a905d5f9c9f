/* Local verification of service account tokens: see jwks.h. JSON through cJSON; base64url,
 * SHA-256, RSA and ECC through wolfCrypt. */
#include "auth/jwks.h"

#include <cjson/cJSON.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/signature.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEG 16384

enum { KEY_RSA = 1, KEY_EC = 2 };

struct jwk {
    int type;
    char kid[128];
    RsaKey rsa;
    ecc_key ec;
};

struct rq_jwks {
    size_t n;
    struct jwk k[RQ_JWKS_MAX_KEYS];
};

/* base64url (no padding) -> bytes; malloc'd, *olen; NULL when not base64url. */
static uint8_t *b64url(const char *s, size_t n, word32 *olen)
{
    if (n == 0 || n > MAX_SEG)
        return NULL;
    char *b = malloc(n + 4);
    uint8_t *out = malloc(n / 4 * 3 + 4);
    if (!b || !out)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=')
            goto fail; /* base64url only */
        b[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t bl = n;
    while (bl % 4)
        b[bl++] = '=';
    *olen = (word32)(n / 4 * 3 + 4);
    if (Base64_Decode((const byte *)b, (word32)bl, out, olen) != 0)
        goto fail;
    free(b);
    return out;
fail:
    free(b);
    free(out);
    return NULL;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int rq_jwks_parse_discovery(const char *body, size_t len, char *issuer, size_t issuer_cap,
                            char *jwks_uri, size_t uri_cap, const char **why)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const char *iss = str(root, "issuer"), *uri = str(root, "jwks_uri");
    int rc = -1;
    if (!iss || !uri || !*iss || !*uri)
        *why = "the discovery document has no issuer or jwks_uri";
    else if (strlen(iss) >= issuer_cap || strlen(uri) >= uri_cap)
        *why = "the discovery document's issuer or jwks_uri is too long";
    else if (strncmp(uri, "https://", 8) != 0)
        *why = "the discovery document's jwks_uri is not https";
    else
        rc = 0;
    if (rc == 0) {
        snprintf(issuer, issuer_cap, "%s", iss);
        snprintf(jwks_uri, uri_cap, "%s", uri);
    }
    cJSON_Delete(root);
    return rc;
}

static bool load_rsa(struct jwk *k, const cJSON *j)
{
    const char *n = str(j, "n"), *e = str(j, "e");
    word32 nl = 0, el = 0;
    uint8_t *nb = n ? b64url(n, strlen(n), &nl) : NULL;
    uint8_t *eb = e ? b64url(e, strlen(e), &el) : NULL;
    bool ok = nb && eb && nl >= 256 && nl <= 512 && wc_InitRsaKey(&k->rsa, NULL) == 0;
    if (ok && wc_RsaPublicKeyDecodeRaw(nb, nl, eb, el, &k->rsa) != 0) {
        wc_FreeRsaKey(&k->rsa);
        ok = false;
    }
    free(nb);
    free(eb);
    return ok;
}

static bool load_ec(struct jwk *k, const cJSON *j)
{
    const char *crv = str(j, "crv"), *x = str(j, "x"), *y = str(j, "y");
    word32 xl = 0, yl = 0;
    uint8_t *xb = x ? b64url(x, strlen(x), &xl) : NULL;
    uint8_t *yb = y ? b64url(y, strlen(y), &yl) : NULL;
    bool ok = crv && strcmp(crv, "P-256") == 0 && xb && yb && xl == 32 && yl == 32 &&
              wc_ecc_init(&k->ec) == 0;
    if (ok && (wc_ecc_import_unsigned(&k->ec, xb, yb, NULL, ECC_SECP256R1) != 0 ||
               wc_ecc_check_key(&k->ec) != 0)) {
        wc_ecc_free(&k->ec);
        ok = false;
    }
    free(xb);
    free(yb);
    return ok;
}

struct rq_jwks *rq_jwks_parse(const char *body, size_t len, const char **why)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    struct rq_jwks *s = cJSON_IsArray(keys) ? calloc(1, sizeof *s) : NULL;
    const cJSON *j;
    const cJSON *list = s ? keys : NULL;
    cJSON_ArrayForEach(j, list)
    {
        const char *kty = str(j, "kty"), *kid = str(j, "kid"), *use = str(j, "use");
        if (s->n == RQ_JWKS_MAX_KEYS || !kty || !kid || strlen(kid) >= sizeof s->k[0].kid ||
            (use && strcmp(use, "sig") != 0))
            continue;
        struct jwk *k = &s->k[s->n];
        if (strcmp(kty, "RSA") == 0 && load_rsa(k, j))
            k->type = KEY_RSA;
        else if (strcmp(kty, "EC") == 0 && load_ec(k, j))
            k->type = KEY_EC;
        else
            continue;
        snprintf(k->kid, sizeof k->kid, "%s", kid);
        s->n++;
    }
    cJSON_Delete(root);
    if (!s || s->n == 0) {
        *why = s ? "the JWKS has no usable RSA or P-256 signing key" : "not a JWKS document";
        rq_jwks_free(s);
        return NULL;
    }
    return s;
}

void rq_jwks_free(struct rq_jwks *s)
{
    for (size_t i = 0; s && i < s->n; i++) {
        if (s->k[i].type == KEY_RSA)
            wc_FreeRsaKey(&s->k[i].rsa);
        else
            wc_ecc_free(&s->k[i].ec);
    }
    free(s);
}

size_t rq_jwks_count(const struct rq_jwks *s)
{
    return s ? s->n : 0;
}

/* ---- verification ---------------------------------------------------------------------- */

static const struct jwk *find(const struct rq_jwks *s, const char *kid, int type)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->k[i].type == type && strcmp(s->k[i].kid, kid) == 0)
            return &s->k[i];
    return NULL;
}

/* RS256: RSASSA-PKCS1-v1_5 with SHA-256. The recovered block must be exactly the DER
 * DigestInfo of RFC 8017 9.2 (algorithm sha256 with NULL parameters) and the hash. */
static bool rsa_ok(const RsaKey *key, const uint8_t *data, size_t dlen, const uint8_t *sig,
                   word32 sl)
{
    static const uint8_t prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t buf[512], hash[WC_SHA256_DIGEST_SIZE];
    byte *out = NULL;
    if (sl != (word32)wc_RsaEncryptSize(key) || sl > sizeof buf)
        return false;
    memcpy(buf, sig, sl);
    int n = wc_RsaSSL_VerifyInline(buf, sl, &out, (RsaKey *)key);
    if (n != (int)(sizeof prefix + sizeof hash) || wc_Sha256Hash(data, (word32)dlen, hash) != 0)
        return false;
    return memcmp(out, prefix, sizeof prefix) == 0 &&
           memcmp(out + sizeof prefix, hash, sizeof hash) == 0;
}

/* The signature over signed[0..slen) (header.payload) with key k. */
static bool sig_ok(const struct jwk *k, const uint8_t *signed_part, size_t slen, const uint8_t *sig,
                   word32 sl)
{
    if (k->type == KEY_RSA)
        return rsa_ok(&k->rsa, signed_part, slen, sig, sl);
    if (sl != 64)
        return false;
    uint8_t der[80];
    word32 dl = sizeof der;
    if (wc_ecc_rs_raw_to_sig(sig, 32, sig + 32, 32, der, &dl) != 0)
        return false;
    return wc_SignatureVerify(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_ECC, signed_part, (word32)slen,
                              der, dl, &k->ec, sizeof k->ec) == 0;
}

static bool aud_ok(const cJSON *aud, char *const *auds, size_t n)
{
    const cJSON *a;
    if (cJSON_IsString(aud)) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(aud->valuestring, auds[i]) == 0)
                return true;
        return false;
    }
    cJSON_ArrayForEach(a, aud)
    {
        for (size_t i = 0; cJSON_IsString(a) && i < n; i++)
            if (strcmp(a->valuestring, auds[i]) == 0)
                return true;
    }
    return false;
}

static bool num(const cJSON *o, const char *k, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e12)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

/* The service account: kubernetes.io {namespace, serviceaccount.name}. */
static bool subject(const cJSON *p, struct rq_jwt_claims *out)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(p, "kubernetes.io");
    const char *ns = str(k, "namespace");
    const char *name = str(cJSON_GetObjectItemCaseSensitive(k, "serviceaccount"), "name");
    if (!ns || !name || !*ns || !*name || strlen(ns) >= sizeof out->ns ||
        strlen(name) >= sizeof out->name || strchr(ns, ':') || strchr(name, ':'))
        return false;
    snprintf(out->ns, sizeof out->ns, "%s", ns);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->username, sizeof out->username, "system:serviceaccount:%s:%s", ns, name);
    return true;
}

static const char *check_claims(const cJSON *p, const char *issuer, char *const *auds,
                                size_t n_auds, int64_t now, struct rq_jwt_claims *out)
{
    int64_t exp, nbf = 0;
    const char *iss = str(p, "iss");
    if (!iss || strcmp(iss, issuer) != 0)
        return "issuer differs";
    if (!aud_ok(cJSON_GetObjectItemCaseSensitive(p, "aud"), auds, n_auds))
        return "not for any configured audience";
    if (!num(p, "exp", &exp))
        return "no exp";
    if (now >= exp + RQ_JWKS_SKEW_S)
        return "expired";
    if (cJSON_GetObjectItemCaseSensitive(p, "nbf") &&
        (!num(p, "nbf", &nbf) || nbf > now + RQ_JWKS_SKEW_S))
        return "not valid yet";
    if (!subject(p, out))
        return "not a bound service account token";
    out->exp = exp;
    return NULL;
}

int rq_jwks_verify(const struct rq_jwks *s, const uint8_t *tok, size_t len, const char *issuer,
                   char *const *auds, size_t n_auds, int64_t now, struct rq_jwt_claims *out,
                   const char **why)
{
    const uint8_t *d1 = memchr(tok, '.', len);
    const uint8_t *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    memset(out, 0, sizeof *out);
    *why = "not a JWT";
    if (!s || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return -1;
    word32 hl = 0, pl = 0, sl = 0;
    uint8_t *h = b64url((const char *)tok, (size_t)(d1 - tok), &hl);
    uint8_t *p = b64url((const char *)d1 + 1, (size_t)(d2 - d1 - 1), &pl);
    uint8_t *sig = b64url((const char *)d2 + 1, len - (size_t)(d2 + 1 - tok), &sl);
    cJSON *hj = h ? cJSON_ParseWithLength((const char *)h, hl) : NULL;
    cJSON *pj = p ? cJSON_ParseWithLength((const char *)p, pl) : NULL;
    const char *alg = str(hj, "alg"), *kid = str(hj, "kid");
    int rc = -1;
    if (!hj || !pj || !sig || !alg || !kid)
        goto out;
    int type = strcmp(alg, "RS256") == 0 ? KEY_RSA : strcmp(alg, "ES256") == 0 ? KEY_EC : 0;
    const struct jwk *k = type ? find(s, kid, type) : NULL;
    if (!k) {
        *why = type ? "no key with the token's kid" : "algorithm is not RS256 or ES256";
        goto out;
    }
    if (!sig_ok(k, tok, (size_t)(d2 - tok), sig, sl)) {
        *why = "bad signature";
        goto out;
    }
    if ((*why = check_claims(pj, issuer, auds, n_auds, now, out)) == NULL)
        rc = 0;
out:
    cJSON_Delete(hj);
    cJSON_Delete(pj);
    free(h);
    free(p);
    free(sig);
    return rc;
}
