/* customSettings checks that keep the configuration in step with what auth/custom.c builds: an
 * endpoint the loader accepts is one rq_custom_method_new accepts (a host, no query or fragment,
 * ASCII), and headers the method sets itself cannot be configured. Every error names its
 * file:line:col. */
#include "config/config.h"
#include "tests/unit/check.h"

#include <string.h>

#define METHODS                                                                                    \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: BrokerAuthentication\n"                                                                 \
    "metadata:\n"                                                                                  \
    "  name: authn\n"                                                                              \
    "spec:\n"                                                                                      \
    "  authenticationMethods:\n"                                                                   \
    "  - method: Custom\n"

static void expect(const char *yaml, const char *want)
{
    char err[512] = "";
    struct rq_config *c = rq_config_load_buffer("x.yaml", yaml, strlen(yaml), err, sizeof err);
    if (want) {
        CHECK(c == NULL);
        CHECK_STR(err, want);
    } else {
        CHECK(c != NULL);
        if (!c)
            fprintf(stderr, "unexpected error: %s\n", err);
    }
    rq_config_free(c);
}

static void test_endpoint(void)
{
    expect(METHODS "    customSettings: {endpoint: \"https:///path\"}\n",
           "x.yaml:8:32: endpoint 'https:///path' has no host");
    expect(METHODS "    customSettings: {endpoint: \"https://auth/x?a=1\"}\n",
           "x.yaml:8:32: endpoint 'https://auth/x?a=1' must not hold '?', '#' or non-ASCII "
           "characters (ringmq appends /?api-version=0.5.0; percent-encode the rest)");
    expect(METHODS "    customSettings: {endpoint: \"https://auth/#frag\"}\n",
           "x.yaml:8:32: endpoint 'https://auth/#frag' must not hold '?', '#' or non-ASCII "
           "characters (ringmq appends /?api-version=0.5.0; percent-encode the rest)");
    /* accepted: with or without a path, with or without a trailing '/' */
    expect(METHODS "    customSettings: {endpoint: \"https://auth:8443\"}\n", NULL);
    expect(METHODS "    customSettings: {endpoint: \"https://auth.example/base/\"}\n", NULL);
}

static void test_headers(void)
{
    expect(METHODS "    customSettings:\n      endpoint: https://a\n"
                   "      headers: {content-type: text/plain}\n",
           "x.yaml:10:17: header Content-Type is set by ringmq itself and cannot be configured");
    expect(METHODS "    customSettings:\n      endpoint: https://a\n"
                   "      headers: {X-Ok: v, HOST: h}\n",
           "x.yaml:10:26: header Host is set by ringmq itself and cannot be configured");
    const char *ok = METHODS "    customSettings:\n      endpoint: https://a\n"
                             "      headers: {X-Tenant: t1, Authorization: \"Bearer x\"}\n";
    char err[512] = "";
    struct rq_config *c = rq_config_load_buffer("x.yaml", ok, strlen(ok), err, sizeof err);
    CHECK(c != NULL);
    const struct rq_authn_cfg *a = c ? rq_config_find_authn(c, "authn") : NULL;
    CHECK(a && a->n_methods == 1 && a->methods[0].kind == RQ_AUTHN_CUSTOM);
    if (a) {
        const struct rq_authn_custom *cu = &a->methods[0].custom;
        CHECK_STR(cu->endpoint, "https://a");
        CHECK_EQ(cu->n_headers, 2);
    }
    rq_config_free(c);
}

int main(void)
{
    test_endpoint();
    test_headers();
    return check_exit("test_custom_schema");
}
