/* BrokerAuthentication documents (AIO-INTERFACES 2.2, 2.4): spec.authenticationMethods, an
 * ordered chain whose entries each name a method (Custom, ServiceAccountToken, X509; v1beta1
 * x509Credentials) and carry exactly the one settings object of that method (v1 names
 * x509Settings, serviceAccountTokenSettings, customSettings; v1beta1 x509Credentials,
 * serviceAccountToken, custom). Every method is parsed in full; whether a port may use it is
 * decided in refs.c, which also resolves the ConfigMaps and Secrets named here. */
#include "config/config_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define END                                                                                        \
    {                                                                                              \
        .key = NULL                                                                                \
    }

static const char *const method_names[] = {"Custom", "ServiceAccountToken", "X509"};

/* One authenticationMethods entry while it is walked. */
struct method_walk {
    struct rq_authn_method *m;
    yaml_node_t *map;
    yaml_node_t *method;   /* value of `method` */
    yaml_node_t *settings; /* value of the one settings key */
    const char *settings_key;
    int settings_kind; /* enum rq_authn_kind the settings key belongs to */
};

/* custom.auth.x509 while it is walked. */
static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A value of a string map: YAML must read it as a string ("17", not 17). */
static int text_value(struct rq_ld *ld, yaml_node_t *v)
{
    char t[80];
    if (rq_walk_is_text(v))
        return 0;
    if (v->type != YAML_SCALAR_NODE || rq_walk_is_null(v) ||
        strlen(sval(v)) != v->data.scalar.length)
        return rq_walk_type_error(ld, v, "a string");
    return rq_walk_error(ld, v, "%s must be a string, got %s (quote it: \"%s\")", ld->key,
                         rq_walk_text(v, t, sizeof t), t);
}

/* Walks v under key (path and key name for messages) with fields. */
static int walk_sub(struct rq_ld *ld, yaml_node_t *v, const char *key,
                    const struct rq_field *fields, void *obj)
{
    size_t mark = rq_walk_push(ld, "%s", key);
    rq_walk_set_key(ld, key);
    int rc = rq_walk_map(ld, v, fields, obj);
    rq_walk_pop(ld, mark);
    return rc;
}

/* ---- X509 ------------------------------------------------------------------------------------ */

static int set_trusted_ca(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_x509 *x = obj;
    return rq_schema_object_ref(ld, v, "ConfigMap", RQ_REF_CA_BUNDLE, x->trusted_ca);
}

static int attr_entry(struct rq_ld *ld, yaml_node_t *k, yaml_node_t *v, void *obj)
{
    struct rq_x509_attr_rule *r = obj;
    if (text_value(ld, v) < 0)
        return -1;
    return rq_ld_push_entry(ld, &r->attrs, &r->n_attrs, sval(k), sval(v), v->data.scalar.length);
}

static int set_subject(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_x509_attr_rule *r = obj;
    if (rq_walk_string(ld, v, NULL, 0) < 0 || text_value(ld, v) < 0)
        return -1;
    if (!(r->subject = strdup(sval(v))))
        return rq_ld_oom(ld);
    return 0;
}

static int set_attributes(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_strmap(ld, v, attr_entry, obj);
}

static const struct rq_field attr_rule_fields[] = {
    {.key = "subject", .type = RQ_F_CUSTOM, .required = true, .set = set_subject},
    {.key = "attributes", .type = RQ_F_CUSTOM, .required = true, .set = set_attributes},
    END,
};

