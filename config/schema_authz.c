/* BrokerAuthorization documents (AIO-INTERFACES 3.1, 3.2): spec.authorizationPolicies with
 * `cache` (v1beta1 `enableCache`) and allow-only `rules`, each with `principals` (usernames,
 * clientIds, attributes: a list of maps, OR across maps, AND inside one) and `brokerResources`
 * (Connect with optional clientIds, Publish / Subscribe with topics). `stateStoreResources` is
 * accepted and recorded as not applicable (ringmq has no state store).
 *
 * Every pattern is checked here, so that its error names file:line:col: a substitution token
 * ({principal.username}, {principal.clientId}, {principal.attributes.NAME}) must be known and,
 * in a topic, a whole topic level; a topic must be a valid MQTT filter once tokens stand for a
 * level; a Connect client id may end in '*' and nowhere else. auth/authz.c compiles what passed.
 * No rule is dropped silently: a BrokerAuthorization that grants nothing denies everything. */
#include "config/config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define END                                                                                        \
    {                                                                                              \
        .key = NULL                                                                                \
    }

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* ---- patterns -------------------------------------------------------------------------------- */

/* A token at s (s[0] == '{'): its length up to and including '}', or 0 with *why when it is not
 * one of the three known forms. */
static size_t token_len(const char *s, size_t n, const char **why)
{
    static const char attr[] = "{principal.attributes.";
    const char *end = memchr(s, '}', n);
    if (!end) {
        *why = "'{' without a closing '}'";
        return 0;
    }
    size_t len = (size_t)(end - s) + 1;
    if ((len == 20 && memcmp(s, "{principal.username}", 20) == 0) ||
        (len == 20 && memcmp(s, "{principal.clientId}", 20) == 0))
        return len;
    size_t al = sizeof attr - 1;
    if (len > al + 1 && memcmp(s, attr, al) == 0 && !memchr(s + 1, '{', len - 1))
        return len;
    *why = "unknown substitution token (known: {principal.username}, {principal.clientId}, "
           "{principal.attributes.NAME})";
    return 0;
}

/* A Publish / Subscribe topic. 0, or -1 with *why. */
static int check_topic(const char *t, const char **why)
{
    size_t n = strlen(t);
    if (strncmp(t, "$share/", 7) == 0) {
        *why = "rules name topic filters, not shared subscriptions (a $share/GROUP/FILTER "
               "subscription is checked on FILTER): leave out $share/GROUP/";
        return -1;
    }
    size_t levels = 1;
    for (size_t i = 0; i < n; i++)
        levels += t[i] == '/';
    if (levels > 512) { /* auth/authz.c substitutes a pattern on the stack */
        *why = "more than 512 topic levels";
        return -1;
    }
    for (size_t p = 0; p <= n;) {
        const char *slash = memchr(t + p, '/', n - p);
        size_t e = slash ? (size_t)(slash - t) : n, len = e - p;
        const char *lv = t + p;
        const char *brace = memchr(lv, '{', len), *close = memchr(lv, '}', len);
        if (brace || close) {
            if (brace != lv || lv[len - 1] != '}') {
                *why = "a substitution token must be a whole topic level (write "
                       "a/{principal.clientId}/b, not a/x-{principal.clientId}/b)";
                return -1;
            }
            size_t tl = token_len(lv, len, why);
            if (!tl)
                return -1;
            if (tl != len) {
                *why = "a substitution token must be a whole topic level";
                return -1;
            }
        } else if ((memchr(lv, '+', len) && len != 1) || (memchr(lv, '#', len) && len != 1)) {
            *why = "'+' and '#' must each be a whole topic level";
            return -1;
        } else if (len == 1 && lv[0] == '#' && e != n) {
            *why = "'#' must be the last topic level";
            return -1;
        }
        p = e + 1;
    }
    return 0;
}

/* A Connect client id: tokens anywhere, '*' only as the last character. */
static int check_client_id(const char *s, const char **why)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{') {
            size_t len = token_len(s + i, n - i, why);
            if (!len)
                return -1;
            i += len - 1;
        } else if (s[i] == '}') {
            *why = "'}' without an opening '{'";
            return -1;
        } else if (s[i] == '*' && i + 1 != n) {
            *why = "'*' is only a wildcard at the end of a client id";
            return -1;
        }
    }
    return 0;
}

/* ---- brokerResources ------------------------------------------------------------------------- */

struct res_walk {
    struct rq_authz_resource *r;
    yaml_node_t *map, *method, *client_ids, *topics;
};

static int keep_method(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct res_walk *rw = obj;
    rw->method = v;
    return rq_walk_enum(ld, v, "Connect|Publish|Subscribe", &rw->r->method);
}

static int keep_client_ids(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    ((struct res_walk *)obj)->client_ids = v;
    return 0;
}

static int keep_topics(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    ((struct res_walk *)obj)->topics = v;
    return 0;
}

