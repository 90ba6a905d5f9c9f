/* ringbench reports: the per-trial line, the summary and the JSON file. Written by the main
 * thread only, after the numbers are final. */
#ifndef RB_REPORT_H
#define RB_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rb.h"

/* One trial: what the report and the JSON are made of. */
struct rb_trial {
    double target; /* publishes/s; 0 = closed loop */
    double dur;
    uint64_t sent, expected, recv, lost, late, reordered, gaps, bad, acked, ack_errors, blocked;
    uint32_t failed;
    double pub_rate, deliv_rate;
    uint64_t p50, p99, p999, max, nlat; /* ns */
    uint64_t max_lag_ns;
    double settle_s; /* waited before the trial for the broker to be idle */
    bool drained, ok;
    char why[128];
    /* resources over the trial */
    double broker_cpu_us, broker_cores;
    uint64_t rss_before_kb, rss_after_kb;
    double gen_cpu_pct, gen_thread_max_pct, machine_busy_pct;
};

/* One connect storm. */
struct rb_storm {
    uint32_t want, ready, failed;
    double secs, rate;
    uint64_t p50, p99, max;
    uint64_t rss0, rss1, cpu_us;
    double rss_per_conn;
    double gen_cpu_pct, gen_thread_max_pct, machine_busy_pct; /* while connecting */
};

const char *rb_pattern_name(enum rb_pattern p);
void rb_fmt_count(char *buf, size_t cap, double v); /* 1234567 -> "1.23M" */
void rb_describe(const struct rb_opts *o);           /* the line a run starts with (stderr) */
void rb_print_trial(const struct rb_opts *o, const char *name, const struct rb_trial *t);
void rb_summary(const struct rb_opts *o, const struct rb_trial *t, bool max_mode); /* stdout */
/* --json: the parameters, the result (trial `best`, or null when < 0) and every trial. */
void rb_write_json_trials(const struct rb_opts *o, const struct rb_trial *tr, uint32_t n, int best,
                          const char *err);
void rb_write_json_storm(const struct rb_opts *o, const struct rb_storm *s, const char *err);
/* --tls: what the handshakes negotiated, for the lines and JSON written after this call. */
void rb_report_tls(const struct rb_tls_info *info);
/* "TLS TLSv1.3 TLS_AES_256_GCM_SHA384 X25519" (or "TLS, no handshake completed"). */
const char *rb_tls_text(const struct rb_opts *o);

#endif
