"""Checks deploy/kubernetes/ against what the binary really uses.

    python scripts/check-manifests.py target/debug/waba-numbers

The manifests must parse; every environment variable must be one the binary reads (its
--help lists them); ports, probes, the Service and the Dockerfile's EXPOSE must agree with
the binary's defaults and the proto's service name. The secrets --help names come from a
Secret: a value through secretKeyRef, never a literal; a file (`_FILE`) from a directory
mount of a Secret with an item for it; a folder (`_DIR`) as a Secret's mount. Every Secret
key referred to is in the example Secrets, whose values are all placeholders. Several
replicas need a shared store (a postgres:// WABA_STORE, with its key file), and a
PodDisruptionBudget that selects the Deployment's pods and lets one go at a time at least.
"""

import collections
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
defaults = dict(re.findall(r"\[env: (WABA_[A-Z_]+)=[^\]]*\]\s*\[default: ([^\]]+)\]", help_text))
check({"WABA_LISTEN", "WABA_HTTP_LISTEN", "WABA_ACCESS_TOKEN_FILE", "WABA_STORE",
       "WABA_STORE_KEY_FILE", "WABA_STORE_OLD_KEYS_DIR", "WABA_APP_ID"} <= known_env,
      f"--help does not list the expected variables: {sorted(known_env)}")
# The variables --help says hold secrets (or name where they are).
secrets_part = help_text.split("Secrets come from the environment only", 1)
check(len(secrets_part) == 2, "--help no longer says which variables hold secrets")
secret_env = set(re.findall(r"\bWABA_[A-Z_]+\b", secrets_part[-1])) if len(secrets_part) == 2 else set()
check({"WABA_ACCESS_TOKEN", "WABA_APP_SECRET", "WABA_STORE", "WABA_STORE_KEY_FILE"} <= secret_env,
      f"--help names these secrets: {sorted(secret_env)}")

proto = (ROOT / "proto/whatsapp/phonenumbers/v1/phone_numbers.proto").read_text()
package = re.search(r"^package ([\w.]+);", proto, re.M).group(1)
service_name = re.search(r"^service (\w+)", proto, re.M).group(1)
service = f"{package}.{service_name}"

docs = [d for f in sorted((ROOT / "deploy/kubernetes").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text()) if d]
of_kind = collections.defaultdict(list)
for d in docs:
    of_kind[d["kind"]].append(d)
check({"Deployment", "Service", "Secret", "PodDisruptionBudget"} <= of_kind.keys(),
      f"kinds: {sorted(of_kind)}")
for kind in ("Deployment", "Service", "PodDisruptionBudget"):
    check(len(of_kind[kind]) == 1, f"expected one {kind}, found {len(of_kind[kind])}")
by_kind = {kind: ds[0] for kind, ds in of_kind.items()}
secrets = {s["metadata"]["name"]: s for s in of_kind["Secret"]}

deployment = by_kind["Deployment"]
replicas = deployment["spec"].get("replicas", 1)
pod = deployment["spec"]["template"]
pod_labels = pod["metadata"]["labels"]
check(deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(),
      "the Deployment's selector does not select its own pods")
container = pod["spec"]["containers"][0]
env_list = container.get("env", [])
env = {e["name"]: e for e in env_list}
check(len(env) == len(env_list), "an environment variable is set twice")
for name in env:
    check(name in known_env, f"env {name} is not read by the binary")

ports = {p["name"]: p["containerPort"] for p in container["ports"]}
grpc_port = port_of(env["WABA_LISTEN"]["value"]) if "WABA_LISTEN" in env else port_of(defaults["WABA_LISTEN"])
http_port = port_of(env["WABA_HTTP_LISTEN"]["value"]) if "WABA_HTTP_LISTEN" in env else port_of(defaults["WABA_HTTP_LISTEN"])
check(ports.get("grpc") == grpc_port, f"grpc containerPort {ports.get('grpc')} != {grpc_port}")
check(ports.get("http") == http_port, f"http containerPort {ports.get('http')} != {http_port}")
check(port_of(defaults["WABA_LISTEN"]) == grpc_port, "the gRPC port differs from the binary's default")
check(port_of(defaults["WABA_HTTP_LISTEN"]) == http_port, "the HTTP port differs from the binary's default")

# The probes ask the plaintext health port when there is one (the kubelet's gRPC probes
# speak no TLS), else the gRPC port, which must then be plaintext.
health_port = port_of(env["WABA_HEALTH_LISTEN"]["value"]) if "WABA_HEALTH_LISTEN" in env else None
if health_port is not None:
    check(ports.get("health") == health_port, f"health containerPort {ports.get('health')} != {health_port}")
check("WABA_TLS_CERT" not in env or health_port is not None,
      "the gRPC port is TLS (WABA_TLS_CERT) without WABA_HEALTH_LISTEN: the probes cannot reach health")
probe_port = health_port if health_port is not None else grpc_port
for probe in ("readinessProbe", "livenessProbe"):
    grpc = container[probe].get("grpc", {})
    check(grpc.get("port") == probe_port, f"{probe} is not a gRPC probe on {probe_port}")
    check(grpc.get("service", "") in ("", service), f"{probe} asks for unknown service {grpc.get('service')}")
check(container["readinessProbe"]["grpc"].get("service") == service,
      f"readiness should check {service}")
