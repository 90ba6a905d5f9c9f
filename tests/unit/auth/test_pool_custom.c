/* The auth service pool and the Custom method against the real reference server
 * (tools/custom-auth-server.py) over TLS, with certificates made at test time by openssl.
 * Skips (exit 77) only when /usr/bin/python3 or openssl is missing. */
#include "auth/custom.h"
#include "auth/pool.h"

#include "../check.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RQ_SRC_DIR
#define RQ_SRC_DIR "."
#endif
#define WAIT_MS 30000
#define MAX_TAGS 1024

static char dir[64];
static char *ca_pem, *cli_crt, *cli_key, *cca_pem;
static size_t ca_len, cli_crt_len, cli_key_len, cca_len;

struct server {
    pid_t pid;
    int port;
    const char *name;
};
static struct server plain = {.name = "plain"}, mtls = {.name = "mtls"};

/* ---- results posted by the pool --------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct rq_authn_outcome *results[MAX_TAGS];
static unsigned n_done;

static int on_done(void *ctx, uint64_t tag, struct rq_authn_outcome *o, bool last)
{
    pthread_mutex_lock(&mu);
    if (tag < MAX_TAGS && !results[tag])
        results[tag] = o;
    else
        rq_auth_outcome_release(o); /* a second completion: counted below as a failure */
    if (tag >= MAX_TAGS)
        fprintf(stderr, "unexpected tag %llu\n", (unsigned long long)tag);
    n_done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until n_done reaches n (bounded). */
static bool wait_done(unsigned n)
{
    int64_t end = mono_ms() + WAIT_MS;
    pthread_mutex_lock(&mu);
    while (n_done < n && mono_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    bool ok = n_done >= n;
    pthread_mutex_unlock(&mu);
    if (!ok)
        fprintf(stderr, "timed out waiting for %u completions (have %u)\n", n, n_done);
    return ok;
}

/* The pool's pending count drops right after done() took an outcome, so just after the test
 * saw the completion: wait for it (bounded). */
static uint32_t pending_settled(struct rq_auth_pool *p)
{
    int64_t end = mono_ms() + WAIT_MS;
    while (rq_auth_pool_pending(p) && mono_ms() < end)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    return rq_auth_pool_pending(p);
}

static void reset_results(void)
{
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < MAX_TAGS; i++) {
        rq_auth_outcome_release(results[i]);
        results[i] = NULL;
    }
    n_done = 0;
    pthread_mutex_unlock(&mu);
}

/* ---- setup: certificates, users, servers --------------------------------------------------- */

static char *slurp(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return p;
}

static int sh(const char *fmt, const char *arg)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg, arg, arg, arg, arg);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#define EC "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
static bool make_material(void)
{
    const char *cmd =
        "cd %s && exec >openssl.log 2>&1 && "
        "openssl req -x509 " EC " -subj /CN=pool-test-ca -keyout ca.key -out ca.crt && "
        "openssl req -x509 " EC " -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -CA ca.crt -CAkey ca.key "
        "-keyout srv.key -out srv.crt && "
        "openssl req -x509 " EC " -subj /CN=pool-client-ca -keyout cca.key -out cca.crt && "
        "openssl req -x509 " EC " -subj /CN=pool-client -CA cca.crt -CAkey cca.key "
        "-keyout cli.key -out cli.crt";
    if (sh(cmd, dir) != 0) {
        fprintf(stderr, "openssl failed, see %s/openssl.log\n", dir);
        return false;
    }
    if (sh("echo s3cret | /usr/bin/python3 " RQ_SRC_DIR "/tools/custom-auth-server.py "
           "--hash-password alice --attr group=g1 --iterations 1000 > %s/users.json",
           dir) != 0)
        return false;
    /* user "big": a pass body over RQ_CUSTOM_MAX_BODY */
    if (sh("/usr/bin/python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); "
           "u=dict(d[\"users\"][\"alice\"]); u[\"attributes\"]={\"big\": \"x\"*70000}; "
           "d[\"users\"][\"big\"]=u; json.dump(d, open(p, \"w\"))' %s/users.json",
           dir) != 0)
        return false;
    ca_pem = slurp("ca.crt", &ca_len);
    cca_pem = slurp("cca.crt", &cca_len);
    cli_crt = slurp("cli.crt", &cli_crt_len);
    cli_key = slurp("cli.key", &cli_key_len);
    return ca_pem && cca_pem && cli_crt && cli_key;
}

