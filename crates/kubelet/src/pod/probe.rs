//! Container probes (startup, liveness, readiness) and lifecycle hooks. Exec actions run
//! through CRI ExecSync; httpGet and tcpSocket connect from the host to the pod IP.
//! Each running container with probes gets one task that publishes `started`, `ready`
//! and a liveness failure, and wakes the pod worker on every change.

use crate::cri::Cri;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// Where actions run.
#[derive(Clone)]
pub struct Target {
    pub cri: Cri,
    pub container_id: String,
    /// Pod IP (the default host of httpGet/tcpSocket).
    pub pod_ip: String,
    pub ports: Vec<ContainerPort>,
}

fn port(p: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    match p {
        IntOrString::Int(i) => u16::try_from(*i).map_err(|_| format!("invalid port {i}")),
        IntOrString::String(s) => match s.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
                .ok_or_else(|| format!("unknown port name {s:?}")),
        },
    }
}

fn host<'a>(h: Option<&'a str>, t: &'a Target) -> &'a str {
    h.filter(|h| !h.is_empty()).unwrap_or(&t.pod_ip)
}

async fn exec(t: &Target, a: &ExecAction, timeout: Duration) -> Result<(), String> {
    let cmd = a.command.clone().unwrap_or_default();
    let secs = timeout.as_secs().max(1) as i64;
    let r = tokio::time::timeout(
        timeout + Duration::from_secs(1),
        t.cri.exec_sync(&t.container_id, cmd, secs),
    )
    .await;
    match r {
        Err(_) => Err(format!("command timed out after {timeout:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.exit_code == 0 => Ok(()),
        Ok(Ok(out)) => {
            let mut msg = String::from_utf8_lossy(&out.stdout).to_string();
            msg.push_str(&String::from_utf8_lossy(&out.stderr));
            Err(format!(
                "command exited with {}: {}",
                out.exit_code,
                msg.trim()
            ))
        }
    }
}

/// An exec probe: upstream reports a failing command by its output alone
/// ("Liveness probe failed: cat: can't open …").
async fn exec_probe(t: &Target, a: &ExecAction, timeout: Duration) -> Result<(), String> {
    let cmd = a.command.clone().unwrap_or_default();
    let secs = timeout.as_secs().max(1) as i64;
    let r = tokio::time::timeout(
        timeout + Duration::from_secs(1),
        t.cri.exec_sync(&t.container_id, cmd.clone(), secs),
    )
    .await;
    match r {
        Err(_) => Err(format!("command {:?} timed out", cmd.join(" "))),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.exit_code == 0 => Ok(()),
        Ok(Ok(out)) => {
            let mut msg = String::from_utf8_lossy(&out.stdout).to_string();
            msg.push_str(&String::from_utf8_lossy(&out.stderr));
            Err(msg)
        }
    }
}

/// A failed dial in Go's words ("dial tcp 10.42.0.5:80: connect: connection refused").
fn dial_error(h: &str, p: u16, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {h}:{p}: connect: connection refused")
        }
        _ => format!("dial tcp {h}:{p}: {e}"),
    }
}

async fn tcp(t: &Target, a: &TCPSocketAction, timeout: Duration) -> Result<(), String> {
    let p = port(&a.port, &t.ports)?;
    let h = host(a.host.as_deref(), t);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((h, p))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(dial_error(h, p, &e)),
        Err(_) => Err(format!("dial tcp {h}:{p}: i/o timeout")),
    }
}

