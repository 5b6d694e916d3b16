//! The image manager part of a pod worker, as upstream's kubelet does it: honour
//! imagePullPolicy (`Always` pulls every time, `IfNotPresent` only when missing, `Never`
//! never), pull through CRI (the runtime applies registries.yaml mirrors and credentials),
//! and on failure report `ErrImagePull`, then `ImagePullBackOff` while the per-image
//! back-off (10 s doubling to 5 min) runs, with the events `Pulling`, `Pulled`, `Failed`,
//! `BackOff` and `ErrImageNeverPull` worded as upstream. Credentials come from the pod's
//! `imagePullSecrets` (`keyring.rs`); one that cannot be read is reported with
//! `FailedToRetrieveImagePullSecret` and the pull goes ahead without it.

use super::container::Kind;
use super::events::{NORMAL, WARNING, container_ref, pod_ref, reason};
use super::keyring::Keyring;
use super::pull::{go_duration, with_default_tag};
use super::refs::ObjectCache;
use super::worker::Worker;
use crate::error::Result;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::time::{Duration, Instant};
use tracing::info;

/// The resolved image: (reference, uid, user name).
pub(super) type ImageInfo = (String, Option<i64>, String);

/// Why the container cannot start yet: (waiting reason, message).
pub(super) type ImageWait = (String, String);

/// `IfNotPresent` unless the tag is `latest` or missing (then `Always`), like the API
/// server's defaulting.
pub(super) fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let name = image.split('@').next().unwrap_or_default();
    let tagged = name
        .rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'));
    if image.contains('@') || (tagged && !name.ends_with(":latest")) {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

fn info_of(img: &crate::cri::api::Image) -> ImageInfo {
    (
        img.id.clone(),
        img.uid.as_ref().map(|u| u.value),
        img.username.clone(),
    )
}

impl Worker {
    /// The image for `c`, or why the container waits.
    pub(super) async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        sandbox_cfg: &crate::cri::api::PodSandboxConfig,
        cache: &mut ObjectCache,
    ) -> Result<std::result::Result<ImageInfo, ImageWait>> {
        let requested = c.image.clone().unwrap_or_default();
        let image = with_default_tag(&requested);
        let policy = pull_policy(c);
        let obj = container_ref(pod, c, kind);
        let events = self.services.events.clone();
        let (secrets, unreadable) = cache.pull_secrets(pod).await;
        if !unreadable.is_empty() {
            let msg = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                unreadable.join(", ")
            );
            events.event(&pod_ref(pod), WARNING, reason::FAILED_PULL_SECRET, &msg);
        }
        if policy != "Always" {
            if let Some(img) = self.ctx.cri.image_status(&image).await? {
                let msg = format!("Container image \"{requested}\" already present on machine");
                events.event(&obj, NORMAL, reason::PULLED, &msg);
                return Ok(Ok(info_of(&img)));
            }
            if policy == "Never" {
                let msg = format!(
                    "Container image \"{requested}\" is not present with pull policy of Never"
                );
                events.event(&obj, WARNING, reason::NEVER_PULL, &msg);
                return Ok(Err(("ErrImageNeverPull".into(), msg)));
            }
        }
        let now = Instant::now();
        if let Some(until) = self
            .pull_failed_at
            .get(&image)
            .and_then(|at| self.pull_backoff.in_backoff_until(&image, *at, now))
        {
            self.wake_at(until);
            let mut msg = format!("Back-off pulling image \"{image}\"");
            events.event(&obj, NORMAL, reason::BACK_OFF, &msg);
            if let Some(prev) = self.pull_errors.get(&image) {
                msg = format!("{msg}: {prev}");
            }
            return Ok(Err(("ImagePullBackOff".into(), msg)));
        }
        self.pull_errors.remove(&image);
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        info!(pod = %pod_name, %image, "pulling image");
        events.event(
            &obj,
            NORMAL,
            reason::PULLING,
            &format!("Pulling image \"{image}\""),
        );
        let creds = Keyring::from_secrets(&secrets).lookup(&image);
        let pulled = self
            .services
            .puller
            .pull_with(&image, &creds, Some(sandbox_cfg.clone()))
            .await;
        let waited = now.elapsed();
        match pulled {
            Ok((_, took)) => {
                self.pull_failed_at.remove(&image);
                self.pull_backoff.reset(&image);
                let Some(img) = self.ctx.cri.image_status(&image).await? else {
                    return Ok(Err((
                        "ErrImagePull".into(),
                        format!("image \"{image}\" not found after pull"),
                    )));
                };
                let msg = format!(
                    "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {} bytes.",
                    go_duration(took),
                    go_duration(waited),
                    img.size
                );
                events.event(&obj, NORMAL, reason::PULLED, &msg);
                Ok(Ok(info_of(&img)))
            }
            Err(e) => {
                info!(pod = %pod_name, %image, "image pull failed: {e}");
                events.event(
                    &obj,
                    WARNING,
                    reason::FAILED,
                    &format!("Failed to pull image \"{image}\": {e}"),
                );
                let now = Instant::now();
                self.pull_backoff.next(&image, now);
                self.pull_failed_at.insert(image.clone(), now);
                self.wake_at(
                    now + self
                        .pull_backoff
                        .delay(&image)
                        .unwrap_or(Duration::from_secs(10)),
                );
                self.pull_errors
                    .insert(image.clone(), format!("ErrImagePull: {e}"));
                Ok(Err(("ErrImagePull".into(), e.to_string())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(image: &str, policy: Option<&str>) -> Container {
        let mut v = serde_json::json!({"name": "c", "image": image});
        if let Some(p) = policy {
            v["imagePullPolicy"] = serde_json::json!(p);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_pull_policies() {
        assert_eq!(pull_policy(&c("nginx", None)), "Always");
        assert_eq!(pull_policy(&c("nginx:latest", None)), "Always");
        assert_eq!(pull_policy(&c("nginx:1.14.2", None)), "IfNotPresent");
        assert_eq!(pull_policy(&c("localhost:5000/app", None)), "Always");
        assert_eq!(
            pull_policy(&c("localhost:5000/app:v1", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&c("app@sha256:abc", None)), "IfNotPresent");
        assert_eq!(pull_policy(&c("nginx", Some("Never"))), "Never");
    }
}
