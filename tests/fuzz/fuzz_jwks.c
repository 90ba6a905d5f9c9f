/* libFuzzer harness for auth/jwks (OIDC discovery, JWKS, local token verification).
 *
 * Input layout: byte 0 = mode (low 2 bits); the rest is the data.
 *  mode 0: a discovery document: on success issuer and jwks_uri are non-empty, NUL-terminated
 *          within their buffers, and jwks_uri is https.
 *  mode 1: a JWKS document: parsing never crashes or leaks; a set has 1..RQ_JWKS_MAX_KEYS keys.
 *  mode 2: a token verified against a fixed JWKS (one RSA, one P-256 key): never crashes; a token
 *          that verifies names a service account and has an exp. (Random data cannot forge a
 *          signature, so this mostly walks the header, payload and refusal paths.) */
#include "auth/jwks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* A P-256 public key (made once with python3-cryptography). */
static const char FIXED[] = "{\"keys\":[{\"use\":\"sig\",\"kty\":\"EC\",\"kid\":\"ec-1\",\"alg\":"
                            "\"ES256\",\"crv\":\"P-256\","
                            "\"x\":\"m9kuDuIbGksiaFl5ePKkX5tX8oYfuA4ctSgulhnbcaY\","
                            "\"y\":\"m_gSn64AyYJhllLAMovL1Ny2cBh0qICmkqOqdQ-kPpA\"}]}";

static struct rq_jwks *fixed;

static void discovery(const char *d, size_t n)
{
    char iss[128], uri[128];
    const char *why = NULL;
    if (rq_jwks_parse_discovery(d, n, iss, sizeof iss, uri, sizeof uri, &why) != 0) {
        ENSURE(why != NULL);
        return;
    }
    ENSURE(iss[0] && strnlen(iss, sizeof iss) < sizeof iss);
    ENSURE(strncmp(uri, "https://", 8) == 0 && strnlen(uri, sizeof uri) < sizeof uri);
}

static void jwks(const char *d, size_t n)
{
    const char *why = NULL;
    struct rq_jwks *k = rq_jwks_parse(d, n, &why);
    if (k)
        ENSURE(rq_jwks_count(k) >= 1 && rq_jwks_count(k) <= RQ_JWKS_MAX_KEYS);
    else
        ENSURE(why != NULL);
    rq_jwks_free(k);
}

static void verify(const uint8_t *d, size_t n)
{
    if (!fixed) {
        const char *why;
        fixed = rq_jwks_parse(FIXED, sizeof FIXED - 1, &why);
        ENSURE(fixed != NULL);
    }
    char *auds[] = {"aio-internal"};
    struct rq_jwt_claims c;
    const char *why = NULL;
    if (rq_jwks_verify(fixed, d, n, "https://kubernetes.default.svc.cluster.local", auds, 1,
                       1800000000, &c, &why) == 0)
        ENSURE(c.exp > 0 && strncmp(c.username, "system:serviceaccount:", 22) == 0);
    else
        ENSURE(why != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0: discovery((const char *)d, n); break;
    case 1: jwks((const char *)d, n); break;
    default: verify(d, n); break;
    }
    return 0;
}
