/* auth/jwks: discovery and JWKS parsing, and local verification of RS256 and ES256 service
 * account tokens (vectors made by tests/integration/lib/kube_api.py: iat 2099-12-31T23:00Z,
 * exp 2100-01-01T00:00Z): good tokens pass, a forged signature, an unknown kid, another issuer,
 * a wrong audience and an expired or not yet valid token (30 s skew) do not. */
#include "auth/jwks.h"
#include "tests/unit/check.h"

#include <stdlib.h>
#include <string.h>

static const char JWKS[] =
    "{\"keys\": [{\"use\": \"sig\", \"kty\": \"RSA\", \"kid\": \"rsa-c3074e2453e1\", \"alg\": \"RS256\", \"n\": \"m6"
    "jQdfIZ1N1sYzvN0CKwASo4FcACH3WabP_XHw8TVCWYaEAvtpAHvj7Y_Etn4gZOiYJP4Eg8KBJwd2MCAN4o3MPvoW4J"
    "gMjicmLtbIaEZ6kzSvapCjCRrwlK-DC6Pnn6_yZBlkCTpIcjBraH_kPmwarg2mjzNV5gXXEOsPA3kj2vnA_BMwFSSL"
    "buk3VL_LQwJamjjoIbIq8x7cKXSnOUmUZLhFib0uOMjik8L9MGpbnGxbpdLiBXSyyRR__E3UJ0GA_1MjmRQwS9R2wd"
    "ZXDaAqydTnq66zl6dQflGe1QzBqA40SmBzrN2-NJdhKZBw1fz0IQOWDjoSlWLxB7HvVYXQ\", \"e\": \"AQAB\"}, {\"u"
    "se\": \"sig\", \"kty\": \"EC\", \"kid\": \"ec-fa3ebe39214f\", \"alg\": \"ES256\", \"crv\": \"P-256\", \"x\": \"0"
    "Ild3KJkDTwmAnpc7wsEKcWL-1QOrKC-9UKLzYZDd7U\", \"y\": \"rwWPV5zp7KzXA0FH6ZWrNlflP7D-zlDcNQb8zPI"
    "VJKg\"}]}";
