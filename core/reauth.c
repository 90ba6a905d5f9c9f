/* MQTT v5 re-authentication of a connected client (AIO-INTERFACES.md 5.2, MQTT 5.0 section
 * 4.12.1): an AUTH packet with reason 0x19 and the CONNECT's Authentication Method runs again
 * the method that authenticated the client (net runs it: ops->reauthenticate); its verdict,
 * now or later (rq_client_reauth_resume), is applied here:
 *   ALLOW  -> AUTH 0x00 naming the method; the principal is replaced whole (user name,
 *             attributes, expiry) and the credential-expiry timer re-armed (or cleared);
 *   RETRY  -> AUTH 0x18 Continue authentication (AIO's "try again later": the auth server could
 *             not decide); the connection keeps its principal and its old expiry;
 *   DENY   -> DISCONNECT with the method's reason (0x87 by default, and for the codes DISCONNECT
 *             cannot carry, e.g. 0x86) and close [MQTT-4.12.1-2].
 * Protocol errors, DISCONNECT 0x82: an AUTH from a client whose CONNECT had no Authentication
 * Method [MQTT-4.12.0-7], a reason other than 0x19 (the server never started an exchange the
 * client could continue with 0x18), another method than the CONNECT's [MQTT-4.12.1-1] (or none),
 * and an AUTH while a re-authentication is pending (one at a time: a client cannot queue
 * requests to the auth server). A method that cannot re-authenticate (X509) gives 0x8C.
 *
 * While a re-authentication is pending the client's packets go on being parsed and served: it
 * keeps publishing and receiving under its current principal. What this does not do: run
 * methods (net/authn_glue.c) or talk to auth servers (auth/). */
#include "config/config.h"
#include "core/broker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rq_client_keep_auth_method(struct rq_client *c, const struct rq_connect *k)
{
    free(c->auth_method);
    c->auth_method = NULL;
    c->auth_method_len = 0;
    if (c->version != 5 || !RQ_PROP_HAS(&k->props, RQ_PROP_AUTH_METHOD))
        return;
    const struct rq_str *m = &k->props.auth_method;
    if (m->len > UINT16_MAX) /* a UTF-8 string is at most 65535 bytes: cannot happen */
        return;
    c->auth_method = malloc(m->len ? m->len : 1);
    if (!c->auth_method) {
        rq_log(RQ_LOG_WARN, &c->log, "out of memory: this client cannot re-authenticate");
        return;
    }
    memcpy(c->auth_method, m->p, m->len);
    c->auth_method_len = (uint16_t)m->len;
}

static bool same_method(const struct rq_client *c, const struct rq_props *p)
{
    return RQ_PROP_HAS(p, RQ_PROP_AUTH_METHOD) && p->auth_method.len == c->auth_method_len &&
           memcmp(p->auth_method.p, c->auth_method, c->auth_method_len) == 0;
}

/* AUTH with `reason`, naming the CONNECT's method [MQTT-4.12.0-5], and an optional Reason
 * String (left out when the client's Maximum Packet Size needs it). */
static void send_auth(struct rq_client *c, uint8_t reason, const char *text)
{
    struct rq_props p = {0};
    p.present = RQ_PROP_BIT(RQ_PROP_AUTH_METHOD);
    p.auth_method = (struct rq_str){c->auth_method, c->auth_method_len};
    if (text) {
        p.present |= RQ_PROP_BIT(RQ_PROP_REASON_STRING);
        p.reason_string = (struct rq_str){(const uint8_t *)text, (uint32_t)strlen(text)};
    }
    size_t start = c->out.len;
    if (rq_codec_encode_reason(&c->out, 5, RQ_AUTH, reason, &p) != 0)
        return;
    if (!rq_client_fits(c, start)) {
        rq_props_drop_optional(&p);
        if (rq_codec_encode_reason(&c->out, 5, RQ_AUTH, reason, &p) != 0 ||
            !rq_client_fits(c, start)) {
            rq_client_close(c, 0, "AUTH larger than the client's Maximum Packet Size");
            return;
        }
    }
    rq_client_flush(c);
}

/* ALLOW: the new principal replaces the old one whole, its expiry the old expiry. */
static void reauth_allowed(struct rq_client *c, struct rq_auth_verdict *v)
{
    struct rq_principal *p = v->principal;
    v->principal = NULL;
    if (!p)
        p = calloc(1, sizeof *p);
    if (!p) {
        rq_client_close(c, -RQ_RC_SERVER_UNAVAILABLE, "out of memory re-authenticating");
        return;
    }
    if (!p->method)
        p->method = v->method;
    if (!p->chain_pos && c->principal)
        p->chain_pos = c->principal->chain_pos; /* a method that did not say: still that one */
    rq_principal_free(c->principal);
    c->principal = p;
    char user[128], what[320];
    rq_log(RQ_LOG_INFO, &c->log, "re-authenticated by %s as \"%s\": %s",
           v->method ? v->method : "?", rq_log_escape_str(user, sizeof user, p->username),
           rq_log_escape_str(what, sizeof what, v->why));
    rq_client_set_cred_expiry(c, p->expiry);
    rq_client_arm_timer(c);
    /* authorization follows the new principal: its Publish/Subscribe sets are rebuilt, and
     * subscriptions or a will they no longer cover go (a Connect no longer allowed closes) */
    if (rq_client_reauthorize(c) != 0)
        return;
    send_auth(c, RQ_RC_SUCCESS, NULL);
}

