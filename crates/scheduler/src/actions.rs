//! The scheduler's API writes: bindings, PodScheduled conditions / nominations, and
//! preemption of victims.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

/// Pod condition reason when no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// Pod condition reason when scheduling failed for another reason.
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";

/// The HTTP status of an API error, if it is one.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `POST pods/NAME/binding`.
pub async fn bind(
    client: kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource::<Value, Value>("binding", name, &PostParams::default(), &binding)
        .await
        .map(|_| ())
}

/// The status patch for an unschedulable pod: the PodScheduled condition, and optionally a
/// new `nominatedNodeName` (`Some("")` clears it). `was_false`: the condition already said
/// False, so its `lastTransitionTime` stays (the patch merges by condition type).
pub fn unschedulable_status(
    reason: &str,
    message: &str,
    nominated: Option<&str>,
    was_false: bool,
) -> Value {
    let mut cond = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
    });
    if !was_false {
        cond["lastTransitionTime"] = json!(now());
    }
    let mut status = json!({"conditions": [cond]});
    if let Some(n) = nominated {
        status["nominatedNodeName"] = if n.is_empty() { Value::Null } else { json!(n) };
    }
    json!({"status": status})
}

/// Strategic-merge-patch a pod's status (conditions merge by `type`).
pub async fn patch_status(
    client: kube::Client,
    namespace: &str,
    name: &str,
    patch: Value,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
}

/// Preempt a victim as upstream does: mark it with a DisruptionTarget condition, then
/// delete it (graceful; the kubelet finishes it). Already-gone victims are fine.
pub async fn preempt_victim(
    client: kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    scheduler: &str,
) -> Result<(), kube::Error> {
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
        "lastTransitionTime": now(),
    }]}});
    match patch_status(client.clone(), namespace, name, condition).await {
        Err(e) if api_code(&e) == Some(404) => return Ok(()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}
