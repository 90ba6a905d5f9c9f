#!/usr/bin/python3
"""25 deployment files checked offline: every Kubernetes manifest under deploy/kubernetes parses,
has a known kind/apiVersion and renders with `kubectl kustomize` (when kubectl is installed);
the pod specs agree with the container image (ports, UID, read-only config, data dir, seccomp
profile) and with each other (Services, httpGet /readyz and /healthz probes on the metrics port of the
ConfigMap's Broker, ConfigMap listener ports, grace period after shutdownDelaySeconds); the ConfigMap's
broker configuration and the image's default configuration pass `ringmq --check-config`; the
seccomp profiles are the runtime default plus io_uring; the systemd unit has what it must and
passes `systemd-analyze verify` (when available). ringmq only."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import rqtest as rq  # noqa: E402
from rqtest import case, check, check_eq  # noqa: E402

ONLY = "ringmq deployment files"
METRICS_PORT = 9600  # spec.diagnostics.metrics.prometheusPort: the probes' port
SRC = os.environ.get("RINGMQ_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "..")
DEPLOY = os.path.join(SRC, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
CONTAINER = os.path.join(DEPLOY, "container")
IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
KNOWN = {
    ("v1", "Namespace"), ("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Service"),
    ("v1", "Secret"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
CLUSTER_SCOPED = {"Namespace", "ClusterRoleBinding", "Kustomization"}


def manifests():
    """(path, document) for every YAML document under deploy/kubernetes."""
    out = []
    for path in sorted(glob.glob(os.path.join(K8S, "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    out.append((os.path.relpath(path, K8S), doc))
    return out


def objects(kind):
    return [d for _, d in manifests() if d.get("kind") == kind]


def containerfile():
    """EXPOSEd ports and the USER uid of the runtime stage."""
    ports, uid, _ = containerfile_runtime()
    return ports, uid


def containerfile_runtime():
    """EXPOSEd ports, the USER uid and the instructions (name -> argument text) of the runtime
    stage."""
    with open(os.path.join(CONTAINER, "Containerfile")) as f:
        text = f.read()
    runtime = text.split("FROM scratch", 1)[1]
    ports = {int(p) for line in re.findall(r"^EXPOSE (.*)$", runtime, re.M) for p in line.split()}
    user = re.search(r"^USER (\d+)", runtime, re.M)
    instr = dict(re.findall(r"^([A-Z]+) (.*)$", runtime, re.M))
    return ports, int(user.group(1)) if user else None, instr


@case(ringmq_only=ONLY)
def image_runs_as_the_issue_says():
    """The runtime stage: UID 10001, SIGTERM as stop signal, the broker as entry point with the
    configuration at /etc/ringmq, data at /var/lib/ringmq and the log on standard output (the
    broker logs to standard error without --log-stdout); the pods pass the same arguments."""
    _, uid, instr = containerfile_runtime()
    check_eq(uid, 10001, "USER")
    check_eq(instr.get("STOPSIGNAL"), "SIGTERM", "STOPSIGNAL")
    check_eq(json.loads(instr["ENTRYPOINT"]), ["/usr/bin/ringmq"], "ENTRYPOINT")
    cmd = json.loads(instr["CMD"])
    check_eq(cmd, ["-c", "/etc/ringmq", "--data-dir", "/var/lib/ringmq", "--log-stdout"], "CMD")
    check(re.search(r"^FROM \S+ AS build", open(os.path.join(CONTAINER, "Containerfile")).read(),
                    re.M), "multi-stage build")
    for w in workloads():
        (c,) = w["spec"]["template"]["spec"]["containers"]
        check_eq(c.get("args"), cmd, "%s args (they replace CMD)" % w["kind"])


def workloads():
    return objects("DaemonSet") + objects("StatefulSet")


def tmpdir():
    d = tempfile.mkdtemp(prefix="rqdeploy-")
    rq.on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


@case(ringmq_only=ONLY)
def manifests_parse_with_known_kinds():
    docs = manifests()
    check(len(docs) >= 12, "only %d documents under deploy/kubernetes" % len(docs))
    for path, d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        check(key in KNOWN, "%s: unknown apiVersion/kind %s" % (path, key))
        if d["kind"] == "Kustomization":
            continue
        check(d.get("metadata", {}).get("name"), "%s: %s without metadata.name" % (path, key))
        if d["kind"] not in CLUSTER_SCOPED:
            check_eq(d["metadata"].get("namespace"), "ringmq", "%s: %s namespace" % (path, key))
    kinds = {d["kind"] for _, d in docs}
    for k in ("Namespace", "ServiceAccount", "ClusterRoleBinding", "Role", "RoleBinding",
              "ConfigMap", "Service", "DaemonSet", "StatefulSet", "Kustomization"):
        check(k in kinds, "no %s under deploy/kubernetes" % k)


def kustomize_files(d, seen=None):
    """The manifest files a kustomization directory takes in (its resources, recursively), each
    checked to exist; without kubectl this is what CI can check of `kubectl kustomize`."""
    seen = set() if seen is None else seen
    path = os.path.join(d, "kustomization.yaml")
    check(os.path.isfile(path), "%s: no kustomization.yaml" % os.path.relpath(d, K8S))
    with open(path) as f:
        k = yaml.safe_load(f)
    for r in k.get("resources", []):
        full = os.path.normpath(os.path.join(d, r))
        check(os.path.exists(full), "%s: resource %s does not exist"
              % (os.path.relpath(path, K8S), r))
        if os.path.isdir(full):
            kustomize_files(full, seen)
        else:
            seen.add(os.path.relpath(full, K8S))
    return seen


@case(ringmq_only=ONLY)
def kustomizations_take_every_manifest():
    """Every kustomization's resources exist, the default one takes the DaemonSet, the
    statefulset one the StatefulSet, both the shared base, and no manifest is left out."""
    default = kustomize_files(K8S)
    sts = kustomize_files(os.path.join(K8S, "statefulset"))
    check("daemonset/daemonset.yaml" in default and "statefulset/statefulset.yaml" not in default,
          "default kustomization: %s" % sorted(default))
    check("statefulset/statefulset.yaml" in sts and "daemonset/daemonset.yaml" not in sts,
          "statefulset kustomization: %s" % sorted(sts))
    base = {f for f in default if f.startswith("base/")}
    check(base and base <= sts, "the StatefulSet variant lacks %s" % sorted(base - sts))
    every = {os.path.relpath(p, K8S) for p in glob.glob(os.path.join(K8S, "**", "*.yaml"),
                                                         recursive=True)
             if os.path.basename(p) != "kustomization.yaml"}
    check_eq(every - default - sts, set(), "manifests no kustomization takes")

@case(ringmq_only=ONLY)
def kustomizations_render():
    """kubectl kustomize renders each kustomization (kubectl decodes every resource on the way;
    `kubectl set image --local` decodes the workloads into typed objects)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise rq.Skip("kubectl is not installed (Debian 12 does not package it)")
    want = {"": "DaemonSet", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}
    for sub, workload in want.items():
        r = subprocess.run([kubectl, "kustomize", os.path.join(K8S, sub)], capture_output=True,
                           timeout=60)
        check_eq(r.returncode, 0, "kubectl kustomize %s: %s" % (sub or ".", r.stderr.decode()))
        kinds = [d["kind"] for d in yaml.safe_load_all(r.stdout) if d]
        check(workload in kinds and "ConfigMap" in kinds and "Namespace" in kinds,
              "kustomize %s renders %s" % (sub or ".", kinds))
    for path in glob.glob(os.path.join(K8S, "*", "*set.yaml")):
        r = subprocess.run([kubectl, "set", "image", "--local", "-f", path, "-o", "yaml",
                            "ringmq=localhost/ringmq:check"], capture_output=True, timeout=60)
        check_eq(r.returncode, 0, "kubectl set image --local %s: %s" % (path, r.stderr.decode()))
        check("localhost/ringmq:check" in r.stdout.decode(), "image not set in %s" % path)


