/* The transport pipeline (see xport.h). Receive: TLS, then the WebSocket upgrade and frames.
 * Send: WebSocket framing, then TLS. Plain TCP has no rq_xport at all so that its bytes go from
 * the provided buffer to the codec without a copy. */
#include "net/xport.h"

#include <stdlib.h>

#include "net/tls.h"
#include "net/ws.h"

struct rq_xport {
    struct rq_tls *tls;
    bool websocket;
    bool upgraded;
    struct rq_ws_rx rx;
    struct rq_buf head;   /* WebSocket: the HTTP request head until it is complete */
    struct rq_buf plain;  /* WebSocket over TLS: decrypted bytes before unframing */
    struct rq_buf ctl;    /* WebSocket replies (101, pongs, close) before TLS */
    struct rq_buf framed; /* WebSocket over TLS: framed output before TLS */
    struct rq_buf wire;   /* see rq_xport_wire */
    struct rq_buf raw;    /* see rq_xport_raw */
};

struct rq_buf *rq_xport_wire(struct rq_xport *x)
{
    return &x->wire;
}

struct rq_buf *rq_xport_raw(struct rq_xport *x)
{
    return &x->raw;
}

struct rq_xport *rq_xport_new(struct rq_port_rt *port, bool *failed)
{
    *failed = false;
    struct rq_tls_ctx *ctx = atomic_load(&port->tls);
    if (!ctx && !port->websocket)
        return NULL;
    struct rq_xport *x = calloc(1, sizeof *x);
    if (!x)
        goto fail;
    x->websocket = port->websocket;
    rq_ws_rx_init(&x->rx, port->max_frame + 8u); /* + the fixed header of a maximal packet */
    if (ctx) {
        x->tls = rq_tls_new(ctx);
        if (!x->tls)
            goto fail;
    }
    return x;
fail:
    free(x);
    *failed = true;
    return NULL;
}

void rq_xport_free(struct rq_xport *x)
{
    if (!x)
        return;
    rq_tls_free(x->tls);
    rq_buf_free(&x->head);
    rq_buf_free(&x->plain);
    rq_buf_free(&x->ctl);
    rq_buf_free(&x->framed);
    rq_buf_free(&x->wire);
    rq_buf_free(&x->raw);
    free(x);
}

/* Puts plaintext WebSocket output on the wire (through TLS when there is TLS). */
static int emit(struct rq_xport *x, struct rq_buf *src, struct rq_buf *wire, const char **why)
{
    if (!src->len)
        return 0;
    int rc = x->tls ? rq_tls_tx(x->tls, src->data, src->len, wire, why)
                    : rq_buf_append(wire, src->data, src->len);
    if (rc && !x->tls)
        *why = "out of memory";
    rq_buf_reset(src);
    return rc ? -1 : 0;
}

static int ws_frames(struct rq_xport *x, const uint8_t *p, size_t len, struct rq_buf *app,
                     const char **why)
{
    long rc = rq_ws_rx_feed(&x->rx, p, len, app, &x->ctl, why);
    if (rc == RQ_WS_CLOSED) {
        *why = "WebSocket closed by the client";
        return -2;
    }
    return rc < 0 ? -1 : 0;
}

static int ws_rx(struct rq_xport *x, const uint8_t *p, size_t len, struct rq_buf *app,
                 struct rq_buf *wire, const char **why)
{
    int rc = 0;
    if (!x->upgraded) {
        if (rq_buf_append(&x->head, p, len) != 0) {
            *why = "out of memory";
            return -1;
        }
        size_t used = 0;
        int hs = rq_ws_handshake(x->head.data, x->head.len, &x->ctl, &used, why);
        if (hs == RQ_WS_INCOMPLETE)
            return 0;
        if (hs < 0) {
            emit(x, &x->ctl, wire, why);
            return -1;
        }
        x->upgraded = true;
        if (used < x->head.len)
            rc = ws_frames(x, x->head.data + used, x->head.len - used, app, why);
        rq_buf_free(&x->head);
    } else {
        rc = ws_frames(x, p, len, app, why);
    }
    const char *ewhy = NULL;
    if (emit(x, &x->ctl, wire, &ewhy) != 0 && rc == 0) {
        *why = ewhy;
        return -1;
    }
    return rc;
}

int rq_xport_rx(struct rq_xport *x, const uint8_t *p, size_t len, struct rq_buf *app,
                struct rq_buf *wire, const char **why)
{
    if (!x->websocket)
        return rq_tls_rx(x->tls, p, len, app, wire, why);
    if (!x->tls)
        return ws_rx(x, p, len, app, wire, why);
    int trc = rq_tls_rx(x->tls, p, len, &x->plain, wire, why);
    if (trc != 0 && !x->plain.len)
        return trc;
    int rc = x->plain.len ? ws_rx(x, x->plain.data, x->plain.len, app, wire, why) : 0;
    rq_buf_reset(&x->plain);
    return rc ? rc : trc;
}

int rq_xport_tx(struct rq_xport *x, const uint8_t *p, size_t len, struct rq_buf *wire,
                const char **why)
{
    if (!x->websocket)
        return rq_tls_tx(x->tls, p, len, wire, why);
    /* one binary frame per flush */
    if (!x->tls) {
        if (rq_ws_wrap(wire, p, len) != 0) {
            *why = "out of memory";
            return -1;
        }
        return 0;
    }
    if (rq_ws_wrap(&x->framed, p, len) != 0) {
        *why = "out of memory";
        return -1;
    }
    return emit(x, &x->framed, wire, why);
}

struct rq_tls *rq_xport_tls(struct rq_xport *x)
{
    return x ? x->tls : NULL;
}

bool rq_xport_ready(const struct rq_xport *x)
{
    return (!x->tls || rq_tls_established(x->tls)) && (!x->websocket || x->upgraded);
}

const char *rq_xport_name(const struct rq_xport *x)
{
    if (x->websocket)
        return x->tls ? "WebSocket+TLS" : "WebSocket";
    return "TLS";
}