static const char TOK_RS[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS1jMzA3NGUyNDUzZTEiLCJ0eXAiOiJKV1QifQ.eyJhdWQiOlsiYWlvLWl"
    "udGVybmFsIl0sImV4cCI6NDEwMjQ0NDgwMCwiaWF0Ijo0MTAyNDQxMjAwLCJuYmYiOjQxMDI0NDEyMDAsImlzcyI6I"
    "mh0dHBzOi8va3ViZXJuZXRlcy5kZWZhdWx0LnN2Yy5jbHVzdGVyLmxvY2FsIiwianRpIjoiMzk2YTQ5M2UtZjc5MC0"
    "0YTlkLTliMDktZGE0Yzc1M2Q4ZTJiIiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmFpbzpjIiwia3ViZXJuZ"
    "XRlcy5pbyI6eyJuYW1lc3BhY2UiOiJhaW8iLCJzZXJ2aWNlYWNjb3VudCI6eyJuYW1lIjoiYyIsInVpZCI6ImVkNGQ"
    "xZTk2LWNlNDAtNDI4OC05YmYzLTViMDY1MWNkMmVkNyJ9LCJwb2QiOnsibmFtZSI6ImMtcG9kIiwidWlkIjoiMDcyY"
    "jc5OTctMjE1Ny00ZTA5LTk2MTctMTgzZmMzYjhiM2JiIn0sIm5vZGUiOnsibmFtZSI6Im5vZGUtMSIsInVpZCI6IjI"
    "5MDgxOTdiLTQ0OTktNDMxNy1iYzYxLWU4ZDkxZjc1ZDM2NiJ9fX0.F3rHwgb6x0b1o6Lk0pXNgcrJO1ZyyHG9-fZQ8"
    "PNArjayj9w9XAvHmxWHnuPfAYw9ZDrdrWOwp4ea4YJX44v6bUkk57c5b0gegQqbSLXCeBllLUI_rJyNVY65iuw_Xwd"
    "hcD9aodRocls-FpPCtyQCXadINHyUus0Qw5sNF5smMvFt7d1VrMb24Lx09gR6ulsdjZwlwKTX3TgfQI1vIwz0oWlRe"
    "KIpW_5B-e7XtycqxCx1P2tWRtz5SfiJ4ndp9IUhEkCHDbd1CVFFmvek9yPGvjS3WtRhDhGMnzufubiqGuWdcG2qN7u"
    "y5lWZXvbmabCy-leQUXZJvMgeF6dDCFyGdA";
static const char TOK_ES[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLWZhM2ViZTM5MjE0ZiIsInR5cCI6IkpXVCJ9.eyJhdWQiOlsiYWlvLWlud"
    "GVybmFsIl0sImV4cCI6NDEwMjQ0NDgwMCwiaWF0Ijo0MTAyNDQxMjAwLCJuYmYiOjQxMDI0NDEyMDAsImlzcyI6Imh"
    "0dHBzOi8va3ViZXJuZXRlcy5kZWZhdWx0LnN2Yy5jbHVzdGVyLmxvY2FsIiwianRpIjoiODE3MDViMmUtZGRlNi00O"
    "WU3LWFhZmEtOTg3NDllZDMyYWFhIiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmFpbzpjIiwia3ViZXJuZXR"
    "lcy5pbyI6eyJuYW1lc3BhY2UiOiJhaW8iLCJzZXJ2aWNlYWNjb3VudCI6eyJuYW1lIjoiYyIsInVpZCI6ImVkNGQxZ"
    "Tk2LWNlNDAtNDI4OC05YmYzLTViMDY1MWNkMmVkNyJ9LCJwb2QiOnsibmFtZSI6ImMtcG9kIiwidWlkIjoiY2Y5NTk"
    "zMmItNTcxNy00NjUzLWI1MDYtNzJhNzdmYjIzMzhlIn0sIm5vZGUiOnsibmFtZSI6Im5vZGUtMSIsInVpZCI6ImZhN"
    "TNjOGE1LTQ5ZDYtNDYyNy1iMzkzLTk3ZGRiNDY0YWYyNyJ9fX0.dBsTySsYmGvf0jApYs3EdnpqZE0DT3XZhXloXIr"
    "4KOLyYVb9qxyBGRi0rj61tJvr82B6scAP1KE-dCDPNSjPSg";
static const char TOK_AUD[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLWZhM2ViZTM5MjE0ZiIsInR5cCI6IkpXVCJ9.eyJhdWQiOlsib3RoZXIiX"
    "SwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjQxMDI0NDEyMDAsIm5iZiI6NDEwMjQ0MTIwMCwiaXNzIjoiaHR0cHM6Ly9"
    "rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjLmNsdXN0ZXIubG9jYWwiLCJqdGkiOiJlMjQzOGEyNS03YTRjLTQzNjQtOGVkN"
    "y1jZTY1NmM1ZmZmOTUiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWlvOmMiLCJrdWJlcm5ldGVzLmlvIjp"
    "7Im5hbWVzcGFjZSI6ImFpbyIsInNlcnZpY2VhY2NvdW50Ijp7Im5hbWUiOiJjIiwidWlkIjoiZWQ0ZDFlOTYtY2U0M"
    "C00Mjg4LTliZjMtNWIwNjUxY2QyZWQ3In0sInBvZCI6eyJuYW1lIjoiYy1wb2QiLCJ1aWQiOiJmNGMyYzJjYy00OWN"
    "iLTQ3OWQtOThkZS0xZTQxNzA1OTU2YjgifSwibm9kZSI6eyJuYW1lIjoibm9kZS0xIiwidWlkIjoiMmNhOTFmM2ItO"
    "GU2OS00ODU1LTg5NDAtMDlmZGQ2MWVhMzI3In19fQ.g3vpAo0yfk6BPTRXw7H46a_YmBgB14Ts-_VamwSm0N0ztLDS"
    "94zntm3IKA1_qOSvfDrTuSKYsh6eHtdtk765Gg";
static const char ISSUER[] = "https://kubernetes.default.svc.cluster.local";

static char *auds[] = {"x", "aio-internal"};
static const int64_t IAT = 4102444800 - 3600;

static int verify(const struct rq_jwks *k, const char *tok, const char *iss, int64_t now,
                  const char **why)
{
    struct rq_jwt_claims c;
    int rc = rq_jwks_verify(k, (const uint8_t *)tok, strlen(tok), iss, auds, 2, now, &c, why);
    if (rc == 0) {
        CHECK_STR(c.username, "system:serviceaccount:aio:c");
        CHECK_EQ(c.exp, 4102444800);
    }
    return rc;
}

static void test_verify(void)
{
    const char *why = NULL;
    struct rq_jwks *k = rq_jwks_parse(JWKS, strlen(JWKS), &why);
    CHECK(k != NULL);
    if (!k)
        return;
    CHECK_EQ(rq_jwks_count(k), 2);
    CHECK_EQ(verify(k, TOK_RS, ISSUER, IAT + 10, &why), 0);
    CHECK_EQ(verify(k, TOK_ES, ISSUER, IAT + 10, &why), 0);
    CHECK_EQ(verify(k, TOK_ES, ISSUER, IAT - 20, &why), 0); /* nbf within the skew */
    CHECK_EQ(verify(k, TOK_ES, ISSUER, IAT - 40, &why), -1);
    CHECK_STR(why, "not valid yet");
    CHECK_EQ(verify(k, TOK_RS, ISSUER, 4102444800 + 40, &why), -1);
    CHECK_STR(why, "expired");
    CHECK_EQ(verify(k, TOK_RS, "https://other", IAT, &why), -1);
    CHECK_STR(why, "issuer differs");
    CHECK_EQ(verify(k, TOK_AUD, ISSUER, IAT, &why), -1);
    CHECK_STR(why, "not for any configured audience");
    /* forged: one signature character changed */
    char *forged = strdup(TOK_RS);
    size_t n = strlen(forged);
    forged[n - 5] = forged[n - 5] == 'A' ? 'B' : 'A';
    CHECK_EQ(verify(k, forged, ISSUER, IAT, &why), -1);
    CHECK_STR(why, "bad signature");
    free(forged);
    forged = strdup(TOK_ES);
    n = strlen(forged);
    forged[n - 5] = forged[n - 5] == 'A' ? 'B' : 'A';
    CHECK_EQ(verify(k, forged, ISSUER, IAT, &why), -1);
    free(forged);
    /* a payload swapped in under the RS256 signature */
    char *mix = malloc(strlen(TOK_RS) + strlen(TOK_AUD) + 1);
    const char *p1 = strchr(TOK_RS, '.'), *p2 = strchr(TOK_AUD, '.');
    size_t hl = (size_t)(p1 - TOK_RS);
    const char *s2 = strchr(p2 + 1, '.'), *s1 = strchr(p1 + 1, '.');
    sprintf(mix, "%.*s%.*s%s", (int)hl, TOK_RS, (int)(s2 - p2), p2, s1);
    CHECK_EQ(verify(k, mix, ISSUER, IAT, &why), -1);
    CHECK_STR(why, "bad signature");
    free(mix);
    CHECK_EQ(verify(k, "a.b", ISSUER, IAT, &why), -1);
    CHECK_EQ(verify(k, "a.b.c.d", ISSUER, IAT, &why), -1);
    rq_jwks_free(k);
}

static void test_parse(void)
{
    const char *why = NULL;
    char iss[128], uri[128];
    const char *d = "{\"issuer\":\"https://kubernetes.default.svc\",\"jwks_uri\":"
                    "\"https://10.0.0.1:6443/openid/v1/jwks\"}";
    CHECK_EQ(rq_jwks_parse_discovery(d, strlen(d), iss, sizeof iss, uri, sizeof uri, &why), 0);
    CHECK_STR(iss, "https://kubernetes.default.svc");
    CHECK_STR(uri, "https://10.0.0.1:6443/openid/v1/jwks");
    CHECK_EQ(rq_jwks_parse_discovery("{}", 2, iss, sizeof iss, uri, sizeof uri, &why), -1);
    const char *plain = "{\"issuer\":\"a\",\"jwks_uri\":\"http://x/\"}";
    CHECK_EQ(rq_jwks_parse_discovery(plain, strlen(plain), iss, sizeof iss, uri, sizeof uri,
                                     &why), -1);
    CHECK(rq_jwks_parse("{\"keys\":[]}", 11, &why) == NULL);
    const char *weak = "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}";
    CHECK(rq_jwks_parse(weak, strlen(weak), &why) == NULL);
    CHECK(rq_jwks_parse("[]", 2, &why) == NULL);
}

int main(void)
{
    test_verify();
    test_parse();
    return check_exit("test_jwks");
}
