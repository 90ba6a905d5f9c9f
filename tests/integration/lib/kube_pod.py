#!/usr/bin/python3
"""Writes a Pod for `podman kube play` from deploy/kubernetes/daemonset/daemonset.yaml, for
tests/integration/24-container.sh:

    kube_pod.py SRC OUTDIR HOSTPORT  ->  OUTDIR/pod.yaml, OUTDIR/etc-ringmq/, OUTDIR/seccomp/

The DaemonSet's pod template as it is (user, read-only root filesystem, capabilities, args,
ports, probes, resources), with what podman 4.3's kube play cannot take replaced: the projected
config volume becomes a hostPath of OUTDIR/etc-ringmq laid out the same way (the ConfigMap's
files, a generated server certificate and client CA), hostPort becomes HOSTPORT on 127.0.0.1 for
MQTT (1883) and a free loopback port for the others (kube play would publish them as is), and
the seccomp profile is given by the annotation kube play reads (it ignores
securityContext.seccompProfile) with the profile under OUTDIR/seccomp/<localhostProfile>."""
import os
import shutil
import socket
import subprocess
import sys

import yaml

src, out, hostport = sys.argv[1], sys.argv[2], int(sys.argv[3])
k8s = os.path.join(src, "deploy", "kubernetes")
with open(os.path.join(k8s, "daemonset", "daemonset.yaml")) as f:
    ds = yaml.safe_load(f)
with open(os.path.join(k8s, "base", "configmap.yaml")) as f:
    cm = yaml.safe_load(f)
pod_spec = ds["spec"]["template"]["spec"]
etc = os.path.join(out, "etc-ringmq")
os.makedirs(etc)
for key, text in cm["data"].items():
    with open(os.path.join(etc, key), "w") as f:
        f.write(text)
crt, key = os.path.join(out, "tls.crt"), os.path.join(out, "tls.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=ringmq", "-days", "2",
                "-keyout", key, "-out", crt], check=True, capture_output=True)
files = {"tls.crt": crt, "tls.key": key, "ca.crt": crt}
for vol in pod_spec["volumes"]:
    if "projected" not in vol:
        continue
    for source in vol["projected"]["sources"]:
        for item in (source.get("secret") or source.get("configMap")).get("items", []):
            dest = os.path.join(etc, item["path"])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy(files[item["key"]], dest)
    del vol["projected"]
    vol["hostPath"] = {"path": etc, "type": "Directory"}
for root, dirs, names in os.walk(out):
    os.chmod(root, 0o755)
    for n in names:
        os.chmod(os.path.join(root, n), 0o644)  # the broker runs as UID 10001
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


(c,) = pod_spec["containers"]
for p in c["ports"]:
    # kube play (4.3) publishes a containerPort without hostPort on the same host port, on
    # every address: 9600 collided with a broker of this host. Each gets its own on loopback.
    p["hostPort"] = hostport if p["containerPort"] == 1883 else free_port()
    p["hostIP"] = "127.0.0.1"
profile = pod_spec["securityContext"]["seccompProfile"]["localhostProfile"]
os.makedirs(os.path.dirname(os.path.join(out, "seccomp", profile)), exist_ok=True)
shutil.copy(os.path.join(src, "deploy", "container", os.path.basename(profile)),
            os.path.join(out, "seccomp", profile))
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "ringmq-kube-%d" % os.getpid(),
                    "labels": ds["spec"]["template"]["metadata"]["labels"],
                    "annotations": {"seccomp.security.alpha.kubernetes.io/pod":
                                    "localhost/" + profile}},
       "spec": pod_spec}
pod_spec.pop("serviceAccountName", None)
with open(os.path.join(out, "pod.yaml"), "w") as f:
    yaml.safe_dump(pod, f)
print(pod["metadata"]["name"])
