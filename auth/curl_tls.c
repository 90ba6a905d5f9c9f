/* TLS settings of a libcurl transfer from memory (curl_tls.h). */
#include "auth/curl_tls.h"

CURLcode rq_curl_tls_apply(CURL *e, const struct rq_curl_tls *t)
{
    CURLcode rc = CURLE_OK;
    if (t->ca) {
        struct curl_blob ca = {t->ca, t->ca_len, CURL_BLOB_NOCOPY};
        rc = curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
        /* only this bundle: no system roots next to it */
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    if (rc == CURLE_OK && t->cert) {
        struct curl_blob cert = {t->cert, t->cert_len, CURL_BLOB_NOCOPY};
        struct curl_blob key = {t->key, t->key_len, CURL_BLOB_NOCOPY};
        rc = curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    return rc;
}
