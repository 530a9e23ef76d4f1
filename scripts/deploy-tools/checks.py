"""Checks for scripts/validate-deploy.sh that no off-the-shelf tool does.

  k8s FILE...                     kubernetes-validate --strict on each file, at the version in its name (x-1.30.0.yaml)
  split RENDERED BUILTIN CUSTOM   split a manifest stream into built-in kinds and custom resources
  crds CRD_DIR FILE...            validate custom resources against vendored CRDs (+ TrustRoot webhook rules)
  crds-selftest CRD_DIR FILE...   check that the CRD check catches broken resources
  compose FILE                    parse with compose-spec and check every reference is defined
  compose-selftest FILE           check that the reference check catches dangling references
  pod RENDERED                    print the Deployment's pod (the Gatekeeper test fixture) as JSON
  replica-args RENDERED FLAG VALUE...
                                  the replica gets exactly these values for these flags, in order, each file on a mount
  sbom FILE                       validate a CycloneDX JSON SBOM and check it describes tlog
"""

import base64
import copy
import functools
import json
import pathlib
import os
import re
import subprocess
import sys

import yaml

BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}


Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def docs(path):
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=Loader) if d]


def group_of(doc):
    api = doc.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def k8s(files):
    """kubernetes-validate's own validation, in one process: the CLI reloads
    the multi-megabyte definitions file for every resource. Any warning (an
    unknown kind or API version, e.g. a removed one) fails like an error."""
    import kubernetes_validate
    from kubernetes_validate import utils

    utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
    bad = 0
    for f in files:
        version = re.search(r"-(\d+\.\d+)\.\d+\.yaml$", f).group(1)
        for d in docs(f):
            name = f"{f}: {d.get('kind')}/{d.get('metadata', {}).get('name')} on {version}"
            try:
                got = kubernetes_validate.validate(d, version, strict=True)
                print(f"ok   {name} (schemas {got})")
            except utils.ValidationError as e:
                bad += 1
                print(f"FAIL {name}: {'.'.join(map(str, e.path))}: {e.message}")
            except (utils.SchemaNotFoundError, utils.InvalidSchemaError, utils.VersionNotSupportedError) as e:
                bad += 1
                print(f"WARN {name}: {getattr(e, 'message', e)}")
    return 1 if bad else 0


def split(rendered, builtin, custom):
    b, c = [], []
    for d in docs(rendered):
        (b if group_of(d) in BUILTIN_GROUPS else c).append(d)
    for path, items in ((builtin, b), (custom, c)):
        with open(path, "w") as f:
            yaml.safe_dump_all(items, f, sort_keys=False)


