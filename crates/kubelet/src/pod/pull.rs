//! Image pulls shared by all pod workers: concurrent pulls of the same image with the same
//! credentials (several pods starting at once) become one CRI PullImage that every caller
//! waits for. Also the image-name and error formatting the image manager needs to speak
//! like upstream.

use super::keyring::Credential;
use crate::cri::{Cri, api};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failed pull, formatted as Go's gRPC client prints it (upstream puts this text into
/// the container's waiting message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PullError(pub String);

/// A finished pull: the image reference and how long the CRI call took.
pub type PullResult = Result<(String, Duration), PullError>;

type InFlight = Shared<BoxFuture<'static, PullResult>>;

/// One CRI PullImage per image at a time.
#[derive(Clone)]
pub struct Puller {
    cri: Cri,
    inflight: Arc<Mutex<HashMap<String, InFlight>>>,
    /// CRI PullImage calls started.
    calls: Arc<AtomicUsize>,
}

impl Puller {
    pub fn new(cri: Cri) -> Self {
        Puller {
            cri,
            inflight: Arc::default(),
            calls: Arc::default(),
        }
    }

    /// Pulls `image` with each of `creds` in turn until one works (upstream's order), or
    /// anonymously when there are none. All failures are reported together, as Go's
    /// error aggregate prints them.
    pub async fn pull_with(
        &self,
        image: &str,
        creds: &[Credential],
        sandbox: Option<api::PodSandboxConfig>,
    ) -> PullResult {
        if creds.is_empty() {
            return self.pull(image, None, sandbox).await;
        }
        let mut errors: Vec<String> = Vec::new();
        for cred in creds {
            match self.pull(image, Some(cred), sandbox.clone()).await {
                Ok(done) => return Ok(done),
                Err(PullError(e)) => {
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
        }
        Err(PullError(aggregate(errors)))
    }

    /// Pulls `image` (joining a pull of the same image and credentials under way).
    pub async fn pull(
        &self,
        image: &str,
        cred: Option<&Credential>,
        sandbox: Option<api::PodSandboxConfig>,
    ) -> PullResult {
        // Pulls with different credentials must not share a result.
        let key = match cred {
            Some(c) => format!("{image}\n{}\n{}", c.username, c.password),
            None => image.to_string(),
        };
        let fut = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let (cri, img) = (self.cri.clone(), image.to_string());
                    let auth = cred.map(|c| api::AuthConfig {
                        username: c.username.clone(),
                        password: c.password.clone(),
                        ..Default::default()
                    });
                    self.calls.fetch_add(1, Ordering::Relaxed);
                    let f = async move {
                        let t0 = Instant::now();
                        match cri.pull_image(&img, auth, sandbox).await {
                            Ok(r) => Ok((r, t0.elapsed())),
                            Err(e) => Err(PullError(go_error(&e))),
                        }
                    }
                    .boxed()
                    .shared();
                    map.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        let out = fut.clone().await;
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|f| f.ptr_eq(&fut)) {
            map.remove(&key);
        }
        out
    }

    /// Images being pulled now.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// CRI PullImage calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Distinct error texts as Go's `errors.NewAggregate` prints them: one alone, several as
/// `[a, b]`.
fn aggregate(mut errors: Vec<String>) -> String {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    }
}

/// A CRI error as `rpc error: code = X desc = Y`, like the Go client's error text.
pub fn go_error(e: &crate::error::Error) -> String {
    match e {
        crate::error::Error::Cri { status, .. } => {
            let code = match status.code() {
                tonic::Code::Cancelled => "Canceled".to_string(),
                c => format!("{c:?}"),
            };
            format!("rpc error: code = {code} desc = {}", status.message())
        }
        other => other.to_string(),
    }
}

/// `image` with `:latest` added when it has neither tag nor digest (upstream's
/// applyDefaultImageTag, which keeps the short name as written).
pub fn with_default_tag(image: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.is_empty() {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

pub use r8s_api::duration::go_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tags() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            with_default_tag("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            with_default_tag("localhost:5000/app:v1"),
            "localhost:5000/app:v1"
        );
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn cri_errors_read_like_go() {
        let e = crate::error::Error::cri("PullImage", tonic::Status::not_found("no such tag"));
        assert_eq!(
            go_error(&e),
            "rpc error: code = NotFound desc = no such tag"
        );
        let e = crate::error::Error::cri("PullImage", tonic::Status::cancelled("x"));
        assert_eq!(go_error(&e), "rpc error: code = Canceled desc = x");
    }

    #[tokio::test]
    async fn concurrent_pulls_of_one_image_share_a_call() {
        // A runtime that accepts connections and never answers: pulls stay in flight.
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("mute.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let p = Puller::new(Cri::new(&sock).unwrap());
        let (p1, p2, p3) = (p.clone(), p.clone(), p.clone());
        let a = tokio::spawn(async move { p1.pull("x:1", None, None).await });
        let b = tokio::spawn(async move { p2.pull("x:1", None, None).await });
        let c = tokio::spawn(async move { p3.pull("y:1", None, None).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Three callers, two images: two CRI calls.
        assert_eq!(p.in_flight(), 2);
        assert_eq!(p.calls(), 2);
        for t in [a, b, c] {
            t.abort();
        }
        hold.abort();
    }

    #[test]
    fn several_failures_read_like_a_go_aggregate() {
        assert_eq!(aggregate(vec!["a".into()]), "a");
        assert_eq!(aggregate(vec!["a".into(), "b".into()]), "[a, b]");
    }

    #[tokio::test]
    async fn each_credential_is_tried_until_one_works() {
        let d = tempfile::tempdir().unwrap();
        let p = Puller::new(Cri::new(&d.path().join("none.sock")).unwrap());
        let creds = ["a", "b"].map(|u| Credential {
            username: u.into(),
            password: "p".into(),
        });
        let before = p.calls();
        let err = p.pull_with("x:1", &creds, None).await.unwrap_err();
        // Two CRI calls; both failed alike, so one message.
        assert_eq!(p.calls(), before + 2);
        assert!(!err.0.starts_with('['), "{err}");
        // Without credentials: one anonymous call.
        assert!(p.pull_with("x:1", &[], None).await.is_err());
        assert_eq!(p.calls(), before + 3);
    }

    #[tokio::test]
    async fn failed_pulls_are_not_cached() {
        let d = tempfile::tempdir().unwrap();
        let p = Puller::new(Cri::new(&d.path().join("none.sock")).unwrap());
        let (a, b) = tokio::join!(p.pull("x:1", None, None), p.pull("x:1", None, None));
        assert!(a.is_err());
        assert_eq!(a, b);
        assert_eq!(p.in_flight(), 0);
        // A later pull tries again.
        let before = p.calls();
        assert!(p.pull("x:1", None, None).await.is_err());
        assert_eq!(p.calls(), before + 1);
    }
}
