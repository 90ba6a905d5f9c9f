/* Glue between a port's configuration, its TLS layer and the authentication chain: builds the
 * chain of a BrokerAuthentication from the config snapshot (control thread), and runs it for a
 * CONNECT on behalf of core (shard thread), turning the outcome into core's answer. */
#include "net/authn_glue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authn.h"
#include "auth/x509_subject.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/codec.h"
#include "net/authn_custom.h"
#include "net/authn_sat.h"
#include "net/tls.h"

int rq_authn_glue_collect_pem(const struct rq_config_object *o, struct rq_buf *out)
{
    for (size_t i = 0; o && i < o->n_entries; i++) {
        const struct rq_config_entry *e = &o->entries[i];
        if (!memmem(e->value, e->len, "-----BEGIN", 10))
            continue;
        if (rq_buf_append(out, e->value, e->len) != 0 || rq_buf_append(out, "\n", 1) != 0)
            return -1;
    }
    return 0;
}

static void free_rules(struct rq_x509_rule *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rq_x509_rule_free(&r[i]);
    free(r);
}

static struct rq_x509_rule *build_rules(const struct rq_authn_x509 *x, char *err, size_t errlen)
{
    struct rq_x509_rule *rules = calloc(x->n_rules ? x->n_rules : 1, sizeof *rules);
    if (!rules)
        return NULL;
    for (size_t i = 0; i < x->n_rules; i++) {
        const struct rq_x509_attr_rule *cr = &x->rules[i];
        struct rq_x509_rule *r = &rules[i];
        const char *why = NULL;
        if (rq_dn_parse(cr->subject, strlen(cr->subject), &r->subject, &why) != 0) {
            snprintf(err, errlen, "authorizationAttributes '%s': subject \"%s\": %s", cr->name,
                     cr->subject, why);
            free_rules(rules, i + 1);
            return NULL;
        }
        r->name = strdup(cr->name);
        r->keys = calloc(cr->n_attrs ? cr->n_attrs : 1, sizeof *r->keys);
        r->values = calloc(cr->n_attrs ? cr->n_attrs : 1, sizeof *r->values);
        if (!r->name || !r->keys || !r->values) {
            free_rules(rules, i + 1);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        for (size_t j = 0; j < cr->n_attrs; j++, r->n++) {
            r->keys[j] = strdup(cr->attrs[j].key);
            r->values[j] = strdup(cr->attrs[j].value);
        }
    }
    return rules;
}

static int add_x509(struct rq_authn_chain *ch, const struct rq_authn_x509 *x, char *err,
                    size_t errlen)
{
    struct rq_buf pem = {0};
    if (!x->trusted_ca_obj || rq_authn_glue_collect_pem(x->trusted_ca_obj, &pem) != 0) {
        snprintf(err, errlen, "ConfigMap %s: no trusted client CA certificates", x->trusted_ca);
        rq_buf_free(&pem);
        return -1;
    }
    char why[200] = "";
    struct rq_x509_rule *rules = build_rules(x, why, sizeof why);
    if (!rules) {
        snprintf(err, errlen, "X509: %s", why[0] ? why : "out of memory");
        rq_buf_free(&pem);
        return -1;
    }
    void *m = rq_x509_method_new((const char *)pem.data, pem.len, rules, x->n_rules, why,
                                 sizeof why);
    rq_buf_free(&pem);
    if (!m) {
        snprintf(err, errlen, "X509 (ConfigMap %s): %s", x->trusted_ca, why);
        return -1;
    }
    return rq_authn_chain_add(ch, &rq_x509_method_ops, m);
}

struct rq_authn_chain *rq_authn_glue_build(const struct rq_authn_cfg *cfg, char *err,
                                           size_t errlen)
{
    struct rq_authn_chain *ch = rq_authn_chain_new(cfg->name);
    if (!ch) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_methods; i++) {
        const struct rq_authn_method *m = &cfg->methods[i];
        char why[400] = "";
        int rc = -1;
        if (m->kind == RQ_AUTHN_X509)
            rc = add_x509(ch, &m->x509, why, sizeof why);
        else if (m->kind == RQ_AUTHN_CUSTOM)
            rc = rq_authn_custom_add(ch, &m->custom, why, sizeof why);
        else
            rc = rq_authn_sat_add(ch, &m->sat, why, sizeof why);
        if (rc != 0) {
            snprintf(err, errlen, "BrokerAuthentication %s, method %zu: %s", cfg->name, i + 1,
                     why);
            rq_authn_chain_free(ch);
            return NULL;
        }
    }
    return ch;
}

/* The chain's view of a CONNECT: borrowed from k and the TLS state for the call. */
enum { MAX_CERTS = 12 };
struct creds_buf {
    struct rq_authn_creds c;
    const uint8_t *certs[MAX_CERTS];
    size_t lens[MAX_CERTS];
};

static void fill_creds(struct creds_buf *cb, struct rq_tls *tls, uint64_t conn_id,
                       const struct rq_connect *k)
{
    size_t n = 0;
    for (size_t i = 0; tls && i < rq_tls_peer_count(tls) && n < MAX_CERTS; i++)
        if (rq_tls_peer_der(tls, i, &cb->certs[n], &cb->lens[n]))
            n++;
    cb->c = (struct rq_authn_creds){
        .version = k->version == 5 ? 5 : 4,
        .has_username = k->has_username,
        .username = k->username.p,
        .username_len = k->username.len,
        .has_password = k->has_password,
        .password = k->password.p,
        .password_len = k->password.len,
        .has_auth_method = RQ_PROP_HAS(&k->props, RQ_PROP_AUTH_METHOD),
        .auth_method = k->props.auth_method.p,
        .auth_method_len = k->props.auth_method.len,
        .auth_data = k->props.auth_data.p,
        .auth_data_len = k->props.auth_data.len,
        .certs = cb->certs,
        .cert_lens = cb->lens,
        .n_certs = n,
        .now = (int64_t)time(NULL),
        .conn_id = conn_id,
    };
}

