//! Leader election through coordination.k8s.io Leases (as upstream's leaderelection
//! package): only the holder of `kube-system/<name>` runs the component, so two servers
//! sharing one datastore never both act.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use std::future::Future;
use std::time::Duration;

/// How long a lease is valid without renewal.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// Give up leadership if the lease could not be renewed for this long.
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews and candidates retry.
const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Run `component` while holding the lease `name`; stop it when leadership is lost and
/// compete again. Never returns.
pub async fn run_with_lease<F, Fut>(
    client: kube::Client,
    name: &'static str,
    identity: String,
    component: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    loop {
        if !try_acquire_or_renew(&leases, name, &identity).await {
            tokio::time::sleep(RETRY_PERIOD).await;
            continue;
        }
        tracing::info!(lease = name, %identity, "became leader");
        let mut task = tokio::spawn(component());
        let mut last_renew = tokio::time::Instant::now();
        loop {
            tokio::select! {
                res = &mut task => {
                    match res {
                        Ok(Ok(())) => tracing::warn!(lease = name, "component stopped; restarting"),
                        Ok(Err(e)) => tracing::error!(lease = name, error = %format!("{e:#}"), "component failed; restarting"),
                        Err(e) => tracing::error!(lease = name, error = %e, "component panicked; restarting"),
                    }
                    tokio::time::sleep(RETRY_PERIOD).await;
                    task = tokio::spawn(component());
                }
                _ = tokio::time::sleep(RETRY_PERIOD) => {
                    if try_acquire_or_renew(&leases, name, &identity).await {
                        last_renew = tokio::time::Instant::now();
                    } else if last_renew.elapsed() > RENEW_DEADLINE {
                        tracing::warn!(lease = name, "lost leadership");
                        task.abort();
                        break;
                    }
                }
            }
        }
    }
}

/// One attempt to take or keep the lease; true if we hold it afterwards.
async fn try_acquire_or_renew(leases: &Api<Lease>, name: &str, identity: &str) -> bool {
    let now = MicroTime(Timestamp::now());
    let existing = match leases.get_opt(name).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(lease = name, error = %e, "reading lease failed");
            return false;
        }
    };
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("kube-system".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return leases.create(&PostParams::default(), &lease).await.is_ok();
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let held_by_us = spec.holder_identity.as_deref() == Some(identity);
    if !held_by_us {
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(t), Some(d)) => match t
                .0
                .checked_add(SignedDuration::from_secs(i64::from(d.max(0))))
            {
                Ok(until) => until < Timestamp::now(),
                Err(_) => true,
            },
            _ => true,
        };
        if !expired
            && spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty())
        {
            return false;
        }
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
    // The resourceVersion in `lease` makes this a compare-and-swap: a racing candidate
    // gets a 409 and stays a follower.
    leases
        .replace(name, &PostParams::default(), &lease)
        .await
        .is_ok()
}
