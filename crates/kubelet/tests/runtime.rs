//! The containerd supervisor and image import, without an API server: a killed
//! containerd comes back, and imported archives are visible to the CRI image service.
#![allow(clippy::unwrap_used)]

mod common;

use common::{supported, unmount_under};
use r8s_kubelet::containerd::{Containerd, ContainerdConfig};
use r8s_kubelet::cri::Cri;
use r8s_kubelet::images;
use std::time::{Duration, Instant};

fn pid_of(cfg: &ContainerdConfig) -> Option<u32> {
    std::fs::read_to_string(cfg.dir.join("containerd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_containerd_restarts_and_imports_archives() {
    if !supported() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("r8s-kubelet-test")
        .tempdir()
        .unwrap();
    let cfg = ContainerdConfig::new(dir.path());
    let ctr = Containerd::start(cfg.clone()).await.expect("containerd");
    let cri = Cri::new(&ctr.socket()).unwrap();
    let version = cri.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");

    // An archive written in Rust imports and is visible to CRI under its normalized name.
    let tar = dir.path().join("agent/images/test.tar");
    let info = images::build_busybox_image("r8s.local/test:1", &["echo", "hi"], &tar).unwrap();
    r8s_kubelet::import_images(&ctr.socket(), std::slice::from_ref(&tar))
        .await
        .expect("import");
    let img = cri
        .image_status("r8s.local/test:1")
        .await
        .unwrap()
        .expect("image present");
    assert_eq!(img.id, info.image_id);
    assert!(
        img.repo_tags.iter().any(|t| t == "r8s.local/test:1"),
        "{:?}",
        img.repo_tags
    );
    assert_eq!(
        images::archives_in(&dir.path().join("agent/images")).unwrap(),
        vec![tar.clone()]
    );

    // Kill it: the supervisor starts a new one and the image survives.
    let first = pid_of(&cfg).expect("pid file");
    std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let restarted = pid_of(&cfg).is_some_and(|p| p != first && alive(p));
        if restarted && cri.version().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "containerd was not restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cri.image_status("r8s.local/test:1")
            .await
            .unwrap()
            .is_some()
    );

    let second = pid_of(&cfg).unwrap();
    ctr.stop().await;
    assert!(!alive(second), "containerd still running after stop");
    unmount_under(dir.path());
}