@case(ringmq_only=ONLY)
def pods_match_the_image():
    exposed, uid = containerfile()
    check_eq(exposed, {1883, 8883, METRICS_PORT}, "Containerfile EXPOSE")
    check_eq(uid, 10001, "Containerfile USER")
    profiles = set(os.listdir(CONTAINER))
    for w in workloads():
        what = w["kind"]
        pod = w["spec"]["template"]["spec"]
        check_eq(w["spec"]["selector"]["matchLabels"].items() <=
                 w["spec"]["template"]["metadata"]["labels"].items(), True, what + " selector")
        check(pod.get("terminationGracePeriodSeconds", 0) >= 5, what + ": grace period")
        check_eq(pod.get("serviceAccountName"), "ringmq", what + " service account")
        psc = pod["securityContext"]
        check_eq((psc.get("runAsNonRoot"), psc.get("runAsUser")), (True, uid), what + " user")
        sp = psc["seccompProfile"]
        check_eq(sp["type"], "Localhost", what + " seccomp type")
        check(os.path.basename(sp["localhostProfile"]) in profiles,
              "%s: seccomp profile %s is not in deploy/container" % (what, sp["localhostProfile"]))
        (c,) = pod["containers"]
        check(c["image"].startswith("localhost/ringmq"), what + " image " + c["image"])
        args = " ".join(c.get("args", []))
        check("-c /etc/ringmq" in args and "--data-dir /var/lib/ringmq" in args,
              what + " args " + args)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check_eq(set(ports.values()), exposed, what + " container ports")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c[probe].get("httpGet")
            check(get, "%s %s is not an httpGet probe" % (what, probe))
            check_eq(get["path"], path, "%s %s path" % (what, probe))
            port = get["port"]
            check_eq(ports.get(port, port), METRICS_PORT, "%s %s port" % (what, probe))
        csc = c["securityContext"]
        check_eq((csc.get("readOnlyRootFilesystem"), csc.get("allowPrivilegeEscalation"),
                  csc.get("capabilities", {}).get("drop")), (True, False, ["ALL"]),
                 what + " container securityContext")
        check(c["resources"]["requests"].get("cpu") and c["resources"]["requests"].get("memory"),
              what + ": resource requests")
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        check(mounts["/etc/ringmq"].get("readOnly") is True, what + ": /etc/ringmq not read-only")
        check("/var/lib/ringmq" in mounts, what + ": no /var/lib/ringmq mount")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        cfg = vols[mounts["/etc/ringmq"]["name"]]["projected"]["sources"]
        cms = {o["metadata"]["name"] for o in objects("ConfigMap")}
        check("ringmq-config" in cms and any(s.get("configMap", {}).get("name") == "ringmq-config"
                                             for s in cfg), what + ": config volume")
    for svc in objects("Service"):
        for p in svc["spec"]["ports"]:
            check(p["targetPort"] in ports, "Service %s targetPort %s is no container port name"
                  % (svc["metadata"]["name"], p["targetPort"]))
    for o in objects("ClusterRoleBinding"):
        check_eq(o["roleRef"]["name"], "system:auth-delegator", "ClusterRoleBinding role")
        check_eq(o["subjects"][0]["name"], "ringmq", "ClusterRoleBinding subject")
    rules = [r for o in objects("Role") for r in o["rules"]]
    check(any("serviceaccounts" in r["resources"] and "get" in r["verbs"] for r in rules),
          "no Role that gets serviceaccounts")
    lports = set()
    for doc in configmap_broker_docs():
        if doc["kind"] == "BrokerListener":
            lports |= {p["port"] for p in doc["spec"]["ports"]}
    check_eq(lports, exposed - {METRICS_PORT}, "ConfigMap listener ports")
    brokers = [d for d in configmap_broker_docs() if d["kind"] == "Broker"]
    check_eq([d["spec"]["diagnostics"]["metrics"]["prometheusPort"] for d in brokers],
             [METRICS_PORT], "ConfigMap Broker prometheusPort (the probes' port)")
    delay = brokers[0]["spec"].get("ringmq", {}).get("shutdownDelaySeconds", 0)
    for w in workloads():
        check(w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > delay + 5,
              "%s: terminationGracePeriodSeconds leaves no time after shutdownDelaySeconds"
              % w["kind"])


