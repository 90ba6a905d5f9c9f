/* Authorization: the filter-set matcher and the "filter covers filter" relation ('+', '#', '$'
 * topics, empty levels, shared subscriptions), rules compiled from YAML, principal matching
 * (usernames, client ids, attribute maps: OR across maps, AND inside one), Connect client id
 * globs, and substitution (a missing value or one holding '/', '+' or '#' matches nothing:
 * CVE-2017-7650). */
#include "auth/authz.h"
#include "auth/authz_set.h"
#include "config/config.h"
#include "tests/unit/check.h"

#include <stdlib.h>
#include <string.h>

/* A frozen set of the filters in list (NULL-terminated), split at '/'. */
static struct rq_authz_set *set_of(const char *const *list)
{
    struct rq_authz_set *s = rq_authz_set_new();
    for (; *list; list++) {
        struct rq_authz_level lv[32];
        size_t n = 0, len = strlen(*list);
        for (size_t p = 0; p <= len;) {
            const char *sl = memchr(*list + p, '/', len - p);
            size_t e = sl ? (size_t)(sl - *list) : len;
            lv[n] = (struct rq_authz_level){(const uint8_t *)*list + p, e - p, 0};
            if (e - p == 1 && ((*list)[p] == '+' || (*list)[p] == '#'))
                lv[n].wild = (uint8_t)(*list)[p];
            n++;
            p = e + 1;
        }
        CHECK(rq_authz_set_add(s, lv, n) == 0);
    }
    CHECK(rq_authz_set_freeze(s) == 0);
    return s;
}

static bool covers(struct rq_authz_set *s, const char *f)
{
    return rq_authz_set_covers(s, (const uint8_t *)f, strlen(f));
}

static void test_match(void)
{
    struct rq_authz_set *s =
        set_of((const char *const[]){"a/b", "a/+/c", "x/#", "+/y", "e//f", "$SYS/info", NULL});
    CHECK(covers(s, "a/b"));
    CHECK(!covers(s, "a/b/c/d"));
    CHECK(covers(s, "a/q/c"));
    CHECK(covers(s, "a//c")); /* '+' matches an empty level */
    CHECK(!covers(s, "a/q"));
    CHECK(covers(s, "x")); /* '#' matches the parent level */
    CHECK(covers(s, "x/1/2/3"));
    CHECK(covers(s, "q/y"));
    CHECK(!covers(s, "$q/y")); /* '+' at the top does not match '$' topics */
    CHECK(covers(s, "e//f"));
    CHECK(!covers(s, "e/f"));
    CHECK(covers(s, "$SYS/info"));
    CHECK(!covers(s, "$SYS/other"));
    CHECK(!covers(s, "A/b")); /* case-sensitive */
    CHECK_EQ(rq_authz_set_count(s), 6);
    rq_authz_set_free(s);

    s = set_of((const char *const[]){"#", NULL});
    CHECK(covers(s, "anything/at/all"));
    CHECK(covers(s, "/"));
    CHECK(!covers(s, "$SYS/x")); /* [MQTT-4.7.2-1] */
    CHECK(!covers(s, "$share"));
    rq_authz_set_free(s);

    s = set_of((const char *const[]){NULL});
    CHECK(!covers(s, "a"));
    rq_authz_set_free(s);
}

