/* TLS settings of one libcurl transfer from PEM held in memory (never temporary files): the
 * auth servers' and the Kubernetes API's requests (auth/custom.c, auth/kube.c) share it.
 *
 * Threads: any; the buffers are borrowed (CURL_BLOB_NOCOPY) and must outlive the transfer. */
#ifndef RQ_CURL_TLS_H
#define RQ_CURL_TLS_H

#include <curl/curl.h>
#include <stddef.h>

/* The PEM material of a TLS client. ca NULL: the system's roots; otherwise only this bundle.
 * cert NULL: no client certificate (key is then ignored). */
struct rq_curl_tls {
    char *ca;
    size_t ca_len;
    char *cert, *key;
    size_t cert_len, key_len;
};

/* Sets e's CA bundle, client certificate and key from t, and verification of the peer and its
 * host name (always on). CURLE_OK or the first failing option's code. */
CURLcode rq_curl_tls_apply(CURL *e, const struct rq_curl_tls *t);

#endif
