/* Which TLS library the broker runs on: wolfSSL's version, whether AES runs on AES-NI, and the
 * one-time library initialisation. Independent of core/: the broker logs what these return at
 * startup. See docs/wolfssl.md for how the library is built. */
#ifndef RQ_TLS_LIB_H
#define RQ_TLS_LIB_H

#include <stdbool.h>

/* Initialises wolfSSL once per process (wolfSSL_Init), first making sure wolfSSL's CPU dispatch
 * is safe on this CPU (see tls_lib.c). Call it before any other wolfSSL use, in particular before
 * the first TLS context or AES key is made. Any thread; later calls return the first call's
 * result. Returns 0, or -EIO when wolfSSL failed to initialise. */
int rq_tls_lib_init(void);

/* The version string the linked wolfSSL reports at run time, e.g. "5.5.4". Static storage. Any
 * thread, before or after rq_tls_lib_init(). */
const char *rq_tls_lib_version(void);

/* True when wolfSSL was built with AES-NI (WOLFSSL_AESNI) and the CPU has it, as wolfSSL's own
 * CPU detection sees it: then AES-GCM runs on AES-NI. False with Debian's libwolfssl (built
 * without it) and on a CPU without AES-NI, where wolfSSL uses its C code. Any thread. */
bool rq_tls_lib_aesni(void);

#endif