annotations = pod["metadata"].get("annotations", {})
check(annotations.get("prometheus.io/port") == str(http_port), "metrics are scraped off the HTTP port")

def secret_has(name, key, optional):
    """Whether the example Secret `name` holds `key` (or may lack it)."""
    secret = secrets.get(name)
    if secret is None:
        return optional
    return optional or key in (secret.get("stringData") or {})


mount_list = container.get("volumeMounts", [])
mounts = {m["mountPath"]: m["name"] for m in mount_list}
check(not any(m.get("subPath") for m in mount_list),
      "Secret files must come from directory mounts (subPath mounts never update)")
volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
for m in mount_list:
    check(m["name"] in volumes, f"volumeMount {m['name']} has no volume")
for volume in volumes.values():
    secret = volume.get("secret")
    if secret is None:
        continue
    optional = secret.get("optional", False)
    check(secret["secretName"] in secrets or optional,
          f"volume {volume['name']} mounts Secret {secret['secretName']}, which is not in the example")
    for item in secret.get("items", []):
        check(secret_has(secret["secretName"], item["key"], optional),
              f"volume {volume['name']}: Secret {secret['secretName']} has no key {item['key']}")


def secret_volume_at(path):
    """The Secret volume mounted at `path`, if one is."""
    return volumes.get(mounts.get(path), {}).get("secret")


for name, var in env.items():
    ref = var.get("valueFrom", {}).get("secretKeyRef")
    if ref:
        check(secret_has(ref["name"], ref["key"], ref.get("optional", False)),
              f"{name} refers to a missing Secret key {ref['name']}/{ref['key']}")
    if name not in secret_env:
        continue
    if name.endswith("_FILE"):
        file = pathlib.PurePosixPath(var.get("value", ""))
        secret = secret_volume_at(str(file.parent))
        check(secret is not None, f"{name}: {file} is not in a directory mount of a Secret")
        check(secret is None or any(i["path"] == file.name for i in secret.get("items", [])),
              f"{name}: the Secret volume has no item for {file.name}")
    elif name.endswith("_DIR"):
        check(secret_volume_at(var.get("value", "")) is not None,
              f"{name}: {var.get('value')} is not the mount of a Secret")
    else:
        check(ref is not None, f"{name} holds a secret: set it from a Secret (secretKeyRef), not a literal")

# The example Secrets hold placeholders only: a real secret is never committed.
for name, secret in secrets.items():
    for key, value in (secret.get("stringData") or {}).items():
        check("replace-me" in str(value), f"Secret {name}/{key} is not a placeholder (replace-me)")
    check("data" not in secret, f"Secret {name}: use stringData placeholders, not data")

# Replicas share what must be shared only through one PostgreSQL store.
if replicas > 1:
    store = env.get("WABA_STORE", {}).get("valueFrom", {}).get("secretKeyRef")
    check(store is not None, f"{replicas} replicas without WABA_STORE: each would count its own register budget")
    if store is not None and store["name"] in secrets:
        url = (secrets[store["name"]].get("stringData") or {}).get(store["key"], "")
        check(re.match(r"postgres(ql)?://", url) is not None,
              f"{replicas} replicas need a postgres:// store, shared by all (the example has {url.split(':')[0]}:)")
if "WABA_STORE" in env:
    check("WABA_STORE_KEY_FILE" in env, "WABA_STORE without WABA_STORE_KEY_FILE: the binary refuses to start")

pdb = by_kind["PodDisruptionBudget"]
check(pdb["apiVersion"] == "policy/v1", f"PodDisruptionBudget apiVersion {pdb['apiVersion']}")
check(pdb["spec"]["selector"].get("matchLabels") == deployment["spec"]["selector"]["matchLabels"],
      "the PodDisruptionBudget does not select exactly the Deployment's pods")
limits = {k: pdb["spec"][k] for k in ("minAvailable", "maxUnavailable") if k in pdb["spec"]}
check(len(limits) == 1, f"the PodDisruptionBudget sets {sorted(limits)}: set one of minAvailable, maxUnavailable")
for k, v in limits.items():
    check(isinstance(v, int) and 1 <= v <= replicas - 1,
          f"PodDisruptionBudget {k}: {v} for {replicas} replicas (between 1 and {replicas - 1}, or drains "
          "either never finish or take every replica)")
for spread in pod["spec"].get("topologySpreadConstraints", []):
    check(spread["labelSelector"]["matchLabels"].items() <= pod_labels.items(),
          "a topologySpreadConstraint selects none of the pods")

check(subprocess.run([binary, *container.get("args", []), "--help"], capture_output=True).returncode == 0,
      f"the binary refuses the container args {container.get('args')}")

svc = by_kind["Service"]
check(svc["spec"]["selector"].items() <= pod_labels.items(), "Service selects no pod")
for port in svc["spec"]["ports"]:
    check(port["targetPort"] in ports, f"Service targets unknown port {port['targetPort']}")

expose = re.search(r"^EXPOSE (.+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1).split()
check(sorted(map(int, expose)) == sorted([grpc_port, http_port]), f"Dockerfile EXPOSE {expose}")

if problems:
    print("manifests: " + "\n  ".join(["problems:", *problems]))
    sys.exit(1)
print(f"manifests: {len(docs)} documents agree with the binary ({replicas} replicas, {len(env)} env vars, "
      f"ports {grpc_port}/{http_port})")
