/* PEM certificate blocks (RFC 7468) to DER: finds each "-----BEGIN CERTIFICATE-----" block and
 * decodes its base64 body strictly (RFC 4648 section 4). Pure: no I/O, no globals. */
#include "auth/pem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char **why, const char *msg)
{
    *why = msg;
    return -1;
}

static const char PEM_BEGIN[] = "-----BEGIN CERTIFICATE-----";
static const char PEM_END[] = "-----END CERTIFICATE-----";

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Strict base64 (RFC 4648 section 4) with whitespace skipped; out holds 3 * n / 4 bytes. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t *out_len, const char **why)
{
    uint32_t acc = 0;
    unsigned q = 0, pad = 0;
    bool ended = false;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
            continue;
        if (ended || (pad && ch != '='))
            return fail(why, "pem: data after base64 padding");
        int v = ch == '=' ? 0 : b64_value(ch);
        if (v < 0 || (ch == '=' && q < 2))
            return fail(why,
                        v < 0 ? "pem: invalid base64 character" : "pem: misplaced base64 padding");
        pad += ch == '=';
        acc = acc << 6 | (uint32_t)v;
        if (++q < 4)
            continue;
        out[o++] = (uint8_t)(acc >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(acc >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)acc;
        if ((pad == 1 && (acc & 0xff)) || (pad == 2 && (acc & 0xffff)))
            return fail(why, "pem: non-zero base64 pad bits");
        ended = pad > 0;
        acc = 0;
        q = 0;
    }
    if (q != 0 || o == 0)
        return fail(why, o == 0 && q == 0 ? "pem: empty certificate" : "pem: truncated base64");
    *out_len = o;
    return 0;
}

int rq_pem_next_cert(const char *pem, size_t len, size_t *off, uint8_t **der, size_t *der_len,
                     const char **why)
{
    const size_t bl = sizeof PEM_BEGIN - 1, el = sizeof PEM_END - 1;
    *der = NULL;
    *der_len = 0;
    if (*off >= len)
        return 0;
    const char *b = memmem(pem + *off, len - *off, PEM_BEGIN, bl);
    if (!b) {
        *off = len;
        return 0;
    }
    size_t body = (size_t)(b - pem) + bl;
    const char *e = memmem(pem + body, len - body, PEM_END, el);
    if (!e) {
        *off = len;
        *why = "pem: BEGIN CERTIFICATE without END";
        return -1;
    }
    size_t n = (size_t)(e - pem) - body;
    *off = (size_t)(e - pem) + el;
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return fail(why, "pem: out of memory");
    if (b64_decode(pem + body, n, buf, der_len, why)) {
        free(buf);
        *der_len = 0;
        return -1;
    }
    *der = buf;
    return 1;
}
