/* TLS handshake failures by cause, from wolfSSL's error code (see metrics.h). */
#include "net/metrics.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

static enum rq_stat cause_of(int e)
{
    switch (e) {
    case VERSION_ERROR:
    case UNSUPPORTED_PROTO_VERSION:
        return RQ_ST_TLS_FAIL_VERSION;
    case MATCH_SUITE_ERROR:
    case SANITY_CIPHER_E:
    case BAD_KEY_SHARE_DATA:
        return RQ_ST_TLS_FAIL_CIPHER;
    case VERIFY_CERT_ERROR:
    case NO_PEER_CERT:
        return RQ_ST_TLS_FAIL_CERTIFICATE;
    case FATAL_ERROR:
        return RQ_ST_TLS_FAIL_ALERT;
    case PARSE_ERROR:
    case UNKNOWN_RECORD_TYPE:
    case BUFFER_ERROR:
    case LENGTH_ERROR:
    case OUT_OF_ORDER_E:
    case SANITY_MSG_E:
    case DUPLICATE_MSG_E:
    case DECODE_E:
    case EXT_MISSING:
    case INCOMPLETE_DATA:
        return RQ_ST_TLS_FAIL_PROTOCOL;
    default:
        break;
    }
    /* wolfCrypt's ASN.1 / certificate errors (parse, dates, signer, signature, path) */
    if (e <= ASN_PARSE_E && e >= ASN_SELF_SIGNED_E)
        return RQ_ST_TLS_FAIL_CERTIFICATE;
    return RQ_ST_TLS_FAIL_OTHER;
}

void rq_metrics_tls_failure(void *ssl, int err)
{
    WOLFSSL_ALERT_HISTORY h;
    if (ssl && wolfSSL_get_alert_history(ssl, &h) == WOLFSSL_SUCCESS &&
        h.last_rx.level == alert_fatal) {
        rq_stat_inc(RQ_ST_TLS_FAIL_ALERT); /* e.g. the client does not trust our certificate */
        return;
    }
    rq_stat_inc(cause_of(err));
}