def strict(schema):
    """Like openapi2jsonschema --strict: unknown fields are errors, since
    Kubernetes would silently prune a misspelt field."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


@functools.lru_cache(maxsize=None)
def load_crds(crd_dir):
    schemas = {}
    for p in sorted(pathlib.Path(crd_dir).glob("*.yaml")):
        try:
            crds = docs(p)
        except yaml.YAMLError:
            continue  # the Helm-templated original; its stripped copy is used
        for crd in crds:
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for ver in spec["versions"]:
                if not ver.get("served"):
                    continue
                s = strict(copy.deepcopy(ver["schema"]["openAPIV3Schema"]))
                api = f"{spec['group']}/{ver['name']}"
                props = s.setdefault("properties", {})
                props["apiVersion"] = {"const": api}
                props["kind"] = {"const": spec["names"]["kind"]}
                props["metadata"] = {"type": "object"}
                s["required"] = sorted(set(s.get("required", [])) | {"apiVersion", "kind"})
                schemas[(api, spec["names"]["kind"])] = s
    return schemas


def pem_ok(b64, marker):
    try:
        text = base64.b64decode(b64, validate=True).decode()
    except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
        return f"not base64 of text: {e}"
    if f"-----BEGIN {marker}-----" not in text:
        return f"does not decode to a PEM {marker}"
    cmd = ["openssl", "pkey", "-pubin", "-noout"] if marker == "PUBLIC KEY" else ["openssl", "x509", "-noout"]
    r = subprocess.run(cmd, input=text.encode(), capture_output=True)
    if r.returncode != 0:
        return f"openssl cannot read the {marker}: {r.stderr.decode().strip()}"
    return None


def trustroot_rules(doc):
    """What policy-controller's webhook enforces beyond the CRD schema
    (pkg/apis/policy/v1alpha1/trustroot_validation.go)."""
    errs = []
    keys = doc.get("spec", {}).get("sigstoreKeys")
    if keys is None:
        return errs
    if not keys.get("certificateAuthorities") and not keys.get("timestampAuthorities"):
        errs.append("sigstoreKeys needs certificateAuthorities or timestampAuthorities (webhook rule)")
    for i, t in enumerate(keys.get("tLogs", [])):
        for field in ("baseURL", "hashAlgorithm", "publicKey"):
            if not t.get(field):
                errs.append(f"tLogs[{i}].{field} is missing")
        if t.get("publicKey") and (e := pem_ok(t["publicKey"], "PUBLIC KEY")):
            errs.append(f"tLogs[{i}].publicKey {e}")
    for i, ca in enumerate(keys.get("certificateAuthorities", [])):
        if e := pem_ok(ca.get("certChain", ""), "CERTIFICATE"):
            errs.append(f"certificateAuthorities[{i}].certChain {e}")
    return errs


def cip_rules(doc, trustroots):
    """A ClusterImagePolicy must name our TrustRoot for the log (without
    trustRootRef policy-controller would use the public-good Rekor keys)."""
    errs = []
    for a in doc.get("spec", {}).get("authorities", []):
        ctlog = a.get("ctlog")
        if not ctlog or not ctlog.get("trustRootRef"):
            errs.append(f"authority {a.get('name')}: ctlog.trustRootRef is required (our log, not public-good)")
        elif trustroots and ctlog["trustRootRef"] not in trustroots:
            errs.append(f"authority {a.get('name')}: TrustRoot {ctlog['trustRootRef']} is not defined")
    return errs


def crds(crd_dir, files, all_docs=None):
    import jsonschema

    schemas = load_crds(crd_dir)
    if all_docs is None:
        all_docs = [(f, d) for f in files for d in docs(f)]
    trustroots = {d["metadata"]["name"] for _, d in all_docs if d.get("kind") == "TrustRoot"}
    templates = {
        d["spec"]["crd"]["spec"]["names"]["kind"]: d for _, d in all_docs if d.get("kind") == "ConstraintTemplate"
    }
    bad = 0
    for f, d in all_docs:
        key = (d.get("apiVersion"), d.get("kind"))
        name = f"{f}: {d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("apiVersion", "").startswith("constraints.gatekeeper.sh/"):
            # Gatekeeper generates this CRD from the template's parameter schema.
            t = templates.get(d["kind"])
            if t is None:
                errs = [f"no ConstraintTemplate defines kind {d['kind']}"]
            else:
                ps = t["spec"]["crd"]["spec"].get("validation", {}).get("openAPIV3Schema", {})
                v = jsonschema.Draft7Validator(strict(copy.deepcopy(ps)))
                errs = [e.message for e in v.iter_errors(d.get("spec", {}).get("parameters", {}))]
        elif key not in schemas:
            errs = [f"no vendored CRD for {key}"]
        else:
            v = jsonschema.Draft7Validator(schemas[key])
            errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(d)]
            if d.get("kind") == "TrustRoot":
                errs += trustroot_rules(d)
            if d.get("kind") == "ClusterImagePolicy":
                errs += cip_rules(d, trustroots)
        for e in errs:
            print(f"FAIL {name}: {e}")
        bad += bool(errs)
        if not errs:
            print(f"ok   {name}")
    if not all_docs:
        print("no custom resources given")
        return 1
    return 1 if bad else 0


def compose(path, text=None):
    from compose_spec import PyCompose

    text = open(path).read() if text is None else text
    # Compose interpolates ${VAR:-default} before it validates; do the same,
    # with the variables docs/deploy.md puts in .env.
    env = {"TLOG_UID": "1000", "TLOG_GID": "1000", "POSTGRES_PASSWORD": "example"}

    def interpolate(m):
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if name in env:
            return env[name]
        if op == ":?":
            raise SystemExit(f"FAIL {path}: ${{{name}}} is required: {arg}")
        return arg if op == ":-" else ""

    resolved = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", interpolate, text)
    PyCompose.from_yaml(resolved)  # raises ValueError with the path and line
    c = yaml.safe_load(resolved)
    errs = []
    services = c.get("services", {})
    defined = {k: set(c.get(k) or {}) for k in ("volumes", "networks", "secrets", "configs")}
    used = {k: set() for k in defined}
    for name, s in services.items():
        deps = s.get("depends_on", {})
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if dep not in services:
                errs.append(f"service {name}: depends_on undefined service {dep}")
        for kind in ("secrets", "configs"):
            for ref in s.get(kind, []):
                src = ref if isinstance(ref, str) else ref.get("source")
                used[kind].add(src)
                if src not in defined[kind]:
                    errs.append(f"service {name}: undefined {kind[:-1]} {src}")
        nets = s.get("networks", [])
        for net in nets if isinstance(nets, (list, dict)) else []:
            used["networks"].add(net)
            if net not in defined["networks"]:
                errs.append(f"service {name}: undefined network {net}")
        for vol in s.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            vtype = "bind" if isinstance(vol, str) and src.startswith((".", "/", "~", "$")) else None
            if isinstance(vol, dict):
                vtype = vol.get("type", "volume")
            if vtype in (None, "volume") and src:
                used["volumes"].add(src)
                if src not in defined["volumes"]:
                    errs.append(f"service {name}: undefined volume {src}")
        for ext in s.get("extends", {}) and [s["extends"].get("service")]:
            if ext not in services:
                errs.append(f"service {name}: extends undefined service {ext}")
    for kind in defined:
        for unused in sorted(defined[kind] - used[kind]):
            errs.append(f"top-level {kind[:-1]} {unused} is defined but never used")
    for e in errs:
        print(f"FAIL {e}")
    print(f"{len(services)} services; references checked")
    return 1 if errs else 0


def crds_selftest(crd_dir, files):
    """The CRD check must catch what the webhook or the API server would refuse."""
    base = [(f, d) for f in files for d in docs(f)]

    def find(kind):
        return next(i for i, (_, d) in enumerate(base) if d.get("kind") == kind)

    def tr(d):
        return d["spec"]["sigstoreKeys"]

    def cip_ctlog(d):
        return d["spec"]["authorities"][0]["ctlog"]

    mutations = {
        "TrustRoot without CA or TSA": ("TrustRoot", lambda d: tr(d).pop("certificateAuthorities")),
        "TrustRoot key that is not a PEM key": ("TrustRoot", lambda d: tr(d)["tLogs"][0].update(publicKey="aGVsbG8=")),
        "TrustRoot misspelt field": ("TrustRoot", lambda d: tr(d)["tLogs"][0].update(baseUrl="x")),
        "CIP without trustRootRef": ("ClusterImagePolicy", lambda d: cip_ctlog(d).pop("trustRootRef")),
        "CIP naming an unknown TrustRoot": ("ClusterImagePolicy", lambda d: cip_ctlog(d).update(trustRootRef="nope")),
        "CIP mode of the wrong type": ("ClusterImagePolicy", lambda d: d["spec"].update(mode=42)),
        "Constraint with an unknown parameter": ("K8sHardenedPod", lambda d: d["spec"]["parameters"].update(x=1)),
        "Application misspelt field": ("Application", lambda d: d["spec"].update(destinaton={})),
    }
    bad = 0
    for name, (kind, mutate) in mutations.items():
        docs_ = copy.deepcopy(base)
        mutate(docs_[find(kind)][1])
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                rc = crds(crd_dir, None, docs_)
            finally:
                sys.stdout = saved
        print(f"{'ok  ' if rc else 'FAIL'} {name} is {'caught' if rc else 'NOT caught'}")
        bad += not rc
    return 1 if bad else 0


def compose_selftest(path):
    """The reference check must catch each kind of dangling reference."""
    text = open(path).read()
    c = yaml.safe_load(text)
    mutations = {
        "undefined secret": lambda c: c["services"]["tlog"]["secrets"].append("nope"),
        "undefined network": lambda c: c["services"]["tlog"]["networks"].append("nope"),
        "undefined volume": lambda c: c["services"]["postgres"]["volumes"].append("nope:/x"),
        "undefined depends_on": lambda c: c["services"]["tlog"]["depends_on"].update({"nope": {"condition": "service_started"}}),
        "undefined config": lambda c: c["services"]["otel-collector"]["configs"].append({"source": "nope", "target": "/x"}),
        "unused volume": lambda c: c["volumes"].update({"spare": None}),
    }
    bad = 0
    for name, mutate in mutations.items():
        m = copy.deepcopy(c)
        mutate(m)
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                rc = compose(path, yaml.safe_dump(m, sort_keys=False))
            finally:
                sys.stdout = saved
        print(f"{'ok  ' if rc else 'FAIL'} {name} is {'caught' if rc else 'NOT caught'}")
        bad += not rc
    return 1 if bad else 0


def readwrite_ha(rendered, replicas):
    """The Deployment runs `replicas` pods: several roll one at a time, spread over
    nodes, under a PDB; one (the embedded journal) is recreated."""
    replicas = int(replicas)
    found = [d for d in docs(rendered) if d.get("kind") in ("Deployment", "PodDisruptionBudget")]
    dep = next(d for d in found if d["kind"] == "Deployment")["spec"]
    errs = []
    if dep.get("replicas") != replicas:
        errs.append(f"replicas {dep.get('replicas')}, want {replicas}")
    if replicas > 1:
        if dep["strategy"].get("type") != "RollingUpdate" or dep["strategy"]["rollingUpdate"].get("maxUnavailable") != 0:
            errs.append(f"strategy {dep['strategy']}, want RollingUpdate with maxUnavailable 0")
        if "podAntiAffinity" not in dep["template"]["spec"].get("affinity", {}):
            errs.append("no pod anti-affinity")
        if not any(d["kind"] == "PodDisruptionBudget" for d in found):
            errs.append("no PodDisruptionBudget")
    elif dep["strategy"].get("type") != "Recreate":
        errs.append(f"strategy {dep['strategy']}, want Recreate")
    for e in errs:
        print(f"FAIL {rendered}: {e}")
    print(f"{rendered}: {replicas} replica(s) checked")
    return 1 if errs else 0


# Replica flags that name a file or directory, and whether it may be written.
REPLICA_PATH_FLAGS = {
    "--db": False,
    "--public-key": False,
    "--frozen-shard": False,
    "--v2-tiles": False,
    "--v2-public-key": False,
    "--min-checkpoint": False,
    "--config": False,
    "--state-dir": True,
}


def replica_args(rendered, *expected):
    """The replica container's args give each flag of `expected` (FLAG VALUE
    pairs) exactly the values listed for it, in that order (--frozen-shard is
    oldest first), and every path it is given lies on a volume mount,
    read-only but for --state-dir, whose volume exists: for a ConfigMap, an
    item mapped to that path; for an emptyDir, an init container's copy to it."""
    if len(expected) % 2:
        print("replica-args: expected FLAG VALUE pairs")
        return 2
    dep = next(d for d in docs(rendered) if d.get("kind") == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    c = next(c for c in spec["containers"] if c["name"] == "tlog")
    args = c["args"]
    errs = []
    if args[:1] != ["replica"]:
        errs.append(f"args {args} do not run `tlog replica`")
    got = {}
    for flag, value in zip(args, args[1:]):
        if flag in REPLICA_PATH_FLAGS:
            got.setdefault(flag, []).append(value)
    want = {}
    for flag, value in zip(expected[::2], expected[1::2]):
        want.setdefault(flag, []).append(value)
    for flag, values in want.items():
        if got.get(flag, []) != values:
            errs.append(f"{flag}: {got.get(flag, [])}, want {values}")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for flag, values in got.items():
        for path in values:
            mounts = [m for m in c.get("volumeMounts", []) if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
            if not mounts:
                errs.append(f"{flag} {path}: on no volume mount")
                continue
            m = max(mounts, key=lambda m: len(m["mountPath"]))
            if not REPLICA_PATH_FLAGS[flag] and not m.get("readOnly"):
                errs.append(f"{flag} {path}: mount {m['name']} is not read-only")
            vol = volumes.get(m["name"])
            if vol is None:
                errs.append(f"{flag} {path}: mount {m['name']} has no volume")
                continue
            rel = path[len(m["mountPath"].rstrip("/")) + 1 :]
            if "configMap" in vol and "items" in vol["configMap"]:
                if rel not in [i["path"] for i in vol["configMap"]["items"]]:
                    errs.append(f"{flag} {path}: ConfigMap volume {m['name']} maps no item to {rel}")
            if "emptyDir" in vol:
                fills = [
                    i
                    for i in spec.get("initContainers", [])
                    if i.get("command", [])[-1:] == [path]
                    and any(im["name"] == m["name"] and im["mountPath"] == m["mountPath"] for im in i.get("volumeMounts", []))
                ]
                if not fills:
                    errs.append(f"{flag} {path}: no init container copies it into emptyDir {m['name']}")
    for e in errs:
        print(f"FAIL {rendered}: {e}")
    print(f"{rendered}: replica args {args[1:]} checked")
    return 1 if errs else 0


def pod(rendered):
    for d in docs(rendered):
        if d.get("kind") == "Deployment":
            p = {"apiVersion": "v1", "kind": "Pod", "metadata": d["spec"]["template"]["metadata"]}
            p["metadata"] = {**p["metadata"], "name": d["metadata"]["name"], "namespace": d["metadata"]["namespace"]}
            p["spec"] = d["spec"]["template"]["spec"]
            # Annotations carry checksums of the test values; they are not
            # what the policy checks.
            p["metadata"].pop("annotations", None)
            print(json.dumps(p, indent=2, sort_keys=True))
            return 0
    print("no Deployment rendered", file=sys.stderr)
    return 1


def sbom(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = open(path).read()
    bom = json.loads(text)
    version = SchemaVersion.from_version(bom.get("specVersion", ""))
    err = JsonStrictValidator(version).validate_str(text)
    if err is not None:
        print(f"FAIL {path} is not valid CycloneDX {bom.get('specVersion')}: {err}")
        return 1
    names = {c.get("name") for c in bom.get("components", [])}
    missing = {"actix-web", "sqlx", "aws-lc-rs", "tlog_tiles"} - names
    if missing:
        print(f"FAIL {path} lacks components {sorted(missing)}")
        return 1
    print(f"ok   {path}: CycloneDX {bom['specVersion']}, {len(names)} components")
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "k8s":
        return k8s(args)
    if cmd == "split":
        return split(*args) or 0
    if cmd == "crds":
        return crds(args[0], args[1:])
    if cmd == "compose":
        return compose(args[0])
    if cmd == "crds-selftest":
        return crds_selftest(args[0], args[1:])
    if cmd == "compose-selftest":
        return compose_selftest(args[0])
    if cmd == "pod":
        return pod(args[0])
    if cmd == "replica-args":
        return replica_args(*args)
    if cmd == "readwrite-ha":
        return readwrite_ha(*args)
    if cmd == "sbom":
        return sbom(args[0])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
