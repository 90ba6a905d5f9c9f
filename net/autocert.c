/* The certificate issuer behind BrokerListener `tls.mode: Automatic` (there is no cert-manager
 * here, so the broker issues for itself): a local CA per key family and one server certificate
 * per id, kept in a data directory across restarts and reissued before expiry. See autocert.h
 * for the files and docs/automatic-tls.md for the operator's view.
 *
 * It does not log, schedule renewals or build TLS contexts: it returns the PEMs and the time to
 * call again (renew_at), and the caller (net/ports.c) logs, schedules and loads them. Nor does
 * it encode certificates or handle keys itself: net/certgen.c does (and says why the DER is
 * written by hand); this file holds the policy: what to issue, when, and which files. */
#include "net/autocert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/settings.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "net/certgen.h"
#include "net/tls_lib.h"

#define BACKDATE_S 300                 /* notBefore = now - 5 min: tolerate clock skew */
#define CA_LIFETIME_S (3653LL * 86400) /* 10 years */
#define MAX_FILE (1 << 20)             /* certificates and keys are a few KiB */
#define MAX_DIR 400                    /* data_dir bytes */
#define PATH_LEN 640                   /* data_dir / id (<= 128) . suffix */

static const struct rq_alg leaf_algs[] = {
    [RQ_KEY_EC256] = {"EC P-256", RQ_FAM_EC, ECC_SECP256R1},
    [RQ_KEY_EC384] = {"EC P-384", RQ_FAM_EC, ECC_SECP384R1},
    [RQ_KEY_EC521] = {"EC P-521", RQ_FAM_EC, ECC_SECP521R1},
    [RQ_KEY_ED25519] = {"Ed25519", RQ_FAM_ED25519, 0},
    [RQ_KEY_RSA2048] = {"RSA 2048", RQ_FAM_RSA, 2048},
    [RQ_KEY_RSA4096] = {"RSA 4096", RQ_FAM_RSA, 4096},
    [RQ_KEY_RSA8192] = {"RSA 8192", RQ_FAM_RSA, 8192},
};

/* One CA per family, all at the 128-bit security level and signing with SHA-256 (or Ed25519):
 * one CA serves every key size of its family, so a chain never mixes algorithms. */
static const struct rq_alg ca_algs[RQ_N_FAM] = {
    [RQ_FAM_EC] = {"EC P-256", RQ_FAM_EC, ECC_SECP256R1},
    [RQ_FAM_RSA] = {"RSA 3072", RQ_FAM_RSA, 3072},
    [RQ_FAM_ED25519] = {"Ed25519", RQ_FAM_ED25519, 0},
};
static const char *const fam_file[RQ_N_FAM] = {"ec", "rsa", "ed25519"};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- SANs from the spec --------------------------------------------------------------------- */

static void sans_free(struct rq_sans *s)
{
    free(s->dns);
    free(s->ip);
    memset(s, 0, sizeof *s);
}

/* A DNS SAN is an IA5String (RFC 5280 4.2.1.6): letters, digits, '-', '.', and a leading "*."
 * wildcard label; at most 253 bytes. */
static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || (c == '*' && i == 0 && s[1] == '.');
        if (!ok)
            return false;
    }
    return true;
}

