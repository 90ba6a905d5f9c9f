/* Port setup (see ports.h): which transport, which certificate, which authentication. */
#include "net/ports.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth/authn.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "net/authn_glue.h"
#include "net/autocert.h"
#include "net/tls.h"
#include "net/xport.h"

static const struct rq_authn_x509 *x509_settings(const struct rq_authn_cfg *a)
{
    for (size_t i = 0; a && i < a->n_methods; i++)
        if (a->methods[i].kind == RQ_AUTHN_X509)
            return &a->methods[i].x509;
    return NULL;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* A TLS context for a port from its certificate chain and key (PEM); the client CAs and verify
 * mode come from the port's X509 method. *print = fingerprint of all inputs. */
static struct rq_tls_ctx *make_ctx(const struct rq_port_cfg *pc, const char *what,
                                   const char *crt, size_t crt_len, const char *key,
                                   size_t key_len, uint64_t *print, char *err, size_t errlen)
{
    const struct rq_authn_x509 *x = x509_settings(pc->authn);
    struct rq_buf cas = {0};
    if (x && rq_authn_glue_collect_pem(x->trusted_ca_obj, &cas) != 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uint64_t h = 1469598103934665603ULL;
    h = mix(mix(mix(h, crt, crt_len), key, key_len), cas.data, cas.len);
    *print = h;
    struct rq_tls_ctx_opts o = {
        .cert_pem = (const uint8_t *)crt,
        .cert_len = crt_len,
        .key_pem = (const uint8_t *)key,
        .key_len = key_len,
        .ca_pem = x ? cas.data : NULL,
        .ca_len = cas.len,
        .require_client_cert = x && pc->authn->n_methods == 1,
    };
    char why[300];
    struct rq_tls_ctx *ctx = rq_tls_ctx_new(&o, why, sizeof why);
    rq_buf_free(&cas);
    if (!ctx)
        snprintf(err, errlen, "port %u: %s: %s", pc->port, what, why);
    return ctx;
}

/* mode Manual: the kubernetes.io/tls Secret. */
static struct rq_tls_ctx *build_tls(const struct rq_port_cfg *pc, uint64_t *print, char *err,
                                    size_t errlen)
{
    const struct rq_config_entry *crt = rq_config_object_get(pc->tls.secret, "tls.crt");
    const struct rq_config_entry *key = rq_config_object_get(pc->tls.secret, "tls.key");
    if (!crt || !key) {
        snprintf(err, errlen, "port %u: Secret %s needs tls.crt and tls.key", pc->port,
                 pc->tls.secret_name);
        return NULL;
    }
    char what[300];
    snprintf(what, sizeof what, "Secret %s", pc->tls.secret_name);
    return make_ctx(pc, what, crt->value, crt->len, key->value, key->len, print, err, errlen);
}

/* mode Automatic: a certificate the broker issues itself from its own CA (net/autocert.c). */
static struct rq_tls_ctx *build_auto(const struct rq_port_cfg *pc, const char *data_dir,
                                     struct rq_port_rt *rt, char *err, size_t errlen)
{
    const struct rq_tls_auto *a = &pc->tls.automatic;
    char id[300];
    if (a->secret_name[0])
        snprintf(id, sizeof id, "%s", a->secret_name);
    else
        snprintf(id, sizeof id, "%s-%u", pc->listener, pc->port);
    struct rq_autocert ac;
    char why[400];
    if (rq_autocert_ensure(data_dir, id, a, (int64_t)time(NULL), &ac, why, sizeof why) != 0) {
        snprintf(err, errlen, "port %u: automatic certificate: %s", pc->port, why);
        return NULL;
    }
    struct rq_tls_ctx *ctx = make_ctx(pc, "automatic certificate", ac.cert_pem, ac.cert_len,
                                      ac.key_pem, ac.key_len, &rt->tls_print, err, errlen);
    if (ctx) {
        rt->renew_at = ac.renew_at;
        char when[32];
        time_t t = (time_t)ac.renew_at;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        rq_log(RQ_LOG_INFO, NULL, "port %u: %s certificate %s (%s); clients trust %s; renewal "
               "at %s", pc->port, ac.issued ? "issued" : "reusing", ac.serial,
               ac.issued && ac.why_issued ? ac.why_issued : "still valid", ac.ca_path, when);
    }
    rq_autocert_free(&ac);
    return ctx;
}

static int setup_tls(const struct rq_port_cfg *pc, const char *data_dir, struct rq_port_rt *rt,
                     char *err, size_t errlen)
{
    struct rq_tls_ctx *ctx = pc->tls.mode == RQ_TLS_AUTOMATIC
                                 ? build_auto(pc, data_dir, rt, err, errlen)
                                 : build_tls(pc, &rt->tls_print, err, errlen);
    if (!ctx)
        return -1;
    atomic_store(&rt->tls, ctx);
    return 0;
}

int rq_ports_setup(const struct rq_config *cfg, const char *data_dir, struct rq_port_rt *ports,
                   char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_ports; i++) {
        const struct rq_port_cfg *pc = &cfg->ports[i];
        struct rq_port_rt *rt = &ports[i];
        rt->cfg = pc;
        rt->websocket = pc->protocol == RQ_PROTO_WEBSOCKETS;
        rt->max_frame = cfg->max_packet_size;
        if (pc->tls.mode != RQ_TLS_NONE && setup_tls(pc, data_dir, rt, err, errlen) != 0)
            return -1;
        if (pc->authn) {
            char why[500];
            rt->authn = rq_authn_glue_build(pc->authn, why, sizeof why);
            if (!rt->authn) {
                snprintf(err, errlen, "port %u: %s", pc->port, why);
                return -1;
            }
        }
        rq_log(RQ_LOG_INFO, NULL, "listening on %s:%u (MQTT over %s%s, listener %s): %s%s",
               pc->bind_address, pc->port, rt->websocket ? "WebSocket" : "TCP",
               pc->tls.mode != RQ_TLS_NONE ? "+TLS" : "", pc->listener,
               pc->authn ? "authentication " : "authentication disabled on this port",
               pc->authn ? pc->authn->name : "");
    }
    return 0;
}

void rq_ports_teardown(struct rq_port_rt *ports, size_t n)
{
    for (size_t i = 0; ports && i < n; i++) {
        rq_tls_ctx_unref(atomic_load(&ports[i].tls));
        rq_authn_chain_free(ports[i].authn);
    }
}

int rq_ports_reload_certs(struct rq_port_rt *ports, size_t n, const struct rq_config *next)
{
    int swapped = 0;
    for (size_t i = 0; i < n; i++) {
        struct rq_port_rt *rt = &ports[i];
        if (rt->cfg->tls.mode != RQ_TLS_MANUAL)
            continue;
        const struct rq_port_cfg *pc = NULL;
        for (size_t j = 0; j < next->n_ports && !pc; j++)
            if (next->ports[j].port == rt->cfg->port)
                pc = &next->ports[j];
        if (!pc || pc->tls.mode != RQ_TLS_MANUAL) {
            rq_log(RQ_LOG_WARN, NULL, "reload: port %u is no longer a Manual TLS port in the "
                   "configuration; that change needs a restart", rt->cfg->port);
            continue;
        }
        char err[400];
        uint64_t print = 0;
        struct rq_tls_ctx *ctx = build_tls(pc, &print, err, sizeof err);
        if (!ctx) {
            rq_log(RQ_LOG_ERROR, NULL, "reload: new certificate refused, keeping the old one: %s",
                   err);
            continue;
        }
        if (print == rt->tls_print) {
            rq_tls_ctx_unref(ctx);
            continue;
        }
        rt->tls_print = print;
        rq_tls_ctx_unref(atomic_exchange(&rt->tls, ctx)); /* live connections keep their ref */
        rq_log(RQ_LOG_INFO, NULL, "reload: port %u now serves the certificate from Secret %s",
               pc->port, pc->tls.secret_name);
        swapped++;
    }
    return swapped;
}

static uint64_t print_path(uint64_t h, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return mix(h, "-", 1);
    h = mix(h, path, strlen(path));
    h = mix(h, &st.st_size, sizeof st.st_size);
    h = mix(h, &st.st_mtim, sizeof st.st_mtim);
    return mix(h, &st.st_ino, sizeof st.st_ino);
}

static uint64_t print_dir(uint64_t h, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return print_path(h, dir);
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || e->d_name[1] == '.'))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        h = print_path(h, p); /* follows symlinks: a Kubernetes ..data swap shows up */
    }
    closedir(d);
    return h;
}

