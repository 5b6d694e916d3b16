//! e2e: `r8s snapshot save|restore` and `r8s datastore migrate` through the binary, with
//! the data checked by the real kubectl.

mod common;
use common::Server;
use std::process::Command;

fn r8s(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_r8s"))
        .args(args)
        .output()
        .expect("run r8s")
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "r8s failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn snapshot_save_while_running_then_restore_into_empty_dir() {
    let s = Server::start();
    s.ok(&["create", "namespace", "snap"]);
    s.ok(&[
        "create",
        "configmap",
        "kept",
        "-n",
        "snap",
        "--from-literal=k=v",
    ]);
    let snap = s.data_dir().join("backup.db");
    let dir = s.data_dir().to_str().unwrap().to_string();
    assert_ok(&r8s(&[
        "snapshot",
        "save",
        "--data-dir",
        &dir,
        snap.to_str().unwrap(),
    ]));
    // Written after the snapshot: must not come back.
    s.ok(&[
        "create",
        "configmap",
        "later",
        "-n",
        "snap",
        "--from-literal=k=v",
    ]);

    let target = tempfile::tempdir().unwrap();
    let tdir = target.path().to_str().unwrap().to_string();
    assert_ok(&r8s(&[
        "snapshot",
        "restore",
        "--data-dir",
        &tdir,
        snap.to_str().unwrap(),
    ]));
    // Restoring over an existing store is refused.
    let again = r8s(&[
        "snapshot",
        "restore",
        "--data-dir",
        &tdir,
        snap.to_str().unwrap(),
    ]);
    assert!(!again.status.success());

    let restored = Server::start_in(target, &[]);
    assert_eq!(
        restored.ok(&[
            "get",
            "cm",
            "kept",
            "-n",
            "snap",
            "-o",
            "jsonpath={.data.k}"
        ]),
        "v"
    );
    assert!(
        restored
            .fails(&["get", "cm", "later", "-n", "snap"])
            .contains("not found")
    );
    // A garbage snapshot is refused with a clear error.
    let junk = s.data_dir().join("junk.db");
    std::fs::write(&junk, b"this is not a database").unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = r8s(&[
        "snapshot",
        "restore",
        "--data-dir",
        empty.path().to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("junk.db"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn migrate_embedded_store_into_etcd() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = rt
        .block_on(r8s_store::etcd::testing::EtcdProcess::spawn())
        .expect("etcd (is etcd-server installed?)");
    let endpoint = etcd.endpoint().to_string();

    let s = Server::start();
    s.ok(&["create", "namespace", "mig"]);
    for i in 0..20 {
        s.ok(&[
            "create",
            "configmap",
            &format!("c{i}"),
            "-n",
            "mig",
            &format!("--from-literal=i={i}"),
        ]);
    }
    let dir = s.kill();
    let d = dir.path().to_str().unwrap().to_string();
    assert_ok(&r8s(&[
        "datastore",
        "migrate",
        "--data-dir",
        &d,
        "--to",
        &endpoint,
    ]));
    // A second migration into a non-empty etcd is refused.
    assert!(
        !r8s(&["datastore", "migrate", "--data-dir", &d, "--to", &endpoint])
            .status
            .success()
    );

    let on_etcd = Server::start_in(dir, &["--datastore-endpoint", &endpoint]);
    let names = on_etcd.ok(&["get", "cm", "-n", "mig", "-o", "name"]);
    // (Besides the root CA publisher's configmap/kube-root-ca.crt.)
    let migrated = names
        .lines()
        .filter(|n| *n != "configmap/kube-root-ca.crt")
        .count();
    assert_eq!(migrated, 20, "{names}");
    assert_eq!(
        on_etcd.ok(&["get", "cm", "c7", "-n", "mig", "-o", "jsonpath={.data.i}"]),
        "7"
    );
    // Writes keep working on etcd.
    on_etcd.ok(&["create", "configmap", "new", "-n", "mig"]);
    drop(on_etcd);
    drop(etcd);
}
