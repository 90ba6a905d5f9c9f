/* What the Custom method takes from the chain's credentials: the PEM text of the client's
 * certificates (round trip through auth/pem.c, 64-column lines) and the field mapping. */
#include "auth/custom.h"
#include "auth/pem.h"

#include "../check.h"

#include <stdlib.h>
#include <string.h>

static void test_pem_known(void)
{
    const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x05};
    const uint8_t *list[] = {der, der};
    size_t lens[] = {sizeof der, sizeof der}, len = 0;
    char *pem = rq_custom_pem_chain(list, lens, 2, &len);
    CHECK_STR(pem, "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n"
                   "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n");
    CHECK_EQ(len, pem ? strlen(pem) : 0);
    free(pem);
    CHECK(rq_custom_pem_chain(list, lens, 0, &len) == NULL);
}

static void test_pem_round_trip(void)
{
    static const size_t sizes[] = {1, 47, 48, 49, 95, 96, 97, 700};
    enum { N = sizeof sizes / sizeof sizes[0] };
    uint8_t *ders[N];
    for (size_t i = 0; i < N; i++) {
        ders[i] = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            ders[i][j] = (uint8_t)(j * 31 + i);
    }
    size_t len = 0;
    char *pem = rq_custom_pem_chain((const uint8_t *const *)ders, sizes, N, &len);
    CHECK(pem != NULL);
    size_t off = 0, longest = 0, run = 0;
    for (size_t i = 0; pem && i < len; i++) {
        run = pem[i] == '\n' ? 0 : run + 1;
        longest = run > longest ? run : longest;
    }
    CHECK(longest <= 64);
    for (size_t i = 0; pem && i < N; i++) {
        uint8_t *der = NULL;
        size_t dlen = 0;
        const char *why = NULL;
        CHECK_EQ(rq_pem_next_cert(pem, len, &off, &der, &dlen, &why), 1);
        CHECK(dlen == sizes[i] && der && memcmp(der, ders[i], dlen) == 0);
        free(der);
    }
    for (size_t i = 0; i < N; i++)
        free(ders[i]);
    free(pem);
}

static void test_creds_from(void)
{
    struct rq_authn_creds a = {
        .version = 5,
        .has_username = true,
        .username = (const uint8_t *)"bob",
        .username_len = 3,
        .has_password = false,
        .password = (const uint8_t *)"ignored",
        .password_len = 7,
        .has_auth_method = true,
        .auth_method = (const uint8_t *)"M",
        .auth_method_len = 1,
    };
    struct rq_custom_creds c;
    rq_custom_creds_from(&a, "PEM", 3, &c);
    CHECK(c.username && c.username_len == 3 && memcmp(c.username, "bob", 3) == 0);
    CHECK(c.password == NULL);
    CHECK(c.certs && c.certs_len == 3);
    CHECK(c.auth_method && c.auth_method_len == 1 && c.auth_data == NULL);
    size_t len = 0;
    const char *why = NULL;
    char *body = rq_custom_build_connect(&c, &len, &why);
    CHECK_STR(body, "{\"type\":\"connect\",\"username\":\"bob\",\"certs\":\"PEM\","
                    "\"enhancedAuthentication\":{\"method\":\"M\"}}");
    free(body);
    a.has_auth_method = false;
    a.has_username = false;
    rq_custom_creds_from(&a, NULL, 0, &c);
    CHECK(!c.username && !c.certs && !c.auth_method);
}

int main(void)
{
    test_pem_known();
    test_pem_round_trip();
    test_creds_from();
    return check_exit("test_custom_creds");
}
