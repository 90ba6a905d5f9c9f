/* Connection placement: the rule and the session's part of a move (core/placement.h). */
#include "core/placement.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "config/config.h"
#include "core/broker_int.h"

static void window_reset(struct rq_client *c, uint64_t now_ms)
{
    c->pl_n = 0;
    c->pl_hits = 0;
    c->pl_cand = 0xFF;
    c->pl_start = (uint32_t)now_ms;
}

int rq_place_count(struct rq_client *c, int where, uint64_t now_ms, uint32_t min_share_pct,
                   uint32_t min_resident_ms)
{
    uint32_t now = (uint32_t)now_ms, age = now - c->pl_start;
    if (c->pl_n == 0)
        c->pl_start = now, age = 0;
    if (age > RQ_PLACE_MAX_MS) { /* too slow to be worth a move: start again */
        c->pl_agreed = 0;
        window_reset(c, now_ms);
        age = 0;
    }
    if (c->pl_n == 0)
        c->pl_cand = 0xFF;
    c->pl_n++;
    if (where >= 0) {
        if (c->pl_cand == 0xFF)
            c->pl_cand = (uint8_t)where;
        c->pl_hits += c->pl_cand == (uint8_t)where;
    }
    if (c->pl_n < RQ_PLACE_WINDOW && (age < RQ_PLACE_MIN_MS || c->pl_n < RQ_PLACE_MIN_MSGS))
        return -1;
    /* the window is complete: does it choose a shard, the same as the last one did? */
    bool chooses = c->pl_cand != 0xFF && (uint32_t)c->pl_hits * 100 >= min_share_pct * c->pl_n;
    int target = -1;
    if (chooses && c->pl_agreed == c->pl_cand + 1 &&
        (c->pl_moved == 0 || now - c->pl_moved >= min_resident_ms))
        target = c->pl_cand;
    c->pl_agreed = chooses ? (uint8_t)(c->pl_cand + 1) : 0;
    window_reset(c, now_ms);
    return target;
}

bool rq_place_eligible(const struct rq_client *c)
{
    const struct rq_session *s = c->s;
    return c->phase == RQ_PH_CONNECTED && !c->closing && !c->reauth_pending && s &&
           !s->moving && s->n_subs == 0 && s->q_len == 0 && s->inf_count == 0;
}

/* The shard-wide limits of a move to target (the rule chose it). */
static bool shard_allows(struct rq_worker *w, const struct rq_config *cfg, int target)
{
    struct rq_broker *b = w->b;
    if (w->throttled || target == w->id || target >= b->n_shards)
        return false;
    if (atomic_load_explicit(&b->pending[target].n, memory_order_relaxed) > b->cfg->shard_backlog / 8)
        return false;
    if (atomic_load_explicit(&b->pending[target].busy_pct, memory_order_relaxed) >
        cfg->placement_max_busy_pct)
        return false;
    uint64_t sec = w->now / 1000;
    if (sec != w->place_sec) {
        w->place_sec = sec;
        w->place_count = 0;
    }
    if (w->place_count >= cfg->placement_max_moves)
        return false;
    w->place_count++;
    return true;
}

void rq_place_after_route(struct rq_client *c)
{
    struct rq_worker *w = c->w;
    const struct rq_config *cfg = w->cfg ? w->cfg : w->b->cfg;
    if (!cfg->placement_enabled || w->b->n_shards < 2 || !cfg->placement_max_moves)
        return;
    int target = rq_place_count(c, w->route_shard, w->now, cfg->placement_min_share_pct,
                                cfg->placement_min_resident_s * 1000u);
    if (target < 0 || !rq_place_eligible(c) || !shard_allows(w, cfg, target))
        return;
    c->move_to = (int8_t)target;
    c->pl_moved = (uint32_t)w->now ? (uint32_t)w->now : 1;
}

bool rq_place_session_leave(struct rq_session *s, int target)
{
    struct rq_worker *w = s->w;
    struct rq_broker *b = w->b;
    /* out of the map under the id it is filed by (only this thread touches the map) */
    rq_smap_del(w->sessions, s->id);
    pthread_mutex_lock(&b->reg_lock);
    bool ours = rq_reg_find(b->reg, (const uint8_t *)s->cid, s->cid_len) == s;
    if (ours) {
        uint64_t seq = atomic_fetch_add(&b->next_session, 1);
        s->id = (seq << RQ_SHARD_BITS) | (uint64_t)target;
        s->moving = true;
    }
    pthread_mutex_unlock(&b->reg_lock);
    if (!ours) {
        (void)rq_smap_put(w->sessions, s); /* back where it was: fits, one was just removed */
        return false;
    }
    if (s->will)
        s->will->origin = s->id; /* No Local: the will is this session's message */
    s->client = NULL;
    return true;
}

bool rq_place_session_arrive(struct rq_worker *w, struct rq_session *s)
{
    struct rq_broker *b = w->b;
    s->w = w;
    bool ok = rq_smap_put(w->sessions, s) == 0;
    pthread_mutex_lock(&b->reg_lock);
    s->moving = false;
    pthread_mutex_unlock(&b->reg_lock);
    return ok;
}

void rq_place_session_drop(struct rq_broker *b, struct rq_session *s)
{
    rq_msg_unref(s->will); /* not published: nothing routes any more */
    s->will = NULL;
    rq_session_free(b, s);
}
