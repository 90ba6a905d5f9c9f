/* Runtime generations of the ports (see ports.h): which transport, which certificate, which
 * authentication, all from one configuration snapshot. Publication and freeing are net/gen.c's. */
#include "net/ports.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/authn.h"
#include "auth/authz.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "net/authn_glue.h"
#include "net/autocert.h"
#include "net/gen.h"
#include "net/tls.h"
#include "net/xport.h"

static const struct rq_authn_x509 *x509_settings(const struct rq_authn_cfg *a)
{
    for (size_t i = 0; a && i < a->n_methods; i++)
        if (a->methods[i].kind == RQ_AUTHN_X509)
            return &a->methods[i].x509;
    return NULL;
}

/* Custom forwards the client's certificate chain: its ports ask for one (optional). */
static bool has_custom(const struct rq_authn_cfg *a)
{
    for (size_t i = 0; a && i < a->n_methods; i++)
        if (a->methods[i].kind == RQ_AUTHN_CUSTOM)
            return true;
    return false;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The configuration a generation was built from. A renewal builds a new generation from the
 * same snapshot, so several generations may share it. Control thread only. */
struct rq_gen_snap {
    int refs;
    struct rq_config *cfg;
    bool owned; /* the startup snapshot belongs to main() */
};

/* A TLS context for a port from its certificate chain and key (PEM); the client CAs and verify
 * mode come from the port's X509 method. *print = fingerprint of all inputs. When prev (the
 * same port in the running generation) was built from the same inputs, its context is shared. */
static struct rq_tls_ctx *make_ctx(const struct rq_port_cfg *pc, const char *what, const char *crt,
                                   size_t crt_len, const char *key, size_t key_len,
                                   const struct rq_port_rt *prev, uint64_t *print, char *err,
                                   size_t errlen)
{
    const struct rq_authn_x509 *x = x509_settings(pc->authn);
    struct rq_buf cas = {0};
    if (x && rq_authn_glue_collect_pem(x->trusted_ca_obj, &cas) != 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uint64_t h = 1469598103934665603ULL;
    h = mix(mix(mix(h, crt, crt_len), key, key_len), cas.data, cas.len);
    h = mix(h, "req", x && pc->authn->n_methods == 1 ? 3 : 0);
    h = mix(h, "opt", has_custom(pc->authn) ? 3 : 0);
    *print = h;
    struct rq_tls_ctx *shared = prev ? atomic_load(&prev->tls) : NULL;
    if (shared && prev->tls_print == h) {
        rq_buf_free(&cas);
        rq_tls_ctx_ref(shared);
        return shared;
    }
    struct rq_tls_ctx_opts o = {
        .cert_pem = (const uint8_t *)crt,
        .cert_len = crt_len,
        .key_pem = (const uint8_t *)key,
        .key_len = key_len,
        .ca_pem = x ? cas.data : NULL,
        .ca_len = cas.len,
        .require_client_cert = x && pc->authn->n_methods == 1,
        .want_client_cert = has_custom(pc->authn),
    };
    char why[300];
    struct rq_tls_ctx *ctx = rq_tls_ctx_new(&o, why, sizeof why);
    rq_buf_free(&cas);
    if (!ctx)
        snprintf(err, errlen, "port %u: %s: %s", pc->port, what, why);
    return ctx;
}

/* mode Manual: the kubernetes.io/tls Secret. */
static struct rq_tls_ctx *build_tls(const struct rq_port_cfg *pc, const struct rq_port_rt *prev,
                                    uint64_t *print, char *err, size_t errlen)
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
    return make_ctx(pc, what, crt->value, crt->len, key->value, key->len, prev, print, err, errlen);
}

/* mode Automatic: a certificate the broker issues itself from its own CA (net/autocert.c).
 * quiet: a reload that finds the certificate still valid says so only at debug level. */
static struct rq_tls_ctx *build_auto(const struct rq_port_cfg *pc, const char *data_dir,
                                     const struct rq_port_rt *prev, struct rq_port_rt *rt,
                                     bool quiet, char *err, size_t errlen)
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
                                      ac.key_pem, ac.key_len, prev, &rt->tls_print, err, errlen);
    if (ctx) {
        rt->renew_at = ac.renew_at;
        char when[32];
        time_t t = (time_t)ac.renew_at;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        rq_log(quiet && !ac.issued ? RQ_LOG_DEBUG : RQ_LOG_INFO, NULL,
               "port %u: %s certificate %s (%s); clients trust %s; renewal at %s", pc->port,
               ac.issued ? "issued" : "reusing", ac.serial,
               ac.issued && ac.why_issued ? ac.why_issued : "still valid", ac.ca_path, when);
    }
    rq_autocert_free(&ac);
    return ctx;
}

