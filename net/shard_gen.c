/* A shard following the runtime generations (net/gen.h): the listening sockets of the ports a
 * reload adds or removes, and the clients a reload disconnects. The loop (shard.c) calls
 * rq_shard_gen_follow at its quiescent point. */
#include <sys/socket.h>
#include <unistd.h>

#include "auth/authz.h"
#include "core/access.h"
#include "net/gen.h"
#include "net/ports.h"
#include "net/shard_int.h"

/* This shard's socket of l: shut down (ends its multishot accept) and closed for good. */
void rq_shard_listener_close(struct rq_shard *s, struct rq_listen *l)
{
    int fd = l->fds[s->id];
    if (fd < 0)
        return;
    shutdown(fd, SHUT_RDWR);
    close(fd);
    l->fds[s->id] = -1;
}

static bool gen_has(const struct rq_gen *g, const struct rq_listen *l)
{
    for (size_t i = 0; i < g->n_ports; i++)
        if (g->lis[i] == l)
            return true;
    return false;
}

/* Whether generation g closes a connection of port pi accepted under cg: 0 (it stays), else
 * the reason code, *why the reason: its listener is gone (0x8B Server shutting down), or a
 * reload disconnects the port's clients (struct rq_port_kick). */
/* Index in g of the port whose listener accepted a connection of port pi under cg (g->n_ports:
 * g no longer has it). */
static size_t port_in(const struct rq_gen *g, const struct rq_gen *cg, uint32_t pi)
{
    size_t j = 0;
    while (j < g->n_ports && g->lis[j] != cg->lis[pi])
        j++;
    return j;
}

static uint8_t port_verdict(const struct rq_gen *g, const struct rq_gen *cg, uint32_t pi,
                            const char **why)
{
    if (cg->serial > g->serial)
        return 0; /* handed over from a shard a turn ahead: this one judges it at its next turn */
    size_t j = port_in(g, cg, pi);
    if (j == g->n_ports) {
        *why = "its listener port was removed by a configuration reload";
        return RQ_RC_SERVER_SHUTTING_DOWN;
    }
    if (cg->serial >= g->kick[j].after)
        return 0;
    *why = g->kick[j].why;
    return g->kick[j].rc;
}

/* The will check of a client a reload disconnects for a changed policy: the new rules of
 * its port (ctx: the rq_authz; NULL: the port has none now, everything is allowed). */
static bool will_allowed_now(void *ctx, const struct rq_principal *p, const uint8_t *cid,
                             size_t cid_len, const uint8_t *topic, size_t len)
{
    const struct rq_authz *z = ctx;
    if (!z)
        return true;
    struct rq_access *a = NULL;
    char why[200];
    bool ok = rq_authz_client(z, p, cid, cid_len, &a, why, sizeof why) == RQ_AUTHZ_OK && a &&
              a->ops->publish(a, topic, len);
    rq_access_free(a);
    return ok;
}

bool rq_shard_port_closed(struct rq_shard *s, const struct rq_gen *cg, uint32_t pi)
{
    const char *why;
    return port_verdict(s->gen, cg, pi, &why) != 0;
}

/* A new runtime generation ng (the old one, s->gen, still alive: this shard has not passed
 * the quiescent point yet). Ports ng no longer has are closed here and their clients
 * disconnected (v5: DISCONNECT 0x8B Server shutting down), as are the clients of a port ng
 * kicks; ports it adds are armed by the loop; new connections take ng's limits. */
void rq_shard_gen_follow(struct rq_shard *s, struct rq_gen *ng)
{
    struct rq_gen *old = s->gen;
    bool dropped = false;
    for (size_t j = 0; j < ng->n_ports; j++)
        dropped |= ng->kick[j].after > old->serial; /* a kick this shard has not applied */
    for (size_t i = 0; i < old->n_ports; i++) {
        if (!gen_has(ng, old->lis[i])) {
            rq_shard_listener_close(s, old->lis[i]);
            dropped = true;
        }
    }
    s->gen = ng;
    s->w->cfg = rq_ports_gen_config(ng);
    for (uint32_t i = 0; dropped && i < s->n_slots; i++) {
        struct conn *c = s->slots[i];
        if (c && c->state == C_OPEN && c->rt_gen)
            rq_shard_gen_recheck(s, c);
    }
}

void rq_shard_gen_recheck(struct rq_shard *s, struct conn *c)
{
    struct rq_gen *ng = s->gen;
    const char *why;
    uint8_t rc = port_verdict(ng, c->rt_gen, c->port_index, &why);
    if (rc == RQ_RC_NOT_AUTHORIZED) { /* its policy changed: the will meets the new one */
        size_t j = port_in(ng, c->rt_gen, c->port_index);
        void *z = j < ng->n_ports ? (void *)ng->ports[j].authz : NULL;
        rq_client_will_recheck(&c->cl, will_allowed_now, z);
    }
    if (rc)
        rq_client_close(&c->cl, -(int)rc, why);
}