/* Starts s on port (0: any free one). */
static bool start_server_on(struct server *s, bool client_ca, int port)
{
    char port_arg[16];
    snprintf(port_arg, sizeof port_arg, "%d", port);
    char a[8][256];
    snprintf(a[0], 256, "%s/srv.crt", dir);
    snprintf(a[1], 256, "%s/srv.key", dir);
    snprintf(a[2], 256, "%s/users.json", dir);
    snprintf(a[3], 256, "%s/%s.port", dir, s->name);
    snprintf(a[4], 256, "%s/mode", dir);
    snprintf(a[5], 256, "%s/cca.crt", dir);
    snprintf(a[6], 256, "%s/%s.log", dir, s->name);
    unlink(a[3]); /* the new server writes it once it listens */
    s->pid = fork();
    if (s->pid == 0) {
        int fd = open(a[6], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execl("/usr/bin/python3", "python3", RQ_SRC_DIR "/tools/custom-auth-server.py", "--cert",
              a[0], "--key", a[1], "--users", a[2], "--port", port_arg, "--port-file", a[3],
              "--mode-file", a[4], "--stats", client_ca ? "--client-ca" : "--stats",
              client_ca ? a[5] : "--stats", (char *)NULL);
        _exit(127);
    }
    int64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end) {
        char name[64];
        snprintf(name, sizeof name, "%s.port", s->name);
        char *p = slurp(name, NULL);
        if (p) {
            s->port = atoi(p);
            free(p);
            return s->port > 0;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
            break;
        usleep(50 * 1000);
    }
    fprintf(stderr, "server %s did not start, see %s\n", s->name, a[6]);
    return false;
}

static bool start_server(struct server *s, bool client_ca)
{
    return start_server_on(s, client_ca, 0);
}

static void stop_server(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Every server reads this on each request. */
static void set_mode(const char *mode)
{
    char tmp[128], path[128];
    snprintf(tmp, sizeof tmp, "%s/mode.tmp", dir);
    snprintf(path, sizeof path, "%s/mode", dir);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fputs(mode, f);
        fclose(f);
        rename(tmp, path);
    }
}

/* ---- /_stats ------------------------------------------------------------------------------ */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0;
    char *b = realloc(*buf, old + size * n + 1);
    if (!b)
        return 0;
    memcpy(b + old, p, size * n);
    b[old + size * n] = '\0';
    *buf = b;
    return size * n;
}