/* The spec's SANs, validated and with duplicates dropped (DNS names compare without case). */
static int sans_from_spec(const struct rq_tls_auto *spec, struct rq_sans *s, char *err,
                          size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->dns = calloc(spec->n_dns + 1, sizeof *s->dns);
    s->ip = calloc(spec->n_ip + 1, sizeof *s->ip);
    if (!s->dns || !s->ip) {
        sans_free(s);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < spec->n_dns; i++) {
        const char *n = spec->dns[i];
        if (!n || !dns_name_ok(n)) {
            sans_free(s);
            return fail(err, errlen, -EINVAL, "san.dns '%.253s' is not a DNS name", n ? n : "");
        }
        size_t j = 0;
        while (j < s->n_dns && strcasecmp(s->dns[j], n) != 0)
            j++;
        if (j == s->n_dns)
            s->dns[s->n_dns++] = n;
    }
    for (size_t i = 0; i < spec->n_ip; i++) {
        struct rq_san_ip a = {.len = 4};
        const char *n = spec->ip[i] ? spec->ip[i] : "";
        if (inet_pton(AF_INET, n, a.b) != 1) {
            a.len = 16;
            if (inet_pton(AF_INET6, n, a.b) != 1) {
                sans_free(s);
                return fail(err, errlen, -EINVAL, "san.ip '%.64s' is not an IP address", n);
            }
        }
        size_t j = 0;
        while (j < s->n_ip && (s->ip[j].len != a.len || memcmp(s->ip[j].b, a.b, a.len) != 0))
            j++;
        if (j == s->n_ip)
            s->ip[s->n_ip++] = a;
    }
    return 0;
}

/* The subject CN: the first DNS SAN that fits X.520's 64-character bound, else "localhost".
 * Clients match SANs, not the CN (RFC 6125); the CN is for people reading the certificate. */
static const char *sans_cn(const struct rq_sans *s)
{
    for (size_t i = 0; i < s->n_dns; i++)
        if (strlen(s->dns[i]) <= 64)
            return s->dns[i];
    return "localhost";
}

/* ---- files --------------------------------------------------------------------------------- */

/* Reads a whole (small) file into a NUL-terminated buffer. Returns 0, -ENOENT, or -errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE)
        rc = -EFBIG;
    else if (!(*buf = malloc((size_t)st.st_size + 1)))
        rc = -ENOMEM;
    while (rc == 0 && *len < (size_t)st.st_size) {
        ssize_t n = read(fd, *buf + *len, (size_t)st.st_size - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else
            *len += (size_t)n;
    }
    close(fd);
    if (rc != 0) {
        rq_certgen_free_secret(*buf, *len);
        *buf = NULL;
        *len = 0;
        return rc;
    }
    (*buf)[*len] = '\0';
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Replaces path atomically: a temporary file in the same directory with the final mode, data,
 * fsync, rename over path, fsync of the directory. A crash leaves the old or the new file. */
static int write_atomic(const char *dir, const char *path, const void *data, size_t len,
                        mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp); /* left over from a crash; we hold the directory lock */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode), rc = 0;
    if (fd < 0)
        return fail(err, errlen, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    if (fchmod(fd, mode) != 0) /* the umask must not widen or narrow what we promise */
        rc = -errno;
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return fail(err, errlen, rc, "%s: cannot write: %s", path, strerror(-rc));
    }
    if ((rc = fsync_dir(dir)) != 0)
        return fail(err, errlen, rc, "%s: cannot sync: %s", dir, strerror(-rc));
    return 0;
}

/* mkdir -p: missing components are created 0700; existing ones are left as they are. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char p[PATH_LEN];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p)
        return fail(err, errlen, -EINVAL, "data directory '%.200s': empty or too long", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return fail(err, errlen, -errno, "%s: cannot create directory: %s", p, strerror(errno));
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(err, errlen, -ENOTDIR, "%s: not a directory", dir);
    return 0;
}

/* ---- the CA -------------------------------------------------------------------------------- */

struct ca {
    struct rq_key *key;
    struct rq_cert cert;
    char *pem; /* normalised from cert.der */
    size_t pem_len;
    uint8_t skid[RQ_KEYID_LEN];
};

static void ca_free(struct ca *ca)
{
    rq_certgen_key_free(ca->key);
    rq_certgen_cert_free(&ca->cert);
    free(ca->pem);
    memset(ca, 0, sizeof *ca);
}

struct run {
    const char *dir;
    const struct rq_tls_auto *spec;
    int64_t now;
    WC_RNG rng;
    char *err;
    size_t errlen;
};