/* name -> {subject, attributes}, kept in config order (first match wins at CONNECT). */
static int set_authz_attributes(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_x509 *x = obj;
    char t[80];
    if (v->type != YAML_MAPPING_NODE)
        return rq_walk_type_error(ld, v, "a mapping of names to {subject, attributes}");
    if (rq_walk_check_keys(ld, v) < 0)
        return -1;
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n == 0)
        return 0;
    if (!(x->rules = calloc(n, sizeof *x->rules)))
        return rq_ld_oom(ld);
    x->n_rules = n; /* zeroed entries free cleanly if a later one fails */
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        yaml_node_t *k = rq_walk_node(ld, p->key);
        if (k->data.scalar.length == 0)
            return rq_walk_error(ld, k, "authorizationAttributes has an empty key");
        if (!(x->rules[i].name = strdup(sval(k))))
            return rq_ld_oom(ld);
        if (walk_sub(ld, rq_walk_node(ld, p->value), rq_walk_text(k, t, sizeof t), attr_rule_fields,
                     &x->rules[i]) < 0)
            return -1;
    }
    return 0;
}

static const struct rq_field x509_fields[] = {
    {.key = "trustedClientCaCert", .type = RQ_F_CUSTOM, .set = set_trusted_ca},
    {.key = "authorizationAttributes", .type = RQ_F_CUSTOM, .set = set_authz_attributes},
    END,
};

/* ---- ServiceAccountToken --------------------------------------------------------------------- */

static int set_audiences(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_sat *s = obj;
    return rq_walk_strlist(ld, v, 1, &s->audiences, &s->n_audiences);
}

/* ringmq extension: localVerification Disabled|Fallback (JWKS checks while TokenReview cannot
 * be reached). */
static const struct rq_field sat_ringmq_fields[] = {
    {.key = "localVerification", .type = RQ_F_ENUM, .choices = "Disabled|Fallback",
     .off = offsetof(struct rq_authn_sat, local_verification),
     .size = sizeof(((struct rq_authn_sat *)0)->local_verification)},
    END,
};

static const struct rq_field sat_fields[] = {
    {.key = "audiences", .type = RQ_F_CUSTOM, .required = true, .set = set_audiences},
    {.key = "ringmq", .type = RQ_F_SECTION, .sub = sat_ringmq_fields},
    END,
};

/* ---- Custom ---------------------------------------------------------------------------------- */

static int set_endpoint(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_custom *c = obj;
    char t[80];
    if (rq_walk_string(ld, v, NULL, 0) < 0)
        return -1;
    const unsigned char *s = (const unsigned char *)sval(v);
    bool clean = true;
    for (size_t i = 0; s[i]; i++)
        clean &= s[i] > 0x20 && s[i] != 0x7f;
    if (strncmp(sval(v), "https://", 8) != 0 || !s[8] || !clean)
        return rq_walk_error(ld, v,
                             "endpoint must be an https:// URL without spaces, got '%s' (the "
                             "custom authentication server is only reached over TLS)",
                             rq_walk_text(v, t, sizeof t));
    /* what auth/custom.c builds from (rq_custom_method_new): a host, no query or fragment (the
     * request URL is <endpoint>/?api-version=0.5.0), ASCII only */
    if (s[8] == '/')
        return rq_walk_error(ld, v, "endpoint '%s' has no host", rq_walk_text(v, t, sizeof t));
    for (size_t i = 0; s[i]; i++)
        if (s[i] == '?' || s[i] == '#' || s[i] >= 0x80)
            return rq_walk_error(ld, v,
                                 "endpoint '%s' must not hold '?', '#' or non-ASCII characters "
                                 "(ringmq appends /?api-version=0.5.0; percent-encode the rest)",
                                 rq_walk_text(v, t, sizeof t));
    if (!(c->endpoint = strdup(sval(v))))
        return rq_ld_oom(ld);
    return 0;
}

static int set_ca_configmap(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_custom *c = obj;
    return rq_schema_object_ref(ld, v, "ConfigMap", RQ_REF_CA_BUNDLE, c->ca_configmap);
}

/* RFC 9110 token characters: a header name that cannot split or smuggle a request line. */
static bool header_name(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (const char *p = s; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
            !strchr(extra, *p))
            return false;
    return *s != '\0';
}

