//! The official Kubernetes Python client (PyPI `kubernetes`) against a fresh `r8s server`, as
//! its users drive it: each test runs one script of `tests/python/` with the venv that
//! `scripts/install-deps.sh` creates, passing the kubeconfig r8s wrote. The scripts print a
//! `FAIL:` line for every expectation that differs from upstream Kubernetes.

mod common;
use common::{Server, tail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The interpreter of the venv holding the `kubernetes` package.
const VENV_PYTHON: &str = "/opt/r8s-test-venv/bin/python";

/// A script that has not finished by then is killed (each is meant to take well under 60 s;
/// the machine may be loaded).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// The venv's python; fails (never skips) when it is missing, as CI installs it.
fn venv_python() -> &'static str {
    let usable = Path::new(VENV_PYTHON).exists()
        && Command::new(VENV_PYTHON)
            .args(["-c", "import kubernetes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        usable,
        "{VENV_PYTHON} with the `kubernetes` package is missing: run `bash scripts/install-deps.sh` \
         (as root) to create the venv"
    );
    VENV_PYTHON
}

/// Run `tests/python/<script>` against `server`; assert it exits 0, showing its output and
/// the server log otherwise.
fn run_script(server: &Server, script: &str) {
    let python = venv_python();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out_path = server.data_dir().join(format!("{script}.stdout"));
    let err_path = server.data_dir().join(format!("{script}.stderr"));
    let mut cmd = Command::new(python);
    cmd.arg(&path)
        .arg(&server.kubeconfig)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // Temp files (the dynamic client's discovery cache) stay in the server's dir.
        .env("TMPDIR", server.data_dir())
        .env("HOME", server.data_dir())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    // The client honours proxy variables; the server is on loopback.
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn python");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let verdict = match status {
        Some(s) if s.success() => {
            println!("{script} passed in {:?}\n{stdout}", started.elapsed());
            return;
        }
        Some(s) => format!("exited with {s}"),
        None => format!("killed after {SCRIPT_TIMEOUT:?}"),
    };
    panic!(
        "{script} {verdict} after {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n\
         --- server log tail ---\n{}",
        started.elapsed(),
        tail(&server.log(), 40)
    );
}

/// CoreV1Api/VersionApi: CRUD of namespaces, configmaps, secrets, services and pods,
/// selectors, pagination, error Status bodies, delete options.
#[test]
fn core_v1_api() {
    let s = Server::start();
    run_script(&s, "core_v1.py");
}

/// Watch (order, resume, selectors, live delivery) and AppsV1Api deployments (scale, status,
/// patch flavours, Foreground/Orphan deletion) with simulated nodes running the pods.
#[test]
fn watch_and_apps_v1() {
    let s = Server::start();
    let _nodes = s.sim_nodes(2);
    run_script(&s, "watch_apps.py");
}

/// DynamicClient (discovery, CRUD, subresources, watch), server-side apply through it and
/// `utils.create_from_yaml`.
#[test]
fn dynamic_client_apply_and_yaml() {
    let s = Server::start();
    run_script(&s, "dynamic_yaml.py");
}

/// ApiextensionsV1Api (CRDs) and CustomObjectsApi: CRUD, selectors, status subresource,
/// schema validation, watch, CRD deletion.
#[test]
fn custom_objects_api() {
    let s = Server::start();
    run_script(&s, "custom_objects.py");
}