/* GET /_stats of a server (a blocking call: this is the test, not the broker). */
static cJSON *stats(const struct server *s)
{
    char url[64], path[128];
    char *body = NULL;
    snprintf(url, sizeof url, "https://127.0.0.1:%d/_stats", s->port);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    curl_easy_setopt(e, CURLOPT_CAINFO, path);
    if (s == &mtls) {
        char crt[128], key[128];
        snprintf(crt, sizeof crt, "%s/cli.crt", dir);
        snprintf(key, sizeof key, "%s/cli.key", dir);
        curl_easy_setopt(e, CURLOPT_SSLCERT, crt);
        curl_easy_setopt(e, CURLOPT_SSLKEY, key);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    cJSON *j = rc == CURLE_OK && body ? cJSON_Parse(body) : NULL;
    free(body);
    if (!j)
        fprintf(stderr, "stats of %s failed: %s\n", s->name, curl_easy_strerror(rc));
    return j;
}

static long num(const cJSON *j, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static long stat_num(const struct server *s, const char *key)
{
    cJSON *j = stats(s);
    long n = num(j, key);
    cJSON_Delete(j);
    return n;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *hdr_names[] = {"X-Test-Header", "Authorization"};
static const char *hdr_values[] = {"hello", "Bearer test-token"};

static struct rq_custom_method *method_for(const struct server *s, const char *ca, size_t ca_n,
                                           bool client_cert, uint32_t cache)
{
    char endpoint[64], err[200] = "";
    /* the plain server's endpoint ends with '/', the mTLS one's does not: both URLs are right */
    snprintf(endpoint, sizeof endpoint, "https://localhost:%d%s", s->port, s == &plain ? "/" : "");
    struct rq_custom_cfg cfg = {
        .endpoint = endpoint,
        .ca_pem = ca,
        .ca_len = ca_n,
        .cert_pem = client_cert ? cli_crt : NULL,
        .cert_len = cli_crt_len,
        .key_pem = client_cert ? cli_key : NULL,
        .key_len = cli_key_len,
        .header_names = hdr_names,
        .header_values = hdr_values,
        .n_headers = 2,
        .cache_entries = cache,
    };
    struct rq_custom_method *m = rq_custom_method_new(&cfg, err, sizeof err);
    if (!m)
        fprintf(stderr, "method: %s\n", err);
    return m;
}

static struct rq_custom_creds creds(const char *user, const char *pw)
{
    struct rq_custom_creds c = {0};
    c.username = user;
    c.username_len = user ? strlen(user) : 0;
    c.password = (const uint8_t *)pw;
    c.password_len = pw ? strlen(pw) : 0;
    return c;
}

static struct rq_auth_pool *pool_with(unsigned threads, uint32_t max_pending, uint32_t timeout_ms,
                                      unsigned conns)
{
    struct rq_auth_pool_cfg cfg = {.threads = threads, .max_pending = max_pending,
                                   .request_timeout_ms = timeout_ms, .max_connections = conns};
    char err[200] = "";
    struct rq_auth_pool *p = rq_auth_pool_new(&cfg, on_done, NULL, err, sizeof err);
    if (!p)
        fprintf(stderr, "pool: %s\n", err);
    return p;
}

static int submit(struct rq_auth_pool *p, struct rq_custom_method *m, const char *user,
                  const char *pw, uint64_t tag)
{
    struct rq_custom_creds c = creds(user, pw);
    const char *why = NULL;
    struct rq_auth_job *job = rq_custom_job_connect(m, &c, &why);
    if (!job)
        return -EINVAL;
    int rc = rq_auth_pool_submit(p, job, tag);
    if (rc != 0)
        job->ops->free(job);
    return rc;
}

/* One request through the pool; the outcome stays in results[0] until the next reset. */
static const struct rq_authn_outcome *one(struct rq_auth_pool *p, struct rq_custom_method *m,
                                          const char *user, const char *pw)
{
    reset_results();
    if (submit(p, m, user, pw, 0) != 0 || !wait_done(1))
        return NULL;
    return results[0];
}

static bool why_has(const struct rq_authn_outcome *o, const char *text)
{
    bool ok = o && strstr(o->why, text);
    if (!ok)
        fprintf(stderr, "why \"%s\" lacks \"%s\"\n", o ? o->why : "(none)", text);
    return ok;
}

static const char *attr(const struct rq_authn_outcome *o, const char *key)
{
    for (size_t i = 0; o && i < o->principal.n_attrs; i++)
        if (strcmp(o->principal.keys[i], key) == 0)
            return o->principal.values[i];
    return NULL;
}

/* ---- cases -------------------------------------------------------------------------------- */

static void test_config_checks(void)
{
    char err[200];
    struct rq_auth_pool_cfg pc = {.threads = 65};
    CHECK(!rq_auth_pool_new(&pc, on_done, NULL, err, sizeof err));
    pc = (struct rq_auth_pool_cfg){.max_pending = 1000001};
    CHECK(!rq_auth_pool_new(&pc, on_done, NULL, err, sizeof err));
    struct rq_custom_cfg cfg = {.endpoint = "http://localhost:1/"};
    CHECK(!rq_custom_method_new(&cfg, err, sizeof err));
    CHECK(strstr(err, "https"));
    cfg.endpoint = "https://h/a?x=1";
    CHECK(!rq_custom_method_new(&cfg, err, sizeof err));
    const char *n[] = {"X-Bad"}, *v[] = {"a\r\nInjected: 1"};
    cfg = (struct rq_custom_cfg){
        .endpoint = "https://h", .header_names = n, .header_values = v, .n_headers = 1};
    CHECK(!rq_custom_method_new(&cfg, err, sizeof err));
    const char *n2[] = {"content-type"}, *v2[] = {"text/plain"};
    cfg.header_names = n2;
    cfg.header_values = v2;
    CHECK(!rq_custom_method_new(&cfg, err, sizeof err));
    cfg = (struct rq_custom_cfg){.endpoint = "https://h", .cert_pem = "x", .cert_len = 1};
    CHECK(!rq_custom_method_new(&cfg, err, sizeof err));
    cfg = (struct rq_custom_cfg){.endpoint = "https://auth.example/base"};
    struct rq_custom_method *m = rq_custom_method_new(&cfg, err, sizeof err);
    CHECK_STR(m ? rq_custom_method_url(m) : NULL, "https://auth.example/base/?api-version=0.5.0");
    rq_custom_method_release(m);
    cfg.endpoint = "https://auth.example/base/";
    m = rq_custom_method_new(&cfg, err, sizeof err);
    CHECK_STR(m ? rq_custom_method_url(m) : NULL, "https://auth.example/base/?api-version=0.5.0");
    rq_custom_method_release(m);
}

static void test_pass_and_headers(struct rq_auth_pool *p, struct rq_custom_method *m)
{
    set_mode("users,expire:3600");
    int64_t now = time(NULL);
    const struct rq_authn_outcome *o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_ALLOW);
    if (!o || o->verdict != RQ_AUTHN_ALLOW) {
        fprintf(stderr, "pass: %s\n", o ? o->why : "no outcome");
        return;
    }
    CHECK_STR(o->method, "Custom");
    CHECK_STR(o->principal.username, "alice");
    CHECK_STR(attr(o, "group"), "g1");
    CHECK(o->principal.expiry >= now + 3590 && o->principal.expiry <= now + 3700);
    /* the configured headers and the exact Content-Type reached the server */
    cJSON *j = stats(&plain);
    cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "last_headers");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "X-Test-Header")), "hello");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "Authorization")),
              "Bearer test-token");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "Content-Type")),
              "application/json");
    cJSON_Delete(j);
    /* no expiry without the modifier */
    set_mode("users");
    o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_ALLOW && o->principal.expiry == 0);
}