static int ca_error(struct run *r, const char *path, const char *what)
{
    return fail(r->err, r->errlen, -EIO,
                "%s: %s; the CA is never replaced automatically: to start over, remove "
                "%s/ca-*.crt and %s/ca-*.key (see docs/automatic-tls.md), then give clients the "
                "new %s/ca.crt",
                path, what, r->dir, r->dir, r->dir);
}

/* Issues the self-signed CA certificate for ca->key and writes it. */
static int ca_issue(struct run *r, struct ca *ca, const char *crt_path)
{
    struct rq_tbs t = {
        .issuer_cn = "ringmq local CA",
        .subject_cn = "ringmq local CA",
        .not_before = r->now - BACKDATE_S,
        .not_after = r->now + CA_LIFETIME_S,
        .skid = ca->skid,
        .key_usage = RQ_KU_KEY_CERT_SIGN | RQ_KU_CRL_SIGN,
    };
    uint8_t *der;
    size_t der_len, pem_len;
    int rc = wc_RNG_GenerateBlock(&r->rng, t.serial, sizeof t.serial);
    t.serial[0] = (uint8_t)((t.serial[0] & 0x7f) | 0x40); /* positive, 16 bytes, minimal DER */
    if (rc == 0)
        rc = rq_certgen_cert_make(&t, ca->key, ca->key, &r->rng, &der, &der_len);
    if (rc != 0)
        return fail(r->err, r->errlen, -EIO, "%s: cannot issue the CA certificate (wolfCrypt: %s)",
                    crt_path, wc_GetErrorString(rc));
    char *pem = rq_certgen_der_to_pem(der, der_len, &pem_len);
    free(der);
    if (!pem)
        return fail(r->err, r->errlen, -ENOMEM, "%s: cannot encode the CA certificate", crt_path);
    rc = write_atomic(r->dir, crt_path, pem, pem_len, 0644, r->err, r->errlen);
    free(pem);
    return rc;
}

/* Loads the CA of family fam, creating it when neither of its files exists. */
static int ca_load(struct run *r, int fam, struct ca *ca)
{
    char crt_path[PATH_LEN], key_path[PATH_LEN], *crt = NULL, *keypem = NULL;
    size_t crt_len, key_len;
    const char *why;
    snprintf(crt_path, sizeof crt_path, "%s/ca-%s.crt", r->dir, fam_file[fam]);
    snprintf(key_path, sizeof key_path, "%s/ca-%s.key", r->dir, fam_file[fam]);
    int crc = read_file(crt_path, &crt, &crt_len), krc = read_file(key_path, &keypem, &key_len);
    int rc = 0;
    if (krc != 0 && krc != -ENOENT)
        rc = ca_error(r, key_path, strerror(-krc));
    else if (crc != 0 && crc != -ENOENT)
        rc = ca_error(r, crt_path, strerror(-crc));
    else if (krc == -ENOENT && crc == 0)
        rc = ca_error(r, key_path, "missing, but the CA certificate next to it exists");
    else if (krc == -ENOENT) { /* a new CA */
        char *pem = NULL;
        size_t pem_len = 0;
        rc = rq_certgen_key_generate(&ca_algs[fam], &r->rng, &ca->key, &why);
        if (rc != 0)
            rc = fail(r->err, r->errlen, rc, "%s: cannot generate a %s key: %s", key_path,
                      ca_algs[fam].name, why);
        else if ((rc = rq_certgen_key_to_pem(ca->key, &pem, &pem_len)) != 0)
            rc = fail(r->err, r->errlen, -EIO, "%s: cannot encode the key (wolfCrypt: %s)",
                      key_path, wc_GetErrorString(rc));
        else
            rc = write_atomic(r->dir, key_path, pem, pem_len, 0600, r->err, r->errlen);
        rq_certgen_free_secret(pem, pem_len);
    } else if (rq_certgen_key_from_pem(keypem, key_len, fam, &r->rng, &ca->key, &why) != 0)
        rc = ca_error(r, key_path, why);
    rq_certgen_free_secret(keypem, key_len);
    if (rc == 0 && rq_certgen_key_id(ca->key, ca->skid) != 0)
        rc = ca_error(r, key_path, "cannot compute the key identifier");
    /* A key without a certificate is a CA no client can trust yet (a crash between writing the
     * two files): issuing its certificate now is safe. */
    if (rc == 0 && crc == -ENOENT && (rc = ca_issue(r, ca, crt_path)) == 0)
        rc = read_file(crt_path, &crt, &crt_len) == 0 ? 0 : ca_error(r, crt_path, "unreadable");
    if (rc == 0 && rq_certgen_cert_from_pem(crt, crt_len, &ca->cert, &why) != 0)
        rc = ca_error(r, crt_path, why);
    free(crt);
    if (rc != 0)
        return rc;
    const DecodedCert *dc = ca->cert.dc;
    if (!dc->isCA || memcmp(dc->extSubjKeyId, ca->skid, RQ_KEYID_LEN) != 0 ||
        !rq_certgen_cert_signed_by(&ca->cert, ca->key))
        return ca_error(r, crt_path, "not the CA certificate of the key next to it");
    if (r->now < ca->cert.not_before ||
        ca->cert.not_after - r->now <= (int64_t)r->spec->renew_before_s)
        return ca_error(r, crt_path,
                        "not valid now, or expiring before a server certificate "
                        "could be renewed");
    if (!(ca->pem = rq_certgen_der_to_pem(ca->cert.der, ca->cert.der_len, &ca->pem_len)))
        return fail(r->err, r->errlen, -ENOMEM, "%s: cannot encode the CA certificate", crt_path);
    return 0;
}

