//! Which Ingresses are ours: those naming an IngressClass of our controller, those with
//! the legacy `kubernetes.io/ingress.class` annotation naming one, and those with no class
//! at all while the default IngressClass is ours.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::HashSet;
use std::sync::Arc;

/// `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER: &str = "r8s.io/ingress-controller";
/// The IngressClass `r8s server` creates.
pub const CLASS_NAME: &str = "r8s";
/// Marks the class Ingresses without one get (upstream's DefaultIngressClass admission).
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation from before `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// What the IngressClasses say about us.
#[derive(Debug, Default)]
pub struct Classes {
    ours: HashSet<String>,
    /// The default class (the newest marked one, as admission picks it) is ours.
    default_is_ours: bool,
}

fn is_default(c: &IngressClass) -> bool {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

impl Classes {
    pub fn new(classes: &[Arc<IngressClass>]) -> Classes {
        let ours_class = |c: &IngressClass| {
            c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
        };
        let ours = classes
            .iter()
            .filter(|c| ours_class(c))
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        // Newest first, then the smallest name, as upstream's admission chooses.
        let default = classes.iter().filter(|c| is_default(c)).max_by(|a, b| {
            let key = |c: &IngressClass| c.metadata.creation_timestamp.clone();
            key(a)
                .cmp(&key(b))
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        });
        Classes {
            ours,
            default_is_ours: default.is_some_and(|c| ours_class(c)),
        }
    }

    /// Whether this controller serves `ing`.
    pub fn serves(&self, ing: &Ingress) -> bool {
        if let Some(name) = ing
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_ref())
        {
            return self.ours.contains(name);
        }
        let legacy = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
        match legacy {
            Some(name) => self.ours.contains(name),
            None => self.default_is_ours,
        }
    }
}

/// The `r8s` IngressClass, default for Ingresses without a class (k3s's Traefik class
/// plays this part), made once; an admin's edits are kept, and a deleted one comes back at
/// the next start.
pub async fn ensure_class(client: &kube::Client) {
    let class: IngressClass = match serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": CLASS_NAME,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "spec": {"controller": CONTROLLER},
    })) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("r8s IngressClass: {e}");
            return;
        }
    };
    let api: kube::Api<IngressClass> = kube::Api::all(client.clone());
    match api.create(&Default::default(), &class).await {
        Ok(_) => tracing::info!("created the default r8s IngressClass"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => tracing::warn!("creating the r8s IngressClass: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, controller: &str, default: bool, created: &str) -> Arc<IngressClass> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": created,
                             "annotations": {DEFAULT_CLASS_ANNOTATION: default.to_string()}},
                "spec": {"controller": controller},
            }))
            .unwrap(),
        )
    }

    fn ingress(class: Option<&str>, legacy: Option<&str>) -> Ingress {
        let mut v = json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {}});
        if let Some(c) = class {
            v["spec"]["ingressClassName"] = json!(c);
        }
        if let Some(l) = legacy {
            v["metadata"]["annotations"] = json!({LEGACY_CLASS_ANNOTATION: l});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn classes_decide() {
        let t0 = "2024-01-01T00:00:00Z";
        let t1 = "2024-02-01T00:00:00Z";
        let ours = Classes::new(&[
            class("r8s", CONTROLLER, true, t0),
            class("nginx", "k8s.io/ingress-nginx", false, t0),
        ]);
        assert!(ours.serves(&ingress(Some("r8s"), None)));
        assert!(!ours.serves(&ingress(Some("nginx"), None)));
        assert!(!ours.serves(&ingress(Some("missing"), None)));
        assert!(ours.serves(&ingress(None, None)));
        assert!(ours.serves(&ingress(None, Some("r8s"))));
        assert!(!ours.serves(&ingress(None, Some("nginx"))));
        // A newer default class of another controller takes class-less Ingresses.
        let theirs = Classes::new(&[
            class("r8s", CONTROLLER, true, t0),
            class("nginx", "k8s.io/ingress-nginx", true, t1),
        ]);
        assert!(!theirs.serves(&ingress(None, None)));
        assert!(theirs.serves(&ingress(Some("r8s"), None)));
        // No class objects at all: nothing is ours.
        assert!(!Classes::default().serves(&ingress(None, None)));
    }
}
