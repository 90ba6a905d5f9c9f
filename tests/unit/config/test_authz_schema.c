/* BrokerAuthorization documents: the v1 shape (and v1beta1 enableCache) into rules, every rule
 * error at file:line:col, and ports[].authorizationRef (resolved; refused without an
 * authenticationRef). */
#include "config/config.h"
#include "tests/unit/check.h"

#include <string.h>

#define AUTHZ                                                                                      \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: BrokerAuthorization\n"                                                                  \
    "metadata:\n"                                                                                  \
    "  name: authz\n"                                                                              \
    "spec:\n"                                                                                      \
    "  authorizationPolicies:\n"

/* A rule for principal username u with one resource line (lines 7..). */
#define RULE(res)                                                                                  \
    AUTHZ "    rules:\n"                                                                           \
          "    - principals: {usernames: [u]}\n"                                                   \
          "      brokerResources:\n"                                                               \
          "      - " res "\n"

static struct rq_config *load(const char *yaml, char *err, size_t n)
{
    return rq_config_load_buffer("x.yaml", yaml, strlen(yaml), err, n);
}

static void expect(const char *yaml, const char *want)
{
    char err[512] = "";
    struct rq_config *c = load(yaml, err, sizeof err);
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

static void test_full(void)
{
    const char *y = AUTHZ "    cache: Disabled\n"
                          "    rules:\n"
                          "    - principals:\n"
                          "        usernames: [temperature-sensor, humidity-sensor]\n"
                          "        clientIds: [sensor-01]\n"
                          "        attributes:\n"
                          "        - {building: \"17\", organization: contoso}\n"
                          "        - {city: seattle}\n"
                          "      brokerResources:\n"
                          "      - method: Connect\n"
                          "        clientIds: [\"{principal.attributes.building}*\"]\n"
                          "      - method: Publish\n"
                          "        topics: [\"sensors/{principal.attributes.building}/"
                          "{principal.clientId}/telemetry/#\"]\n"
                          "      - method: Subscribe\n"
                          "        topics: [\"commands/{principal.attributes.organization}\", "
                          "\"clients/{principal.clientId}/#\", \"+/x\"]\n"
                          "      stateStoreResources:\n"
                          "      - {method: Read, keyType: Pattern, keys: [a]}\n";
    char err[512] = "";
    struct rq_config *c = load(y, err, sizeof err);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    const struct rq_authz_cfg *a = rq_config_find_authz(c, "authz");
    CHECK(a && !a->cache && a->n_rules == 1);
    if (a && a->n_rules == 1) {
        const struct rq_authz_rule *r = &a->rules[0];
        CHECK_EQ(r->n_usernames, 2);
        CHECK_EQ(r->n_client_ids, 1);
        CHECK_EQ(r->n_attr_sets, 2);
        CHECK_EQ(r->attr_sets[0].n_attrs, 2);
        CHECK_STR(r->attr_sets[0].attrs[0].value, "17");
        CHECK_EQ(r->n_resources, 3);
        CHECK_EQ(r->resources[0].method, RQ_AUTHZ_CONNECT);
        CHECK_EQ(r->resources[2].n_patterns, 3);
        CHECK_STR(r->origin, "x.yaml:9:7");
    }
    CHECK_EQ(c->n_ignored, 1); /* stateStoreResources */
    rq_config_free(c);
}

static void test_defaults(void)
{
    char err[512] = "";
    const char *y = AUTHZ "    rules: []\n";
    struct rq_config *c = load(y, err, sizeof err);
    const struct rq_authz_cfg *a = c ? rq_config_find_authz(c, "authz") : NULL;
    CHECK(a && a->cache && a->n_rules == 0);
    rq_config_free(c);
    const char *beta = "apiVersion: mqttbroker.iotoperations.azure.com/v1beta1\n"
                       "kind: BrokerAuthorization\nmetadata: {name: bbb}\n"
                       "spec:\n  authorizationPolicies:\n    enableCache: false\n";
    c = load(beta, err, sizeof err);
    a = c ? rq_config_find_authz(c, "bbb") : NULL;
    CHECK(a && !a->cache && a->n_rules == 0);
    rq_config_free(c);
}

static void test_errors(void)
{
    expect(RULE("{method: Publish, topics: [\"a/x-{principal.clientId}/b\"]}"),
           "x.yaml:10:36: topics 'a/x-{principal.clientId}/b': a substitution token must be a "
           "whole topic level (write a/{principal.clientId}/b, not a/x-{principal.clientId}/b)");
    expect(RULE("{method: Publish, topics: [\"a/{principal.clientid}\"]}"),
           "x.yaml:10:36: topics 'a/{principal.clientid}': unknown substitution token (known: "
           "{principal.username}, {principal.clientId}, {principal.attributes.NAME})");
    expect(RULE("{method: Subscribe, topics: [\"a/#/b\"]}"),
           "x.yaml:10:38: topics 'a/#/b': '#' must be the last topic level");
    expect(RULE("{method: Subscribe, topics: [\"a/b+\"]}"),
           "x.yaml:10:38: topics 'a/b+': '+' and '#' must each be a whole topic level");
    expect(RULE("{method: Subscribe, topics: [\"$share/g/a\"]}"),
           "x.yaml:10:38: topics '$share/g/a': rules name topic filters, not shared "
           "subscriptions (a $share/GROUP/FILTER subscription is checked on FILTER): leave out "
           "$share/GROUP/");
    expect(RULE("{method: Connect, topics: [a]}"),
           "x.yaml:10:27: method Connect takes no topics (it may list clientIds)");
    expect(RULE("{method: Publish}"), "x.yaml:10:18: method Publish needs at least one topic");
    expect(RULE("{method: Publish, topics: []}"),
           "x.yaml:10:35: method Publish needs at least one topic");
    expect(RULE("{method: Publish, clientIds: [a], topics: [b]}"),
           "x.yaml:10:27: clientIds only go with method Connect (method Publish takes topics)");
    expect(RULE("{method: Connect, clientIds: [\"a*b\"]}"),
           "x.yaml:10:39: clientIds 'a*b': '*' is only a wildcard at the end of a client id");
    expect(RULE("{method: Connect, clientIds: [\"{principal.x}*\"]}"),
           "x.yaml:10:39: clientIds '{principal.x}*': unknown substitution token (known: "
           "{principal.username}, {principal.clientId}, {principal.attributes.NAME})");
    expect(RULE("{method: Delete, topics: [a]}"),
           "x.yaml:10:18: method must be one of Connect|Publish|Subscribe, got 'Delete'");
    expect(AUTHZ "    rules:\n    - principals: {}\n      brokerResources: [{method: Connect}]\n",
           "x.yaml:8:19: principals lists nobody: give usernames, clientIds or attributes (a "
           "rule applies to the clients it lists)");
    expect(AUTHZ "    rules:\n    - principals: {attributes: [{}]}\n"
                 "      brokerResources: [{method: Connect}]\n",
           "x.yaml:8:33: attributes[0] is an empty map (it would match every client: list the "
           "attributes that must hold)");
    expect(AUTHZ "    rules:\n    - principals: {attributes: [{building: 17}]}\n"
                 "      brokerResources: [{method: Connect}]\n",
           "x.yaml:8:44: attributes[0]['building'] must be a string, got 17 (quote it: \"17\")");
    expect(AUTHZ "    cache: Sometimes\n",
           "x.yaml:7:12: cache must be one of Enabled|Disabled, got 'Sometimes'");
}

#define LISTENER                                                                                   \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: BrokerListener\n"                                                                       \
    "metadata: {name: lst}\n"                                                                      \
    "spec:\n"                                                                                      \
    "  ports:\n"                                                                                   \
    "  - port: 1883\n"

#define AUTHN                                                                                      \
    "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                     \
    "kind: BrokerAuthentication\nmetadata: {name: authn}\n"                                        \
    "spec:\n  authenticationMethods:\n  - method: Custom\n"                                        \
    "    customSettings: {endpoint: \"https://auth\"}\n"

static void test_ref(void)
{
    expect(LISTENER "    authorizationRef: authz\n---\n" AUTHZ "    rules: []\n",
           "x.yaml:7:23: authorizationRef on port 1883 needs an authenticationRef too "
           "(authorization applies to authenticated clients only)");
    expect(LISTENER "    authenticationRef: authn\n    authorizationRef: nope\n" AUTHN,
           "x.yaml:8:23: authorizationRef 'nope' does not name a BrokerAuthorization document");
    const char *ok = LISTENER "    authenticationRef: authn\n    authorizationRef: authz\n" AUTHN
                              "---\n" AUTHZ "    rules: []\n";
    char err[512] = "";
    struct rq_config *c = load(ok, err, sizeof err);
    CHECK(c && c->n_ports == 1 && c->ports[0].authz == rq_config_find_authz(c, "authz"));
    if (!c)
        fprintf(stderr, "%s\n", err);
    rq_config_free(c);
}

int main(void)
{
    test_full();
    test_defaults();
    test_errors();
    test_ref();
    return check_exit("test_authz_schema");
}
