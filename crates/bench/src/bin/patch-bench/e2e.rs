//! The same patches end to end: kube-rs client → HTTPS → in-process API server (embedded
//! SQLite) → store, one client, sequential requests; and, as the baseline, the raw store
//! reading and writing the same stored bytes (get + compare-and-put) in the same server's
//! database.

use crate::object;
use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use r8s_apiserver::testing::TestServer;
use r8s_store::{DynStore, ListOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A started server with the measured Deployment created through the API.
pub struct Setup {
    pub server: TestServer,
    pub client: kube::Client,
    /// The Deployment exactly as the server stored it (managed fields included).
    pub stored: Value,
}

async fn client(server: &TestServer) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Start a server and create Deployment `name` with `containers` containers.
pub async fn setup(name: &str, containers: usize) -> Result<Setup> {
    let server = TestServer::start().await;
    let client = client(&server).await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(object::deployment(name, "default", containers))?;
    api.create(&PostParams::default(), &d)
        .await
        .context("create the Deployment")?;
    let store = server.running.state.registry.store().clone();
    let kv = find_key(&store, &format!("/default/{name}")).await?;
    let stored = serde_json::from_slice(&kv.1)?;
    Ok(Setup {
        server,
        client,
        stored,
    })
}

/// The stored key and bytes of the one object whose key ends with `suffix`.
async fn find_key(store: &DynStore, suffix: &str) -> Result<(String, Vec<u8>)> {
    let all = store.list("/registry/", ListOptions::default()).await?;
    all.items
        .into_iter()
        .find(|kv| kv.key.contains("deployments") && kv.key.ends_with(suffix))
        .map(|kv| (kv.key, kv.value))
        .ok_or_else(|| anyhow!("stored Deployment {suffix} not found"))
}

/// One end-to-end row.
pub struct E2e {
    pub name: &'static str,
    pub body_bytes: usize,
    pub samples: Vec<Duration>,
}

async fn timed<F, Fut>(warmup: usize, iters: usize, mut f: F) -> Result<Vec<Duration>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for i in 0..warmup {
        f(i).await?;
    }
    let mut samples = Vec::with_capacity(iters);
    for i in 0..iters {
        let t = Instant::now();
        f(i).await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// The stored bytes with the target container's image at variant `v`.
fn stored_variant(stored: &Value, t: usize, v: usize) -> Result<Vec<u8>> {
    let mut s = stored.clone();
    let c = s
        .pointer_mut(&format!("/spec/template/spec/containers/{t}"))
        .context("stored object lacks the target container")?;
    c["image"] = json!(object::image(t, v));
    Ok(serde_json::to_vec(&s)?)
}

/// Raw get+put, API GET, API strategic patch and API apply, `iters` each.
pub async fn run(
    setup: &Setup,
    name: &str,
    containers: usize,
    warmup: usize,
    iters: usize,
    only: &[String],
) -> Result<Vec<E2e>> {
    // The raw baseline always runs; API rows only if named by `only` (all when empty).
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let t = object::target(containers);
    let mut rows = Vec::new();

    // Baseline: what any update of this object costs the store — read it, write it back
    // with one image changed, conditional on the revision read.
    let store = setup.server.running.state.registry.store().clone();
    let raw_key = format!("/bench-raw/deployments/default/{name}");
    let variants = [
        stored_variant(&setup.stored, t, 1)?,
        stored_variant(&setup.stored, t, 2)?,
    ];
    store.create(&raw_key, variants[0].clone(), None).await?;
    let samples = timed(warmup, iters, |i| {
        let (store, key, value) = (&store, &raw_key, variants[i % 2].clone());
        async move {
            let kv = store.get(key, 0).await?.context("raw key vanished")?;
            store.update(key, value, kv.mod_revision, None).await?;
            Ok(())
        }
    })
    .await?;
    rows.push(E2e {
        name: "raw store get + put (same bytes)",
        body_bytes: variants[0].len(),
        samples,
    });

    let api: Api<Deployment> = Api::namespaced(setup.client.clone(), "default");
    if want("API GET") {
        let samples = timed(warmup, iters, |_| {
            let api = &api;
            async move {
                api.get(name).await?;
                Ok(())
            }
        })
        .await?;
        rows.push(E2e {
            name: "API GET",
            body_bytes: 0,
            samples,
        });
    }
    if want("API strategic") {
        let bodies: Vec<Value> = [1, 2]
            .iter()
            .map(|&v| serde_json::from_slice(&object::strategic_image(t, v)))
            .collect::<Result<_, _>>()?;
        let samples = timed(warmup, iters, |i| {
            let (api, body) = (&api, &bodies[i % 2]);
            async move {
                api.patch(name, &PatchParams::default(), &Patch::Strategic(body))
                    .await?;
                Ok(())
            }
        })
        .await?;
        rows.push(E2e {
            name: "API strategic patch: 1 image",
            body_bytes: object::strategic_image(t, 1).len(),
            samples,
        });
    }
    if !want("API apply") {
        return Ok(rows);
    }

    // Apply on its own object, created by the first (untimed) apply, so the manager owns
    // every field it applies and a changed image is not a conflict.
    let apply_name = format!("{name}-apply");
    let configs: Vec<Value> = [0, 1, 2]
        .iter()
        .map(|&v| {
            serde_json::from_slice(&object::apply_config(
                &apply_name,
                "default",
                containers,
                t,
                v,
            ))
        })
        .collect::<Result<_, _>>()?;
    let params = PatchParams::apply("bench-apply");
    api.patch(&apply_name, &params, &Patch::Apply(&configs[0]))
        .await
        .context("apply that creates")?;
    let samples = timed(warmup, iters, |i| {
        let (api, params, body, apply_name) = (&api, &params, &configs[1 + i % 2], &apply_name);
        async move {
            api.patch(apply_name, params, &Patch::Apply(body)).await?;
            Ok(())
        }
    })
    .await?;
    rows.push(E2e {
        name: "API apply: full object, 1 image changed",
        body_bytes: serde_json::to_vec(&configs[1])?.len(),
        samples,
    });
    Ok(rows)
}
