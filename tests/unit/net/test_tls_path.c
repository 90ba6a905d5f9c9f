/* The verified path of a client certificate (net/tls_path.c): certificates made here with
 * wolfSSL (EC P-256), then paths built from presented lists that hold forged, unrelated,
 * non-CA and path-length-violating certificates beside the real ones. */
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "net/tls_path.h"
#include "tests/unit/check.h"

struct crt {
    uint8_t der[2048];
    size_t len;
    ecc_key key;
};

static WC_RNG rng;

/* cn issued by issuer (NULL: self-signed); ca with path_len (-1: none). */
static void make(struct crt *c, const char *cn, struct crt *issuer, bool ca, int path_len)
{
    Cert cert;
    CHECK_EQ(wc_ecc_init(&c->key), 0);
    CHECK_EQ(wc_ecc_make_key(&rng, 32, &c->key), 0);
    CHECK_EQ(wc_InitCert(&cert), 0);
    snprintf(cert.subject.commonName, CTC_NAME_SIZE, "%s", cn);
    cert.sigType = CTC_SHA256wECDSA;
    cert.daysValid = 30;
    cert.isCA = ca;
    if (ca) {
        CHECK_EQ(wc_SetKeyUsage(&cert, "keyCertSign,cRLSign"), 0);
        if (path_len >= 0) {
            cert.pathLen = (byte)path_len;
            cert.pathLenSet = 1;
        }
    }
    if (issuer)
        CHECK_EQ(wc_SetIssuerBuffer(&cert, issuer->der, (int)issuer->len), 0);
    int body = wc_MakeCert(&cert, c->der, sizeof c->der, NULL, &c->key, &rng);
    CHECK(body > 0);
    int len = wc_SignCert(body, cert.sigType, c->der, sizeof c->der, NULL,
                          issuer ? &issuer->key : &c->key, &rng);
    CHECK(len > 0);
    c->len = len > 0 ? (size_t)len : 0;
}

static struct rq_tls_anchors *anchors(struct crt *const *cas, size_t n)
{
    static char pem[16384];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        int k = wc_DerToPem(cas[i]->der, (word32)cas[i]->len, (byte *)pem + off,
                            (word32)(sizeof pem - off), CERT_TYPE);
        CHECK(k > 0);
        off += k > 0 ? (size_t)k : 0;
    }
    char err[200] = "";
    struct rq_tls_anchors *a = rq_tls_anchors_new((const uint8_t *)pem, off, err, sizeof err);
    if (!a)
        fprintf(stderr, "anchors: %s\n", err);
    CHECK(a != NULL);
    return a;
}

/* The path for presented certificates: the number of entries, each checked against want. */
static size_t path(struct rq_tls_anchors *a, struct crt *const *pres, size_t n,
                   struct crt *const *want, size_t n_want)
{
    struct rq_tls_der in[RQ_TLS_PATH_MAX], out[RQ_TLS_PATH_MAX];
    for (size_t i = 0; i < n; i++)
        in[i] = (struct rq_tls_der){pres[i]->der, pres[i]->len};
    const char *why = NULL;
    size_t got = rq_tls_path_build(a, in, n, out, &why);
    CHECK_EQ(got, n_want);
    if (got == 0)
        CHECK(why != NULL);
    for (size_t i = 0; i < got && i < n_want; i++)
        CHECK(out[i].len == want[i]->len && memcmp(out[i].der, want[i]->der, out[i].len) == 0);
    return got;
}

#define L(...) ((struct crt *const[]){__VA_ARGS__})
#define PATH(a, pres, want)                                                                        \
    path(a, pres, sizeof pres / sizeof *pres, want, sizeof want / sizeof *want)
#define NO_PATH(a, pres) path(a, pres, sizeof pres / sizeof *pres, NULL, 0)

static struct crt root, inter, leaf, forged_inter, fan_ca, other_inter, notca, leaf_of_notca, root0,
    inter0, leaf0, self_leaf, fake_root, fake_inter, fake_leaf;