enum build_kind { B_START, B_RELOAD, B_RENEW };

struct build {
    enum build_kind kind;
    const struct rq_gen *prev; /* the running generation (NULL at start) */
    const char *data_dir;
    int64_t now;
    int n_shards;
    int replaced; /* certificates that changed */
    char *err;
    size_t errlen;
};

static int port_tls(struct build *b, const struct rq_port_cfg *pc, const struct rq_port_rt *prev,
                    struct rq_port_rt *rt)
{
    struct rq_tls_ctx *ctx;
    if (pc->tls.mode == RQ_TLS_MANUAL) {
        ctx = build_tls(pc, prev, &rt->tls_print, b->err, b->errlen);
    } else if (b->kind == B_RENEW && b->now < prev->renew_at) {
        ctx = atomic_load(&prev->tls); /* not due: the same certificate */
        rq_tls_ctx_ref(ctx);
        rt->tls_print = prev->tls_print;
        rt->renew_at = prev->renew_at;
    } else {
        ctx = build_auto(pc, b->data_dir, prev, rt, b->kind == B_RELOAD, b->err, b->errlen);
        if (!ctx && b->kind == B_RENEW) {
            rq_log(RQ_LOG_ERROR, NULL, "renewal failed, keeping the current certificate (retry "
                   "in a minute): %s", b->err);
            ctx = atomic_load(&prev->tls);
            rq_tls_ctx_ref(ctx);
            rt->tls_print = prev->tls_print;
            rt->renew_at = b->now + 60;
        }
    }
    if (!ctx) {
        if (b->kind == B_RELOAD) {
            char why[600];
            snprintf(why, sizeof why, "%s", b->err);
            snprintf(b->err, b->errlen, "new certificate refused, keeping the old one: %s", why);
        }
        return -1;
    }
    atomic_store(&rt->tls, ctx);
    if (prev && atomic_load(&prev->tls) != ctx) {
        b->replaced++;
        if (pc->tls.mode == RQ_TLS_MANUAL)
            rq_log(RQ_LOG_INFO, NULL, "reload: port %u now serves the certificate from Secret %s",
                   pc->port, pc->tls.secret_name);
    }
    return 0;
}

static int build_port(struct build *b, const struct rq_config *cfg, const struct rq_port_cfg *pc,
                      const struct rq_port_rt *prev, struct rq_port_rt *rt)
{
    rt->cfg = pc;
    rt->websocket = pc->protocol == RQ_PROTO_WEBSOCKETS;
    rt->max_frame = cfg->max_packet_size;
    if (pc->tls.mode != RQ_TLS_NONE && port_tls(b, pc, prev, rt) != 0)
        return -1;
    if (pc->authn) {
        char why[500];
        rt->authn = rq_authn_glue_build(pc->authn, why, sizeof why);
        if (!rt->authn) {
            snprintf(b->err, b->errlen, "port %u: %s", pc->port, why);
            return -1;
        }
    }
    if (pc->authz) { /* compiled once per generation; each client's sets at its CONNECT */
        char why[500];
        rt->authz = rq_authz_compile(pc->authz, why, sizeof why);
        if (!rt->authz) {
            snprintf(b->err, b->errlen, "port %u: %s", pc->port, why);
            return -1;
        }
        if (b->kind != B_RENEW)
            rq_log(RQ_LOG_INFO, NULL, "port %u: authorization by BrokerAuthorization %s (%zu "
                   "rules%s)", pc->port, pc->authz->name, pc->authz->n_rules,
                   pc->authz->n_rules ? "" : ": every client is denied");
    }
    if (b->kind == B_START)
        rq_log(RQ_LOG_INFO, NULL, "listening on %s%s%s:%u (MQTT over %s%s, listener %s): %s%s",
               strchr(pc->bind_address, ':') ? "[" : "", pc->bind_address,
               strchr(pc->bind_address, ':') ? "]" : "", pc->port, rt->websocket ? "WebSocket" : "TCP",
               pc->tls.mode != RQ_TLS_NONE ? "+TLS" : "", pc->listener,
               pc->authn ? "authentication " : "authentication disabled on this port",
               pc->authn ? pc->authn->name : "");
    return 0;
}

