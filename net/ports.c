/* Port setup (see ports.h): which transport, which certificate, which authentication. */
#include "net/ports.h"

#include <stdio.h>
#include <string.h>

#include "auth/authn.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "net/authn_glue.h"
#include "net/tls.h"
#include "net/xport.h"

static const struct rq_authn_x509 *x509_settings(const struct rq_authn_cfg *a)
{
    for (size_t i = 0; a && i < a->n_methods; i++)
        if (a->methods[i].kind == RQ_AUTHN_X509)
            return &a->methods[i].x509;
    return NULL;
}

/* Trusted client CAs: every PEM under every key of the X509 method's ConfigMap. */
static int client_cas(const struct rq_authn_x509 *x, struct rq_buf *out)
{
    const struct rq_config_object *o = x->trusted_ca_obj;
    for (size_t i = 0; o && i < o->n_entries; i++)
        if (memmem(o->entries[i].value, o->entries[i].len, "-----BEGIN", 10) &&
            (rq_buf_append(out, o->entries[i].value, o->entries[i].len) != 0 ||
             rq_buf_append(out, "\n", 1) != 0))
            return -1;
    return 0;
}

static int setup_tls(const struct rq_port_cfg *pc, struct rq_port_rt *rt, char *err,
                     size_t errlen)
{
    if (pc->tls.mode == RQ_TLS_AUTOMATIC) {
        snprintf(err, errlen, "port %u: tls mode Automatic is not built yet; use mode Manual "
                 "with a kubernetes.io/tls Secret", pc->port);
        return -1;
    }
    const struct rq_config_entry *crt = rq_config_object_get(pc->tls.secret, "tls.crt");
    const struct rq_config_entry *key = rq_config_object_get(pc->tls.secret, "tls.key");
    if (!crt || !key) {
        snprintf(err, errlen, "port %u: Secret %s needs tls.crt and tls.key", pc->port,
                 pc->tls.secret_name);
        return -1;
    }
    const struct rq_authn_x509 *x = x509_settings(pc->authn);
    struct rq_buf cas = {0};
    if (x && client_cas(x, &cas) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct rq_tls_ctx_opts o = {
        .cert_pem = (const uint8_t *)crt->value,
        .cert_len = crt->len,
        .key_pem = (const uint8_t *)key->value,
        .key_len = key->len,
        .ca_pem = x ? cas.data : NULL,
        .ca_len = cas.len,
        .require_client_cert = x && pc->authn->n_methods == 1,
    };
    char why[300];
    struct rq_tls_ctx *ctx = rq_tls_ctx_new(&o, why, sizeof why);
    rq_buf_free(&cas);
    if (!ctx) {
        snprintf(err, errlen, "port %u: Secret %s: %s", pc->port, pc->tls.secret_name, why);
        return -1;
    }
    atomic_store(&rt->tls, ctx);
    return 0;
}

int rq_ports_setup(const struct rq_config *cfg, struct rq_port_rt *ports, char *err,
                   size_t errlen)
{
    for (size_t i = 0; i < cfg->n_ports; i++) {
        const struct rq_port_cfg *pc = &cfg->ports[i];
        struct rq_port_rt *rt = &ports[i];
        rt->cfg = pc;
        rt->websocket = pc->protocol == RQ_PROTO_WEBSOCKETS;
        rt->max_frame = cfg->max_packet_size;
        if (pc->tls.mode != RQ_TLS_NONE && setup_tls(pc, rt, err, errlen) != 0)
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
