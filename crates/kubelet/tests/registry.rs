//! Pulls through CRI from a registry configured in `DATA_DIR/agent/registries.yaml`:
//! a local `docker-registry` on loopback (plain http, htpasswd auth) mirrors `docker.io`
//! and a custom name; imagePullPolicy Always pulls; a missing tag shows ErrImagePull, then
//! ImagePullBackOff, with upstream's events; wrong credentials fail; a pod's
//! `imagePullSecrets` log in where registries.yaml has no credentials; a broken
//! registries.yaml stops the agent at start with a clear error.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use r8s_apiserver::testing::TestServer;
use r8s_kubelet::{Kubelet, KubeletConfig};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: u8 = 41;
const WAIT: Duration = Duration::from_secs(60);
const USER: &str = "r8s";
const PASSWORD: &str = "pull-secret-1";

/// A `docker-registry` child process on 127.0.0.1:`port`; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a registry that wants `USER`/`PASSWORD` (htpasswd, bcrypt) for everything.
fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success(), "htpasswd failed");
    std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
    let port = free_port();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: r8s-test\n\
         auth:\n  htpasswd:\n    realm: r8s\n    path: {htpasswd}\n",
        root = dir.path().join("data").display(),
        htpasswd = dir.path().join("htpasswd").display(),
    );
    let cfg_path = dir.path().join("config.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let reg = Registry {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

/// Builds a busybox image archive with the crate's image builder and pushes it.
fn push_busybox(reg: &Registry, work: &Path, repo_tag: &str) {
    let tar = work.join("busybox-reg.tar");
    if !tar.exists() {
        r8s_kubelet::images::build_busybox_image("docker.io/library/busybox:reg", &["sh"], &tar)
            .unwrap();
    }
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--insecure-policy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{USER}:{PASSWORD}"),
        ])
        .arg(format!("docker-archive:{}", tar.display()))
        .arg(format!("docker://127.0.0.1:{}/{repo_tag}", reg.port))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn client_for(server: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// Like `Env::start`, with registries.yaml written before the agent starts.
async fn start_env(registries_yaml: &str) -> Env {
    let server = TestServer::start().await;
    let client = client_for(&server).await;
    let dir = tempfile::Builder::new()
        .prefix("r8s-kubelet-test")
        .tempdir()
        .unwrap();
    let node = format!("node-{N}");
    let bridge = format!("r8st{N}");
    let _ = Command::new("ip").args(["link", "del", &bridge]).output();
    std::fs::create_dir_all(dir.path().join("agent")).unwrap();
    std::fs::write(dir.path().join("agent/registries.yaml"), registries_yaml).unwrap();
    let mut kcfg = KubeletConfig::new(
        &node,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        dir.path().to_path_buf(),
    );
    kcfg.cluster_cidr = format!("10.199.{N}.0/24");
    kcfg.cni_bridge = bridge.clone();
    let kubelet = Kubelet::start(client.clone(), kcfg.clone())
        .await
        .expect("kubelet start");
    let cri = kubelet.cri.clone();
    Env {
        server,
        client,
        kubelet: tokio::sync::Mutex::new(Some(kubelet)),
        cri,
        dir,
        node,
        bridge,
        config: kcfg,
    }
}

fn sleeper(name: &str, image: &str, policy: Option<&str>) -> serde_json::Value {
    let mut c = json!({"name": "c", "image": image,
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]});
    if let Some(p) = policy {
        c["imagePullPolicy"] = p.into();
    }
    json!({"metadata": {"name": name},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [c]}})
}

fn waiting(p: &Pod) -> Option<(String, String)> {
    let w = container_status(p, "c")?.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.clone().unwrap_or_default(),
        w.message.clone().unwrap_or_default(),
    ))
}

/// The pod's events as (type, reason, message, count), oldest first.
async fn events_of(env: &Env, pod: &str) -> Vec<(String, String, String, i32)> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let mut evs: Vec<Event> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("kubelet"))
        .collect();
    evs.sort_by_key(|e| e.first_timestamp.clone().map(|t| t.0));
    evs.into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(1),
            )
        })
        .collect()
}

