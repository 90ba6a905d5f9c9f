/* libFuzzer harness for auth/x509_der.c: the input is parsed as one DER certificate, and the
 * same bytes are read as a PEM bundle whose every decoded block is parsed too. Whatever parses
 * is walked completely; anything inconsistent aborts.
 *
 * Seeds in tests/fuzz/corpus/x509_der: DER certificates made with the openssl CLI (EC P-256,
 * P-384, RSA 2048, Ed25519, multi-valued RDN, T61/BMP strings, 2051 GeneralizedTime) and a small
 * PEM bundle, e.g.
 *   openssl req -x509 -newkey ed25519 -nodes -keyout /dev/null -subj /CN=ed -days 30 \
 *     -outform DER -out tests/fuzz/corpus/x509_der/ed25519.der */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/pem.h"
#include "auth/x509_der.h"

#define ENSURE(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void walk_name(const struct rq_x509_name *n)
{
    ENSURE(n->count == 0 || n->rdn != NULL);
    for (size_t i = 0; i < n->count; i++) {
        ENSURE(n->rdn[i].count > 0);
        for (size_t j = 0; j < n->rdn[i].count; j++) {
            const struct rq_x509_atv *a = &n->rdn[i].atv[j];
            ENSURE(a->oid && a->oid[0] >= '0' && a->oid[0] <= '2' && a->oid[1] == '.');
            ENSURE(a->value[a->value_len] == '\0');
            ENSURE(!a->text || strlen(a->value) == a->value_len);
            ENSURE(rq_x509_name_find(n, a->oid) != NULL);
        }
    }
}

static void parse(const uint8_t *der, size_t len)
{
    struct rq_x509_info info;
    const char *why = NULL;
    if (rq_x509_der_parse(der, len, &info, &why) != 0) {
        ENSURE(why != NULL && info.mem_ == NULL);
        return;
    }
    ENSURE(info.version >= 1 && info.version <= 3);
    walk_name(&info.issuer);
    walk_name(&info.subject);
    ENSURE(info.key_oid != NULL);
    ENSURE((info.key_alg == RQ_X509_KEY_EC) == (info.curve != RQ_X509_CURVE_NONE));
    ENSURE(info.key_alg == RQ_X509_KEY_RSA || info.rsa_bits == 0);
    ENSURE(info.has_basic_constraints || (!info.ca && info.path_len == -1));
    const char *name = rq_x509_key_alg_name(&info);
    ENSURE(name[0] != '\0' && strlen(name) < sizeof info.key_alg_text);
    ENSURE(rq_x509_same_key_alg(&info, &info));
    rq_x509_info_free(&info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse(data, size);

    /* The same bytes as a PEM bundle (libFuzzer's buffer is exactly size bytes, no NUL). */
    const char *pem = (const char *)data;
    size_t off = 0, der_len, prev = 0;
    uint8_t *der;
    const char *why = NULL;
    int rc;
    while ((rc = rq_pem_next_cert(pem, size, &off, &der, &der_len, &why)) != 0) {
        ENSURE(off <= size && off > prev); /* every call consumes at least a BEGIN line */
        prev = off;
        if (rc == 1) {
            ENSURE(der != NULL && der_len > 0 && der_len <= size);
            parse(der, der_len);
            free(der);
        } else {
            ENSURE(rc == -1 && der == NULL && why != NULL);
        }
        why = NULL;
    }
    ENSURE(off == size);
    return 0;
}