static const struct rq_field resource_fields[] = {
    {.key = "method", .type = RQ_F_CUSTOM, .required = true, .set = keep_method},
    {.key = "clientIds", .type = RQ_F_CUSTOM, .set = keep_client_ids},
    {.key = "topics", .type = RQ_F_CUSTOM, .set = keep_topics},
    END,
};

/* The patterns of list (clientIds or topics), each checked where it is written. */
static int walk_patterns(struct rq_ld *ld, yaml_node_t *list, bool topics,
                         struct rq_authz_resource *r)
{
    const char *key = topics ? "topics" : "clientIds";
    if (list->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, list, "a list of strings");
    yaml_node_item_t *items = list->data.sequence.items.start;
    size_t n = (size_t)(list->data.sequence.items.top - items);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *v = rq_walk_node(ld, items[i]);
        const char *why = NULL;
        char t[80];
        snprintf(ld->key, sizeof ld->key, "%s[%zu]", key, i);
        if (rq_walk_string(ld, v, NULL, 0) < 0)
            return -1;
        if ((topics ? check_topic(sval(v), &why) : check_client_id(sval(v), &why)) < 0)
            return rq_walk_error(ld, v, "%s '%s': %s", key, rq_walk_text(v, t, sizeof t), why);
        if (rq_ld_push_str(ld, &r->patterns, &r->n_patterns, sval(v)) < 0)
            return -1;
    }
    return 0;
}

static int walk_resource(struct rq_ld *ld, yaml_node_t *item, struct rq_authz_resource *r)
{
    static const char *const names[] = {"Connect", "Publish", "Subscribe"};
    struct res_walk rw = {.r = r, .map = item};
    if (rq_walk_map(ld, item, resource_fields, &rw) < 0)
        return -1;
    if (r->method == RQ_AUTHZ_CONNECT) {
        if (rw.topics)
            return rq_walk_error(ld, rq_walk_key_of(ld, item, rw.topics),
                                 "method Connect takes no topics (it may list clientIds)");
        return rw.client_ids ? walk_patterns(ld, rw.client_ids, false, r) : 0;
    }
    if (rw.client_ids)
        return rq_walk_error(ld, rq_walk_key_of(ld, item, rw.client_ids),
                             "clientIds only go with method Connect (method %s takes topics)",
                             names[r->method]);
    if (!rw.topics || (rw.topics->type == YAML_SEQUENCE_NODE &&
                       rw.topics->data.sequence.items.top == rw.topics->data.sequence.items.start))
        return rq_walk_error(ld, rw.topics ? rw.topics : rw.method,
                             "method %s needs at least one topic", names[r->method]);
    return walk_patterns(ld, rw.topics, true, r);
}

static int set_resources(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authz_rule *rule = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, v, "a list of {method, clientIds | topics}");
    yaml_node_item_t *items = v->data.sequence.items.start;
    size_t n = (size_t)(v->data.sequence.items.top - items);
    if (n == 0)
        return rq_walk_error(ld, v, "brokerResources must not be empty");
    if (!(rule->resources = calloc(n, sizeof *rule->resources)))
        return rq_ld_oom(ld);
    rule->n_resources = n; /* zeroed entries free cleanly if a later one fails */
    for (size_t i = 0; i < n; i++) {
        size_t mark = rq_walk_push(ld, "[%zu]", i);
        snprintf(ld->key, sizeof ld->key, "brokerResources[%zu]", i);
        int rc = walk_resource(ld, rq_walk_node(ld, items[i]), &rule->resources[i]);
        rq_walk_pop(ld, mark);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- principals ------------------------------------------------------------------------------ */

static int set_usernames(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authz_rule *r = obj;
    return rq_walk_strlist(ld, v, 0, &r->usernames, &r->n_usernames);
}

static int set_principal_ids(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authz_rule *r = obj;
    return rq_walk_strlist(ld, v, 0, &r->client_ids, &r->n_client_ids);
}

static int attr_entry(struct rq_ld *ld, yaml_node_t *k, yaml_node_t *v, void *obj)
{
    struct rq_authz_attrs *a = obj;
    char t[80];
    if (!rq_walk_is_text(v))
        return rq_walk_error(ld, v, "%s must be a string, got %s (quote it: \"%s\")", ld->key,
                             rq_walk_text(v, t, sizeof t), t);
    return rq_ld_push_entry(ld, &a->attrs, &a->n_attrs, sval(k), sval(v), v->data.scalar.length);
}

static int set_attributes(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authz_rule *r = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, v, "a list of attribute maps");
    yaml_node_item_t *items = v->data.sequence.items.start;
    size_t n = (size_t)(v->data.sequence.items.top - items);
    if (n == 0)
        return 0;
    if (!(r->attr_sets = calloc(n, sizeof *r->attr_sets)))
        return rq_ld_oom(ld);
    r->n_attr_sets = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = rq_walk_node(ld, items[i]);
        snprintf(ld->key, sizeof ld->key, "attributes[%zu]", i);
        if (rq_walk_strmap(ld, m, attr_entry, &r->attr_sets[i]) < 0)
            return -1;
        if (r->attr_sets[i].n_attrs == 0)
            return rq_walk_error(ld, m,
                                 "attributes[%zu] is an empty map (it would match every "
                                 "client: list the attributes that must hold)",
                                 i);
    }
    return 0;
}

