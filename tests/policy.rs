//! The Gatekeeper policy in `deploy/gatekeeper/constrainttemplate.yaml`, run
//! with regorus on pods rendered from the Helm chart
//! (`tests/fixtures/deploy/pod-*.json`; `scripts/validate-deploy.sh` checks they
//! match what the chart renders today). The hardened pods must pass, and each
//! weakening must be caught with its own message.

use std::path::Path;

use serde_json::{json, Value as Json};

const TEMPLATE: &str = "deploy/gatekeeper/constrainttemplate.yaml";
const CONSTRAINT: &str = "deploy/gatekeeper/constraint.yaml";

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn pod(name: &str) -> Json {
    serde_json::from_str(&read(&format!("tests/fixtures/deploy/{name}.json"))).unwrap()
}

/// The Rego exactly as deployed: taken from the ConstraintTemplate itself.
fn rego() -> String {
    let template = regorus::Value::from_yaml_str(&read(TEMPLATE)).unwrap();
    let rego = &template["spec"]["targets"][0]["rego"];
    rego.as_string().expect("spec.targets[0].rego").to_string()
}

/// The deployed Constraint's parameters.
fn parameters() -> Json {
    let constraint = regorus::Value::from_yaml_str(&read(CONSTRAINT)).unwrap();
    serde_json::to_value(&constraint["spec"]["parameters"]).unwrap()
}

/// Gatekeeper's admission input for `object`; returns the violation messages.
fn violations_with(object: &Json, parameters: Json) -> Vec<String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine.add_policy(TEMPLATE.to_owned(), rego()).unwrap();
    let input = json!({ "review": { "object": object }, "parameters": parameters });
    engine.set_input(regorus::Value::from_json_str(&input.to_string()).unwrap());
    let result = engine
        .eval_rule("data.k8shardenedpod.violation".to_owned())
        .unwrap();
    let result: Json = serde_json::to_value(&result).unwrap();
    let mut msgs: Vec<String> = result
        .as_array()
        .expect("violation is a set")
        .iter()
        .map(|v| v["msg"].as_str().unwrap().to_owned())
        .collect();
    msgs.sort();
    msgs
}

fn violations(object: &Json) -> Vec<String> {
    violations_with(object, parameters())
}

fn assert_only(object: &Json, expected: &str) {
    let got = violations(object);
    assert_eq!(
        got,
        vec![expected.to_owned()],
        "violations of the weakened pod"
    );
}

/// The rendered pod with one change made by `f`.
fn weakened(f: impl FnOnce(&mut Json)) -> Json {
    let mut p = pod("pod-readwrite");
    f(&mut p);
    p
}

#[test]
fn rendered_pods_pass() {
    for name in ["pod-readwrite", "pod-replica"] {
        let p = pod(name);
        assert_eq!(p["kind"], "Pod");
        assert!(p["spec"]["containers"]
            .as_array()
            .is_some_and(|c| !c.is_empty()));
        assert_eq!(violations(&p), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn rendered_pod_passes_inside_a_deployment() {
    let p = pod("pod-readwrite");
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "tlog" },
        "spec": { "template": { "metadata": p["metadata"], "spec": p["spec"] } }
    });
    assert_eq!(violations(&deployment), Vec::<String>::new());
    let mut bad = deployment;
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] =
        json!(false);
    assert_eq!(
        violations(&bad),
        vec!["container tlog must set readOnlyRootFilesystem: true".to_owned()]
    );
}

#[test]
fn the_readwrite_pod_has_an_init_container_that_is_checked_too() {
    let p = weakened(|p| {
        p["spec"]["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    });
    assert_only(
        &p,
        "container migrate must set allowPrivilegeEscalation: false",
    );
}

#[test]
fn root_is_refused() {
    // The container's setting overrides the pod's.
    let p =
        weakened(|p| p["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = json!(false));
    assert_only(&p, "container tlog must set runAsNonRoot: true");

    let p = weakened(|p| {
        p["spec"]["containers"][0]["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("runAsNonRoot");
        p["spec"]["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("runAsNonRoot");
    });
    assert_only(&p, "container tlog must set runAsNonRoot: true");

    let p = weakened(|p| p["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0));
    assert_only(&p, "container tlog must not run as UID 0");
}

#[test]
fn a_writable_root_filesystem_is_refused() {
    let p = weakened(|p| {
        p["spec"]["containers"][0]["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("readOnlyRootFilesystem");
    });
    assert_only(&p, "container tlog must set readOnlyRootFilesystem: true");
}

#[test]
fn privileges_and_capabilities_are_refused() {
    let p = weakened(|p| p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true));
    assert_only(&p, "container tlog must not be privileged");

    let p = weakened(|p| {
        p["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"] = json!(["NET_RAW"]);
    });
    assert_only(&p, "container tlog must drop ALL capabilities");

    let p = weakened(|p| {
        p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"]);
    });
    assert_only(&p, "container tlog must not add capability SYS_ADMIN");
}

#[test]
fn seccomp_must_be_confined() {
    let p = weakened(|p| {
        p["spec"]["containers"][0]["securityContext"]["seccompProfile"] =
            json!({ "type": "Unconfined" });
    });
    assert_only(
        &p,
        "container tlog must use a RuntimeDefault or Localhost seccomp profile",
    );

    // Without a container profile the pod's applies.
    let p = weakened(|p| {
        for c in ["containers", "initContainers"] {
            p["spec"][c][0]["securityContext"]
                .as_object_mut()
                .unwrap()
                .remove("seccompProfile");
        }
    });
    assert_eq!(violations(&p), Vec::<String>::new());
    let p = weakened(|p| {
        p["spec"]["containers"][0]["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("seccompProfile");
        p["spec"]["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("seccompProfile");
    });
    assert_only(
        &p,
        "container tlog must use a RuntimeDefault or Localhost seccomp profile",
    );
}

#[test]
fn a_service_account_token_is_refused() {
    let p = weakened(|p| {
        p["spec"]
            .as_object_mut()
            .unwrap()
            .remove("automountServiceAccountToken");
    });
    assert_only(&p, "pod must set automountServiceAccountToken: false");
}

#[test]
fn host_namespaces_are_refused() {
    let p = weakened(|p| p["spec"]["hostNetwork"] = json!(true));
    assert_only(&p, "pod must not use the host network");
    let p = weakened(|p| p["spec"]["hostPID"] = json!(true));
    assert_only(&p, "pod must not use the host PID namespace");
}

#[test]
fn an_unhardened_pod_gets_every_violation() {
    let bad = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "bad" },
        "spec": { "containers": [ { "name": "app", "image": "busybox" } ] }
    });
    assert_eq!(
        violations(&bad),
        vec![
            "container app must drop ALL capabilities",
            "container app must set allowPrivilegeEscalation: false",
            "container app must set readOnlyRootFilesystem: true",
            "container app must set runAsNonRoot: true",
            "container app must use a RuntimeDefault or Localhost seccomp profile",
            "pod must set automountServiceAccountToken: false",
        ]
    );
    // Exempt images skip the container checks, not the pod-level ones.
    assert_eq!(
        violations_with(&bad, json!({ "exemptImages": ["busybox"] })),
        vec!["pod must set automountServiceAccountToken: false"]
    );
}