/* ---- listening sockets (struct rq_listen, gen.h) ---- */

/* The listening sockets share their port through SO_REUSEPORT, which any process of the same
 * user may join too: a second broker started on a busy port would bind without error and take
 * half of its connections. Before the first sockets on a port are opened, a socket without
 * SO_REUSEPORT binds it: EADDRINUSE means another process listens there. */
static int open_listener(const struct rq_port_cfg *pc, bool probe, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, pc->bind_address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(pc->port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, pc->bind_address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(pc->port);
        sl = sizeof *a6;
    } else {
        snprintf(err, errlen, "bad bind address '%s'", pc->bind_address);
        return -EINVAL;
    }
    int one = 1;
    if (probe) {
        int pfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (pfd >= 0) {
            setsockopt(pfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            int r = bind(pfd, (struct sockaddr *)&ss, sl);
            int e = errno;
            close(pfd);
            if (r < 0 && e == EADDRINUSE) {
                snprintf(err, errlen, "cannot listen on %s:%u: in use by another process",
                         pc->bind_address, pc->port);
                return -EADDRINUSE;
            }
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    /* accepted sockets inherit it (Linux): no setsockopt per connection */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s:%u: %s", pc->bind_address, pc->port,
                 strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

static void listen_unref(struct rq_listen *l)
{
    if (!l || --l->refs > 0)
        return;
    for (int i = 0; i < l->n; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    free(l->fds);
    free(l->armed);
    free(l);
}

/* n sockets for pc (one per shard), or NULL with err set and none left open. probe: this
 * broker holds no other socket on the port (see open_listener). */
static struct rq_listen *listen_open(const struct rq_port_cfg *pc, int n, bool probe, char *err,
                                     size_t errlen)
{
    static uint32_t next_id; /* control thread only */
    struct rq_listen *l = calloc(1, sizeof *l);
    if (l) {
        l->fds = malloc((size_t)n * sizeof *l->fds);
        l->armed = calloc((size_t)n, sizeof *l->armed);
    }
    if (!l || !l->fds || !l->armed) {
        if (l) {
            free(l->fds);
            free(l->armed);
        }
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->id = ++next_id;
    l->refs = 1;
    l->n = n;
    for (int i = 0; i < n; i++)
        l->fds[i] = -1;
    for (int i = 0; i < n; i++) {
        if ((l->fds[i] = open_listener(pc, probe && i == 0, err, errlen)) < 0) {
            l->fds[i] = -1;
            listen_unref(l);
            return NULL;
        }
    }
    return l;
}

/* Whether next can keep run's sockets (and its connected clients): the same socket and the same
 * kind of port. A port whose certificate or authentication changed keeps them, also when its
 * authenticationRef names another BrokerAuthentication or was added or removed: new CONNECTs
 * get the new chain, connected clients keep their session (each connection holds the
 * generation it connected under). */
static bool same_listener(const struct rq_port_cfg *run, const struct rq_port_cfg *next)
{
    return run->port == next->port && strcmp(run->bind_address, next->bind_address) == 0 &&
           run->protocol == next->protocol && run->tls.mode == next->tls.mode;
}

static void snap_unref(struct rq_gen_snap *sn)
{
    if (!sn || --sn->refs > 0)
        return;
    if (sn->owned)
        rq_config_free(sn->cfg);
    free(sn);
}

void rq_ports_gen_free(struct rq_gen *g)
{
    if (!g)
        return;
    for (size_t i = 0; g->ports && i < g->n_ports; i++) {
        rq_tls_ctx_unref(atomic_load(&g->ports[i].tls));
        rq_authn_chain_free(g->ports[i].authn);
        rq_authz_free(g->ports[i].authz);
    }
    for (size_t i = 0; g->lis && i < g->n_ports; i++)
        listen_unref(g->lis[i]);
    free(g->lis);
    free(g->kick);
    free(g->ports);
    snap_unref(g->snap);
    free(g);
}

/* A generation of n listeners from snap: listener i is configured by pcs[i], follows prevs[i]
 * (its running self, or NULL when new) and listens on lis[i] (a reference each, taken: on
 * failure too, like the snapshot's). NULL with b->err set. */
static struct rq_gen *build(struct build *b, struct rq_gen_snap *sn,
                            const struct rq_port_cfg *const *pcs,
                            const struct rq_port_rt *const *prevs, struct rq_listen **lis,
                            size_t n)
{
    struct rq_gen *g = calloc(1, sizeof *g);
    if (!g) {
        snap_unref(sn);
        for (size_t i = 0; i < n; i++)
            listen_unref(lis[i]);
        snprintf(b->err, b->errlen, "out of memory");
        return NULL;
    }
    g->snap = sn;
    g->n_ports = n;
    g->serial = b->prev ? b->prev->serial + 1 : 1;
    g->n_shards = b->n_shards;
    atomic_init(&g->pins, 0);
    g->ports = calloc(n ? n : 1, sizeof *g->ports);
    g->lis = calloc(n ? n : 1, sizeof *g->lis);
    g->kick = calloc(n ? n : 1, sizeof *g->kick);
    if (g->lis)
        memcpy(g->lis, lis, n * sizeof *lis);
    else
        for (size_t i = 0; i < n; i++)
            listen_unref(lis[i]);
    if (!g->ports || !g->lis || !g->kick) {
        snprintf(b->err, b->errlen, "out of memory");
        rq_ports_gen_free(g);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (prevs[i]) /* a kept port's kick stays in force (see struct rq_port_kick) */
            g->kick[i] = b->prev->kick[prevs[i] - b->prev->ports];
        if (build_port(b, sn->cfg, pcs[i], prevs[i], &g->ports[i]) != 0) {
            rq_ports_gen_free(g);
            return NULL;
        }
    }
    return g;
}

/* Arrays for a generation of n ports. */
struct plan {
    const struct rq_port_cfg **pcs;
    const struct rq_port_rt **prevs;
    struct rq_listen **lis;
};

static int plan_new(struct plan *p, size_t n)
{
    p->pcs = calloc(n ? n : 1, sizeof *p->pcs);
    p->prevs = calloc(n ? n : 1, sizeof *p->prevs);
    p->lis = calloc(n ? n : 1, sizeof *p->lis);
    return p->pcs && p->prevs && p->lis ? 0 : -1;
}

static void plan_free(struct plan *p)
{
    free(p->pcs);
    free(p->prevs);
    free(p->lis);
}

struct rq_gen *rq_ports_first(struct rq_config *cfg, const char *data_dir, int n_shards,
                              char *err, size_t errlen)
{
    struct rq_gen_snap *sn = calloc(1, sizeof *sn);
    struct plan p = {0};
    if (!sn || plan_new(&p, cfg->n_ports) != 0) {
        free(sn);
        plan_free(&p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *sn = (struct rq_gen_snap){.refs = 1, .cfg = cfg, .owned = false};
    for (size_t i = 0; i < cfg->n_ports; i++) {
        p.pcs[i] = &cfg->ports[i];
        bool probe = true;
        for (size_t j = 0; j < i; j++)
            probe = probe && cfg->ports[j].port != cfg->ports[i].port;
        if (!(p.lis[i] = listen_open(&cfg->ports[i], n_shards, probe, err, errlen))) {
            for (size_t j = 0; j < i; j++)
                listen_unref(p.lis[j]);
            plan_free(&p);
            snap_unref(sn);
            return NULL;
        }
    }
    struct build b = {.kind = B_START, .data_dir = data_dir, .n_shards = n_shards, .err = err,
                      .errlen = errlen};
    struct rq_gen *g = build(&b, sn, p.pcs, p.prevs, p.lis, cfg->n_ports);
    plan_free(&p);
    return g;
}

const struct rq_config *rq_ports_gen_config(const struct rq_gen *g)
{
    return g->snap->cfg;
}

static void log_port(const char *what, const struct rq_port_cfg *pc)
{
    bool v6 = strchr(pc->bind_address, ':') != NULL;
    rq_log(RQ_LOG_INFO, NULL, "reload: port %s%s%s:%u (MQTT over %s%s, listener %s, "
           "authentication %s) %s", v6 ? "[" : "", pc->bind_address, v6 ? "]" : "", pc->port,
           pc->protocol == RQ_PROTO_WEBSOCKETS ? "WebSocket" : "TCP",
           pc->tls.mode != RQ_TLS_NONE ? "+TLS" : "", pc->listener,
           pc->authn ? pc->authn->name : "disabled", what);
}

/* next's ports: each keeps the running sockets of the same listener (prevs[j] = the running
 * port), else gets new ones bound now on every shard. -1 with err set (a port that cannot be
 * bound) and every socket opened here closed: the reload then changes nothing. */
static int plan_reload(const struct rq_gen *cur, const struct rq_config *next, struct plan *p,
                       char *err, size_t errlen)
{
    bool *kept = calloc(cur->n_ports ? cur->n_ports : 1, sizeof *kept);
    if (!kept) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t j = 0; j < next->n_ports; j++) {
        const struct rq_port_cfg *pc = &next->ports[j];
        p->pcs[j] = pc;
        for (size_t i = 0; i < cur->n_ports && !p->lis[j]; i++) {
            if (kept[i] || !same_listener(cur->ports[i].cfg, pc))
                continue;
            kept[i] = true;
            p->prevs[j] = &cur->ports[i];
            p->lis[j] = cur->lis[i];
            p->lis[j]->refs++;
        }
        if (p->lis[j])
            continue;
        char why[300];
        bool probe = true; /* not when this broker listens on the port number already */
        for (size_t i = 0; i < cur->n_ports; i++)
            probe = probe && cur->ports[i].cfg->port != pc->port;
        for (size_t k = 0; k < j; k++)
            probe = probe && next->ports[k].port != pc->port;
        if (!(p->lis[j] = listen_open(pc, cur->n_shards, probe, why, sizeof why))) {
            snprintf(err, errlen, "port %u: %s", pc->port, why);
            for (size_t k = 0; k < j; k++)
                listen_unref(p->lis[k]);
            free(kept);
            return -1;
        }
    }
    for (size_t j = 0; j < next->n_ports; j++) {
        if (!p->prevs[j])
            log_port("added: listening on every shard", &next->ports[j]);
        else if (strcmp(p->prevs[j]->cfg->authn_name, next->ports[j].authn_name) != 0)
            log_port("kept: its authentication changed (new CONNECTs; connected clients stay)",
                     &next->ports[j]);
    }
    for (size_t i = 0; i < cur->n_ports; i++)
        if (!kept[i])
            log_port("removed: closed on every shard, its clients disconnected",
                     cur->ports[i].cfg);
    free(kept);
    return 0;
}

struct rq_gen *rq_ports_reload(const struct rq_gen *cur, struct rq_config *next,
                               const char *data_dir, int *replaced, char *err, size_t errlen)
{
    *replaced = 0;
    struct rq_gen_snap *sn = calloc(1, sizeof *sn);
    struct plan p = {0};
    if (!sn || plan_new(&p, next->n_ports) != 0) {
        free(sn);
        plan_free(&p);
        rq_config_free(next);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *sn = (struct rq_gen_snap){.refs = 1, .cfg = next, .owned = true};
    if (plan_reload(cur, next, &p, err, errlen) != 0) {
        plan_free(&p);
        snap_unref(sn);
        return NULL;
    }
    struct build b = {.kind = B_RELOAD, .prev = cur, .data_dir = data_dir,
                      .n_shards = cur->n_shards, .err = err, .errlen = errlen};
    struct rq_gen *g = build(&b, sn, p.pcs, p.prevs, p.lis, next->n_ports);
    /* As AIO does: a kept port whose BrokerAuthorization changed disconnects its clients (v5:
     * DISCONNECT 0x87 with a reason string); they reconnect under the new rules. */
    for (size_t j = 0; g && j < next->n_ports; j++)
        if (p.prevs[j] && !rq_authz_cfg_same(p.prevs[j]->cfg->authz, p.pcs[j]->authz))
            rq_ports_kick(g, j, RQ_RC_NOT_AUTHORIZED, "the authorization policy of this port "
                                                      "changed");
    plan_free(&p);
    *replaced = b.replaced;
    return g;
}

void rq_ports_kick(struct rq_gen *g, size_t i, uint8_t rc, const char *why)
{
    g->kick[i].after = g->serial;
    g->kick[i].rc = rc;
    snprintf(g->kick[i].why, sizeof g->kick[i].why, "%s", why);
    rq_log(RQ_LOG_INFO, NULL, "reload: port %u: its connected clients are disconnected (%s)",
           g->ports[i].cfg->port, why);
}

struct rq_gen *rq_ports_renew(const struct rq_gen *cur, const char *data_dir, int64_t now)
{
    bool due = false;
    for (size_t i = 0; i < cur->n_ports; i++)
        due |= cur->ports[i].cfg->tls.mode == RQ_TLS_AUTOMATIC && now >= cur->ports[i].renew_at;
    if (!due)
        return NULL;
    struct plan p = {0};
    if (plan_new(&p, cur->n_ports) != 0) {
        plan_free(&p);
        return NULL;
    }
    for (size_t i = 0; i < cur->n_ports; i++) {
        p.pcs[i] = cur->ports[i].cfg;
        p.prevs[i] = &cur->ports[i];
        p.lis[i] = cur->lis[i];
        p.lis[i]->refs++;
    }
    char err[500];
    struct build b = {.kind = B_RENEW, .prev = cur, .data_dir = data_dir, .now = now,
                      .n_shards = cur->n_shards, .err = err, .errlen = sizeof err};
    cur->snap->refs++;
    struct rq_gen *g = build(&b, cur->snap, p.pcs, p.prevs, p.lis, cur->n_ports);
    plan_free(&p);
    if (!g)
        rq_log(RQ_LOG_ERROR, NULL, "renewal: %s", err);
    return g;
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

static bool yaml_name(const char *n)
{
    size_t l = strlen(n);
    return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) || (l > 4 && strcmp(n + l - 4, ".yml") == 0);
}

/* yaml_only: the configuration directory, where only *.yaml / *.yml count (what the loader
 * reads): a log file or anything else written there must not look like a change. */
static uint64_t print_dir(uint64_t h, const char *dir, bool yaml_only)
{
    DIR *d = opendir(dir);
    if (!d)
        return print_path(h, dir);
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || e->d_name[1] == '.'))
            continue;
        if (yaml_only && (e->d_name[0] == '.' || !yaml_name(e->d_name)))
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
    uint64_t h = print_dir(1469598103934665603ULL, cfg->source, true);
    for (size_t i = 0; i < cfg->n_objects; i++)
        if (cfg->objects[i].mounted && cfg->objects[i].origin)
            h = print_dir(h, cfg->objects[i].origin, false);
    return h;
}