static void test_covers(void)
{
    struct rq_authz_set *s = set_of((const char *const[]){"a/+/c", NULL});
    CHECK(covers(s, "a/+/c"));
    CHECK(covers(s, "a/b/c"));
    CHECK(!covers(s, "a/#"));   /* a/+/c does not cover a/# */
    CHECK(!covers(s, "a/+/#")); /* nor a/+/# (it matches a/b) */
    CHECK(!covers(s, "+/+/c"));
    CHECK(!covers(s, "#"));
    rq_authz_set_free(s);

    s = set_of((const char *const[]){"a/#", NULL});
    CHECK(covers(s, "a/b/+"));
    CHECK(covers(s, "a/#"));
    CHECK(covers(s, "a"));
    CHECK(covers(s, "a/+/c/#"));
    CHECK(!covers(s, "+/b"));
    CHECK(!covers(s, "#"));
    rq_authz_set_free(s);

    s = set_of((const char *const[]){"+/#", "$SYS/#", NULL});
    CHECK(covers(s, "#")); /* '#' at the top matches no '$' topic either */
    CHECK(covers(s, "x/#"));
    CHECK(covers(s, "+/x"));
    CHECK(covers(s, "$SYS/+"));
    CHECK(!covers(s, "$other/x"));
    rq_authz_set_free(s);
    s = set_of((const char *const[]){"x/+/#", NULL});
    CHECK(!covers(s, "x/#")); /* x/+/# does not match x */
    CHECK(covers(s, "x/+/#"));
    rq_authz_set_free(s);

    s = set_of((const char *const[]){"+/+", "a/+", NULL});
    CHECK(!covers(s, "+/#")); /* "+/#" matches the one-level topic "x" */
    CHECK(!covers(s, "#"));
    CHECK(!covers(s, "a")); /* '+' needs a level to be there */
    CHECK(covers(s, "a/"));  /* ... an empty one will do */
    CHECK(covers(s, "/"));
    CHECK(!covers(s, "$x/y")); /* '+' at the top */
    rq_authz_set_free(s);
    s = set_of((const char *const[]){"#", NULL});
    CHECK(covers(s, "/#")); /* an empty first level is no '$' topic */
    CHECK(covers(s, "+/+/#"));
    CHECK(!covers(s, "$"));
    CHECK(!covers(s, "$SYS/#"));
    rq_authz_set_free(s);

    s = set_of((const char *const[]){"a//+", NULL});
    CHECK(covers(s, "a//+"));
    CHECK(covers(s, "a//"));
    CHECK(!covers(s, "a/+/+"));
    rq_authz_set_free(s);

    /* a literal "+" or "#" level in the set never acts as a wildcard */
    s = rq_authz_set_new();
    struct rq_authz_level lit[2] = {{(const uint8_t *)"a", 1, 0}, {(const uint8_t *)"+", 1, 0}};
    CHECK(rq_authz_set_add(s, lit, 2) == 0);
    CHECK(rq_authz_set_freeze(s) == 0);
    CHECK(!covers(s, "a/b"));
    CHECK(!covers(s, "a/+"));
    rq_authz_set_free(s);
}

/* ---- rules ---------------------------------------------------------------------------------- */

#define POLICY                                                                                     \
    "apiVersion: mqttbroker.iotoperations.azure.com/v1\n"                                          \
    "kind: BrokerAuthorization\nmetadata: {name: authz}\n"                                         \
    "spec:\n  authorizationPolicies:\n    rules:\n"

static struct rq_config *cfg;
static struct rq_authz *z;

static void load(const char *rules)
{
    char err[512] = "", y[4096];
    snprintf(y, sizeof y, POLICY "%s", rules);
    rq_authz_free(z);
    rq_config_free(cfg);
    z = NULL;
    cfg = rq_config_load_buffer("x.yaml", y, strlen(y), err, sizeof err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    z = rq_authz_compile(rq_config_find_authz(cfg, "authz"), err, sizeof err);
    CHECK(z != NULL);
}

/* A principal of username user (NULL: none) and attributes "k=v" (NULL-terminated). */
static struct rq_principal *who(const char *user, const char *const *attrs)
{
    struct rq_principal *p = calloc(1, sizeof *p);
    p->username = user ? strdup(user) : NULL;
    size_t n = 0;
    while (attrs && attrs[n])
        n++;
    p->keys = calloc(n + 1, sizeof *p->keys);
    p->values = calloc(n + 1, sizeof *p->values);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(attrs[i], '=');
        p->keys[i] = strndup(attrs[i], (size_t)(eq - attrs[i]));
        p->values[i] = strdup(eq + 1);
    }
    p->n_attrs = n;
    return p;
}

static struct rq_access *acc;

