/* Reaching the Kubernetes API: see kube.h. The kubeconfig reader is in kube_config.c.
 *
 * What it does: picks the source (in-cluster, kubeconfig, overrides), reads the files it names
 * once (CA, client certificate and key), keeps the bearer token fresh from its file, and sets
 * up libcurl requests. What it does not do: TokenReview or any other API semantics (sat.c). */
#include "auth/kube.h"
#include "auth/curl_tls.h"

#include "auth/kube_int.h"
#include "config/config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_TOKEN 16384

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

void rq_kube_wipe_free(char *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

char *rq_kube_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > max) {
        rq_kube_wipe_free(buf, max + 1);
        errno = buf ? EFBIG : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

void rq_kube_free(struct rq_kube *k)
{
    rq_kube_wipe_free(k->token, k->token_len);
    rq_kube_wipe_free(k->key, k->key_len);
    free(k->cert);
    free(k->ca);
    free(k->server);
    free(k->token_path);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

void rq_kube_ref(struct rq_kube *k)
{
    atomic_fetch_add(&k->refs, 1);
}

void rq_kube_release(struct rq_kube *k)
{
    if (k && atomic_fetch_sub(&k->refs, 1) == 1)
        rq_kube_free(k);
}

const char *rq_kube_describe(const struct rq_kube *k)
{
    return k->desc;
}

const char *rq_kube_server(const struct rq_kube *k)
{
    return k->server;
}

/* Trailing blanks and newlines are not part of a token (files usually end with one). */
static size_t trim_len(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

/* Loads the token file when it changed since the last look. Called with mu held. */
static int reload_token(struct rq_kube *k)
{
    struct stat st;
    if (stat(k->token_path, &st) != 0)
        return k->token ? 0 : -1; /* keep the last good token while the file is replaced */
    if (k->token && st.st_ino == k->tok_ino && st.st_size == k->tok_size &&
        st.st_mtim.tv_sec == k->tok_mtime.tv_sec && st.st_mtim.tv_nsec == k->tok_mtime.tv_nsec)
        return 0;
    size_t len = 0;
    char *t = rq_kube_read_file(k->token_path, MAX_TOKEN, &len);
    if (!t)
        return k->token ? 0 : -1;
    size_t tl = trim_len(t, len);
    if (tl == 0 || memchr(t, '\n', tl) || memchr(t, '\r', tl)) {
        rq_kube_wipe_free(t, len);
        return k->token ? 0 : -1;
    }
    t[tl] = '\0';
    rq_kube_wipe_free(k->token, k->token_len);
    k->token = t;
    k->token_len = len;
    k->tok_ino = st.st_ino;
    k->tok_size = st.st_size;
    k->tok_mtime = st.st_mtim;
    return 0;
}

/* "Authorization: Bearer <token>" into a fresh buffer (wiped by the caller), or NULL when there
 * is no token. *bad: a token file that cannot be read. */
static char *bearer_line(struct rq_kube *k, bool *bad)
{
    *bad = false;
    pthread_mutex_lock(&k->mu);
    if (k->token_path) {
        int64_t now = mono_s();
        if (!k->token || now != k->tok_checked) {
            k->tok_checked = now;
            if (reload_token(k) != 0)
                *bad = true;
        }
    }
    char *line = NULL;
    if (k->token && !*bad) {
        size_t n = strlen(k->token) + 32;
        if ((line = malloc(n)))
            snprintf(line, n, "Authorization: Bearer %s", k->token);
    }
    pthread_mutex_unlock(&k->mu);
    return line;
}

void rq_kube_headers_free(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p; p = p->next)
        if (p->data)
            explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(h);
}

static struct curl_slist *headers_for(struct rq_kube *k, const char **why)
{
    bool bad;
    char *auth = bearer_line(k, &bad);
    if (bad) {
        *why = "the Kubernetes API token file cannot be read";
        return NULL;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *t = h ? curl_slist_append(h, "Content-Type: application/json") : NULL;
    t = t ? curl_slist_append(t, "Expect:") : NULL;
    if (t && auth)
        t = curl_slist_append(t, auth);
    if (auth)
        rq_kube_wipe_free(auth, strlen(auth));
    if (!t) {
        rq_kube_headers_free(h);
        *why = "out of memory";
        return NULL;
    }
    return h;
}

static CURLcode set_tls(const struct rq_kube *k, CURL *e)
{
    struct rq_curl_tls t = {.ca = k->ca, .ca_len = k->ca_len, .cert = k->cert,
                            .cert_len = k->cert_len, .key = k->key, .key_len = k->key_len};
    return rq_curl_tls_apply(e, &t);
}

int rq_kube_request(struct rq_kube *k, CURL *e, const char *path, struct curl_slist **headers,
                    char *why, size_t whylen)
{
    const char *w = NULL;
    *headers = NULL;
    size_t n = strlen(k->server) + strlen(path) + 1;
    char *url = malloc(n);
    struct curl_slist *h = url ? headers_for(k, &w) : NULL;
    if (!h) {
        free(url);
        snprintf(why, whylen, "%s", w ? w : "out of memory");
        return -1;
    }
    snprintf(url, n, "%s%s", k->server, path);
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, url); /* libcurl copies it */
    free(url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (rc == CURLE_OK)
        rc = set_tls(k, e);
    if (rc != CURLE_OK) {
        rq_kube_headers_free(h);
        snprintf(why, whylen, "libcurl refused an option (%s)", curl_easy_strerror(rc));
        return -1;
    }
    *headers = h;
    return 0;
}

/* ---- choosing the source ------------------------------------------------------------------ */

struct rq_kube *rq_kube_alloc(void)
{
    struct rq_kube *k = calloc(1, sizeof *k);
    if (k) {
        atomic_init(&k->refs, 1);
        pthread_mutex_init(&k->mu, NULL);
    }
    return k;
}

/* Replaces *dst (len *dlen) with the file's content. */
int rq_kube_load_pem(const char *path, char **dst, size_t *dlen, bool secret, char *err,
                     size_t errlen)
{
    size_t len = 0;
    char *p = rq_kube_read_file(path, 1u << 20, &len);
    if (!p) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (secret)
        rq_kube_wipe_free(*dst, *dlen);
    else
        free(*dst);
    *dst = p;
    *dlen = len;
    return 0;
}

/* In a Pod: token file + both environment variables. 1 = used, 0 = not in a Pod, -1 error. */
static int in_cluster(struct rq_kube *k, const char *dir, char *err, size_t errlen)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    char path[300];
    snprintf(path, sizeof path, "%s/token", dir);
    if (!host || !*host || !port || !*port || access(path, R_OK) != 0)
        return 0;
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    size_t n = strlen(host) + strlen(port) + 16;
    if (!(k->server = malloc(n)) || !(k->token_path = strdup(path))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(k->server, n, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    if (access(path, R_OK) == 0 && rq_kube_load_pem(path, &k->ca, &k->ca_len, false, err, errlen))
        return -1;
    snprintf(k->desc, sizeof k->desc, "in-cluster (%s, token %s/token%s)", k->server, dir,
             k->ca ? ", ca.crt beside it" : ", no ca.crt: the system's roots");
    return 1;
}

/* spec.ringmq.kubernetes keys on top of the source. */
static int apply_overrides(struct rq_kube *k, const struct rq_kube_cfg *ov, char *err,
                           size_t errlen)
{
    if (ov->server[0]) {
        free(k->server);
        if (!(k->server = strdup(ov->server)))
            goto oom;
    }
    if (ov->ca_file[0] && rq_kube_load_pem(ov->ca_file, &k->ca, &k->ca_len, false, err, errlen))
        return -1;
    if (ov->client_cert[0] &&
        rq_kube_load_pem(ov->client_cert, &k->cert, &k->cert_len, false, err, errlen))
        return -1;
    if (ov->client_key[0] &&
        rq_kube_load_pem(ov->client_key, &k->key, &k->key_len, true, err, errlen))
        return -1;
    if (ov->token_file[0]) {
        free(k->token_path);
        rq_kube_wipe_free(k->token, k->token_len);
        k->token = NULL;
        k->token_len = 0;
        if (!(k->token_path = strdup(ov->token_file)))
            goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Final checks: a server over https, key with certificate, a readable token file. */
static int finish(struct rq_kube *k, const char *looked, char *err, size_t errlen)
{
    if (!k->server) {
        snprintf(err, errlen,
                 "ServiceAccountToken needs the Kubernetes API and none was found (%s)", looked);
        return -1;
    }
    if (strncmp(k->server, "https://", 8) != 0) {
        snprintf(err, errlen, "Kubernetes API server '%s' is not an https:// URL", k->server);
        return -1;
    }
    size_t sl = strlen(k->server);
    while (sl > 8 && k->server[sl - 1] == '/')
        k->server[--sl] = '\0';
    if (!k->cert != !k->key) {
        snprintf(err, errlen, "Kubernetes API client certificate and key must come together");
        return -1;
    }
    if (k->token_path) {
        pthread_mutex_lock(&k->mu);
        int rc = reload_token(k);
        pthread_mutex_unlock(&k->mu);
        if (rc != 0) {
            snprintf(err, errlen, "Kubernetes API token file %s cannot be read or is empty",
                     k->token_path);
            return -1;
        }
    }
    return 0;
}

struct rq_kube *rq_kube_resolve(const struct rq_kube_cfg *ov, char *err, size_t errlen)
{
    struct rq_kube *k = rq_kube_alloc();
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *dir = ov->in_cluster_dir[0] ? ov->in_cluster_dir : SA_DIR;
    char looked[600] = "";
    int rc = in_cluster(k, dir, err, errlen);
    if (rc == 0) {
        rc = rq_kube_from_kubeconfig(k, ov, looked, sizeof looked, err, errlen);
        if (rc == 0 && ov->server[0])
            snprintf(k->desc, sizeof k->desc, "spec.ringmq.kubernetes (%s)", ov->server);
        if (rc == 0)
            snprintf(looked + strlen(looked), sizeof looked - strlen(looked),
                     "; no %s/token with KUBERNETES_SERVICE_HOST/PORT; no "
                     "spec.ringmq.kubernetes.server",
                     dir);
    } else {
        snprintf(looked, sizeof looked, "in-cluster");
    }
    if (rc < 0 || apply_overrides(k, ov, err, errlen) != 0 || finish(k, looked, err, errlen)) {
        rq_kube_free(k);
        return NULL;
    }
    if (ov->server[0] || ov->ca_file[0] || ov->token_file[0] || ov->client_cert[0]) {
        size_t dl = strlen(k->desc);
        snprintf(k->desc + dl, sizeof k->desc - dl, " with spec.ringmq.kubernetes overrides");
    }
    return k;
}