static void test_deny(struct rq_auth_pool *p, struct rq_custom_method *m)
{
    set_mode("users");
    const struct rq_authn_outcome *o = one(p, m, "alice", "wrong");
    CHECK(o && o->verdict == RQ_AUTHN_DENY);
    CHECK(o && o->reason == 0x86 && rq_custom_rc311(o->reason) == 4);
    CHECK(why_has(o, "bad user name or password")); /* the server's message, escaped */
    CHECK(o && !strstr(o->why, "wrong"));           /* never the password */
    set_mode("deny:135");
    o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_DENY && o->reason == 0x87);
    CHECK(o && rq_custom_rc311(o->reason) == 5);
    set_mode("deny:5"); /* below 0x80: 0x87 */
    o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_DENY && o->reason == 0x87);
    set_mode("deny:151"); /* 0x97 quota exceeded: kept, rc 5 */
    o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_DENY && o->reason == 0x97 && rq_custom_rc311(0x97) == 5);
    set_mode("pass,expire:-10"); /* an expiry already past is a deny */
    o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_DENY && o->reason == 0x87);
}

/* MQTT v5 re-authentication: {"type":"auth"} with the AUTH packet's method and data. */
static void test_reauth(struct rq_auth_pool *p, struct rq_custom_method *m)
{
    set_mode("users,expire:600");
    long before = stat_num(&plain, "auth");
    const char *why = NULL;
    const char *data = "alice:s3cret";
    struct rq_auth_job *job = rq_custom_job_auth(m, "alice", "ringmq-userpass", 15,
                                                 (const uint8_t *)data, strlen(data), &why);
    CHECK(job != NULL);
    reset_results();
    if (job && rq_auth_pool_submit(p, job, 0) != 0) {
        job->ops->free(job);
        job = NULL;
    }
    const struct rq_authn_outcome *o = job && wait_done(1) ? results[0] : NULL;
    CHECK(o && o->verdict == RQ_AUTHN_ALLOW);
    CHECK_STR(o ? o->principal.username : NULL, "alice");
    CHECK(o && o->principal.expiry > (int64_t)time(NULL));
    CHECK_EQ(stat_num(&plain, "auth"), before + 1);
    /* wrong password in the data: denied 0x86 */
    data = "alice:nope";
    job = rq_custom_job_auth(m, "alice", "ringmq-userpass", 15, (const uint8_t *)data, strlen(data),
                             &why);
    reset_results();
    if (job && rq_auth_pool_submit(p, job, 0) != 0) {
        job->ops->free(job);
        job = NULL;
    }
    o = job && wait_done(1) ? results[0] : NULL;
    CHECK(o && o->verdict == RQ_AUTHN_DENY && o->reason == 0x86);
    set_mode("pass");
}