/* ca.crt: every family's CA certificate, the one file clients need. Rewritten when it differs. */
static int ca_bundle(struct run *r, char *path, size_t pathlen)
{
    struct rq_der all = {0};
    char p[PATH_LEN], *buf;
    size_t len;
    for (int f = 0; f < RQ_N_FAM; f++) {
        snprintf(p, sizeof p, "%s/ca-%s.crt", r->dir, fam_file[f]);
        if (read_file(p, &buf, &len) == 0) {
            rq_certgen_der_put(&all, buf, len);
            free(buf);
        }
    }
    snprintf(path, pathlen, "%s/ca.crt", r->dir);
    int rc = all.oom ? fail(r->err, r->errlen, -ENOMEM, "out of memory") : 0;
    bool same = rc == 0 && read_file(path, &buf, &len) == 0 && len == all.len &&
                memcmp(buf, all.p, len) == 0;
    if (rc == 0)
        free(buf);
    if (rc == 0 && !same)
        rc = write_atomic(r->dir, path, all.p, all.len, 0644, r->err, r->errlen);
    free(all.p);
    return rc;
}

/* ---- the server certificate --------------------------------------------------------------- */

/* Why the certificate in crt cannot be kept, or NULL when it can. */
static const char *leaf_stale(struct run *r, const struct ca *ca, struct rq_key *key,
                              const struct rq_alg *alg, const struct rq_sans *sans, const char *crt,
                              size_t crt_len, struct rq_cert *c)
{
    const char *why;
    uint8_t id[RQ_KEYID_LEN];
    if (rq_certgen_cert_from_pem(crt, crt_len, c, &why) != 0)
        return "the certificate file is unreadable";
    const DecodedCert *dc = c->dc;
    if (!dc->extAuthKeyIdSet || memcmp(dc->extAuthKeyId, ca->skid, RQ_KEYID_LEN) != 0 ||
        memcmp(dc->issuerHash, ca->cert.dc->subjectHash, sizeof dc->issuerHash) != 0 ||
        !rq_certgen_cert_signed_by(c, ca->key))
        return "not signed by the current CA";
    if (!key || key->param != alg->param)
        return "the key is missing, unreadable or of another algorithm";
    if (rq_certgen_key_id(key, id) != 0 || memcmp(dc->extSubjKeyId, id, RQ_KEYID_LEN) != 0)
        return "the key does not belong to the certificate";
    if (!rq_certgen_sans_match(sans, dc->altNames))
        return "the SANs changed";
    uint64_t lifetime = (uint64_t)(c->not_after - c->not_before);
    if (lifetime != r->spec->duration_s + BACKDATE_S && c->not_after != ca->cert.not_after)
        return "the duration changed";
    if (r->now < c->not_before)
        return "not valid yet (the clock went back)";
    if (r->now >= c->not_after - (int64_t)r->spec->renew_before_s)
        return "renewal is due";
    return NULL;
}

