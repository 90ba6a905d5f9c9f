/* auth/kube: which source is used (in-cluster only with its token file, kubeconfig current
 * context, overrides), IPv6 hosts in brackets, -data fields, errors that say where it looked. */
#include "auth/kube.h"
#include "auth/kube_int.h"
#include "config/config.h"
#include "tests/unit/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static struct rq_kube *resolve(struct rq_kube_cfg *ov, char *err)
{
    err[0] = '\0';
    return rq_kube_resolve(ov, err, 400);
}

static void test_in_cluster(void)
{
    struct rq_kube_cfg ov = {0};
    char err[400];
    snprintf(ov.in_cluster_dir, sizeof ov.in_cluster_dir, "%s/sa", dir);
    snprintf(ov.kubeconfig, sizeof ov.kubeconfig, "%s/missing", dir);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    /* no token file: the environment alone is not enough; the named kubeconfig is missing */
    CHECK(resolve(&ov, err) == NULL);
    CHECK(strstr(err, "missing") != NULL);
    char p[128];
    snprintf(p, sizeof p, "%s/sa", dir);
    mkdir(p, 0700);
    write_file("sa/token", "tok-1\n");
    struct rq_kube *k = resolve(&ov, err);
    CHECK(k != NULL);
    if (k) {
        CHECK_STR(rq_kube_server(k), "https://[fd00::1]:443");
        CHECK(strncmp(rq_kube_describe(k), "in-cluster", 10) == 0);
        CHECK_STR(k->token, "tok-1");
        rq_kube_release(k);
    }
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_kubeconfig(void)
{
    struct rq_kube_cfg ov = {0};
    char err[400];
    snprintf(ov.in_cluster_dir, sizeof ov.in_cluster_dir, "%s/none", dir);
    snprintf(ov.kubeconfig, sizeof ov.kubeconfig, "%s/kc", dir);
    /* "-----BEGIN X-----\n" in base64 */
    write_file("kc", "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
                     "clusters:\n- name: c1\n  cluster: {server: \"https://10.1.1.1:6443/\", "
                     "certificate-authority-data: LS0tLS1CRUdJTiBYLS0tLS0K}\n"
                     "users:\n- name: u1\n  user: {tokenFile: tok}\n"
                     "- name: u2\n  user: {exec: {command: aws}}\n"
                     "contexts:\n- name: a\n  context: {cluster: c1, user: u2}\n"
                     "- name: b\n  context: {cluster: c1, user: u1}\n");
    write_file("tok", "file-token\n");
    struct rq_kube *k = resolve(&ov, err);
    CHECK(k != NULL);
    if (k) {
        CHECK_STR(rq_kube_server(k), "https://10.1.1.1:6443");
        CHECK_STR(k->ca, "-----BEGIN X-----\n");
        CHECK_STR(k->token, "file-token");
        CHECK(strstr(rq_kube_describe(k), "context b") != NULL);
        rq_kube_release(k);
    }
    snprintf(ov.context, sizeof ov.context, "a");
    CHECK(resolve(&ov, err) == NULL);
    CHECK(strstr(err, "exec or auth-provider") != NULL);
    snprintf(ov.context, sizeof ov.context, "zz");
    CHECK(resolve(&ov, err) == NULL);
    CHECK(strstr(err, "no context 'zz'") != NULL);
    /* the overrides win */
    ov.context[0] = '\0';
    snprintf(ov.server, sizeof ov.server, "https://api.example:443");
    k = resolve(&ov, err);
    CHECK(k != NULL);
    if (k) {
        CHECK_STR(rq_kube_server(k), "https://api.example:443");
        rq_kube_release(k);
    }
    write_file("kc", "clusters: [\n");
    ov.server[0] = '\0';
    CHECK(resolve(&ov, err) == NULL);
    CHECK(strstr(err, "kc:") != NULL);
}

static void test_nothing(void)
{
    struct rq_kube_cfg ov = {0};
    char err[400];
    snprintf(ov.in_cluster_dir, sizeof ov.in_cluster_dir, "%s/none", dir);
    setenv("HOME", dir, 1);
    unsetenv("KUBECONFIG");
    CHECK(resolve(&ov, err) == NULL);
    CHECK(strstr(err, "none was found") != NULL);
    CHECK(strstr(err, "no kubeconfig at") != NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/rq-kube-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_in_cluster();
    test_kubeconfig();
    test_nothing();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return check_exit("test_kube");
}
