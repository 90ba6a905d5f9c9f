/* The verified path of a TLS client certificate (see tls_path.h). */
#include "net/tls_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "auth/pem.h"
#include "auth/x509_der.h"

struct node {
    const uint8_t *der;
    size_t len;
    struct rq_x509_info info;
    bool parsed;
};

struct anchor {
    struct node n;
    uint8_t *der;             /* owned */
    WOLFSSL_CERT_MANAGER *cm; /* holds this anchor only: a success names it as the signer */
};

struct rq_tls_anchors {
    struct anchor *a;
    size_t n;
};

void rq_tls_anchors_free(struct rq_tls_anchors *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        rq_x509_info_free(&a->a[i].n.info);
        if (a->a[i].cm)
            wolfSSL_CertManagerFree(a->a[i].cm);
        free(a->a[i].der);
    }
    free(a->a);
    free(a);
}

/* A certificate manager trusting der alone; NULL when wolfSSL will not load it as a CA. */
static WOLFSSL_CERT_MANAGER *single_signer(const uint8_t *der, size_t len)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (cm && wolfSSL_CertManagerLoadCABuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1) ==
                  WOLFSSL_SUCCESS)
        return cm;
    if (cm)
        wolfSSL_CertManagerFree(cm);
    return NULL;
}

static int add_anchor(struct rq_tls_anchors *a, uint8_t *der, size_t len, char *err, size_t errlen)
{
    struct anchor *na = realloc(a->a, (a->n + 1) * sizeof *na);
    if (!na) {
        free(der);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->a = na;
    struct anchor *x = memset(&a->a[a->n++], 0, sizeof *x);
    x->der = der;
    x->n.der = der;
    x->n.len = len;
    const char *why = NULL;
    if (rq_x509_der_parse(der, len, &x->n.info, &why) != 0) {
        snprintf(err, errlen, "trusted client CA certificate %zu: %s", a->n, why);
        return -1;
    }
    x->n.parsed = true;
    if (!(x->cm = single_signer(der, len))) {
        snprintf(err, errlen, "trusted client CA certificate %zu: wolfSSL cannot load it as a CA",
                 a->n);
        return -1;
    }
    return 0;
}

struct rq_tls_anchors *rq_tls_anchors_new(const uint8_t *pem, size_t len, char *err, size_t errlen)
{
    struct rq_tls_anchors *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t off = 0, der_len;
    uint8_t *der;
    const char *why = NULL;
    int rc;
    while ((rc = rq_pem_next_cert((const char *)pem, len, &off, &der, &der_len, &why)) > 0)
        if (add_anchor(a, der, der_len, err, errlen) != 0)
            goto fail;
    if (rc < 0) {
        snprintf(err, errlen, "trusted client CA bundle: %s", why ? why : "bad PEM");
        goto fail;
    }
    if (a->n == 0) {
        snprintf(err, errlen, "trusted client CA bundle holds no certificate");
        goto fail;
    }
    return a;
fail:
    rq_tls_anchors_free(a);
    return NULL;
}

static bool same_der(const struct node *n, const uint8_t *der, size_t len)
{
    return n->len == len && memcmp(n->der, der, len) == 0;
}

bool rq_tls_anchors_has(const struct rq_tls_anchors *a, const uint8_t *der, size_t len)
{
    for (size_t i = 0; a && i < a->n; i++)
        if (same_der(&a->a[i].n, der, len))
            return true;
    return false;
}

/* Names equal attribute by attribute (type and value bytes). Only a quick filter before the
 * signature check: wolfSSL then compares the encoded names itself. */
static bool name_equal(const struct rq_x509_name *x, const struct rq_x509_name *y)
{
    if (x->count != y->count)
        return false;
    for (size_t i = 0; i < x->count; i++) {
        const struct rq_x509_rdn *r = &x->rdn[i], *s = &y->rdn[i];
        if (r->count != s->count)
            return false;
        for (size_t j = 0; j < r->count; j++)
            if (strcmp(r->atv[j].oid, s->atv[j].oid) != 0 ||
                r->atv[j].value_len != s->atv[j].value_len ||
                memcmp(r->atv[j].value, s->atv[j].value, r->atv[j].value_len) != 0)
                return false;
    }
    return true;
}

/* May issuer stand at position pos (>= 1) of the path above child? Name, CA flag and
 * pathLenConstraint (pos - 1 intermediates below it) first, then wolfSSL verifies child
 * against issuer alone. cm: the issuer's own manager (a trust anchor: the operator's choice
 * makes it a CA, as wolfSSL treats it, so old v1 roots without basicConstraints work), or NULL
 * for a presented certificate, which must say cA itself; a manager is made for the check. */
static bool verifies(const struct node *issuer, WOLFSSL_CERT_MANAGER *cm, const struct node *child,
                     size_t pos)
{
    const struct rq_x509_info *i = &issuer->info;
    if (!issuer->parsed || !name_equal(&i->subject, &child->info.issuer))
        return false;
    if ((!cm && !i->ca) || (i->path_len >= 0 && pos - 1 > (size_t)i->path_len))
        return false;
    WOLFSSL_CERT_MANAGER *own = cm ? NULL : single_signer(issuer->der, issuer->len);
    if (!cm && !own)
        return false;
    int rc = wolfSSL_CertManagerVerifyBuffer(cm ? cm : own, child->der, (long)child->len,
                                             WOLFSSL_FILETYPE_ASN1);
    if (own)
        wolfSSL_CertManagerFree(own);
    return rc == WOLFSSL_SUCCESS;
}

struct walk {
    const struct rq_tls_anchors *a;
    struct node pres[RQ_TLS_PATH_MAX];
    size_t n_pres;
    bool used_pres[RQ_TLS_PATH_MAX];
    bool *used_anchor;
    const struct node *path[RQ_TLS_PATH_MAX];
    size_t n;
    bool anchored;
};

/* The next certificate above the path's top, or false. Trust anchors first (the shortest path
 * wins); presented CAs only while no anchor has been reached: above an anchor nothing the
 * client sent can be verified. */
static bool extend(struct walk *w)
{
    const struct node *top = w->path[w->n - 1];
    if (w->anchored && name_equal(&top->info.subject, &top->info.issuer))
        return false; /* a self-issued anchor: the root */
    for (size_t i = 0; i < w->a->n; i++) {
        const struct anchor *x = &w->a->a[i];
        if (!w->used_anchor[i] && verifies(&x->n, x->cm, top, w->n)) {
            w->used_anchor[i] = true;
            w->path[w->n++] = &x->n;
            w->anchored = true;
            return true;
        }
    }
    for (size_t i = 1; !w->anchored && i < w->n_pres; i++) {
        if (!w->used_pres[i] && verifies(&w->pres[i], NULL, top, w->n)) {
            w->used_pres[i] = true;
            w->path[w->n++] = &w->pres[i];
            return true;
        }
    }
    return false;
}

size_t rq_tls_path_build(const struct rq_tls_anchors *a, const struct rq_tls_der *presented,
                         size_t n_presented, struct rq_tls_der *out, const char **why)
{
    struct walk w = {.a = a};
    if (!a || n_presented == 0) {
        *why = "no client certificate or no trusted client CA";
        return 0;
    }
    if (!(w.used_anchor = calloc(a->n, sizeof *w.used_anchor))) {
        *why = "out of memory";
        return 0;
    }
    w.n_pres = n_presented < RQ_TLS_PATH_MAX ? n_presented : RQ_TLS_PATH_MAX;
    for (size_t i = 0; i < w.n_pres; i++) {
        const char *ignored;
        w.pres[i].der = presented[i].der;
        w.pres[i].len = presented[i].len;
        w.pres[i].parsed =
            rq_x509_der_parse(presented[i].der, presented[i].len, &w.pres[i].info, &ignored) == 0;
    }
    size_t n = 0;
    if (!w.pres[0].parsed) {
        *why = "the client certificate cannot be read";
        goto out;
    }
    w.path[w.n++] = &w.pres[0];
    for (size_t i = 0; i < a->n && !w.anchored; i++)
        if (same_der(&a->a[i].n, w.pres[0].der, w.pres[0].len))
            w.anchored = w.used_anchor[i] = true; /* the leaf itself is trusted */
    while (w.n < RQ_TLS_PATH_MAX && extend(&w))
        ;
    if (!w.anchored) {
        *why = "no verified path from the client certificate to a trusted client CA";
        goto out;
    }
    for (; n < w.n; n++)
        out[n] = (struct rq_tls_der){w.path[n]->der, w.path[n]->len};
out:
    for (size_t i = 0; i < w.n_pres; i++)
        rq_x509_info_free(&w.pres[i].info);
    free(w.used_anchor);
    return n;
}
