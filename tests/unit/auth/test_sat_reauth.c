/* auth/sat: a re-authentication is checked like a CONNECT, but an answer that says the API
 * could not be asked (0x88 Server unavailable, 0x89 Server busy) becomes NOT_RELEVANT (the glue
 * answers AUTH 0x18 and keeps the connection); other answers stay as they are. */
#include "auth/sat.h"
#include "tests/unit/check.h"

#include <string.h>

static void run(bool reauth, const char *token, int want_verdict, uint8_t want_reason)
{
    struct rq_authn_creds c = {
        .version = 5,
        .has_auth_method = true,
        .auth_method = (const uint8_t *)"K8S-SAT",
        .auth_method_len = 7,
        .auth_data = (const uint8_t *)token,
        .auth_data_len = (uint32_t)strlen(token),
        .now = 1800000000,
        .conn_id = 7,
    };
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    rq_sat_check(NULL, NULL, &c, 0, reauth, &o); /* no pool: the API cannot be asked */
    CHECK_EQ(o.verdict, want_verdict);
    CHECK_EQ(o.reason, want_reason);
    rq_authn_outcome_free(&o);
}

int main(void)
{
    run(false, "a.b.c", RQ_AUTHN_DENY, 0x88);
    run(true, "a.b.c", RQ_AUTHN_NOT_RELEVANT, 0x88);
    run(false, "bad token", RQ_AUTHN_DENY, 0x87); /* not a token: denied either way */
    run(true, "bad token", RQ_AUTHN_DENY, 0x87);
    struct rq_authn_outcome o;
    rq_authn_outcome_init(&o);
    o.verdict = RQ_AUTHN_DENY;
    o.reason = 0x89;
    rq_sat_reauth_outcome(&o);
    CHECK_EQ(o.verdict, RQ_AUTHN_NOT_RELEVANT);
    o.verdict = RQ_AUTHN_ALLOW;
    rq_sat_reauth_outcome(&o);
    CHECK_EQ(o.verdict, RQ_AUTHN_ALLOW);
    return check_exit("test_sat_reauth");
}