/* Builds the access of (p, cid); returns the rq_authz_client result. p is freed. */
static int client(struct rq_principal *p, const char *cid)
{
    char why[300] = "";
    rq_access_free(acc);
    acc = NULL;
    int rc =
        z ? rq_authz_client(z, p, (const uint8_t *)cid, strlen(cid), &acc, why, sizeof why) : -2;
    if (rc == RQ_AUTHZ_DENIED)
        CHECK(strstr(why, "not authorized to connect") != NULL);
    rq_principal_free(p);
    return rc;
}

static bool pub(const char *t)
{
    return acc && acc->ops->publish(acc, (const uint8_t *)t, strlen(t));
}

static bool sub(const char *f)
{
    return acc && acc->ops->subscribe(acc, (const uint8_t *)f, strlen(f));
}

static void test_tutorial(void)
{
    load("    - principals:\n"
         "        attributes:\n"
         "        - {building: \"17\", organization: contoso}\n"
         "        - {city: seattle}\n"
         "      brokerResources:\n"
         "      - method: Connect\n"
         "        clientIds: [\"{principal.attributes.building}*\"]\n"
         "      - method: Publish\n"
         "        topics: [\"sensors/{principal.attributes.building}/{principal.clientId}/#\"]\n"
         "      - method: Subscribe\n"
         "        topics: [\"commands/{principal.attributes.organization}\"]\n"
         "    - principals: {usernames: [admin], clientIds: [ops-1]}\n"
         "      brokerResources:\n"
         "      - method: Connect\n"
         "      - {method: Subscribe, topics: [\"#\"]}\n");
    /* AND inside one map */
    CHECK_EQ(client(who("x", (const char *const[]){"building=17", "organization=contoso", NULL}),
                    "17-fan"),
             RQ_AUTHZ_OK);
    CHECK(pub("sensors/17/17-fan/temp"));
    CHECK(pub("sensors/17/17-fan"));
    CHECK(!pub("sensors/17/other/temp"));
    CHECK(sub("commands/contoso"));
    CHECK(!sub("commands/fabrikam"));
    CHECK(!sub("#"));
    CHECK(sub("$share/g/commands/contoso")); /* checked on the filter */
    CHECK(!sub("$share/commands/contoso/x"));
    /* the Connect client id glob */
    CHECK_EQ(client(who("x", (const char *const[]){"building=17", "organization=contoso", NULL}),
                    "18-fan"),
             RQ_AUTHZ_DENIED);
    CHECK_EQ(
        client(who("x", (const char *const[]){"building=17", "organization=contoso", NULL}), "17"),
        RQ_AUTHZ_OK);
    /* one attribute of the map missing: the rule does not apply */
    CHECK_EQ(client(who("x", (const char *const[]){"building=17", NULL}), "17-a"), RQ_AUTHZ_DENIED);
    /* OR across maps: city=seattle applies, but {building} is missing: the glob matches nothing
     * and the publish pattern is left out */
    CHECK_EQ(client(who("x", (const char *const[]){"city=seattle", NULL}), "anything"),
             RQ_AUTHZ_DENIED);
    /* usernames, clientIds */
    CHECK_EQ(client(who("admin", NULL), "c1"), RQ_AUTHZ_OK);
    CHECK(sub("a/b/#"));
    CHECK(!sub("$SYS/#"));
    CHECK(!pub("a"));
    CHECK_EQ(client(who("Admin", NULL), "c1"), RQ_AUTHZ_DENIED); /* case-sensitive */
    CHECK_EQ(client(who(NULL, NULL), "ops-1"), RQ_AUTHZ_OK);
    CHECK_EQ(client(NULL, "ops-1"), RQ_AUTHZ_OK);
    CHECK_EQ(client(NULL, "ops-"), RQ_AUTHZ_DENIED);
}

