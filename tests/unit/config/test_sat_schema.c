/* ServiceAccountToken settings and the keys that serve it: audiences (at least one), the ringmq
 * extension localVerification, spec.ringmq.kubernetes and spec.ringmq.auth.cacheEntries /
 * negativeCacheSeconds. Every error names its file:line:col. */
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
    "  - method: ServiceAccountToken\n"

#define BROKER                                                                                     \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: Broker\n"                                                                               \
    "metadata: {name: broker}\n"                                                                   \
    "spec:\n"                                                                                      \
    "  ringmq:\n"

static struct rq_config *load(const char *yaml, const char *want)
{
    char err[512] = "";
    struct rq_config *c = rq_config_load_buffer("x.yaml", yaml, strlen(yaml), err, sizeof err);
    if (want) {
        CHECK(c == NULL);
        CHECK_STR(err, want);
        rq_config_free(c);
        return NULL;
    }
    CHECK(c != NULL);
    if (!c)
        fprintf(stderr, "unexpected error: %s\n", err);
    return c;
}

static void test_audiences(void)
{
    load(METHODS "    serviceAccountTokenSettings: {audiences: []}\n",
         "x.yaml:8:46: audiences must not be empty");
    struct rq_config *c = load(METHODS "    serviceAccountTokenSettings:\n"
                                       "      audiences: [aio-internal, b]\n"
                                       "      ringmq: {localVerification: Disabled}\n",
                               NULL);
    if (c) {
        const struct rq_authn_sat *s = &c->authns[0].methods[0].sat;
        CHECK_EQ(s->n_audiences, 2);
        CHECK_STR(s->audiences[1], "b");
        CHECK_EQ(s->local_verification, RQ_SAT_LOCAL_DISABLED);
    }
    rq_config_free(c);
    c = load(METHODS "    serviceAccountTokenSettings:\n      audiences: [a]\n"
                     "      ringmq: {localVerification: Fallback}\n",
             NULL);
    if (c)
        CHECK_EQ(c->authns[0].methods[0].sat.local_verification, RQ_SAT_LOCAL_FALLBACK);
    rq_config_free(c);
    load(METHODS "    serviceAccountTokenSettings:\n      audiences: [a]\n"
                 "      ringmq: {localVerification: Sometimes}\n",
         "x.yaml:10:35: localVerification must be one of Disabled|Fallback, got 'Sometimes'");
    load(METHODS "    serviceAccountTokenSettings:\n      audiences: [a]\n"
                 "      ringmq: {other: 1}\n",
         "x.yaml:10:16: unknown key 'other' in BrokerAuthentication "
         "spec.authenticationMethods[0].serviceAccountTokenSettings.ringmq");
}

static void test_kubernetes_and_cache(void)
{
    struct rq_config *c = load(BROKER "    auth: {cacheEntries: 5, negativeCacheSeconds: 0, "
                                      "annotationCacheSeconds: 2}\n"
                                      "    kubernetes:\n"
                                      "      server: https://10.0.0.1:6443\n"
                                      "      certificateAuthority: /etc/k/ca.crt\n"
                                      "      tokenFile: /etc/k/token\n"
                                      "      kubeconfig: /etc/k/config\n"
                                      "      context: edge\n"
                                      "      serviceAccountDir: /tmp/sa\n",
                               NULL);
    if (c) {
        CHECK_EQ(c->auth_cache_entries, 5);
        CHECK_EQ(c->auth_negative_cache_s, 0);
        CHECK_EQ(c->auth_sa_cache_s, 2);
        CHECK_STR(c->kube.server, "https://10.0.0.1:6443");
        CHECK_STR(c->kube.ca_file, "/etc/k/ca.crt");
        CHECK_STR(c->kube.token_file, "/etc/k/token");
        CHECK_STR(c->kube.kubeconfig, "/etc/k/config");
        CHECK_STR(c->kube.context, "edge");
        CHECK_STR(c->kube.in_cluster_dir, "/tmp/sa");
    }
    rq_config_free(c);
    c = load(BROKER "    threads: 1\n", NULL);
    if (c) {
        CHECK_EQ(c->auth_cache_entries, 100000);
        CHECK_EQ(c->auth_negative_cache_s, 10);
        CHECK_EQ(c->auth_sa_cache_s, 60);
        CHECK_STR(c->kube.server, "");
    }
    rq_config_free(c);
    load(BROKER "    auth: {cacheEntries: 0}\n",
         "x.yaml:6:26: cacheEntries must be 1..10000000, got 0");
    load(BROKER "    kubernetes: {token: abc}\n",
         "x.yaml:6:18: unknown key 'token' in Broker spec.ringmq.kubernetes");
}

int main(void)
{
    test_audiences();
    test_kubernetes_and_cache();
    return check_exit("test_sat_schema");
}