uint64_t rq_ports_files_print(const struct rq_config *cfg)
{
    if (cfg->source[0] == '(')
        return 0; /* "(embedded default)": no files */
    uint64_t h = print_dir(1469598103934665603ULL, cfg->source);
    for (size_t i = 0; i < cfg->n_objects; i++)
        if (cfg->objects[i].mounted && cfg->objects[i].origin)
            h = print_dir(h, cfg->objects[i].origin);
    return h;
}

int rq_ports_renew(struct rq_port_rt *ports, size_t n, const char *data_dir, int64_t now)
{
    int renewed = 0;
    for (size_t i = 0; i < n; i++) {
        struct rq_port_rt *rt = &ports[i];
        if (rt->cfg->tls.mode != RQ_TLS_AUTOMATIC || now < rt->renew_at)
            continue;
        char err[500];
        struct rq_tls_ctx *ctx = build_auto(rt->cfg, data_dir, rt, err, sizeof err);
        if (!ctx) {
            rq_log(RQ_LOG_ERROR, NULL, "renewal failed, keeping the current certificate (retry "
                   "in a minute): %s", err);
            rt->renew_at = now + 60;
            continue;
        }
        rq_tls_ctx_unref(atomic_exchange(&rt->tls, ctx));
        renewed++;
    }
    return renewed;
}
