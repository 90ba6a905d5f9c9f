/* The X509 authentication method. Relevant when the client presented a certificate in the TLS
 * handshake. The TLS layer hands over the verified path, leaf to trust anchor, every link's
 * signature checked (net/tls_path.h); certificates the client presented beside it are never
 * seen here, so no name in them can count. Here: the path must end at one of this method's
 * trusted CAs, every certificate on it must use the same key algorithm family, the principal's
 * username is the leaf's CN, its attributes come from the first authorizationAttributes entry
 * whose subject equals a certificate's subject, walking the path from the leaf up
 * (docs/x509-attributes.md), and the credentials expire at the earliest notAfter of the path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authn.h"
#include "auth/pem.h"
#include "auth/x509_der.h"
#include "auth/x509_subject.h"

#define MAX_CHAIN 12

struct cert {
    uint8_t *der; /* trusted CAs only: compared with the path's anchor */
    size_t der_len;
    struct rq_x509_info info;
    struct rq_dn subject;
    struct rq_dn issuer;
};

struct x509_method {
    struct cert *cas; /* trusted client CAs */
    size_t n_cas;
    struct rq_x509_rule *rules;
    size_t n_rules;
};

static int name_to_dn(const struct rq_x509_name *name, struct rq_dn *dn)
{
    memset(dn, 0, sizeof *dn);
    for (size_t i = 0; i < name->count; i++) {
        const struct rq_x509_rdn *r = &name->rdn[i];
        for (size_t j = 0; j < r->count; j++) {
            const struct rq_x509_atv *a = &r->atv[j];
            if (rq_dn_add(dn, a->short_name ? a->short_name : a->oid,
                          (const uint8_t *)a->value, a->value_len, j > 0) != 0)
                return -1;
        }
    }
    return 0;
}

static void cert_free(struct cert *c)
{
    free(c->der);
    rq_x509_info_free(&c->info);
    rq_dn_free(&c->subject);
    rq_dn_free(&c->issuer);
}

static int cert_parse(const uint8_t *der, size_t len, struct cert *c, const char **why)
{
    memset(c, 0, sizeof *c);
    if (rq_x509_der_parse(der, len, &c->info, why) != 0)
        return -1;
    if (name_to_dn(&c->info.subject, &c->subject) != 0 ||
        name_to_dn(&c->info.issuer, &c->issuer) != 0) {
        *why = "subject or issuer name not usable";
        cert_free(c);
        return -1;
    }
    return 0;
}

static void method_free(void *state)
{
    struct x509_method *m = state;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_cas; i++)
        cert_free(&m->cas[i]);
    free(m->cas);
    for (size_t i = 0; i < m->n_rules; i++)
        rq_x509_rule_free(&m->rules[i]);
    free(m->rules);
    free(m);
}