/* Issues a certificate for key, signed by ca; returns 0 with the leaf's DER in *c. */
static int leaf_issue(struct run *r, const struct ca *ca, struct rq_key *key,
                      const struct rq_sans *sans, const char *crt_path, struct rq_cert *c)
{
    uint8_t skid[RQ_KEYID_LEN], *der = NULL;
    size_t der_len;
    struct rq_tbs t = {
        .issuer_cn = "ringmq local CA",
        .subject_cn = sans_cn(sans),
        .not_before = r->now - BACKDATE_S,
        .skid = skid,
        .akid = ca->skid,
        .sans = sans,
        .key_usage =
            RQ_KU_DIGITAL_SIGNATURE | (key->fam == RQ_FAM_RSA ? RQ_KU_KEY_ENCIPHERMENT : 0),
    };
    /* Never past the CA's notAfter; ca_load made sure that leaves room for renewBefore. */
    uint64_t ca_left = (uint64_t)(ca->cert.not_after - r->now);
    t.not_after =
        r->spec->duration_s >= ca_left ? ca->cert.not_after : r->now + (int64_t)r->spec->duration_s;
    int rc = rq_certgen_key_id(key, skid);
    if (rc == 0)
        rc = wc_RNG_GenerateBlock(&r->rng, t.serial, sizeof t.serial);
    t.serial[0] = (uint8_t)((t.serial[0] & 0x7f) | 0x40);
    if (rc == 0)
        rc = rq_certgen_cert_make(&t, key, ca->key, &r->rng, &der, &der_len);
    if (rc != 0)
        return fail(r->err, r->errlen, -EIO, "%s: cannot issue the certificate (wolfCrypt: %s)",
                    crt_path, wc_GetErrorString(rc));
    size_t pem_len;
    char *pem = rq_certgen_der_to_pem(der, der_len, &pem_len);
    free(der);
    if (!pem)
        return fail(r->err, r->errlen, -ENOMEM, "%s: cannot encode the certificate", crt_path);
    const char *why;
    rc = rq_certgen_cert_from_pem(pem, pem_len, c, &why);
    free(pem);
    return rc == 0 ? 0
                   : fail(r->err, r->errlen, -EIO, "%s: cannot read back the new certificate",
                          crt_path);
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    if (strcmp(id, "ca") == 0)
        return false;
    for (int f = 0; f < RQ_N_FAM; f++)
        if (strncmp(id, "ca-", 3) == 0 && strcmp(id + 3, fam_file[f]) == 0)
            return false;
    return true;
}