/* The DISCONNECT reason for a denied re-authentication: the method's when it is one a server
 * may send in DISCONNECT (MQTT 5.0 section 3.14.2.1), else 0x87 Not authorized (e.g. for 0x86
 * Bad user name or password or 0x8A Banned, which exist in CONNACK only). */
static uint8_t disconnect_reason(uint8_t rc)
{
    static const uint8_t ok[] = {0x80, 0x83, 0x87, 0x89, 0x8C, 0x97, 0x98, 0x9F};
    for (size_t i = 0; i < sizeof ok; i++)
        if (ok[i] == rc)
            return rc;
    return RQ_RC_NOT_AUTHORIZED;
}

static void reauth_apply(struct rq_client *c, struct rq_auth_verdict *v)
{
    char why[300];
    switch (v->result) {
    case RQ_AUTH_ALLOW:
        rq_stat_inc(RQ_ST_REAUTH_SUCCESS);
        reauth_allowed(c, v);
        return;
    case RQ_AUTH_RETRY:
        rq_stat_inc(RQ_ST_REAUTH_RETRY);
        /* debug: the cause is logged as a warning by the method, rate-limited (a client that
         * retries against a dead server must not flood the log) */
        rq_log(RQ_LOG_DEBUG, &c->log,
               "re-authentication undecided (%s: %s): AUTH 0x18, the "
               "connection keeps its credentials",
               v->method ? v->method : "no method", v->why);
        send_auth(c, RQ_RC_CONTINUE_AUTHENTICATION,
                  "the authentication service could not decide; try again later");
        return;
    default: /* DENY, or OFF: no method to run */
        rq_stat_inc(RQ_ST_REAUTH_FAILURE);
        snprintf(why, sizeof why, "re-authentication failed (%s): %s",
                 v->method ? v->method : "no method",
                 v->why[0] ? v->why : "no method can re-authenticate this client");
        rq_client_close(
            c, -(v->result == RQ_AUTH_DENY ? disconnect_reason(v->reason) : RQ_RC_BAD_AUTH_METHOD),
            why);
        return;
    }
}

/* The checks before anything runs: protocol errors close with 0x82. */
static int reauth_allowed_now(const struct rq_client *c, const struct rq_reason *r,
                              const char **why)
{
    if (!c->auth_method) {
        *why = "AUTH from a client that connected without an Authentication Method "
               "[MQTT-4.12.0-7]";
        return -RQ_RC_PROTOCOL_ERROR;
    }
    if (r->reason != RQ_RC_REAUTHENTICATE) {
        *why = "AUTH after CONNACK without reason 0x19 Re-authenticate (no authentication "
               "exchange is in progress) [MQTT-4.12.1]";
        return -RQ_RC_PROTOCOL_ERROR;
    }
    if (!same_method(c, &r->props)) {
        *why = "AUTH with another Authentication Method than the CONNECT's [MQTT-4.12.1-1]";
        return -RQ_RC_PROTOCOL_ERROR;
    }
    if (c->reauth_pending) {
        *why = "AUTH while a re-authentication is pending";
        return -RQ_RC_PROTOCOL_ERROR;
    }
    return 0;
}

/* The pool delivers an answer within the connect timeout or drops it (auth/pool.h,
 * deliver_timeout_ms): twice that long after the AUTH none will come any more, and the client
 * may start again instead of being refused forever. */
static void forget_lost_reauth(struct rq_client *c)
{
    uint64_t lost_after = 2 * (uint64_t)rq_client_cfg(c)->connect_timeout_ms;
    if (!c->reauth_pending || c->w->now - c->reauth_since < lost_after)
        return;
    rq_log(RQ_LOG_WARN, &c->log, "the answer to the previous re-authentication never came "
           "(dropped after %llu ms); this AUTH starts a new one", (unsigned long long)lost_after);
    c->reauth_pending = false;
}

int rq_client_on_auth(struct rq_client *c, const struct rq_reason *r, const char **why)
{
    forget_lost_reauth(c);
    int rc = reauth_allowed_now(c, r, why);
    if (rc != 0)
        return rc;
    struct rq_auth_verdict v = {0};
    if (c->principal && c->w->ops->reauthenticate) {
        c->w->ops->reauthenticate(c->w, c->conn, c->principal, r, &v);
    } else {
        v.result = RQ_AUTH_DENY;
        v.reason = RQ_RC_BAD_AUTH_METHOD;
        snprintf(v.why, sizeof v.why, "the client was not authenticated by a method");
    }
    if (v.result == RQ_AUTH_PENDING) {
        c->reauth_pending = true; /* input goes on being parsed meanwhile */
        c->reauth_since = c->w->now;
        rq_log(RQ_LOG_DEBUG, &c->log, "re-authentication pending (%s)",
               c->principal && c->principal->method ? c->principal->method : "?");
        return 0;
    }
    reauth_apply(c, &v);
    rq_principal_free(v.principal); /* taken on ALLOW */
    return 0;
}

bool rq_client_reauth_resume(struct rq_client *c, struct rq_auth_verdict *v)
{
    if (!c->reauth_pending || c->closing || !c->connected)
        return false;
    c->reauth_pending = false;
    reauth_apply(c, v);
    return true;
}