void rq_authn_glue_run(const struct rq_authn_chain *ch, struct rq_tls *tls, uint64_t conn_id,
                       const struct rq_connect *k, struct rq_auth_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->conn = conn_id;
    if (!ch)
        return; /* RQ_AUTH_OFF */
    struct creds_buf cb;
    fill_creds(&cb, tls, conn_id, k);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    size_t pending_at = 0;
    rq_authn_glue_translate(rq_authn_chain_run(ch, 0, &cb.c, &o, &pending_at), &o, v);
    rq_authn_outcome_free(&o);
}

void rq_authn_glue_resume(const struct rq_authn_chain *ch, size_t pending_at, struct rq_tls *tls,
                          uint64_t conn_id, const struct rq_connect *k,
                          struct rq_authn_outcome *o, struct rq_auth_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->conn = conn_id;
    if (!ch) {
        v->result = RQ_AUTH_DENY;
        v->reason = 0x87;
        snprintf(v->why, sizeof v->why, "the port's authentication chain is gone");
        return;
    }
    struct creds_buf cb;
    fill_creds(&cb, tls, conn_id, k);
    size_t next = 0;
    rq_authn_glue_translate(rq_authn_chain_resume(ch, pending_at, &cb.c, o, &next), o, v);
}

void rq_authn_glue_translate(int verdict, struct rq_authn_outcome *o, struct rq_auth_verdict *v)
{
    v->method = o->method;
    snprintf(v->why, sizeof v->why, "%s", o->why);
    switch (verdict) {
    case RQ_AUTHN_ALLOW:
        if (!o->principal.method)
            o->principal.method = o->method;
        v->principal = rq_principal_take(&o->principal);
        if (!v->principal) {
            v->result = RQ_AUTH_DENY;
            v->reason = 0x88; /* Server unavailable */
            snprintf(v->why, sizeof v->why, "out of memory");
            return;
        }
        v->result = RQ_AUTH_ALLOW;
        return;
    case RQ_AUTHN_PENDING:
        /* The pending method has handed the check elsewhere (an auth pool thread), tagged
         * with c.conn_id; its verdict comes back as RQ_POST_AUTH_VERDICT (net/post.h). */
        v->result = RQ_AUTH_PENDING;
        return;
    default:
        v->result = RQ_AUTH_DENY;
        v->reason = o->reason;
        return;
    }
}

/* ---- re-authentication ---- */

/* A re-authentication's answer in core's terms: as for a CONNECT, except that "not relevant"
 * (the method could not decide) is RETRY, never a denial. */
static void translate_reauth(int verdict, struct rq_authn_outcome *o, struct rq_auth_verdict *v)
{
    if (verdict != RQ_AUTHN_NOT_RELEVANT) {
        rq_authn_glue_translate(verdict, o, v);
        return;
    }
    v->method = o->method;
    snprintf(v->why, sizeof v->why, "%s", o->why[0] ? o->why : "not relevant");
    v->result = RQ_AUTH_RETRY;
}

void rq_authn_glue_reauth(const struct rq_authn_chain *ch, struct rq_tls *tls, uint64_t conn_id,
                          const struct rq_principal *who, const struct rq_reason *auth,
                          struct rq_auth_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->conn = conn_id;
    if (!ch || !who || !who->chain_pos) {
        v->result = RQ_AUTH_DENY;
        v->reason = 0x8C; /* Bad authentication method */
        v->method = who ? who->method : NULL;
        snprintf(v->why, sizeof v->why, "no method of the port can re-authenticate this client");
        return;
    }
    /* The creds as for a CONNECT that names only the AUTH's method and data: borrowed. */
    struct rq_connect k = {.version = 5};
    k.props.present = auth->props.present &
                      (RQ_PROP_BIT(RQ_PROP_AUTH_METHOD) | RQ_PROP_BIT(RQ_PROP_AUTH_DATA));
    k.props.auth_method = auth->props.auth_method;
    k.props.auth_data = auth->props.auth_data;
    if (who->username) {
        k.has_username = true;
        k.username = (struct rq_str){(const uint8_t *)who->username,
                                     (uint32_t)strlen(who->username)};
    }
    struct creds_buf cb;
    fill_creds(&cb, tls, conn_id, &k);
    cb.c.reauth = true;
    if (!RQ_PROP_HAS(&auth->props, RQ_PROP_AUTH_DATA))
        cb.c.auth_data = NULL; /* absent, not empty */
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    translate_reauth(rq_authn_chain_reauth(ch, who->chain_pos - 1, &cb.c, &o), &o, v);
    rq_authn_outcome_free(&o);
}

void rq_authn_glue_reauth_resume(const struct rq_authn_chain *ch, size_t pending_at,
                                 uint64_t conn_id, struct rq_authn_outcome *o,
                                 struct rq_auth_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->conn = conn_id;
    if (!ch) { /* cannot happen while the connection pins its generation */
        v->result = RQ_AUTH_RETRY;
        snprintf(v->why, sizeof v->why, "the port's authentication chain is gone");
        return;
    }
    translate_reauth(rq_authn_chain_reauth_resume(ch, pending_at, o), o, v);
}