static int header_entry(struct rq_ld *ld, yaml_node_t *k, yaml_node_t *v, void *obj)
{
    struct rq_authn_custom *c = obj;
    char t[80];
    if (!header_name(sval(k)))
        return rq_walk_error(ld, k, "header name '%s' must be letters, digits and !#$%%&'*+-.^_`|~",
                             rq_walk_text(k, t, sizeof t));
    /* the method sends these itself (auth/custom.c refuses them too) */
    static const char *const own[] = {"Content-Type", "Content-Length", "Host", "Expect",
                                      "Transfer-Encoding"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcasecmp(sval(k), own[i]) == 0)
            return rq_walk_error(
                ld, k, "header %s is set by ringmq itself and cannot be configured", own[i]);
    if (text_value(ld, v) < 0)
        return -1;
    const char *s = sval(v);
    for (size_t i = 0; s[i]; i++)
        if (s[i] == '\r' || s[i] == '\n')
            return rq_walk_error(ld, v, "%s must not contain line breaks", ld->key);
    return rq_ld_push_entry(ld, &c->headers, &c->n_headers, sval(k), s, v->data.scalar.length);
}

static int set_headers(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_strmap(ld, v, header_entry, obj);
}

static int set_ref_name(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_secret_walk *cw = obj;
    rq_walk_set_key(ld, "secretRef.name");
    return rq_schema_object_ref(ld, v, "Secret", RQ_REF_TLS_SECRET, cw->secret);
}

static const struct rq_field secret_ref_fields[] = {
    {.key = "name", .type = RQ_F_CUSTOM, .required = true, .set = set_ref_name},
    {.key = "namespace", .type = RQ_F_IGNORE},
    END,
};

/* secretRef: a name (v1) or {name, namespace} (ARM 2024-08-15-preview); secretName: v1beta1. */
static int set_client_secret(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_secret_walk *cw = obj;
    bool beta;
    if (rq_schema_secret_key(ld, v, cw, &beta) < 0)
        return -1;
    if (v->type == YAML_MAPPING_NODE && !beta)
        return rq_walk_map(ld, v, secret_ref_fields, cw);
    return rq_schema_object_ref(ld, v, "Secret", RQ_REF_TLS_SECRET, cw->secret);
}

static const struct rq_field client_x509_fields[] = {
    {.key = "secretRef", .type = RQ_F_CUSTOM, .set = set_client_secret},
    {.key = "secretName", .type = RQ_F_CUSTOM, .set = set_client_secret}, /* v1beta1 */
    {.key = "namespace", .type = RQ_F_IGNORE},       /* docs example; no meaning here */
    {.key = "secretNamespace", .type = RQ_F_IGNORE}, /* v1beta1 */
    END,
};

/* auth: {x509: {secretRef}}: the client certificate ringmq presents to the auth server. */
static int set_client_x509(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_custom *c = obj;
    char path[300];
    struct rq_secret_walk cw = {.secret = c->client_secret};
    if (rq_walk_map(ld, v, client_x509_fields, &cw) < 0)
        return -1;
    if (cw.ref || cw.name)
        return 0;
    snprintf(path, sizeof path, "%s", ld->path);
    return rq_walk_error(ld, v, "missing required key 'secretRef' in BrokerAuthentication %s",
                         path);
}

static const struct rq_field custom_auth_fields[] = {
    {.key = "x509", .type = RQ_F_CUSTOM, .required = true, .set = set_client_x509},
    END,
};

static const struct rq_field custom_fields[] = {
    {.key = "endpoint", .type = RQ_F_CUSTOM, .required = true, .set = set_endpoint},
    {.key = "caCertConfigMap", .type = RQ_F_CUSTOM, .set = set_ca_configmap},
    {.key = "auth", .type = RQ_F_SECTION, .sub = custom_auth_fields},
    {.key = "headers", .type = RQ_F_CUSTOM, .set = set_headers},
    END,
};

/* ---- one method ------------------------------------------------------------------------------ */

