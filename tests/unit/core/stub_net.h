/* The stub "net" side shared by core unit tests that drive real clients on one real worker
 * (test_authz_hooks, test_connect_states, test_reauth): net callbacks that only count closes,
 * the limits those tests run with, and a one-shard broker with its worker. Each test adds its
 * own auth hooks to its struct rq_worker_ops. */
#ifndef RQ_TEST_STUB_NET_H
#define RQ_TEST_STUB_NET_H

#include "config/config.h"
#include "core/broker_int.h"

#include <stdbool.h>

/* want_close calls; a test resets it before the calls it counts. */
extern int stub_close_calls;

void stub_flush(struct rq_worker *w, void *conn);
void stub_close(struct rq_worker *w, void *conn);
bool stub_post(struct rq_worker *from, int shard, const struct rq_post *p);

/* cfg zeroed, then the limits these tests share (a test sets any other field after). */
void stub_config(struct rq_config *cfg);

/* A one-shard broker on cfg (kept by pointer: it must outlive the worker) and its worker, whose
 * clock agrees with its timer wheel; NULL on failure. */
struct rq_worker *stub_worker_new(const struct rq_config *cfg, const struct rq_worker_ops *ops);

/* Shuts the worker down and frees it and its broker. */
void stub_worker_free(struct rq_worker *w);

#endif