def configmap_broker_docs():
    (cm,) = [o for o in objects("ConfigMap") if o["metadata"]["name"] == "ringmq-config"]
    return [d for text in cm["data"].values() for d in yaml.safe_load_all(text) if d]


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60)
    check_eq(r.returncode, 0, "openssl %s: %s" % (args[0], r.stderr.decode()))


@case(ringmq_only=ONLY)
def configmap_passes_check_config():
    """/etc/ringmq as the pod's projected volume lays it out: the ConfigMap's files, the server
    certificate Secret and the client CA ConfigMap at their item paths."""
    if not shutil.which("openssl"):
        raise rq.Skip("openssl not installed")
    d = tmpdir()
    (cm,) = [o for o in objects("ConfigMap") if o["metadata"]["name"] == "ringmq-config"]
    for key, text in cm["data"].items():
        with open(os.path.join(d, key), "w") as f:
            f.write(text)
    crt, key = os.path.join(d, "crt"), os.path.join(d, "key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", "/CN=ringmq", "-days", "2", "-keyout", key, "-out", crt)
    files = {"tls.crt": crt, "tls.key": key, "ca.crt": crt}
    (w,) = objects("DaemonSet")
    vol = [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"][0]
    for src in vol["projected"]["sources"]:
        for item in (src.get("secret") or src.get("configMap")).get("items", []):
            dest = os.path.join(d, item["path"])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy(files[item["key"]], dest)
    r = subprocess.run([rq.broker_bin(), "-c", d, "--check-config"], capture_output=True,
                       timeout=30)
    out = (r.stdout + r.stderr).decode()
    check_eq(r.returncode, 0, "--check-config of the ConfigMap: " + out)
    check("configuration is valid (2 ports)" in out, "--check-config said: " + out)
    # The image's default: valid, and listening beyond loopback so a published port works.
    path = os.path.join(CONTAINER, "ringmq.yaml")
    r = subprocess.run([rq.broker_bin(), "-c", path, "--check-config"], capture_output=True,
                       timeout=30)
    check_eq(r.returncode, 0, "--check-config of the image default: " + r.stderr.decode())
    with open(path) as f:
        ports = [p for doc in yaml.safe_load_all(f) if doc and doc["kind"] == "BrokerListener"
                 for p in doc["spec"]["ports"]]
    check_eq([(p["port"], p.get("bindAddress")) for p in ports], [(1883, "0.0.0.0")],
             "image default listeners")


@case(ringmq_only=ONLY)
def seccomp_profiles_add_io_uring():
    for name in ("seccomp-io_uring.json", "seccomp-io_uring-k8s.json"):
        with open(os.path.join(CONTAINER, name)) as f:
            prof = json.load(f)
        check_eq(prof["defaultAction"], "SCMP_ACT_ERRNO", name + " default action")
        allowed = {n for r in prof["syscalls"] if r["action"] == "SCMP_ACT_ALLOW"
                   and not r.get("args") and not (r.get("includes") or {}) for n in r["names"]}
        check(IO_URING <= allowed, name + ": io_uring not allowed unconditionally")
        check("read" in allowed and "kexec_load" not in allowed, name + ": not the default profile")
        if name.endswith("k8s.json"):
            text = json.dumps(prof)
            for key in ("includes", "excludes", "archMap", "minKernel"):
                check('"%s"' % key not in text, "%s: has %s (containerd ignores it)" % (name, key))
        elif os.path.exists("/usr/share/containers/seccomp.json"):
            with open("/usr/share/containers/seccomp.json") as f:
                default = json.load(f)
            rest = dict(prof, syscalls=[r for r in prof["syscalls"]
                                        if not IO_URING & set(r["names"])])
            check(rest == default, name + " differs from /usr/share/containers/seccomp.json "
                  "beyond the io_uring rule (regenerate: deploy/container/make-seccomp.py)")


def unit():
    """{(section, key): [values]} of the unit; a key may repeat (SystemCallFilter=)."""
    values = {}
    section = None
    with open(os.path.join(DEPLOY, "systemd", "ringmq.service")) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            values.setdefault((section, k), []).append(v)
    return values


@case(ringmq_only=ONLY)
def systemd_unit():
    u = unit()
    svc = lambda k: u.get(("Service", k), [])  # noqa: E731
    check_eq(svc("Type"), ["notify"], "Type (the broker sends READY=1, tests/26)")
    check_eq(svc("NotifyAccess"), ["main"], "NotifyAccess")
    check(svc("WatchdogSec") and svc("WatchdogSec")[0] not in ("0", "infinity"), "WatchdogSec")
    check(re.search(r"/ringmq .*-c /etc/ringmq", svc("ExecStart")[0]), "ExecStart")
    check(re.fullmatch(r"\S*kill -HUP \$MAINPID", svc("ExecReload")[0]), "ExecReload")
    check_eq(svc("Restart"), ["on-failure"], "Restart")
    check(int(svc("LimitNOFILE")[0]) > 100000, "LimitNOFILE below maxConnections' default")
    for k, v in (("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"),
                 ("PrivateTmp", "yes"), ("StateDirectory", "ringmq")):
        check_eq(svc(k), [v], k)
    check(svc("DynamicUser") == ["yes"] or svc("User"), "no DynamicUser/User")
    fams = " ".join(svc("RestrictAddressFamilies")).split()
    check({"AF_INET", "AF_INET6"} <= set(fams), "RestrictAddressFamilies %s" % fams)
    allowed = {n for v in svc("SystemCallFilter") if not v.startswith("~") for n in v.split()}
    check(IO_URING <= allowed, "SystemCallFilter does not allow io_uring: %s" % allowed)
    check(("Install", "WantedBy") in u, "no [Install] WantedBy")
    sa = shutil.which("systemd-analyze")
    if not sa:
        print("    (systemd-analyze not installed: parsed only)")
        return
    d = tmpdir()
    with open(os.path.join(DEPLOY, "systemd", "ringmq.service")) as f:
        text = f.read().replace("/usr/local/bin/ringmq", os.path.abspath(rq.broker_bin()))
    path = os.path.join(d, "ringmq.service")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([sa, "verify", path], capture_output=True, timeout=60)
    check_eq((r.returncode, (r.stdout + r.stderr).decode().strip()), (0, ""),
             "systemd-analyze verify")


if __name__ == "__main__":
    rq.run(timeout=120)