static int check_args(const char *data_dir, const char *id, const struct rq_tls_auto *spec,
                      char *err, size_t errlen)
{
    if (!data_dir || !id || !spec)
        return fail(err, errlen, -EINVAL, "autocert: missing argument");
    if (strlen(data_dir) > MAX_DIR) /* so every path fits PATH_LEN and rq_autocert.ca_path */
        return fail(err, errlen, -ENAMETOOLONG, "data directory '%.64s...': longer than %d bytes",
                    data_dir, MAX_DIR);
    if (!id_ok(id))
        return fail(err, errlen, -EINVAL,
                    "certificate name '%.128s': use 1-128 of A-Z a-z 0-9 . _ -, not starting with "
                    "'.', and not ca or ca-ec/ca-rsa/ca-ed25519",
                    id);
    if (spec->key_algorithm < 0 ||
        (size_t)spec->key_algorithm >= sizeof leaf_algs / sizeof leaf_algs[0])
        return fail(err, errlen, -EINVAL, "privateKey.algorithm %d is unknown",
                    spec->key_algorithm);
    const struct rq_alg *a = &leaf_algs[spec->key_algorithm];
    if (a->fam == RQ_FAM_RSA && a->param > RSA_MAX_SIZE) /* wc_MakeRsaKey would refuse it */
        return fail(err, errlen, -EINVAL,
                    "privateKey.algorithm %s: this wolfSSL supports RSA keys up to %d bits "
                    "(see docs/automatic-tls.md)",
                    a->name, (int)RSA_MAX_SIZE);
    if (spec->duration_s == 0 || spec->renew_before_s >= spec->duration_s)
        return fail(err, errlen, -EINVAL,
                    "duration (%llus) must be longer than renewBefore (%llus)",
                    (unsigned long long)spec->duration_s, (unsigned long long)spec->renew_before_s);
    return 0;
}

/* Fills out from the (kept or new) leaf, its key and the CA. */
static int fill_out(struct run *r, const struct ca *ca, struct rq_key *key, const struct rq_cert *c,
                    struct rq_autocert *out)
{
    size_t leaf_len;
    char *leaf = rq_certgen_der_to_pem(c->der, c->der_len, &leaf_len);
    out->cert_pem = leaf ? malloc(leaf_len + ca->pem_len + 1) : NULL;
    int rc = out->cert_pem ? rq_certgen_key_to_pem(key, &out->key_pem, &out->key_len) : MEMORY_E;
    if (out->cert_pem) {
        memcpy(out->cert_pem, leaf, leaf_len);
        memcpy(out->cert_pem + leaf_len, ca->pem, ca->pem_len + 1);
        out->cert_len = leaf_len + ca->pem_len;
    }
    free(leaf);
    if (rc != 0)
        return fail(r->err, r->errlen, -ENOMEM, "cannot encode the certificate or key");
    out->not_after = c->not_after;
    out->renew_at = c->not_after - (int64_t)r->spec->renew_before_s;
    for (int i = 0; i < c->dc->serialSz && i < 16; i++)
        snprintf(out->serial + 2 * i, 3, "%02x", c->dc->serial[i]);
    return 0;
}

