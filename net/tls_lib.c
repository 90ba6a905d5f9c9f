/* Library-level wolfSSL facts and setup: version, AES-NI use, once-only initialisation. It does
 * not create contexts or sessions (net/tls.c does) and does not log (the caller does).
 *
 * CPU dispatch. The AES-NI build (tools/wolfssl/build.sh: --enable-aesni --enable-intelasm
 * --enable-sp-asm) runs on any x86-64 CPU: wolfSSL reads CPUID once (wolfcrypt/src/cpuid.c,
 * cpuid_get_flags) and every assembly path is chosen at run time from those flags: AES from the
 * AES-NI bit (aes.c, Check_CPU_support_AES/haveAESNI), SHA-2, ChaCha20 and Poly1305 from
 * AVX1/AVX2, SP big-number code from BMI2+ADX, else the C code. One exception, in wolfSSL 5.5.4:
 * wc_AesGcmEncrypt/Decrypt pick their AVX1/AVX2 AES-GCM assembly from the AVX bits alone, and that
 * assembly uses AES-NI instructions. On a CPU or VM that has AVX but not AES-NI (e.g. a Sandy
 * Bridge Core i3, or a hypervisor masking AES) it would fault, or with AES-NI masked by software
 * produce wrong ciphertext. rq_tls_lib_init() therefore clears wolfSSL's AVX flags when AES-NI is
 * absent, before any key is set: AES-GCM then takes the C path, and SHA-2/ChaCha20/Poly1305 lose
 * only their AVX speed-up. tests/unit/net/test_tls_lib.c checks both cases by masking flags.
 *
 * wolfSSL's headers follow its build configuration only when <wolfssl/options.h> comes first. */
#include "net/tls_lib.h"

#include <errno.h>
#include <pthread.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/cpuid.h>

/* The two builds differ only here, at file scope. cpuid_get_flags() is wolfSSL-internal (not
 * WOLFSSL_API): reachable in the static AES-NI build, not exported by Debian's shared library,
 * which has no AES-NI code to dispatch to anyway. */
#if defined(WOLFSSL_AESNI) && defined(HAVE_CPUID_INTEL)
static bool cpu_aesni(void)
{
    return IS_INTEL_AESNI(cpuid_get_flags()) != 0;
}

static void make_dispatch_safe(void)
{
    if (!cpu_aesni())
        cpuid_clear_flag(CPUID_AVX1 | CPUID_AVX2);
}
#else
static bool cpu_aesni(void)
{
    return false;
}

static void make_dispatch_safe(void)
{
}
#endif

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;

static void init_lib(void)
{
    make_dispatch_safe();
    init_result = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -EIO;
}

int rq_tls_lib_init(void)
{
    int rc = pthread_once(&init_once, init_lib);
    return rc ? -rc : init_result;
}

const char *rq_tls_lib_version(void)
{
    return wolfSSL_lib_version();
}

bool rq_tls_lib_aesni(void)
{
    return cpu_aesni();
}