static const struct rq_field principal_fields[] = {
    {.key = "usernames", .type = RQ_F_CUSTOM, .set = set_usernames},
    {.key = "clientIds", .type = RQ_F_CUSTOM, .set = set_principal_ids},
    {.key = "attributes", .type = RQ_F_CUSTOM, .set = set_attributes},
    END,
};

static int set_principals(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authz_rule *r = obj;
    if (rq_walk_map(ld, v, principal_fields, r) < 0)
        return -1;
    if (r->n_usernames + r->n_client_ids + r->n_attr_sets == 0)
        return rq_walk_error(ld, v,
                             "principals lists nobody: give usernames, clientIds or "
                             "attributes (a rule applies to the clients it lists)");
    return 0;
}

static const struct rq_field rule_fields[] = {
    {.key = "principals", .type = RQ_F_CUSTOM, .required = true, .set = set_principals},
    {.key = "brokerResources", .type = RQ_F_CUSTOM, .required = true, .set = set_resources},
    {.key = "stateStoreResources", .type = RQ_F_IGNORE}, /* no state store here */
    END,
};

/* ---- document -------------------------------------------------------------------------------- */

static int set_rules(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authz_cfg *a = ld->doc.authz;
    if (v->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, v, "a list of rules");
    yaml_node_item_t *items = v->data.sequence.items.start;
    size_t n = (size_t)(v->data.sequence.items.top - items);
    if (n == 0)
        return 0; /* present and empty: deny everything */
    if (!(a->rules = calloc(n, sizeof *a->rules)))
        return rq_ld_oom(ld);
    a->n_rules = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = rq_walk_node(ld, items[i]);
        struct rq_pos p = rq_walk_pos(ld, item);
        if (asprintf(&a->rules[i].origin, "%s:%u:%u", p.file, p.line, p.col) < 0) {
            a->rules[i].origin = NULL;
            return rq_ld_oom(ld);
        }
        size_t mark = rq_walk_push(ld, "[%zu]", i);
        snprintf(ld->key, sizeof ld->key, "rules[%zu]", i);
        int rc = rq_walk_map(ld, item, rule_fields, &a->rules[i]);
        rq_walk_pop(ld, mark);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int set_cache(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    int e;
    if (rq_walk_enum(ld, v, "Enabled|Disabled", &e) < 0)
        return -1;
    ld->doc.authz->cache = e == 0;
    return 0;
}

static int set_enable_cache(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_bool(ld, v, &ld->doc.authz->cache); /* v1beta1 */
}

static const struct rq_field policy_fields[] = {
    {.key = "cache", .type = RQ_F_CUSTOM, .set = set_cache},
    {.key = "enableCache", .type = RQ_F_CUSTOM, .set = set_enable_cache},
    {.key = "rules", .type = RQ_F_CUSTOM, .set = set_rules},
    END,
};

static const struct rq_field spec_fields[] = {
    {.key = "authorizationPolicies", .type = RQ_F_SECTION, .required = true, .sub = policy_fields},
    END,
};

int rq_schema_authz_spec(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_map(ld, v, spec_fields, NULL);
}

int rq_schema_authz_begin(struct rq_ld *ld)
{
    struct rq_config *c = ld->cfg;
    void *p = rq_ld_reserve(c->authzs, c->n_authzs, &ld->authzs_cap, sizeof *c->authzs);
    if (!p)
        return rq_ld_oom(ld);
    c->authzs = p;
    ld->doc.authz = memset(&c->authzs[c->n_authzs++], 0, sizeof *c->authzs);
    ld->doc.authz->cache = true; /* AIO's default */
    return 0;
}

void rq_schema_authz_free(struct rq_authz_cfg *a)
{
    for (size_t i = 0; i < a->n_rules; i++) {
        struct rq_authz_rule *r = &a->rules[i];
        free(r->origin);
        rq_ld_free_strs(r->usernames, r->n_usernames);
        rq_ld_free_strs(r->client_ids, r->n_client_ids);
        for (size_t j = 0; j < r->n_attr_sets; j++)
            rq_ld_free_entries(r->attr_sets[j].attrs, r->attr_sets[j].n_attrs);
        free(r->attr_sets);
        for (size_t j = 0; j < r->n_resources; j++)
            rq_ld_free_strs(r->resources[j].patterns, r->resources[j].n_patterns);
        free(r->resources);
    }
    free(a->rules);
}
