#!/usr/bin/python3
"""Writes the io_uring seccomp profiles next to this script from the container runtime's default.

    /usr/bin/python3 deploy/container/make-seccomp.py [/usr/share/containers/seccomp.json]

The input is podman's default profile (Debian 12: golang-github-containers-common, the same
profile as Docker's): it allows no io_uring syscall, so ringmq cannot start under it. Outputs:

- seccomp-io_uring.json: that profile unchanged plus one rule allowing io_uring_setup,
  io_uring_enter and io_uring_register. Docker/podman format (archMap, capability-conditional
  rules): for `podman run --security-opt seccomp=FILE`, `docker run --security-opt seccomp=FILE`
  and CRI-O (which reads this format).
- seccomp-io_uring-k8s.json: the same rules resolved for a container that holds no capabilities
  (Kubernetes manifests here drop ALL) on amd64 and arm64, in the plain OCI runtime-spec form.
  containerd reads a Localhost profile straight into the runtime-spec structure and ignores
  includes/excludes/archMap, which would turn capability-conditional rules into unconditional
  ones; this file has none, so containerd and CRI-O read it the same way.
"""
import copy
import json
import os
import sys

IO_URING = ["io_uring_enter", "io_uring_register", "io_uring_setup"]
COMMENT = ("ringmq: io_uring (Linux >= 5.1), refused by the default profile since Docker 25 / "
           "containerd 2.0; ringmq does all its I/O through it")
ARCHES = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}
ARCH_ALIASES = {"amd64": {"amd64", "x86", "x32"}, "arm64": {"arm64", "arm"}}


def with_io_uring(profile):
    out = copy.deepcopy(profile)
    for rule in out["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and set(IO_URING) & set(rule["names"]):
            raise SystemExit("the input already allows io_uring; nothing to add")
    out["syscalls"].append({"names": IO_URING, "action": "SCMP_ACT_ALLOW", "args": [],
                            "comment": COMMENT, "includes": {}, "excludes": {}})
    return out


def applies(rule, arches):
    """Whether a rule holds for a container without capabilities on one of `arches`."""
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") or inc.get("minKernel"):
        return False  # needs a capability we do not grant (or a kernel check OCI cannot express)
    if inc.get("arches") and not set(inc["arches"]) & arches:
        return False
    if exc.get("arches") and set(exc["arches"]) & arches:
        return False
    return True  # excludes.caps: we hold none of them, so the rule applies


def flattened(profile):
    arches = set().union(*ARCH_ALIASES.values())
    archs = []
    for entry in profile["archMap"]:
        if entry["architecture"] in ARCHES.values():
            archs += [entry["architecture"]] + entry.get("subArchitectures", [])
    out = {"defaultAction": profile["defaultAction"], "architectures": archs, "syscalls": []}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for rule in profile["syscalls"]:
        if not applies(rule, arches):
            continue
        r = {"names": rule["names"], "action": rule["action"]}
        if rule.get("args"):
            r["args"] = rule["args"]
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = rule["errnoRet"]
        out["syscalls"].append(r)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
    here = os.path.dirname(os.path.abspath(__file__))
    with open(src) as f:
        full = with_io_uring(json.load(f))
    for name, data in (("seccomp-io_uring.json", full),
                       ("seccomp-io_uring-k8s.json", flattened(full))):
        with open(os.path.join(here, name), "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        print(os.path.join(here, name))


if __name__ == "__main__":
    main()