async fn http_get(t: &Target, a: &HTTPGetAction, timeout: Duration) -> Result<(), String> {
    let p = port(&a.port, &t.ports)?;
    let h = host(a.host.as_deref(), t).to_string();
    if a.scheme.as_deref() == Some("HTTPS") {
        // No TLS client here: an HTTPS endpoint that accepts connections counts as up.
        let tcp_action = TCPSocketAction {
            host: Some(h),
            port: IntOrString::Int(i32::from(p)),
        };
        return tcp(t, &tcp_action, timeout).await;
    }
    let path = a
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let url = format!("http://{h}:{p}{path}");
    let fut = async {
        let stream = tokio::net::TcpStream::connect((h.as_str(), p))
            .await
            .map_err(|e| format!("Get \"{url}\": {}", dial_error(&h, p, &e)))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path.as_str())
            .header("User-Agent", "kube-probe/1.33")
            .header("Accept", "*/*");
        let mut has_host = false;
        for hd in a.http_headers.iter().flatten() {
            has_host |= hd.name.eq_ignore_ascii_case("host");
            req = req.header(hd.name.as_str(), hd.value.as_str());
        }
        if !has_host {
            req = req.header("Host", format!("{h}:{p}"));
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let code = resp.status().as_u16();
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// Runs one probe action.
pub async fn run_probe(t: &Target, p: &Probe) -> Result<(), String> {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(a) = &p.exec {
        exec_probe(t, a, timeout).await
    } else if let Some(a) = &p.http_get {
        http_get(t, a, timeout).await
    } else if let Some(a) = &p.tcp_socket {
        tcp(t, a, timeout).await
    } else if let Some(g) = &p.grpc {
        // No gRPC health client: a listening port counts as serving.
        let a = TCPSocketAction {
            host: None,
            port: IntOrString::Int(g.port),
        };
        tcp(t, &a, timeout).await
    } else {
        Err("probe has no action".into())
    }
}

/// Runs a lifecycle hook (postStart/preStop) with an overall `timeout`.
pub async fn run_hook(t: &Target, h: &LifecycleHandler, timeout: Duration) -> Result<(), String> {
    if let Some(a) = &h.exec {
        exec(t, a, timeout).await
    } else if let Some(a) = &h.http_get {
        http_get(t, a, timeout).await
    } else if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        Ok(())
    } else if let Some(a) = &h.tcp_socket {
        tcp(t, a, timeout).await
    } else {
        Ok(())
    }
}

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As upstream capitalises it at the start of event messages.
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// As upstream writes it inside messages ("failed liveness probe").
    pub fn lower(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

/// Called with the message of every failed probe run ("Liveness probe failed: …"), for
/// upstream's `Unhealthy` events.
pub type OnFailure = Arc<dyn Fn(&str) + Send + Sync>;

/// What the probes of one container currently say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    pub started: bool,
    pub ready: bool,
    /// Set when liveness (or startup) failed past its threshold: the container must be
    /// restarted.
    pub failed: Option<ProbeKind>,
}

/// A container's probe task; aborted when dropped.
pub struct ProbeHandle {
    pub state: Arc<Mutex<ProbeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProbeHandle {
    pub fn get(&self) -> ProbeState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn update(state: &Mutex<ProbeState>, wake: &Notify, f: impl FnOnce(&mut ProbeState)) {
    let changed = match state.lock() {
        Ok(mut s) => {
            let before = s.clone();
            f(&mut s);
            *s != before
        }
        Err(_) => false,
    };
    if changed {
        wake.notify_one();
    }
}

fn period(p: &Probe) -> Duration {
    Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64)
}

/// Sleeps until `initialDelaySeconds` after the container started.
async fn initial_delay(p: &Probe, started_at: SystemTime) {
    let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    let elapsed = SystemTime::now()
        .duration_since(started_at)
        .unwrap_or_default();
    if let Some(rest) = delay.checked_sub(elapsed) {
        tokio::time::sleep(rest).await;
    }
}

/// Runs one probe and reports a failure through `on_failure`.
async fn probe_once(t: &Target, p: &Probe, kind: ProbeKind, on_failure: &OnFailure) -> bool {
    match run_probe(t, p).await {
        Ok(()) => true,
        Err(e) => {
            on_failure(&format!("{} probe failed: {e}", kind.label()));
            false
        }
    }
}

/// Starts probing a running container (None when it has no probes: then it is started
/// and ready as soon as it runs). Every failed run is reported to `on_failure`.
pub fn spawn(
    t: Target,
    c: &Container,
    started_at: SystemTime,
    wake: Arc<Notify>,
    on_failure: OnFailure,
) -> Option<ProbeHandle> {
    let (startup, liveness, readiness) = (
        c.startup_probe.clone(),
        c.liveness_probe.clone(),
        c.readiness_probe.clone(),
    );
    if startup.is_none() && liveness.is_none() && readiness.is_none() {
        return None;
    }
    let state = Arc::new(Mutex::new(ProbeState {
        started: startup.is_none(),
        ready: false,
        failed: None,
    }));
    if startup.is_none()
        && readiness.is_none()
        && let Ok(mut s) = state.lock()
    {
        s.ready = true;
    }
    let st = state.clone();
    let task = tokio::spawn(async move {
        if let Some(p) = startup {
            initial_delay(&p, started_at).await;
            let threshold = p.failure_threshold.unwrap_or(3).max(1);
            let mut failures = 0;
            loop {
                if probe_once(&t, &p, ProbeKind::Startup, &on_failure).await {
                    update(&st, &wake, |s| {
                        s.started = true;
                        if readiness.is_none() {
                            s.ready = true;
                        }
                    });
                    break;
                }
                failures += 1;
                if failures >= threshold {
                    update(&st, &wake, |s| s.failed = Some(ProbeKind::Startup));
                    return;
                }
                tokio::time::sleep(period(&p)).await;
            }
        }
        let live = async {
            let Some(p) = liveness else { return };
            initial_delay(&p, started_at).await;
            let threshold = p.failure_threshold.unwrap_or(3).max(1);
            let mut failures = 0;
            loop {
                if probe_once(&t, &p, ProbeKind::Liveness, &on_failure).await {
                    failures = 0;
                } else {
                    failures += 1;
                    if failures >= threshold {
                        update(&st, &wake, |s| s.failed = Some(ProbeKind::Liveness));
                        return;
                    }
                }
                tokio::time::sleep(period(&p)).await;
            }
        };
        let ready = async {
            let Some(p) = readiness.clone() else { return };
            initial_delay(&p, started_at).await;
            let (ok_needed, fail_needed) = (
                p.success_threshold.unwrap_or(1).max(1),
                p.failure_threshold.unwrap_or(3).max(1),
            );
            let (mut oks, mut fails) = (0, 0);
            loop {
                if probe_once(&t, &p, ProbeKind::Readiness, &on_failure).await {
                    oks += 1;
                    fails = 0;
                    if oks >= ok_needed {
                        update(&st, &wake, |s| s.ready = true);
                    }
                } else {
                    fails += 1;
                    oks = 0;
                    if fails >= fail_needed {
                        update(&st, &wake, |s| s.ready = false);
                    }
                }
                tokio::time::sleep(period(&p)).await;
            }
        };
        tokio::join!(live, ready);
    });
    Some(ProbeHandle { state, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports() {
        let ports: Vec<ContainerPort> = vec![
            serde_json::from_value(serde_json::json!({"name": "http", "containerPort": 8080}))
                .unwrap(),
        ];
        assert_eq!(port(&IntOrString::String("http".into()), &ports), Ok(8080));
        assert_eq!(port(&IntOrString::String("81".into()), &ports), Ok(81));
        assert_eq!(port(&IntOrString::Int(80), &ports), Ok(80));
        assert!(port(&IntOrString::String("nope".into()), &ports).is_err());
    }

    #[tokio::test]
    async fn http_and_tcp_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let code = if req.starts_with("GET /healthz") {
                        "200 OK"
                    } else {
                        "500 Oops"
                    };
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        let t = Target {
            cri: Cri::new(std::path::Path::new("/nonexistent.sock")).unwrap(),
            container_id: String::new(),
            pod_ip: "127.0.0.1".into(),
            ports: vec![],
        };
        let probe = |path: &str| -> Probe {
            serde_json::from_value(
                serde_json::json!({"httpGet": {"path": path, "port": p}, "timeoutSeconds": 2}),
            )
            .unwrap()
        };
        assert_eq!(run_probe(&t, &probe("/healthz")).await, Ok(()));
        let err = run_probe(&t, &probe("/bad")).await.unwrap_err();
        assert!(err.contains("statuscode: 500"), "{err}");
        let tcp_probe: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": p}})).unwrap();
        assert_eq!(run_probe(&t, &tcp_probe).await, Ok(()));
    }

    #[tokio::test]
    async fn failed_runs_are_reported_and_liveness_gives_up_at_the_threshold() {
        // A port nothing listens on: bind, note the port, close.
        let p = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Target {
            cri: Cri::new(std::path::Path::new("/nonexistent.sock")).unwrap(),
            container_id: String::new(),
            pod_ip: "127.0.0.1".into(),
            ports: vec![],
        };
        let c: Container = serde_json::from_value(serde_json::json!({"name": "c",
            "livenessProbe": {"tcpSocket": {"port": p}, "periodSeconds": 1, "failureThreshold": 2}}))
        .unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s2 = seen.clone();
        let on_failure: OnFailure = Arc::new(move |m: &str| s2.lock().unwrap().push(m.into()));
        let wake = Arc::new(Notify::new());
        let h = spawn(t, &c, SystemTime::now(), wake.clone(), on_failure).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while h.get().failed.is_none() {
                wake.notified().await;
            }
        })
        .await
        .expect("liveness failure");
        assert_eq!(h.get().failed, Some(ProbeKind::Liveness));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(
            seen[0],
            format!("Liveness probe failed: dial tcp 127.0.0.1:{p}: connect: connection refused")
        );
    }
}
