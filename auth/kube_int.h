/* Inside auth/kube: the state of a resolved Kubernetes API source, shared by kube.c (source
 * choice, requests) and kube_config.c (the kubeconfig reader). */
#ifndef RQ_KUBE_INT_H
#define RQ_KUBE_INT_H

#include "auth/kube.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct rq_kube {
    _Atomic int refs;
    char *server; /* https://host:port, no trailing '/' */
    char *ca;     /* PEM; NULL = the system's roots */
    size_t ca_len;
    char *cert, *key; /* client certificate chain and key, PEM; NULL = none */
    size_t cert_len, key_len;
    char desc[400];
    /* the bearer token: fixed (token_path NULL) or read from token_path when it changes */
    pthread_mutex_t mu;
    char *token;
    size_t token_len; /* bytes allocated - 1 (for wiping) */
    char *token_path;
    ino_t tok_ino;
    off_t tok_size;
    struct timespec tok_mtime;
    int64_t tok_checked; /* CLOCK_MONOTONIC second of the last stat */
};

struct rq_kube *rq_kube_alloc(void);
void rq_kube_free(struct rq_kube *k);
/* The whole file, NUL-terminated, at most max bytes; NULL with errno set. */
char *rq_kube_read_file(const char *path, size_t max, size_t *len);
void rq_kube_wipe_free(char *p, size_t len);
int rq_kube_load_pem(const char *path, char **dst, size_t *dlen, bool secret, char *err,
                     size_t errlen);
/* Fills k from a kubeconfig (ov->kubeconfig, $KUBECONFIG or ~/.kube/config; ov->context or the
 * current context). 1: used; 0: there is none (looked says where it looked); -1: err set. */
int rq_kube_from_kubeconfig(struct rq_kube *k, const struct rq_kube_cfg *ov, char *looked,
                            size_t lookedlen, char *err, size_t errlen);

#endif