static void setup(void)
{
    make(&root, "Root", NULL, true, -1);
    make(&inter, "Inter", &root, true, -1);
    make(&leaf, "thermostat", &inter, false, -1);
    make(&forged_inter, "Inter", NULL, true, -1); /* a real intermediate's name, own key */
    make(&fan_ca, "smart-fan", NULL, true, -1);
    make(&other_inter, "Other", &root, true, -1); /* verifies, issued nothing here */
    make(&notca, "Inter", &root, false, -1);      /* the right name, not a CA */
    make(&leaf_of_notca, "victim", &notca, false, -1);
    make(&root0, "Root0", NULL, true, 0); /* pathLenConstraint 0: no intermediate below */
    make(&inter0, "Inter0", &root0, true, -1);
    make(&leaf0, "leaf0", &inter0, false, -1);
    make(&self_leaf, "self", NULL, false, -1);
    make(&fake_root, "Root", NULL, true, -1); /* the impostor chain: every name right */
    make(&fake_inter, "Inter", &fake_root, true, -1);
    make(&fake_leaf, "thermostat", &fake_inter, false, -1);
}

static void verified_path_only(void)
{
    struct rq_tls_anchors *a = anchors(L(&root), 1);
    struct crt *const full[] = {&leaf, &inter, &root};
    PATH(a, L(&leaf, &inter), full);
    /* Extra certificates, forged or real, in any position: never on the path. */
    PATH(a, L(&leaf, &fan_ca, &inter), full);
    PATH(a, L(&leaf, &forged_inter, &inter), full);
    PATH(a, L(&leaf, &inter, &forged_inter, &other_inter, &fan_ca), full);
    PATH(a, L(&leaf, &other_inter, &inter, &root), full);
    /* A forged CA with the intermediate's name cannot stand in for it. */
    NO_PATH(a, L(&leaf, &forged_inter));
    NO_PATH(a, L(&leaf, &fan_ca));
    NO_PATH(a, L(&leaf, &fake_inter));
    NO_PATH(a, L(&fake_leaf, &fake_inter));
    NO_PATH(a, L(&fake_leaf, &fake_inter, &fake_root));
    NO_PATH(a, L(&fake_leaf, &inter)); /* right issuer name and CA, wrong key */
    NO_PATH(a, L(&leaf));              /* the intermediate is neither sent nor trusted */
    /* A certificate that is not a CA cannot issue, whatever its name and signature. */
    NO_PATH(a, L(&leaf_of_notca, &notca));
    rq_tls_anchors_free(a);
}

static void anchors_intermediate_and_root(void)
{
    struct rq_tls_anchors *a = anchors(L(&inter), 1);
    struct crt *const to_inter[] = {&leaf, &inter};
    PATH(a, L(&leaf), to_inter);
    PATH(a, L(&leaf, &inter), to_inter);        /* the trusted intermediate sent again */
    PATH(a, L(&leaf, &inter, &root), to_inter); /* nothing above an anchor from the client */
    CHECK(rq_tls_anchors_has(a, inter.der, inter.len));
    CHECK(!rq_tls_anchors_has(a, forged_inter.der, forged_inter.len));
    rq_tls_anchors_free(a);
    /* Both trusted: the path goes on through the trusted CA that verifies the first one. */
    a = anchors(L(&root, &inter), 2);
    struct crt *const to_root[] = {&leaf, &inter, &root};
    PATH(a, L(&leaf), to_root);
    PATH(a, L(&leaf, &forged_inter), to_root);
    rq_tls_anchors_free(a);
}

static void constraints(void)
{
    struct rq_tls_anchors *a = anchors(L(&root0), 1);
    NO_PATH(a, L(&leaf0, &inter0)); /* root0 allows no intermediate */
    rq_tls_anchors_free(a);
    a = anchors(L(&self_leaf), 1);
    struct crt *const alone[] = {&self_leaf};
    PATH(a, L(&self_leaf), alone); /* a leaf trusted as itself */
    rq_tls_anchors_free(a);
    char err[200];
    CHECK(rq_tls_anchors_new((const uint8_t *)"no pem", 6, err, sizeof err) == NULL);
    const char *why = NULL;
    CHECK_EQ(rq_tls_path_build(NULL, NULL, 0, NULL, &why), 0);
}

int main(void)
{
    wolfSSL_Init();
    CHECK_EQ(wc_InitRng(&rng), 0);
    setup();
    verified_path_only();
    anchors_intermediate_and_root();
    constraints();
    struct crt *all[] = {&root,        &inter,     &leaf,          &forged_inter, &fan_ca,
                         &other_inter, &notca,     &leaf_of_notca, &root0,        &inter0,
                         &leaf0,       &self_leaf, &fake_root,     &fake_inter,   &fake_leaf};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        wc_ecc_free(&all[i]->key);
    wc_FreeRng(&rng);
    wolfSSL_Cleanup();
    return check_exit("tls_path");
}
