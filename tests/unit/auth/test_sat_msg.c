/* auth/sat_msg: relevance (v5 method exactly K8S-SAT, or a user name starting with K8S-SAT), the
 * token checks, the TokenReview body, the answers (success, the failure shape without
 * "authenticated", audiences, service account user names), annotations with the current and
 * legacy prefixes, and the JWT exp. */
#include "auth/sat_msg.h"
#include "tests/unit/check.h"

#include <stdlib.h>
#include <string.h>

static char *auds[] = {"aio-internal", "my-audience"};

static struct rq_authn_creds creds(uint8_t v, const char *user, const char *pw, const char *method,
                                   const char *data)
{
    return (struct rq_authn_creds){
        .version = v,
        .has_username = user != NULL,
        .username = (const uint8_t *)user,
        .username_len = user ? (uint32_t)strlen(user) : 0,
        .has_password = pw != NULL,
        .password = (const uint8_t *)pw,
        .password_len = pw ? (uint32_t)strlen(pw) : 0,
        .has_auth_method = method != NULL,
        .auth_method = (const uint8_t *)method,
        .auth_method_len = method ? (uint32_t)strlen(method) : 0,
        .auth_data = (const uint8_t *)data,
        .auth_data_len = data ? (uint32_t)strlen(data) : 0,
    };
}

static void test_relevance(void)
{
    const uint8_t *t;
    size_t n;
    struct rq_authn_creds c = creds(5, NULL, NULL, "K8S-SAT", "tok");
    CHECK(rq_sat_relevant(&c, &t, &n) && n == 3 && memcmp(t, "tok", 3) == 0);
    c = creds(5, NULL, NULL, "K8S-SATX", "tok");
    CHECK(!rq_sat_relevant(&c, &t, &n));
    c = creds(5, NULL, NULL, "k8s-sat", "tok");
    CHECK(!rq_sat_relevant(&c, &t, &n));
    c = creds(4, "K8S-SAT", "pw", NULL, NULL);
    CHECK(rq_sat_relevant(&c, &t, &n) && n == 2);
    c = creds(5, "K8S-SAT-edge", "pw", NULL, NULL);
    CHECK(rq_sat_relevant(&c, &t, &n) && n == 2);
    c = creds(4, "K8S-SAT", NULL, NULL, NULL);
    CHECK(rq_sat_relevant(&c, &t, &n) && t == NULL);
    CHECK(rq_sat_token_problem(t, n) != NULL);
    c = creds(4, "alice", "pw", NULL, NULL);
    CHECK(!rq_sat_relevant(&c, &t, &n));
    CHECK(rq_sat_token_problem((const uint8_t *)"a b", 3) != NULL);
    CHECK(rq_sat_token_problem((const uint8_t *)"a.b-c_d", 7) == NULL);
}

static void test_body(void)
{
    size_t len = 0;
    char *b = rq_sat_review_body((const uint8_t *)"t.o\"k", 5, auds, 2, &len);
    CHECK(b != NULL);
    if (b)
        CHECK_STR(b, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
                     "\"spec\":{\"token\":\"t.o\\\"k\",\"audiences\":[\"aio-internal\","
                     "\"my-audience\"]}}");
    free(b);
}

static void test_review(void)
{
    struct rq_sat_review r;
    const char *why = NULL;
    const char *ok = "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{"
                     "\"username\":\"system:serviceaccount:aio:client-a\"},\"audiences\":"
                     "[\"my-audience\"]}}";
    CHECK_EQ(rq_sat_parse_review(ok, strlen(ok), auds, 2, &r, &why), 0);
    CHECK(r.authenticated && r.audience_ok && r.service_account);
    CHECK_STR(r.ns, "aio");
    CHECK_STR(r.name, "client-a");
    const char *fail = "{\"kind\":\"TokenReview\",\"status\":{\"user\":{},\"error\":"
                       "\"[invalid bearer token, \\\"x\\\"]\"}}";
    CHECK_EQ(rq_sat_parse_review(fail, strlen(fail), auds, 2, &r, &why), 0);
    CHECK(!r.authenticated && !r.audience_ok && !r.service_account);
    CHECK_STR(r.error, "[invalid bearer token, \\x22x\\x22]");
    const char *other = "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"alice\"},"
                        "\"audiences\":[\"x\"]}}";
    CHECK_EQ(rq_sat_parse_review(other, strlen(other), auds, 2, &r, &why), 0);
    CHECK(r.authenticated && !r.audience_ok && !r.service_account);
    const char *bad_sa = "{\"status\":{\"authenticated\":true,\"user\":{\"username\":"
                         "\"system:serviceaccount:a:b:c\"}}}";
    CHECK_EQ(rq_sat_parse_review(bad_sa, strlen(bad_sa), auds, 2, &r, &why), 0);
    CHECK(!r.service_account);
    CHECK_EQ(rq_sat_parse_review("[]", 2, auds, 2, &r, &why), -1);
    CHECK_EQ(rq_sat_parse_review("{\"kind\":\"Status\"}", 17, auds, 2, &r, &why), -1);
    CHECK_EQ(rq_sat_parse_review("{}", 2, auds, 2, &r, &why), -1);
}

static void test_sa(void)
{
    const char *sa = "{\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"c\",\"annotations\":{"
                     "\"aio-broker-auth/group\":\"g1\",\"aio-mq-broker-auth/group\":\"old\","
                     "\"aio-mq-broker-auth/room\":\"5\",\"aio-broker-auth/\":\"empty\","
                     "\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}}}";
    struct rq_principal p = {0};
    const char *why = NULL;
    CHECK_EQ(rq_sat_parse_sa(sa, strlen(sa), &p, &why), 0);
    CHECK_EQ(p.n_attrs, 2);
    CHECK_STR(rq_principal_attr(&p, "group"), "g1");
    CHECK_STR(rq_principal_attr(&p, "room"), "5");
    rq_principal_clear(&p);
    const char *none = "{\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"c\"}}";
    CHECK_EQ(rq_sat_parse_sa(none, strlen(none), &p, &why), 0);
    CHECK_EQ(p.n_attrs, 0);
    CHECK_EQ(rq_sat_parse_sa("{\"kind\":\"Status\"}", 17, &p, &why), -1);
}

static void test_exp(void)
{
    /* {"alg":"none"} . {"exp":1796495139,"aud":["a"]} . sig (base64url, no padding) */
    const char *t = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3OTY0OTUxMzksImF1ZCI6WyJhIl19.c2ln";
    int64_t exp = 0;
    CHECK_EQ(rq_sat_jwt_exp((const uint8_t *)t, strlen(t), &exp), 0);
    CHECK_EQ(exp, 1796495139);
    CHECK_EQ(rq_sat_jwt_exp((const uint8_t *)"a.b", 3, &exp), -1);
    CHECK_EQ(rq_sat_jwt_exp((const uint8_t *)"a..c", 4, &exp), -1);
    const char *noexp = "eyJhbGciOiJub25lIn0.eyJhdWQiOlsiYSJdfQ.c2ln"; /* {"aud":["a"]} */
    CHECK_EQ(rq_sat_jwt_exp((const uint8_t *)noexp, strlen(noexp), &exp), -1);
}

int main(void)
{
    test_relevance();
    test_body();
    test_review();
    test_sa();
    test_exp();
    return check_exit("test_sat_msg");
}