static void test_substitution(void)
{
    load("    - principals: {usernames: [\"u+\", \"u#\", \"u/x\", u], clientIds: [c]}\n"
         "      brokerResources:\n"
         "      - method: Connect\n"
         "      - method: Publish\n"
         "        topics: [\"users/{principal.username}/#\", \"ids/{principal.clientId}\", "
         "\"t/{principal.attributes.tenant}/+\"]\n"
         "      - method: Subscribe\n"
         "        topics: [\"users/{principal.username}/in\"]\n");
    CHECK_EQ(client(who("u", (const char *const[]){"tenant=t1", NULL}), "c"), RQ_AUTHZ_OK);
    CHECK(pub("users/u/x/y"));
    CHECK(pub("ids/c"));
    CHECK(pub("t/t1/z"));
    CHECK(!pub("t/t2/z"));
    CHECK(sub("users/u/in"));
    /* CVE-2017-7650: a username holding '+' or '#' or '/' is no wildcard and no separator */
    CHECK_EQ(client(who("u+", NULL), "c"), RQ_AUTHZ_OK);
    CHECK(!pub("users/u+/x"));
    CHECK(!pub("users/anyone/x"));
    CHECK(!sub("users/+/in"));
    CHECK(pub("ids/c")); /* the other patterns still apply */
    CHECK_EQ(client(who("u#", NULL), "c"), RQ_AUTHZ_OK);
    CHECK(!pub("users/x/y"));
    CHECK(!sub("users/#"));
    CHECK_EQ(client(who("u/x", NULL), "c"), RQ_AUTHZ_OK);
    CHECK(!pub("users/u/x/in"));
    CHECK(!sub("users/u/x/in"));
    /* missing attribute, missing username: those patterns match nothing */
    CHECK_EQ(client(who(NULL, NULL), "c"), RQ_AUTHZ_OK);
    CHECK(!pub("t//z"));
    CHECK(!pub("users//x"));
    CHECK(!sub("users//in"));
    CHECK(pub("ids/c"));
    /* a client id holding '+' (MQTT allows it) */
    load("    - principals: {clientIds: [\"a+b\", \"a\"]}\n"
         "      brokerResources:\n"
         "      - method: Connect\n"
         "      - {method: Subscribe, topics: [\"in/{principal.clientId}\"]}\n"
         "      - {method: Publish, topics: [\"out/{principal.clientId}/#\"]}\n");
    CHECK_EQ(client(NULL, "a+b"), RQ_AUTHZ_OK);
    CHECK(!sub("in/+"));
    CHECK(!pub("out/a/x"));
    CHECK_EQ(client(NULL, "a"), RQ_AUTHZ_OK);
    CHECK(sub("in/a"));
    CHECK(!sub("in/+"));
    /* a value starting with '$' as the first level: no way into $SYS (deeper levels are plain) */
    load("    - principals: {usernames: [u, \"$u\", \"a*\"]}\n"
         "      brokerResources:\n"
         "      - {method: Connect, clientIds: [\"{principal.username}*\"]}\n"
         "      - {method: Subscribe, topics: [\"{principal.clientId}/#\", \"c/{principal.clientId}\"]}\n"
         "      - {method: Publish, topics: [\"{principal.clientId}\", \"{principal.username}/x\"]}\n");
    CHECK_EQ(client(who("u", NULL), "$SYS"), RQ_AUTHZ_DENIED); /* no Connect: the id is not u* */
    CHECK_EQ(client(who("u", NULL), "u$"), RQ_AUTHZ_OK);
    CHECK(sub("u$/#"));
    CHECK_EQ(client(who("$u", NULL), "$u-1"), RQ_AUTHZ_OK);
    CHECK(!sub("$u-1/#"));
    CHECK(!sub("$u-1/x"));
    CHECK(sub("c/$u-1"));
    CHECK(!pub("$u-1"));
    CHECK(!pub("$u/x"));
    /* a '*' in a substituted value is literal in a Connect client id pattern */
    CHECK_EQ(client(who("a*", NULL), "a*-1"), RQ_AUTHZ_OK);
    CHECK_EQ(client(who("a*", NULL), "ab-1"), RQ_AUTHZ_DENIED);
}

static void test_deny_all(void)
{
    load("      []\n");
    CHECK_EQ(client(who("admin", NULL), "c"), RQ_AUTHZ_DENIED);
    /* Connect granted, nothing else */
    load("    - principals: {usernames: [u]}\n"
         "      brokerResources: [{method: Connect, clientIds: [\"c-{principal.username}\"]}]\n");
    CHECK_EQ(client(who("u", NULL), "c-u"), RQ_AUTHZ_OK);
    CHECK(!pub("a"));
    CHECK(!sub("a"));
    CHECK_EQ(client(who("u", NULL), "c-ux"), RQ_AUTHZ_DENIED);
    CHECK_EQ(client(who("u", NULL), "c-"), RQ_AUTHZ_DENIED);
}

