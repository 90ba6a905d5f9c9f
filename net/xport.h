/* Transport layers between the socket and the MQTT byte stream: none (plain TCP), TLS,
 * WebSocket, or WebSocket over TLS. The shard feeds received bytes in and gets MQTT bytes out;
 * it hands MQTT output in and gets wire bytes out. The MQTT layer never knows which it has.
 * One rq_xport per connection, used by its shard only. */
#ifndef RQ_XPORT_H
#define RQ_XPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct rq_tls_ctx;
struct rq_port_cfg;
struct rq_authn_chain;
struct rq_authz;

/* Runtime state of one configured port in one runtime generation (net/gen.h): read-only once
 * published, shared by all shards, alive while a connection accepted under it lives. A reload
 * publishes a new generation instead of changing this. */
struct rq_port_rt {
    const struct rq_port_cfg *cfg;
    _Atomic(struct rq_tls_ctx *) tls; /* NULL: plain TCP */
    bool websocket;
    uint32_t max_frame; /* WebSocket: largest frame/message accepted */
    struct rq_authn_chain *authn; /* NULL: authentication disabled on this port */
    struct rq_authz *authz;       /* NULL: no authorizationRef (everything allowed) */
    uint64_t tls_print; /* fingerprint of the certificate material the context was built from */
    int64_t renew_at;   /* tls mode Automatic: when to issue the next certificate (Unix s);
                           control thread only */
};

struct rq_xport;

/* NULL when the port is plain TCP (the shard's zero-copy path), else a new transport. *err set
 * on failure (out of memory). */
struct rq_xport *rq_xport_new(struct rq_port_rt *port, bool *failed);
void rq_xport_free(struct rq_xport *x);

/* Wire bytes in: MQTT bytes appended to app, replies (handshake records, HTTP upgrade response,
 * pongs) appended to wire. Returns 0, -2 when the peer closed in order (TLS close_notify,
 * WebSocket close), or -1 when the connection must close (*why). After -1,
 * wire may still hold a last reply worth sending (HTTP error, TLS alert, WebSocket close). */
int rq_xport_rx(struct rq_xport *x, const uint8_t *p, size_t len, struct rq_buf *app,
                struct rq_buf *wire, const char **why);
/* MQTT bytes out: wire bytes appended to wire. 0 or -1. */
int rq_xport_tx(struct rq_xport *x, const uint8_t *p, size_t len, struct rq_buf *wire,
                const char **why);
/* Buffers the connection keeps in its transport, so that a plain TCP connection has none:
 * wire = transport output waiting for the next send; raw = wire bytes received while the
 * connection is being handed to another shard. Freed with the transport.
 * Every byte the transport produces lands in wire at once (wolfSSL's send callback appends all
 * it is given; WebSocket frames and replies go straight there): the layers keep no output of
 * their own, so wire is the transport's whole backlog for the shard's output accounting. */
struct rq_buf *rq_xport_wire(struct rq_xport *x);
struct rq_buf *rq_xport_raw(struct rq_xport *x);
/* The TLS layer (for the authentication chain), or NULL. */
struct rq_tls *rq_xport_tls(struct rq_xport *x);
/* Ready for MQTT output (handshakes done). */
bool rq_xport_ready(const struct rq_xport *x);
const char *rq_xport_name(const struct rq_xport *x); /* "TLS", "WebSocket", "WebSocket+TLS" */

#endif