static const struct {
    const char *key;
    int kind;
} settings_keys[] = {
    {"customSettings", RQ_AUTHN_CUSTOM},   {"serviceAccountTokenSettings", RQ_AUTHN_SAT},
    {"x509Settings", RQ_AUTHN_X509},       {"custom", RQ_AUTHN_CUSTOM}, /* v1beta1 */
    {"serviceAccountToken", RQ_AUTHN_SAT},                              /* v1beta1 */
    {"x509Credentials", RQ_AUTHN_X509},                                 /* v1beta1 */
};

static int keep_method(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    ((struct method_walk *)obj)->method = v;
    return 0;
}

/* Exactly one settings object per method: the first is kept, a second is an error here. */
static int keep_settings(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct method_walk *mw = obj;
    size_t i = 0;
    while (strcmp(settings_keys[i].key, ld->key) != 0)
        i++;
    if (mw->settings) {
        struct rq_pos p = rq_walk_pos(ld, rq_walk_key_of(ld, mw->map, mw->settings));
        return rq_walk_error(ld, rq_walk_key_of(ld, mw->map, v),
                             "a method has exactly one settings object (%s is at %u:%u)",
                             mw->settings_key, p.line, p.col);
    }
    mw->settings = v;
    mw->settings_key = settings_keys[i].key;
    mw->settings_kind = settings_keys[i].kind;
    return 0;
}

static const struct rq_field method_fields[] = {
    {.key = "method", .type = RQ_F_CUSTOM, .required = true, .set = keep_method},
    {.key = "customSettings", .type = RQ_F_CUSTOM, .set = keep_settings},
    {.key = "serviceAccountTokenSettings", .type = RQ_F_CUSTOM, .set = keep_settings},
    {.key = "x509Settings", .type = RQ_F_CUSTOM, .set = keep_settings},
    {.key = "custom", .type = RQ_F_CUSTOM, .set = keep_settings},
    {.key = "serviceAccountToken", .type = RQ_F_CUSTOM, .set = keep_settings},
    {.key = "x509Credentials", .type = RQ_F_CUSTOM, .set = keep_settings},
    END,
};

/* Custom | ServiceAccountToken | X509, any case; v1beta1 x509Credentials is X509. */
static int method_kind(struct rq_ld *ld, yaml_node_t *v, int *kind)
{
    rq_walk_set_key(ld, "method");
    if (v->type == YAML_SCALAR_NODE && strcasecmp(sval(v), "x509Credentials") == 0) {
        *kind = RQ_AUTHN_X509;
        return 0;
    }
    return rq_walk_enum(ld, v, "Custom|ServiceAccountToken|X509", kind);
}

/* The settings object for the method, walked into m. */
static int walk_settings(struct rq_ld *ld, struct method_walk *mw)
{
    struct rq_authn_method *m = mw->m;
    char path[300];
    static const char *const v1_key[] = {"customSettings", "serviceAccountTokenSettings",
                                         "x509Settings"};
    if (!mw->settings) {
        snprintf(path, sizeof path, "%s", ld->path);
        return rq_walk_error(ld, mw->map,
                             "missing required key '%s' in BrokerAuthentication %s (method %s)",
                             v1_key[m->kind], path, method_names[m->kind]);
    }
    if (mw->settings_kind != m->kind)
        return rq_walk_error(ld, rq_walk_key_of(ld, mw->map, mw->settings),
                             "%s does not go with method %s (use %s)", mw->settings_key,
                             method_names[m->kind], v1_key[m->kind]);
    switch (m->kind) {
    case RQ_AUTHN_CUSTOM:
        return walk_sub(ld, mw->settings, mw->settings_key, custom_fields, &m->custom);
    case RQ_AUTHN_SAT: return walk_sub(ld, mw->settings, mw->settings_key, sat_fields, &m->sat);
    default:
        if (walk_sub(ld, mw->settings, mw->settings_key, x509_fields, &m->x509) < 0)
            return -1;
        if (m->x509.trusted_ca[0])
            return 0;
        strcpy(m->x509.trusted_ca, "client-ca");
        return rq_refs_add(ld, RQ_REF_CA_BUNDLE, "client-ca", rq_walk_pos(ld, mw->settings),
                           "trustedClientCaCert defaults to client-ca");
    }
}

