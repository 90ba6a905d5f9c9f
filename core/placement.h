/* Connection placement: a connected publisher whose messages all go to the subscribers of one
 * other shard moves there, with its session, so that its messages stop crossing shards (each
 * crossing wakes a second thread: at moderate rates that wake-up costs more than the MQTT work,
 * bench/README.md). docs/design-placement.md has the design; version 1 moves only clients whose
 * session has no subscription, nothing queued and nothing in flight toward the client.
 *
 * The rule, per client, on its own shard: messages are counted in windows (RQ_PLACE_WINDOW
 * messages, or RQ_PLACE_MIN_MS with at least RQ_PLACE_MIN_MSGS; a window longer than
 * RQ_PLACE_MAX_MS is dropped: a client that slow is not worth a move). A window chooses shard T
 * when at least placement.minSharePercent of its messages went to subscribers on T and on no
 * other shard. Two consecutive windows choosing the same T move the client, unless it moved
 * less than minResidentSeconds ago, the shard has made maxMovesPerSecond moves this second, T
 * is busier than maxTargetBusyPercent, T is behind with the messages posted to it, or this
 * shard is throttled (backpressure). */
#ifndef RQ_PLACEMENT_H
#define RQ_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/broker.h"

#define RQ_PLACE_WINDOW 256
#define RQ_PLACE_MIN_MS 500
#define RQ_PLACE_MIN_MSGS 8
#define RQ_PLACE_MAX_MS 5000

/* The window rule alone (pure): counts one routed message that went to `where` (another
 * shard's id, RQ_ROUTE_HERE or RQ_ROUTE_SPREAD) at now_ms. Returns the shard the client should
 * move to when this message closed the second consecutive window choosing it and the client has
 * been where it is for min_resident_ms, else -1. */
int rq_place_count(struct rq_client *c, int where, uint64_t now_ms, uint32_t min_share_pct,
                   uint32_t min_resident_ms);

/* After the client's PUBLISH was routed (w->route_shard): counts it and, when the rule and the
 * shard's limits say so, sets c->move_to (the caller stops parsing after this packet). */
void rq_place_after_route(struct rq_client *c);

/* Whether c can move now (version 1): connected, not closing, no re-authentication pending,
 * its session without subscriptions, queue or messages in flight toward it. */
bool rq_place_eligible(const struct rq_client *c);

/* The moving client's shard, just before it hands the client over: under reg_lock, checks the
 * registry still holds its session (a clean-start CONNECT elsewhere may have replaced it: then
 * its END_SESSION is on the way here, and false is returned: the caller closes the client), and
 * gives the session an id of the target shard, marked moving; then takes it out of this shard's
 * session map. */
bool rq_place_session_leave(struct rq_session *s, int target);

/* The target shard: the session arrived with its client c (bound, s->client == c); it enters
 * this shard's session map and stops being `moving`. Returns false when it could not (out of
 * memory): the caller ends it. */
bool rq_place_session_arrive(struct rq_worker *w, struct rq_session *s);

/* Shutdown, every worker gone: a moving session that no shard will take is freed (its will is
 * not published: nothing routes any more). */
void rq_place_session_drop(struct rq_broker *b, struct rq_session *s);

#endif