void *rq_x509_method_new(const char *ca_pem, size_t ca_len, struct rq_x509_rule *rules,
                         size_t n_rules, char *err, size_t errlen)
{
    struct x509_method *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->rules = rules;
    m->n_rules = n_rules;
    size_t off = 0;
    uint8_t *der;
    size_t der_len;
    const char *why = NULL;
    int rc;
    while ((rc = rq_pem_next_cert(ca_pem, ca_len, &off, &der, &der_len, &why)) > 0) {
        struct cert *nc = realloc(m->cas, (m->n_cas + 1) * sizeof *nc);
        if (!nc) {
            free(der);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        m->cas = nc;
        if (cert_parse(der, der_len, &m->cas[m->n_cas], &why) != 0) {
            free(der);
            snprintf(err, errlen, "trusted client CA certificate %zu: %s", m->n_cas + 1, why);
            goto fail;
        }
        m->cas[m->n_cas].der = der;
        m->cas[m->n_cas].der_len = der_len;
        m->n_cas++;
    }
    if (rc < 0) {
        snprintf(err, errlen, "trusted client CA bundle: %s", why ? why : "bad PEM");
        goto fail;
    }
    if (m->n_cas == 0) {
        snprintf(err, errlen, "trusted client CA bundle holds no certificate");
        goto fail;
    }
    return m;
fail:
    method_free(m);
    return NULL;
}

/* The path ends at one of this method's trusted CAs (byte for byte). */
static bool anchored(const struct x509_method *m, const struct rq_authn_creds *c)
{
    const uint8_t *top = c->certs[c->n_certs - 1];
    size_t len = c->cert_lens[c->n_certs - 1];
    for (size_t i = 0; i < m->n_cas; i++)
        if (m->cas[i].der_len == len && memcmp(m->cas[i].der, top, len) == 0)
            return true;
    return false;
}

static void deny(struct rq_authn_outcome *o, const char *fmt, const char *a, const char *b)
{
    o->verdict = RQ_AUTHN_DENY;
    o->reason = 0x87;
    snprintf(o->why, sizeof o->why, fmt, a, b);
}

static void allow(const struct x509_method *m, const struct rq_dn *const *chain, size_t n,
                  int64_t expiry, struct rq_authn_outcome *o)
{
    struct rq_principal *p = &o->principal;
    const uint8_t *cn;
    size_t cn_len;
    if (rq_dn_common_name(chain[0], &cn, &cn_len) == 0)
        p->username = strndup((const char *)cn, cn_len);
    p->expiry = expiry;
    struct rq_dn flat[MAX_CHAIN];
    for (size_t i = 0; i < n; i++)
        flat[i] = *chain[i];
    size_t rule;
    char subj[160];
    rq_dn_format(chain[0], subj, sizeof subj);
    if (rq_x509_map_attributes(m->rules, m->n_rules, flat, n, &rule) == 1) {
        const struct rq_x509_rule *r = &m->rules[rule];
        for (size_t i = 0; i < r->n; i++)
            if (rq_principal_add_attr(p, r->keys[i], r->values[i]) != 0)
                break;
        snprintf(o->why, sizeof o->why, "certificate %s, attributes from '%s'", subj, r->name);
    } else {
        snprintf(o->why, sizeof o->why, "certificate %s, no authorizationAttributes match", subj);
    }
    o->verdict = RQ_AUTHN_ALLOW;
}

static void check(const void *state, const struct rq_authn_creds *c, struct rq_authn_outcome *o)
{
    const struct x509_method *m = state;
    if (c->n_certs == 0) {
        o->verdict = RQ_AUTHN_NOT_RELEVANT;
        return;
    }
    struct cert own[MAX_CHAIN];
    const struct cert *chain[MAX_CHAIN];
    size_t n_own = 0, n = 0;
    const char *why = NULL;
    if (c->n_certs > MAX_CHAIN || !anchored(m, c)) {
        deny(o, "the verified certificate path does not end at a trusted client CA of this "
                "method%s%s", "", "");
        return;
    }
    for (size_t i = 0; i < c->n_certs; i++) {
        if (cert_parse(c->certs[i], c->cert_lens[i], &own[n_own], &why) != 0) {
            char idx[24];
            snprintf(idx, sizeof idx, "%zu", i + 1);
            deny(o, "client certificate %s cannot be read: %s", idx, why);
            goto out;
        }
        chain[n++] = &own[n_own++];
    }
    int64_t expiry = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rq_x509_same_key_alg(&chain[0]->info, &chain[i]->info)) {
            deny(o, "mixed key algorithms in the certificate chain (%s and %s): all must use "
                    "the same algorithm",
                 rq_x509_key_alg_name(&chain[0]->info), rq_x509_key_alg_name(&chain[i]->info));
            goto out;
        }
        if (expiry == 0 || chain[i]->info.not_after < expiry)
            expiry = chain[i]->info.not_after;
    }
    if (expiry <= c->now) {
        deny(o, "certificate chain expired%s%s", "", "");
        goto out;
    }
    if (chain[0]->info.not_before > c->now) {
        deny(o, "client certificate not yet valid%s%s", "", "");
        goto out;
    }
    const struct rq_dn *dns[MAX_CHAIN] = {0};
    for (size_t i = 0; i < n; i++)
        dns[i] = &chain[i]->subject;
    allow(m, dns, n, expiry, o);
out:
    for (size_t i = 0; i < n_own; i++)
        cert_free(&own[i]);
}

const struct rq_authn_method_ops rq_x509_method_ops = {
    .name = "X509",
    .check = check,
    .free = method_free,
};
