/* net/tls_lib: wolfSSL initialises, reports the version the build pinned (RQ_WOLFSSL_VERSION,
 * from cmake/wolfssl.cmake), says whether AES-NI is in use, and AES-128-GCM gives the right
 * answer in every CPU mode wolfSSL can dispatch to. Each CPU mode runs in a child process
 * because wolfSSL reads and caches the CPU flags once per process, at the first AES key. */
#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cpuid.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/tls_lib.h"
#include "tests/unit/check.h"

/* How the test masks CPU features: wolfSSL's own flag override, only in the AES-NI build. */
#if defined(WOLFSSL_AESNI) && defined(HAVE_CPUID_INTEL)
static const bool built_with_aesni = true;
static bool mask_cpu(word32 clear)
{
    (void)cpuid_get_flags(); /* read the real flags first, so the mask sticks */
    cpuid_clear_flag(clear);
    return true;
}
#define NO_AESNI CPUID_AESNI
#define NO_SIMD (CPUID_AESNI | CPUID_AVX1 | CPUID_AVX2 | CPUID_BMI2 | CPUID_ADX | CPUID_MOVBE)
#else
static const bool built_with_aesni = false;
static bool mask_cpu(word32 clear)
{
    (void)clear;
    return false;
}
#define NO_AESNI 0
#define NO_SIMD 0
#endif

/* The CPU's AES-NI bit seen by the compiler's runtime, independently of wolfSSL (which only
 * trusts CPUID on Intel and AMD parts). */
#if defined(__x86_64__) || defined(__i386__)
static bool cpu_has_aesni(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && (__builtin_cpu_is("intel") || __builtin_cpu_is("amd"));
}
#else
static bool cpu_has_aesni(void)
{
    return false;
}
#endif

/* Test case 4 of "The Galois/Counter Mode of Operation" (McGrew, Viega), AES-128. */
static const uint8_t key[16] = {0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c,
                                0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08};
static const uint8_t iv[12] = {0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce,
                               0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88};
static const uint8_t aad[20] = {0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed,
                                0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xab, 0xad, 0xda, 0xd2};
static const uint8_t plain[60] = {
    0xd9, 0x31, 0x32, 0x25, 0xf8, 0x84, 0x06, 0xe5, 0xa5, 0x59, 0x09, 0xc5, 0xaf, 0xf5, 0x26,
    0x9a, 0x86, 0xa7, 0xa9, 0x53, 0x15, 0x34, 0xf7, 0xda, 0x2e, 0x4c, 0x30, 0x3d, 0x8a, 0x31,
    0x8a, 0x72, 0x1c, 0x3c, 0x0c, 0x95, 0x95, 0x68, 0x09, 0x53, 0x2f, 0xcf, 0x0e, 0x24, 0x49,
    0xa6, 0xb5, 0x25, 0xb1, 0x6a, 0xed, 0xf5, 0xaa, 0x0d, 0xe6, 0x57, 0xba, 0x63, 0x7b, 0x39};
static const uint8_t cipher[60] = {
    0x42, 0x83, 0x1e, 0xc2, 0x21, 0x77, 0x74, 0x24, 0x4b, 0x72, 0x21, 0xb7, 0x84, 0xd0, 0xd4,
    0x9c, 0xe3, 0xaa, 0x21, 0x2f, 0x2c, 0x02, 0xa4, 0xe0, 0x35, 0xc1, 0x7e, 0x23, 0x29, 0xac,
    0xa1, 0x2e, 0x21, 0xd5, 0x14, 0xb2, 0x54, 0x66, 0x93, 0x1c, 0x7d, 0x8f, 0x6a, 0x5a, 0xac,
    0x84, 0xaa, 0x05, 0x1b, 0xa3, 0x0b, 0x39, 0x6a, 0x0a, 0xac, 0x97, 0x3d, 0x58, 0xe0, 0x91};