async fn wait_event(env: &Env, pod: &str, reason: &str, needle: &str, min_count: i32) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let evs = events_of(env, pod).await;
        if let Some(e) = evs
            .iter()
            .find(|e| e.1 == reason && e.2.contains(needle) && e.3 >= min_count)
        {
            return e.2.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event with {needle:?} (count ≥ {min_count}) for {pod}: {evs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every waiting reason the pod's status showed (through a watch), until `last` shows.
async fn waiting_reasons_until(env: &Env, name: &str, last: &str) -> Vec<(String, String)> {
    let wc = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(env.pods(), wc).applied_objects();
    futures::pin_mut!(stream);
    let mut seen: Vec<(String, String)> = Vec::new();
    let run = async {
        while let Some(p) = stream.try_next().await.unwrap() {
            if let Some(w) = waiting(&p) {
                if seen.last() != Some(&w) {
                    seen.push(w.clone());
                }
                if w.0 == last {
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(WAIT, run).await.is_err() {
        panic!("pod {name} never showed {last}; saw {seen:?}");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_through_configured_mirrors_with_auth() {
    if !supported() {
        return;
    }
    if !(have("docker-registry") && have("skopeo") && have("htpasswd")) {
        eprintln!("skipping: needs docker-registry, skopeo and htpasswd (scripts/install-deps.sh)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let reg = start_registry();
    let w = work.path().to_path_buf();
    tokio::task::block_in_place(|| push_busybox(&reg, &w, "library/busybox:reg"));
    let p = reg.port;
    // The registry itself is listed as a mirror of itself so containerd never falls back
    // to a name outside loopback; `localhost:P` reaches it without credentials.
    let yaml = format!(
        r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:{p}"]
  registry.test:
    endpoint: ["http://127.0.0.1:{p}"]
  "127.0.0.1:{p}":
    endpoint: ["http://127.0.0.1:{p}"]
  "localhost:{p}":
    endpoint: ["http://localhost:{p}"]
  "*":
    endpoint: ["http://127.0.0.1:{p}"]
configs:
  "127.0.0.1:{p}":
    auth:
      username: {USER}
      password: {PASSWORD}
"#
    );
    let env = std::sync::Arc::new(start_env(&yaml).await);
    let result = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(scenario(env.clone(), p))
            .catch_unwind()
            .await
    };
    env.stop().await;
    drop(reg);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

async fn scenario(env: std::sync::Arc<Env>, port: u16) {
    let cri = env.cri();
    assert!(
        cri.image_status("docker.io/library/busybox:reg")
            .await
            .unwrap()
            .is_none(),
        "image must not be there before the pull"
    );

    // imagePullPolicy Always: `busybox:reg` is docker.io/library/busybox:reg, found on the
    // docker.io mirror with the mirror's credentials.
    env.create_pod(sleeper("always", "busybox:reg", Some("Always")))
        .await;
    env.wait_pod("always", WAIT, "Ready", ready).await;
    assert!(
        cri.image_status("docker.io/library/busybox:reg")
            .await
            .unwrap()
            .is_some()
    );
    wait_event(
        &env,
        "always",
        "Pulling",
        "Pulling image \"busybox:reg\"",
        1,
    )
    .await;
    let pulled = wait_event(
        &env,
        "always",
        "Pulled",
        "Successfully pulled image \"busybox:reg\" in ",
        1,
    )
    .await;
    assert!(
        pulled.contains("including waiting). Image size: "),
        "{pulled}"
    );

    // IfNotPresent with the image present: no pull, upstream's "already present" event.
    env.create_pod(sleeper("present", "busybox:reg", None))
        .await;
    env.wait_pod("present", WAIT, "Ready", ready).await;
    wait_event(
        &env,
        "present",
        "Pulled",
        "Container image \"busybox:reg\" already present on machine",
        1,
    )
    .await;
    assert!(
        !events_of(&env, "present")
            .await
            .iter()
            .any(|e| e.1 == "Pulling")
    );

    // A custom registry name mirrored to the same endpoint.
    env.create_pod(sleeper("custom", "registry.test/library/busybox:reg", None))
        .await;
    env.wait_pod("custom", WAIT, "Ready", ready).await;
    // Any other registry goes through the `*` mirror.
    env.create_pod(sleeper("wildcard", "wild.test/library/busybox:reg", None))
        .await;
    env.wait_pod("wildcard", WAIT, "Ready", ready).await;

    // A missing tag: ErrImagePull with the runtime's error, then ImagePullBackOff.
    let missing = format!("127.0.0.1:{port}/library/busybox:missing");
    env.create_pod(sleeper("missing", &missing, None)).await;
    let seen = waiting_reasons_until(&env, "missing", "ImagePullBackOff").await;
    let failed_at = Instant::now();
    eprintln!("missing tag, waiting states seen: {seen:#?}");
    let reasons: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert!(reasons.contains(&"ErrImagePull"), "{seen:?}");
    let err = &seen.iter().find(|s| s.0 == "ErrImagePull").unwrap().1;
    assert!(err.starts_with("rpc error: code = "), "{err}");
    assert!(err.contains("missing"), "{err}");
    let backoff = &seen.last().unwrap().1;
    assert!(
        backoff.starts_with(&format!(
            "Back-off pulling image \"{missing}\": ErrImagePull: rpc error"
        )),
        "{backoff}"
    );
    let pod = env.pods().get("missing").await.unwrap();
    assert_eq!(phase(&pod), "Pending");
    wait_event(
        &env,
        "missing",
        "Failed",
        &format!("Failed to pull image \"{missing}\": rpc error"),
        1,
    )
    .await;
    wait_event(&env, "missing", "Failed", "Error: ErrImagePull", 1).await;
    wait_event(
        &env,
        "missing",
        "BackOff",
        &format!("Back-off pulling image \"{missing}\""),
        1,
    )
    .await;
    wait_event(&env, "missing", "Failed", "Error: ImagePullBackOff", 1).await;
    // The retry comes after the 10 s back-off, not before.
    let evs = events_of(&env, "missing").await;
    let pulls = evs
        .iter()
        .find(|e| e.1 == "Pulling")
        .map(|e| e.3)
        .unwrap_or(0);
    assert_eq!(pulls, 1, "{evs:#?}");
    wait_event(&env, "missing", "Pulling", "Pulling image", 2).await;
    let retry = failed_at.elapsed();
    assert!(retry >= Duration::from_secs(8), "retried after {retry:?}");

    // The same registry under another host name has no credentials configured: 401.
    env.create_pod(sleeper(
        "noauth",
        &format!("localhost:{port}/library/busybox:reg"),
        None,
    ))
    .await;
    let pod = env
        .wait_pod("noauth", WAIT, "ErrImagePull", |p| {
            waiting(p).is_some_and(|w| w.0 == "ErrImagePull" || w.0 == "ImagePullBackOff")
        })
        .await;
    let msg = waiting(&pod).unwrap().1;
    eprintln!("without credentials: {msg}");
    eprintln!(
        "events of `missing`: {:#?}",
        events_of(&env, "missing").await
    );
    assert!(msg.contains("401") || msg.contains("authoriz"), "{msg}");

    pull_secrets(&env, port).await;

    let pods = [
        "always",
        "present",
        "custom",
        "wildcard",
        "missing",
        "noauth",
        "secret",
        "badsecret",
        "nosecret",
    ];
    for name in pods {
        env.delete_pod(name).await;
    }
    for name in pods {
        env.wait_gone(name, WAIT).await;
    }
}

/// A `kubernetes.io/dockerconfigjson` Secret as `kubectl create secret docker-registry`
/// writes it.
fn docker_registry_secret(name: &str, server: &str, user: &str, password: &str) -> Secret {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {server: {"username": user, "password": password, "auth": auth}}});
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD
            .encode(config.to_string())},
    }))
    .unwrap()
}

/// `localhost:P` has no credentials in registries.yaml (401 above): the pod's
/// imagePullSecrets supply them; wrong ones and a missing Secret fail as upstream.
async fn pull_secrets(env: &Env, port: u16) {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "default");
    let server = format!("localhost:{port}");
    for s in [
        docker_registry_secret("regcred", &server, USER, PASSWORD),
        docker_registry_secret("badcred", &server, USER, "wrong"),
    ] {
        secrets.create(&Default::default(), &s).await.unwrap();
    }
    let image = format!("localhost:{port}/library/busybox:reg");
    let with_secret = |name: &str, secret: &str| {
        let mut pod = sleeper(name, &image, Some("Always"));
        pod["spec"]["imagePullSecrets"] = json!([{"name": secret}]);
        pod
    };
    env.create_pod(with_secret("secret", "regcred")).await;
    env.wait_pod("secret", WAIT, "Ready", ready).await;
    wait_event(
        env,
        "secret",
        "Pulled",
        &format!("Successfully pulled image \"{image}\""),
        1,
    )
    .await;

    let failed =
        |p: &Pod| waiting(p).is_some_and(|w| w.0 == "ErrImagePull" || w.0 == "ImagePullBackOff");
    env.create_pod(with_secret("badsecret", "badcred")).await;
    let pod = env
        .wait_pod("badsecret", WAIT, "ErrImagePull", failed)
        .await;
    let msg = waiting(&pod).unwrap().1;
    assert!(msg.contains("401") || msg.contains("authoriz"), "{msg}");

    // A Secret that does not exist: upstream's warning, then an anonymous pull (401).
    env.create_pod(with_secret("nosecret", "absent")).await;
    env.wait_pod("nosecret", WAIT, "ErrImagePull", failed).await;
    let pod_events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let deadline = Instant::now() + WAIT;
    loop {
        let warned = pod_events
            .list(&ListParams::default().fields("involvedObject.name=nosecret"))
            .await
            .unwrap()
            .items
            .into_iter()
            .any(|e| {
                e.reason.as_deref() == Some("FailedToRetrieveImagePullSecret")
                    && e.message.as_deref()
                        == Some(
                            "Unable to retrieve some image pull secrets (absent); \
                             attempting to pull the image may not succeed.",
                        )
            });
        if warned {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no FailedToRetrieveImagePullSecret"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_registries_yaml_stops_the_agent_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agent")).unwrap();
    let file = dir.path().join("agent/registries.yaml");
    std::fs::write(
        &file,
        "mirrors:\n  docker.io:\n    endpoint: [\"ftp://127.0.0.1:1\"]\n",
    )
    .unwrap();
    // No API server is needed: the agent fails before it talks to one.
    let cfg = kube::Config::new("https://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(cfg).unwrap();
    let kcfg = KubeletConfig::new(
        "bad-registries",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        dir.path().to_path_buf(),
    );
    let err = match Kubelet::start(client, kcfg).await {
        Ok(_) => panic!("kubelet started with a broken registries.yaml"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("scheme must be http or https"), "{err}");
    assert!(!dir.path().join("agent/containerd/containerd.sock").exists());
}