static void test_not_relevant(struct rq_auth_pool *p, struct rq_custom_method *m)
{
    static const struct {
        const char *mode, *why;
    } cases[] = {
        {"422", "9.9.9"},
        {"status:500", "HTTP status 500"},
        {"status:400", "HTTP status 400"},
        {"drop", "request failed"},
        {"invalid-json", "auth server"},
        {"wrong-content-type", "Content-Type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_mode(cases[i].mode);
        const struct rq_authn_outcome *o = one(p, m, "alice", "s3cret");
        CHECK(o && o->verdict == RQ_AUTHN_NOT_RELEVANT);
        if (!why_has(o, cases[i].why))
            fprintf(stderr, "  (mode %s)\n", cases[i].mode);
        CHECK(o && !strstr(o->why, "s3cret"));
    }
    /* a body over RQ_CUSTOM_MAX_BODY: the transfer is aborted */
    set_mode("pass");
    const struct rq_authn_outcome *big = one(p, m, "big", "s3cret");
    CHECK(big && big->verdict == RQ_AUTHN_NOT_RELEVANT && why_has(big, "body over 65536"));
    /* and the pool still works after a dropped connection */
    set_mode("pass");
    const struct rq_authn_outcome *o = one(p, m, "alice", "s3cret");
    CHECK(o && o->verdict == RQ_AUTHN_ALLOW);
}

static void test_tls_trust(struct rq_auth_pool *p)
{
    set_mode("pass");
    /* system roots do not know the test CA; the client CA does not sign the server */
    struct rq_custom_method *sys = method_for(&plain, NULL, 0, false, 0);
    struct rq_custom_method *wrong = method_for(&plain, cca_pem, cca_len, false, 0);
    const struct rq_authn_outcome *o = sys ? one(p, sys, "alice", "s3cret") : NULL;
    CHECK(o && o->verdict == RQ_AUTHN_NOT_RELEVANT && why_has(o, "request failed"));
    o = wrong ? one(p, wrong, "alice", "s3cret") : NULL;
    CHECK(o && o->verdict == RQ_AUTHN_NOT_RELEVANT && why_has(o, "request failed"));
    rq_custom_method_release(sys);
    rq_custom_method_release(wrong);
}

static void test_mtls(struct rq_auth_pool *p)
{
    set_mode("pass");
    struct rq_custom_method *with = method_for(&mtls, ca_pem, ca_len, true, 0);
    struct rq_custom_method *without = method_for(&mtls, ca_pem, ca_len, false, 0);
    const struct rq_authn_outcome *o = with ? one(p, with, "alice", "s3cret") : NULL;
    CHECK(o && o->verdict == RQ_AUTHN_ALLOW);
    if (o && o->verdict != RQ_AUTHN_ALLOW)
        fprintf(stderr, "mtls: %s\n", o->why);
    long before = stat_num(&mtls, "requests");
    o = without ? one(p, without, "alice", "s3cret") : NULL;
    CHECK(o && o->verdict == RQ_AUTHN_NOT_RELEVANT);
    CHECK_EQ(stat_num(&mtls, "requests"), before); /* refused in the handshake */
    /* the certificate the pool presented, as the server saw it (/_stats itself used the same
     * client certificate, so look at the request count first) */
    cJSON *j = stats(&mtls);
    cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "last_client_cert");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "commonName")),
              "pool-client");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "handshake_failures")) >= 1);
    cJSON_Delete(j);
    rq_custom_method_release(with);
    rq_custom_method_release(without);
}

