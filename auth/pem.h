/* PEM certificate blocks to DER, for CA bundles and chain files. Pure: text in, DER out; any
 * thread may call it. */
#ifndef RQ_PEM_H
#define RQ_PEM_H

#include <stddef.h>
#include <stdint.h>

/* Finds the next "-----BEGIN CERTIFICATE-----" block of pem[0..len) at or after *off and
 * decodes its base64 body (strict: alphabet A-Z a-z 0-9 + /, '=' padding only at the end, zero
 * pad bits, whitespace anywhere; no PEM headers). Anything between blocks, including other
 * PEM blocks such as keys, is skipped.
 * Returns 1 with *der (malloc'd, the caller frees it) and *der_len set; 0 when there is no
 * further certificate; -1 with *why set for a broken block or out of memory. In all cases *off
 * moves past what was consumed (after -1: past the broken block's END line, or to len when
 * there is none), so a caller may skip a bad block and go on. */
int rq_pem_next_cert(const char *pem, size_t len, size_t *off, uint8_t **der, size_t *der_len,
                     const char **why);

#endif