/* One X509 method per BrokerAuthentication: the port's TLS layer trusts one CA bundle and
 * takes the client's verified path against it, and one method then owns that path's attribute
 * entries. Two would leave the second one's CAs out of TLS, or make the entry that applies
 * depend on which method's CAs happened to verify. One method holds any number of CAs (one
 * ConfigMap, several keys) and entries. *first: the first X509 method's position (line 0: none
 * yet). */
static int one_x509(struct rq_ld *ld, yaml_node_t *method, struct rq_pos *first)
{
    if (first->line == 0) {
        *first = rq_walk_pos(ld, method);
        return 0;
    }
    return rq_walk_error(ld, method,
                         "a second X509 method (the first is at %u:%u): put every trusted client "
                         "CA in the first method's trustedClientCaCert ConfigMap and its "
                         "authorizationAttributes there too",
                         first->line, first->col);
}

static int walk_method(struct rq_ld *ld, yaml_node_t *item, size_t index, struct rq_pos *first_x509)
{
    struct rq_authn_cfg *a = ld->doc.authn;
    struct method_walk mw = {.m = &a->methods[index], .map = item};
    size_t mark = rq_walk_push(ld, "[%zu]", index);
    snprintf(ld->key, sizeof ld->key, "authenticationMethods[%zu]", index);
    int rc = rq_walk_map(ld, item, method_fields, &mw);
    if (rc == 0)
        rc = method_kind(ld, mw.method, &mw.m->kind);
    if (rc == 0 && mw.m->kind == RQ_AUTHN_X509)
        rc = one_x509(ld, mw.method, first_x509);
    if (rc == 0)
        rc = rq_refs_add_method(ld, (size_t)(a - ld->cfg->authns), index,
                                rq_walk_pos(ld, mw.method));
    if (rc == 0)
        rc = walk_settings(ld, &mw);
    rq_walk_pop(ld, mark);
    return rc;
}

/* ---- document -------------------------------------------------------------------------------- */

static int set_methods(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    struct rq_authn_cfg *a = ld->doc.authn;
    if (v->type != YAML_SEQUENCE_NODE)
        return rq_walk_type_error(ld, v, "a list of methods");
    yaml_node_item_t *items = v->data.sequence.items.start;
    size_t n = (size_t)(v->data.sequence.items.top - items);
    if (n == 0)
        return rq_walk_error(ld, v, "authenticationMethods must not be empty");
    if (!(a->methods = calloc(n, sizeof *a->methods)))
        return rq_ld_oom(ld);
    a->n_methods = n; /* zeroed methods free cleanly if a later one fails */
    struct rq_pos first_x509 = {0};
    for (size_t i = 0; i < n; i++)
        if (walk_method(ld, rq_walk_node(ld, items[i]), i, &first_x509) < 0)
            return -1;
    return 0;
}

static const struct rq_field spec_fields[] = {
    {.key = "authenticationMethods", .type = RQ_F_CUSTOM, .required = true, .set = set_methods},
    END,
};

int rq_schema_authn_spec(struct rq_ld *ld, yaml_node_t *v, void *obj)
{
    return rq_walk_map(ld, v, spec_fields, NULL);
}

int rq_schema_authn_begin(struct rq_ld *ld)
{
    struct rq_config *c = ld->cfg;
    void *p = rq_ld_reserve(c->authns, c->n_authns, &ld->authns_cap, sizeof *c->authns);
    if (!p)
        return rq_ld_oom(ld);
    c->authns = p;
    ld->doc.authn = memset(&c->authns[c->n_authns++], 0, sizeof *c->authns);
    return 0;
}
