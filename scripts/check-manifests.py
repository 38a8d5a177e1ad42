"""Checks deploy/kubernetes/ against what the binary really uses.

    python scripts/check-manifests.py target/debug/waba-numbers

The manifests must parse; every environment variable must be one the binary reads (its
--help lists them); ports, probes, the token file's mount, the Service and the
Dockerfile's EXPOSE must agree with the binary's defaults and the proto's service name.
"""

import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
problems = []


def check(ok, message):
    if not ok:
        problems.append(message)


def port_of(address):
    return int(address.rsplit(":", 1)[1])


binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/waba-numbers")
help_text = subprocess.run([binary, "--help"], check=True, capture_output=True, text=True).stdout
known_env = set(re.findall(r"\bWABA_[A-Z_]+\b", help_text))
defaults = dict(re.findall(r"\[env: (WABA_[A-Z_]+)=[^\]]*\] \[default: ([^\]]+)\]", help_text))
check({"WABA_LISTEN", "WABA_HTTP_LISTEN", "WABA_ACCESS_TOKEN_FILE"} <= known_env,
      f"--help does not list the expected variables: {sorted(known_env)}")

proto = (ROOT / "proto/whatsapp/phonenumbers/v1/phone_numbers.proto").read_text()
package = re.search(r"^package ([\w.]+);", proto, re.M).group(1)
service_name = re.search(r"^service (\w+)", proto, re.M).group(1)
service = f"{package}.{service_name}"

docs = [d for f in sorted((ROOT / "deploy/kubernetes").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text()) if d]
by_kind = {d["kind"]: d for d in docs}
check({"Deployment", "Service", "Secret"} <= by_kind.keys(), f"kinds: {sorted(by_kind)}")

deployment = by_kind["Deployment"]
pod = deployment["spec"]["template"]
container = pod["spec"]["containers"][0]
env = {e["name"]: e for e in container.get("env", [])}
for name in env:
    check(name in known_env, f"env {name} is not read by the binary")

ports = {p["name"]: p["containerPort"] for p in container["ports"]}
grpc_port = port_of(env["WABA_LISTEN"]["value"]) if "WABA_LISTEN" in env else port_of(defaults["WABA_LISTEN"])
http_port = port_of(env["WABA_HTTP_LISTEN"]["value"]) if "WABA_HTTP_LISTEN" in env else port_of(defaults["WABA_HTTP_LISTEN"])
check(ports.get("grpc") == grpc_port, f"grpc containerPort {ports.get('grpc')} != {grpc_port}")
check(ports.get("http") == http_port, f"http containerPort {ports.get('http')} != {http_port}")
check(port_of(defaults["WABA_LISTEN"]) == grpc_port, "the gRPC port differs from the binary's default")
check(port_of(defaults["WABA_HTTP_LISTEN"]) == http_port, "the HTTP port differs from the binary's default")

for probe in ("readinessProbe", "livenessProbe"):
    grpc = container[probe].get("grpc", {})
    check(grpc.get("port") == grpc_port, f"{probe} is not a gRPC probe on {grpc_port}")
    check(grpc.get("service", "") in ("", service), f"{probe} asks for unknown service {grpc.get('service')}")
check(container["readinessProbe"]["grpc"].get("service") == service,
      f"readiness should check {service}")
annotations = pod["metadata"].get("annotations", {})
check(annotations.get("prometheus.io/port") == str(http_port), "metrics are scraped off the HTTP port")

token_file = pathlib.PurePosixPath(env["WABA_ACCESS_TOKEN_FILE"]["value"])
mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
volume_name = mounts.get(str(token_file.parent))
check(volume_name is not None and not any(m.get("subPath") for m in container["volumeMounts"]),
      "the token file must come from a directory mount (subPath mounts never update)")
volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
secret = volumes.get(volume_name, {}).get("secret", {})
check(secret.get("secretName") == by_kind["Secret"]["metadata"]["name"], "token volume is not the Secret")
check(any(i["path"] == token_file.name for i in secret.get("items", [])), "the Secret has no item for the token file")
for name, var in env.items():
    ref = var.get("valueFrom", {}).get("secretKeyRef")
    if ref:
        check(ref["key"] in by_kind["Secret"]["stringData"], f"{name} refers to a missing Secret key")

check(subprocess.run([binary, *container.get("args", []), "--help"], capture_output=True).returncode == 0,
      f"the binary refuses the container args {container.get('args')}")

svc = by_kind["Service"]
check(svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), "Service selects no pod")
for port in svc["spec"]["ports"]:
    check(port["targetPort"] in ports, f"Service targets unknown port {port['targetPort']}")

expose = re.search(r"^EXPOSE (.+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1).split()
check(sorted(map(int, expose)) == sorted([grpc_port, http_port]), f"Dockerfile EXPOSE {expose}")

if problems:
    print("manifests: " + "\n  ".join(["problems:", *problems]))
    sys.exit(1)
print(f"manifests: {len(docs)} documents agree with the binary ({len(env)} env vars, ports {grpc_port}/{http_port})")