static void test_timeout(struct rq_custom_method *m)
{
    struct rq_auth_pool *p = pool_with(1, 100, 1000, 2);
    if (!p) {
        CHECK(p);
        return;
    }
    set_mode("pass,slow:4");
    int64_t t0 = mono_ms();
    const struct rq_authn_outcome *o = one(p, m, "alice", "s3cret");
    int64_t took = mono_ms() - t0;
    CHECK(o && o->verdict == RQ_AUTHN_NOT_RELEVANT && why_has(o, "request failed"));
    /* 1 s timeout; 3 s of margin for a loaded machine, still under the server's 4 s */
    CHECK(took >= 900 && took < 3900);
    fprintf(stderr, "timeout case: verdict after %lld ms (timeout 1000)\n", (long long)took);
    set_mode("pass");
    rq_auth_pool_free(p);
}

static void test_burst(struct rq_custom_method *m)
{
    enum { N = 200, THREADS = 2, CONNS = 8 }; /* the defaults */
    struct rq_auth_pool *p = pool_with(0, 0, 20000, 0);
    if (!p) {
        CHECK(p);
        return;
    }
    set_mode("pass");
    cJSON *j = stats(&plain); /* its own handshake is counted in it already */
    long hs0 = num(j, "handshakes"), rq0 = num(j, "requests");
    cJSON_Delete(j);
    reset_results();
    int accepted = 0;
    for (unsigned i = 0; i < N; i++)
        accepted += submit(p, m, "alice", "s3cret", i) == 0;
    CHECK_EQ(accepted, N);
    CHECK(wait_done(N));
    unsigned allowed = 0;
    for (unsigned i = 0; i < N; i++)
        allowed += results[i] && results[i]->verdict == RQ_AUTHN_ALLOW;
    CHECK_EQ(allowed, N);
    /* minus one: the second /_stats call is a connection of its own */
    j = stats(&plain);
    long hs = num(j, "handshakes") - hs0 - 1, rq = num(j, "requests") - rq0;
    long resumed = num(j, "resumed");
    cJSON_Delete(j);
    fprintf(stderr,
            "burst: %d jobs, %ld requests, %ld TLS handshakes (at most %d; server's resumed "
            "sessions so far: %ld)\n",
            N, rq, hs, THREADS * CONNS, resumed);
    CHECK_EQ(rq, N);
    CHECK(hs >= 1 && hs <= THREADS * CONNS);
    CHECK_EQ(pending_settled(p), 0);
    rq_auth_pool_free(p);
}

/* N requests at once; true when every one is allowed. */
static bool round_allowed(struct rq_auth_pool *p, struct rq_custom_method *m, unsigned n)
{
    reset_results();
    for (unsigned i = 0; i < n; i++)
        if (submit(p, m, "alice", "s3cret", i) != 0)
            return false;
    if (!wait_done(n))
        return false;
    unsigned allowed = 0;
    for (unsigned i = 0; i < n; i++)
        allowed += results[i] && results[i]->verdict == RQ_AUTHN_ALLOW;
    if (allowed != n)
        fprintf(stderr, "  %u of %u allowed (first why: %s)\n", allowed, n,
                results[0] ? results[0]->why : "-");
    return allowed == n;
}

/* The pool keeps the epoll registration of an idle kept-alive connection (pool.c own_socket):
 * when the server closes its idle connections (a restart on the same port), the next requests
 * still get their answers on new connections, with descriptor numbers the old ones had, and
 * within the request timeout (a socket left unwatched would time out). */
static void test_server_closes_idle(struct rq_custom_method *m)
{
    enum { N = 4 };
    struct rq_auth_pool *p = pool_with(1, 0, 10000, N);
    if (!p) {
        CHECK(p);
        return;
    }
    set_mode("pass");
    CHECK(round_allowed(p, m, N)); /* N connections, then idle in the pool's cache */
    int port = plain.port;
    stop_server(&plain);
    CHECK(start_server_on(&plain, false, port));
    CHECK_EQ(plain.port, port);
    for (int i = 0; i < 3; i++) /* after the restart, then on the connections made for it */
        CHECK(round_allowed(p, m, N));
    CHECK_EQ(pending_settled(p), 0);
    rq_auth_pool_free(p);
}

