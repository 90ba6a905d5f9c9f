/* $SYS publication on a worker (see stats_sys.h). */
#include "core/stats_sys.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker_int.h"

void rq_sys_apply(struct rq_worker *w, struct rq_sys_batch *b)
{
    for (size_t i = 0; b && i < b->n; i++) {
        const struct rq_sys_entry *e = &b->e[i];
        struct rq_str topic = {(const uint8_t *)e->topic, (uint32_t)strlen(e->topic)};
        struct rq_str value = {(const uint8_t *)e->value, (uint32_t)strlen(e->value)};
        /* origin 0: no session published it (No Local never applies); no expiry */
        struct rq_msg *m = rq_msg_new(topic, value, NULL, 0, true, 0, w->now, 0);
        if (!m)
            break;
        rq_retain_store(w, m);
        rq_route(w, m);
        rq_msg_unref(m);
    }
    free(b);
}