/* With the lock held: the CA, then the kept or newly issued server certificate. */
static int ensure_locked(struct run *r, const char *id, struct rq_autocert *out)
{
    const struct rq_alg *alg = &leaf_algs[r->spec->key_algorithm];
    char crt_path[PATH_LEN], key_path[PATH_LEN], *crt = NULL, *keypem = NULL, *pem = NULL;
    size_t crt_len = 0, key_len = 0, pem_len = 0;
    struct ca ca = {0};
    struct rq_sans sans;
    struct rq_cert c = {0};
    struct rq_key *key = NULL;
    const char *why;
    snprintf(crt_path, sizeof crt_path, "%s/%s.crt", r->dir, id);
    snprintf(key_path, sizeof key_path, "%s/%s.key", r->dir, id);
    int rc = sans_from_spec(r->spec, &sans, r->err, r->errlen);
    if (rc != 0)
        return rc;
    if ((rc = ca_load(r, alg->fam, &ca)) == 0)
        rc = ca_bundle(r, out->ca_path, sizeof out->ca_path);
    if (rc == 0 && read_file(key_path, &keypem, &key_len) == 0 &&
        rq_certgen_key_from_pem(keypem, key_len, alg->fam, &r->rng, &key, &why) != 0)
        key = NULL; /* unreadable or another family: replaced below */
    rq_certgen_free_secret(keypem, key_len);
    if (rc == 0 && read_file(crt_path, &crt, &crt_len) != 0)
        out->why_issued = "no certificate yet";
    else if (rc == 0)
        out->why_issued = leaf_stale(r, &ca, key, alg, &sans, crt, crt_len, &c);
    out->issued = rc == 0 && out->why_issued != NULL;
    if (out->issued) {
        rq_certgen_cert_free(&c);
        bool keep = key && key->param == alg->param && r->spec->rotation_policy == RQ_ROTATE_NEVER;
        if (!keep) { /* rotationPolicy Always, or no usable key: a new one */
            rq_certgen_key_free(key);
            rc = rq_certgen_key_generate(alg, &r->rng, &key, &why);
            if (rc != 0)
                rc = fail(r->err, r->errlen, rc, "%s: cannot generate a %s key: %s", key_path,
                          alg->name, why);
            else if ((rc = rq_certgen_key_to_pem(key, &pem, &pem_len)) != 0)
                rc = fail(r->err, r->errlen, -EIO, "%s: cannot encode the key (wolfCrypt: %s)",
                          key_path, wc_GetErrorString(rc));
            else /* the key first: a crash before the certificate only causes a reissue */
                rc = write_atomic(r->dir, key_path, pem, pem_len, 0600, r->err, r->errlen);
            rq_certgen_free_secret(pem, pem_len);
        }
        if (rc == 0)
            rc = leaf_issue(r, &ca, key, &sans, crt_path, &c);
        if (rc == 0 && (rc = fill_out(r, &ca, key, &c, out)) == 0)
            rc = write_atomic(r->dir, crt_path, out->cert_pem, out->cert_len, 0644, r->err,
                              r->errlen);
    } else if (rc == 0 && (rc = fill_out(r, &ca, key, &c, out)) == 0 &&
               (crt_len != out->cert_len || memcmp(crt, out->cert_pem, crt_len) != 0)) {
        /* Same leaf, but the CA after it in the file is not the current CA's PEM (the CA
         * certificate was re-issued for the same key): keep the file what we serve. */
        rc = write_atomic(r->dir, crt_path, out->cert_pem, out->cert_len, 0644, r->err, r->errlen);
    }
    free(crt);
    rq_certgen_cert_free(&c);
    rq_certgen_key_free(key);
    ca_free(&ca);
    sans_free(&sans);
    return rc;
}

int rq_autocert_ensure(const char *data_dir, const char *id, const struct rq_tls_auto *spec,
                       int64_t now, struct rq_autocert *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = check_args(data_dir, id, spec, err, errlen);
    if (rc == 0 && rq_tls_lib_init() != 0)
        rc = fail(err, errlen, -EIO, "wolfSSL failed to initialise");
    if (rc == 0)
        rc = make_dirs(data_dir, err, errlen);
    if (rc != 0)
        return rc;
    char lock_path[PATH_LEN];
    snprintf(lock_path, sizeof lock_path, "%s/.lock", data_dir);
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0)
        return fail(err, errlen, -errno, "%s: %s", lock_path, strerror(errno));
    while ((rc = flock(lock, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        rc = fail(err, errlen, -errno, "%s: cannot lock: %s", lock_path, strerror(errno));
        close(lock);
        return rc;
    }
    struct run r = {.dir = data_dir, .spec = spec, .now = now, .err = err, .errlen = errlen};
    if (wc_InitRng(&r.rng) != 0) {
        close(lock);
        return fail(err, errlen, -EIO, "cannot initialise wolfCrypt's random generator");
    }
    rc = ensure_locked(&r, id, out);
    wc_FreeRng(&r.rng);
    close(lock); /* releases the flock */
    if (rc != 0)
        rq_autocert_free(out);
    return rc;
}

void rq_autocert_free(struct rq_autocert *ac)
{
    if (!ac)
        return;
    free(ac->cert_pem);
    rq_certgen_free_secret(ac->key_pem, ac->key_len);
    memset(ac, 0, sizeof *ac);
}