static void test_max_pending(struct rq_custom_method *m)
{
    struct rq_auth_pool *p = pool_with(2, 5, 10000, 8);
    if (!p) {
        CHECK(p);
        return;
    }
    set_mode("pass,slow:1");
    reset_results();
    for (unsigned i = 0; i < 5; i++)
        CHECK_EQ(submit(p, m, "alice", "s3cret", i), 0);
    CHECK_EQ(rq_auth_pool_pending(p), 5);
    CHECK_EQ(submit(p, m, "alice", "s3cret", 5), -EBUSY);
    CHECK(wait_done(5));
    CHECK_EQ(pending_settled(p), 0);
    CHECK_EQ(submit(p, m, "alice", "s3cret", 6), 0); /* room again */
    CHECK(wait_done(6));
    CHECK(results[6] && results[6]->verdict == RQ_AUTHN_ALLOW);
    set_mode("pass");
    rq_auth_pool_free(p);
}

static void test_cache(struct rq_auth_pool *p)
{
    struct rq_custom_method *m = method_for(&plain, ca_pem, ca_len, false, 100);
    if (!m) {
        CHECK(m);
        return;
    }
    struct rq_custom_creds a = creds("alice", "s3cret"), b = creds("alice", "wrong");
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    int64_t now = time(NULL);
    set_mode("users,cache:60");
    CHECK_EQ(rq_custom_cache_lookup(m, &a, now, &o), 0);
    const struct rq_authn_outcome *r = one(p, m, "alice", "s3cret");
    CHECK(r && r->verdict == RQ_AUTHN_ALLOW);
    r = one(p, m, "alice", "wrong");
    CHECK(r && r->verdict == RQ_AUTHN_DENY && r->reason == 0x86);
    CHECK_EQ(rq_custom_cache_size(m), 2);
    long before = stat_num(&plain, "requests");
    CHECK_EQ(rq_custom_cache_lookup(m, &a, now, &o), 1);
    CHECK(o.verdict == RQ_AUTHN_ALLOW);
    CHECK_STR(o.principal.username, "alice");
    CHECK_STR(attr(&o, "group"), "g1");
    rq_authn_outcome_free(&o);
    rq_authn_outcome_init(&o);
    CHECK_EQ(rq_custom_cache_lookup(m, &b, now, &o), 1);
    CHECK(o.verdict == RQ_AUTHN_DENY && o.reason == 0x86);
    rq_authn_outcome_free(&o);
    rq_authn_outcome_init(&o);
    CHECK_EQ(stat_num(&plain, "requests"), before); /* hits made no request */
    /* dead after max-age */
    CHECK_EQ(rq_custom_cache_lookup(m, &a, now + 61, &o), 0);
    /* the expiry bounds it: expire:5 with max-age 60 -> gone after 5 s */
    struct rq_custom_creds c = creds("carol", "x");
    set_mode("pass,expire:5,cache:60");
    r = one(p, m, "carol", "x");
    CHECK(r && r->verdict == RQ_AUTHN_ALLOW);
    CHECK_EQ(rq_custom_cache_lookup(m, &c, now + 30, &o), 0);
    rq_authn_outcome_free(&o);
    rq_authn_outcome_init(&o);
    /* no header, or a transport error / other status: not cached */
    struct rq_custom_creds d = creds("dave", "x"), e = creds("erin", "x");
    set_mode("pass");
    r = one(p, m, "dave", "x");
    CHECK(r && r->verdict == RQ_AUTHN_ALLOW);
    set_mode("status:500,cache:60");
    r = one(p, m, "erin", "x");
    CHECK(r && r->verdict == RQ_AUTHN_NOT_RELEVANT);
    CHECK_EQ(rq_custom_cache_lookup(m, &d, now, &o), 0);
    CHECK_EQ(rq_custom_cache_lookup(m, &e, now, &o), 0);
    set_mode("pass");
    rq_custom_method_release(m);
}

