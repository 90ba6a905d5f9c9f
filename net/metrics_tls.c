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

/* Whether the records of rx (one read, walked from its start) hold a fatal alert sent in the
 * clear. A TLS 1.3 client that rejects our certificate (OpenSSL) sends its alert before it
 * switches to the handshake keys; wolfSSL, which already expects encrypted records, reports a
 * parse error and keeps no alert history. */
static bool plaintext_fatal_alert(const uint8_t *rx, size_t len)
{
    while (len >= 5 && rx[1] == 3) { /* a record header: type, version 3.x, length */
        size_t n = (size_t)rx[3] << 8 | rx[4];
        if (rx[0] == 21 /* alert */ && n == 2 && len >= 7)
            return rx[5] == 2; /* level fatal */
        if (len - 5 < n)
            return false;
        rx += 5 + n;
        len -= 5 + n;
    }
    return false;
}

void rq_metrics_tls_failure(void *ssl, int err, const uint8_t *rx, size_t rx_len)
{
    WOLFSSL_ALERT_HISTORY h;
    if (ssl && wolfSSL_get_alert_history(ssl, &h) == WOLFSSL_SUCCESS &&
        h.last_rx.level == alert_fatal) {
        rq_stat_inc(RQ_ST_TLS_FAIL_ALERT); /* e.g. the client does not trust our certificate */
        return;
    }
    enum rq_stat cause = cause_of(err);
    if (cause == RQ_ST_TLS_FAIL_PROTOCOL && plaintext_fatal_alert(rx, rx_len))
        cause = RQ_ST_TLS_FAIL_ALERT;
    rq_stat_inc(cause);
}