static const uint8_t tag[16] = {0x5b, 0xc9, 0x4f, 0xbc, 0x32, 0x21, 0xa5, 0xdb,
                                0x94, 0xfa, 0xe9, 0x5a, 0xe7, 0x12, 0x1a, 0x47};

/* AES-128-GCM encrypt and decrypt of the test vector; true when both match. */
static bool gcm_known_answer(void)
{
    Aes aes;
    uint8_t out[sizeof plain], back[sizeof plain], got_tag[sizeof tag];
    bool ok = wc_AesInit(&aes, NULL, INVALID_DEVID) == 0 && wc_AesGcmSetKey(&aes, key, 16) == 0 &&
              wc_AesGcmEncrypt(&aes, out, plain, sizeof plain, iv, sizeof iv, got_tag,
                               sizeof got_tag, aad, sizeof aad) == 0 &&
              memcmp(out, cipher, sizeof out) == 0 && memcmp(got_tag, tag, sizeof tag) == 0 &&
              wc_AesGcmDecrypt(&aes, back, cipher, sizeof cipher, iv, sizeof iv, tag, sizeof tag,
                               aad, sizeof aad) == 0 &&
              memcmp(back, plain, sizeof back) == 0;
    wc_AesFree(&aes);
    return ok;
}

/* Child: mask CPU features (0 = none), init, then check AES-NI reporting and AES-GCM.
 * Exit status: 0 pass, 1 fail, 77 the build cannot mask (Debian's library). */
static int cpu_mode_child(word32 clear, bool expect_aesni)
{
    if (clear && !mask_cpu(clear))
        return 77;
    if (rq_tls_lib_init() != 0)
        return 1;
    if (rq_tls_lib_aesni() != expect_aesni) {
        fprintf(stderr, "  aesni reported %d, expected %d\n", rq_tls_lib_aesni(), expect_aesni);
        return 1;
    }
    return gcm_known_answer() ? 0 : 1;
}

/* Runs cpu_mode_child in a fresh process; returns its exit status (or 1 if it crashed). */
static int in_child(const char *name, word32 clear, bool expect_aesni)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(cpu_mode_child(clear, expect_aesni));
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
        fprintf(stderr, "%s: child failed to run or crashed\n", name);
        return 1;
    }
    if (WEXITSTATUS(st) == 77)
        fprintf(stderr, "%s: skipped (this wolfSSL build has no CPU dispatch to mask)\n", name);
    else if (WEXITSTATUS(st) != 0)
        fprintf(stderr, "%s: failed (AES-NI report or AES-128-GCM known answer)\n", name);
    return WEXITSTATUS(st);
}

int main(void)
{
    /* The parent must not call rq_tls_lib_init() or set an AES key before the children run:
     * each child inherits its state and then masks CPU features of its own. */
    bool expect_aesni = built_with_aesni && cpu_has_aesni();
    CHECK_EQ(in_child("native CPU", 0, expect_aesni), 0);
    /* A CPU with AVX but without AES-NI, and one without any SIMD extension. */
    int st = in_child("no AES-NI", NO_AESNI, false);
    CHECK(st == 0 || st == 77);
    st = in_child("no SIMD", NO_SIMD, false);
    CHECK(st == 0 || st == 77);

    CHECK_EQ(rq_tls_lib_init(), 0);
    CHECK_EQ(rq_tls_lib_init(), 0); /* once only; a second call is harmless */
    CHECK_STR(rq_tls_lib_version(), RQ_WOLFSSL_VERSION);
    CHECK_STR(rq_tls_lib_version(), LIBWOLFSSL_VERSION_STRING); /* headers match the library */
    CHECK_EQ(rq_tls_lib_aesni(), expect_aesni);
    CHECK(gcm_known_answer());
    fprintf(stderr, "wolfSSL %s, AES-NI %s\n", rq_tls_lib_version(),
            rq_tls_lib_aesni() ? "in use" : "not in use");
    return check_exit("test_tls_lib");
}