static void test_shutdown(struct rq_custom_method *m)
{
    enum { N = 20 };
    struct rq_auth_pool *p = pool_with(2, 100, 20000, 4);
    if (!p) {
        CHECK(p);
        return;
    }
    set_mode("pass,slow:5");
    reset_results();
    long base = stat_num(&plain, "requests");
    for (unsigned i = 0; i < N; i++)
        CHECK_EQ(submit(p, m, "alice", "s3cret", i), 0);
    /* wait until requests reach the server (in flight); the rest wait for a connection */
    int64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end && stat_num(&plain, "requests") < base + 4)
        usleep(20 * 1000);
    CHECK_EQ(n_done, 0);
    int64_t t0 = mono_ms();
    rq_auth_pool_stop(p);
    /* the transfers were cancelled, not waited for (the server answers after 5 s) */
    int64_t took = mono_ms() - t0;
    fprintf(stderr, "shutdown: %u jobs completed by stop in %lld ms\n", n_done, (long long)took);
    CHECK(took < 4000);
    CHECK_EQ(n_done, N);
    unsigned shut = 0;
    for (unsigned i = 0; i < N; i++)
        shut += results[i] && results[i]->verdict == RQ_AUTHN_NOT_RELEVANT &&
                strstr(results[i]->why, "shutting down");
    CHECK_EQ(shut, N);
    CHECK_EQ(rq_auth_pool_pending(p), 0);
    CHECK_EQ(submit(p, m, "alice", "s3cret", 0), -ESHUTDOWN);
    rq_auth_pool_free(p);
    set_mode("pass");
}

/* A configuration reload drops the method while its requests are in flight. */
static void test_release_in_flight(struct rq_auth_pool *p)
{
    struct rq_custom_method *m = method_for(&plain, ca_pem, ca_len, false, 10);
    if (!m) {
        CHECK(m);
        return;
    }
    set_mode("pass,cache:60");
    reset_results();
    for (unsigned i = 0; i < 10; i++)
        CHECK_EQ(submit(p, m, "alice", "s3cret", i), 0);
    rq_custom_method_release(m);
    CHECK(wait_done(10));
    for (unsigned i = 0; i < 10; i++)
        CHECK(results[i] && results[i]->verdict == RQ_AUTHN_ALLOW);
    set_mode("pass");
}

static bool have_tools(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "SKIP: /usr/bin/python3 is missing: the pool test cannot run\n");
        return false;
    }
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP: openssl is missing: the pool test cannot run\n");
        return false;
    }
    return true;
}

int main(void)
{
    if (!have_tools())
        return 77;
    test_config_checks();
    snprintf(dir, sizeof dir, "/tmp/rq_pool_XXXXXX");
    if (!mkdtemp(dir) || !make_material() || !start_server(&plain, false) ||
        !start_server(&mtls, true)) {
        CHECK(!"setup failed");
        stop_server(&plain);
        stop_server(&mtls);
        return check_exit("test_pool_custom");
    }
    struct rq_auth_pool *p = pool_with(2, 1000, 10000, 4);
    struct rq_custom_method *m = method_for(&plain, ca_pem, ca_len, false, 0);
    CHECK(p && m);
    if (p && m) {
        test_pass_and_headers(p, m);
        test_deny(p, m);
        test_reauth(p, m);
        test_not_relevant(p, m);
        test_tls_trust(p);
        test_mtls(p);
        test_cache(p);
        test_release_in_flight(p);
        test_timeout(m);
        test_burst(m);
        test_server_closes_idle(m);
        test_max_pending(m);
        test_shutdown(m);
    }
    rq_auth_pool_free(p);
    rq_custom_method_release(m);
    reset_results();
    stop_server(&plain);
    stop_server(&mtls);
    free(ca_pem);
    free(cca_pem);
    free(cli_crt);
    free(cli_key);
    if (!check_failures)
        sh("rm -rf %s", dir);
    else
        fprintf(stderr, "kept %s for inspection\n", dir);
    return check_exit("test_pool_custom");
}