/* authorizationPolicies.cache (default Enabled): the last PUBLISH decision is remembered per
 * client; answers must be the same as without it, for repeated, alternating and long topics,
 * and a new access object (a re-authentication, another client) starts empty. */
static void test_publish_cache(void)
{
    load("    - principals: {usernames: [u]}\n"
         "      brokerResources:\n"
         "      - method: Connect\n"
         "      - {method: Publish, topics: [\"a/{principal.clientId}/#\"]}\n");
    CHECK_EQ(client(who("u", NULL), "c1"), RQ_AUTHZ_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(pub("a/c1/x"));
        CHECK(pub("a/c1/x"));
        CHECK(!pub("b/x"));
        CHECK(!pub("b/x"));
        CHECK(!pub("a/c2/x"));
    }
    char longt[200];
    memset(longt, 'z', sizeof longt - 1);
    longt[sizeof longt - 1] = '\0';
    memcpy(longt, "a/c1/", 5);
    CHECK(pub(longt) && pub(longt));
    longt[2] = 'x'; /* "a/x1/zzz...": another client's tree */
    CHECK(!pub(longt) && !pub(longt));
    CHECK(pub("a/c1/x"));
    CHECK_EQ(client(who("u", NULL), "c2"), RQ_AUTHZ_OK);
    CHECK(!pub("a/c1/x")); /* not remembered across access objects */
    CHECK(pub("a/c2/x"));
}

/* A reload compares the old and the new policy: the order of the keys inside one attribute
 * map changes nothing (it disconnected the port's clients); another value does. */
static struct rq_config *load_cfg(const char *rules)
{
    char err[512] = "", y[4096];
    snprintf(y, sizeof y, POLICY "%s", rules);
    struct rq_config *c = rq_config_load_buffer("x.yaml", y, strlen(y), err, sizeof err);
    CHECK(c != NULL);
    return c;
}

static void test_cfg_same(void)
{
    static const char *const rules[] = {
        "    - principals: {attributes: [{a: \"1\", b: \"2\"}, {c: \"3\"}]}\n"
        "      brokerResources: [{method: Connect}]\n",
        "    - principals: {attributes: [{b: \"2\", a: \"1\"}, {c: \"3\"}]}\n"
        "      brokerResources: [{method: Connect}]\n",
        "    - principals: {attributes: [{b: \"2\", a: \"9\"}, {c: \"3\"}]}\n"
        "      brokerResources: [{method: Connect}]\n",
        "    - principals: {attributes: [{b: \"2\", d: \"1\"}, {c: \"3\"}]}\n"
        "      brokerResources: [{method: Connect}]\n",
    };
    struct rq_config *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = load_cfg(rules[i]);
    if (c[0] && c[1] && c[2] && c[3]) {
        const struct rq_authz_cfg *p[4];
        for (int i = 0; i < 4; i++)
            p[i] = rq_config_find_authz(c[i], "authz");
        CHECK(rq_authz_cfg_same(p[0], p[0]));
        CHECK(rq_authz_cfg_same(p[0], p[1])); /* keys reordered inside one map */
        CHECK(rq_authz_cfg_same(p[1], p[0]));
        CHECK(!rq_authz_cfg_same(p[0], p[2])); /* another value */
        CHECK(!rq_authz_cfg_same(p[0], p[3])); /* another key */
        CHECK(!rq_authz_cfg_same(p[3], p[0]));
    }
    for (int i = 0; i < 4; i++)
        rq_config_free(c[i]);
}

int main(void)
{
    test_cfg_same();
    test_match();
    test_covers();
    test_tutorial();
    test_substitution();
    test_deny_all();
    test_publish_cache();
    rq_access_free(acc);
    rq_authz_free(z);
    rq_config_free(cfg);
    return check_exit("test_authz");
}
