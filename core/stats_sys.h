/* $SYS/broker/...: the values the control thread gathers (net/metrics_sys.c) travel to shard 0
 * as one RQ_POST_SYS, where they are published like a client's retained QoS 0 PUBLISH (stored
 * and routed), as mosquitto does. Subscriptions to '#' or '+/...' never match them
 * [MQTT-4.7.2-1]; clients may not publish under $SYS (client.c rq_topic_reserved). */
#ifndef RQ_STATS_SYS_H
#define RQ_STATS_SYS_H

#include <stddef.h>

struct rq_worker;

#define RQ_SYS_TOPIC_MAX 64
#define RQ_SYS_VALUE_MAX 64

struct rq_sys_entry {
    char topic[RQ_SYS_TOPIC_MAX];
    char value[RQ_SYS_VALUE_MAX];
};

struct rq_sys_batch {
    size_t n;
    struct rq_sys_entry e[];
};

/* Publishes every entry of b as a retained QoS 0 message, and frees b. Worker thread. */
void rq_sys_apply(struct rq_worker *w, struct rq_sys_batch *b);

#endif
