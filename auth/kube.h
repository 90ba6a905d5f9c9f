/* How the broker reaches the Kubernetes API (for ServiceAccountToken: TokenReview and
 * ServiceAccount reads), AIO-INTERFACES.md 4.1.
 *
 * Sources, in this order:
 *  1. In a Pod: the token file <dir>/token exists (dir: spec.ringmq.kubernetes.serviceAccountDir,
 *     default /var/run/secrets/kubernetes.io/serviceaccount) and KUBERNETES_SERVICE_HOST and
 *     KUBERNETES_SERVICE_PORT are set: https://HOST:PORT (an IPv6 host in brackets), CA
 *     <dir>/ca.crt, bearer token <dir>/token. The environment alone is not enough (both may be
 *     set on a node).
 *  2. Otherwise a kubeconfig: spec.ringmq.kubernetes.kubeconfig, else the first path of
 *     $KUBECONFIG, else ~/.kube/config; its current context (or spec.ringmq.kubernetes.context):
 *     the cluster's server and certificate-authority(-data), the user's token / tokenFile or
 *     client-certificate(-data) + client-key(-data). Relative paths are relative to the file.
 *  3. Otherwise only spec.ringmq.kubernetes (server at least).
 * Each key of spec.ringmq.kubernetes (server, certificateAuthority, tokenFile, clientCertificate,
 * clientKey) overrides what the source gave. No server at the end: an error naming where it
 * looked.
 *
 * Secrets: the bearer token and client key are held in memory, never logged; the token file is
 * re-read when it changes (the kubelet rotates it; checked at most once a second), so a rotated
 * token is used from the next request on. TLS material goes to libcurl from memory.
 *
 * Threads: resolved on the control thread; afterwards any thread (pool threads) may call
 * rq_kube_request. Reference counted (jobs hold one). */
#ifndef RQ_KUBE_H
#define RQ_KUBE_H

#include <curl/curl.h>

#include <stddef.h>

struct rq_kube_cfg;
struct rq_kube;

/* NULL with err set when there is no usable source or a file it names cannot be read. */
struct rq_kube *rq_kube_resolve(const struct rq_kube_cfg *ov, char *err, size_t errlen);
void rq_kube_ref(struct rq_kube *k);
void rq_kube_release(struct rq_kube *k); /* NULL is fine */

/* "in-cluster (https://10.0.0.1:443, token /var/run/...)" / "kubeconfig /root/.kube/config,
 * context k3s (https://127.0.0.1:6443)": for the startup log (no secret). */
const char *rq_kube_describe(const struct rq_kube *k);
const char *rq_kube_server(const struct rq_kube *k);

/* Sets URL (server + path), HTTPS only, TLS from memory, and the headers (Accept and
 * Content-Type application/json, Authorization: Bearer when there is a token) on easy. *headers
 * receives the list the caller frees with rq_kube_headers_free after the transfer (it holds
 * the token). 0, or -1 with why set. */
int rq_kube_request(struct rq_kube *k, CURL *easy, const char *path, struct curl_slist **headers,
                    char *why, size_t whylen);
/* Wipes and frees a header list from rq_kube_request. NULL is fine. */
void rq_kube_headers_free(struct curl_slist *h);

#endif
