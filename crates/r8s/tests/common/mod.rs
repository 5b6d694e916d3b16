//! Test harness: start a real `r8s server` process on loopback with a fresh data dir, and
//! drive it with the real kubectl.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `r8s server`, killed on drop.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    /// Start with the embedded store in a fresh data dir.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Start with extra flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra)
    }

    /// Start with the node agent (kubelet + supervised containerd) in the same process.
    pub fn start_with_agent() -> Server {
        Self::start_with_agent_and(&[])
    }

    /// [`Server::start_with_agent`] with extra flags.
    pub fn start_with_agent_and(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::launch(dir, extra, true)
    }

    /// Start in an existing data dir (restarts).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Self::launch(dir, extra, false)
    }

    fn launch(dir: tempfile::TempDir, extra: &[&str], agent: bool) -> Server {
        Self::launch_on(dir, extra, agent, free_port())
    }

    /// SIGKILL the server and start it again on the same port and data dir, so clients
    /// holding the old kubeconfig (e.g. simulated nodes) reconnect.
    pub fn crash_and_restart(self, extra: &[&str]) -> Server {
        let port = self.port;
        let dir = self.kill();
        Self::launch_on(dir, extra, false, port)
    }

    fn launch_on(dir: tempfile::TempDir, extra: &[&str], agent: bool, port: u16) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_r8s"))
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--bind-address", "127.0.0.1", "--node-ip", "127.0.0.1"])
            .args(if agent {
                &["--kubelet-port", "0"][..]
            } else {
                &["--disable-agent"][..]
            })
            .args(["--https-listen-port", &port.to_string()])
            .args(extra)
            .env("R8S_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn r8s server");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let mut s = Server {
            child,
            dir,
            port,
            kubeconfig,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("r8s server exited early ({status}); log:\n{}", self.log());
            }
            if self.kubeconfig.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("r8s server not ready in 30s; log:\n{}", self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Run kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Run kubectl with `stdin` piped in.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.env_remove("KUBECONFIG");
        cmd.env("HOME", self.dir.path()); // a private discovery cache
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut sin = child.stdin.take().expect("stdin");
            sin.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Run kubectl, assert success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run kubectl with stdin, assert success, return stdout.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_stdin(args, Some(stdin));
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run kubectl (which must succeed) until its stdout satisfies `want`, for up to
    /// `timeout`; that stdout.
    pub fn ok_until(
        &self,
        args: &[&str],
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ok(args);
            if want(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never matched; last output: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run kubectl, assert failure, return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop the server with SIGTERM (a graceful shutdown: the agent stops its containerd)
    /// and wait for it to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop the server (SIGKILL) and hand back the data dir.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first so an agent stops its containerd; SIGKILL if it lingers.
        self.terminate();
    }
}

/// A running `r8s sim-nodes` process, killed on drop.
pub struct SimNodes(Child);

impl Drop for SimNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Start `count` simulated nodes (`sim-0…`) against this server and wait until they
    /// are registered.
    pub fn sim_nodes(&self, count: usize) -> SimNodes {
        self.sim_nodes_named("sim", count)
    }

    /// Start `count` simulated nodes named `PREFIX-0…` as one process (one group that can
    /// be killed on its own), and wait until at least that many nodes exist.
    pub fn sim_nodes_named(&self, prefix: &str, count: usize) -> SimNodes {
        self.sim_nodes_with(prefix, count, &[])
    }

    /// [`Server::sim_nodes_named`] with extra `r8s sim-nodes` flags.
    pub fn sim_nodes_with(&self, prefix: &str, count: usize, extra: &[&str]) -> SimNodes {
        let existing =
            String::from_utf8_lossy(&self.kubectl(&["get", "nodes", "-o", "name"]).stdout)
                .lines()
                .count();
        let count_wanted = existing + count;
        let child = Command::new(env!("CARGO_BIN_EXE_r8s"))
            .args(["sim-nodes", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(["--count", &count.to_string(), "--name-prefix", prefix])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn r8s sim-nodes");
        let sim = SimNodes(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl(&["get", "nodes", "-o", "name"]);
            if String::from_utf8_lossy(&out.stdout).lines().count() >= count_wanted {
                return sim;
            }
            assert!(
                Instant::now() < deadline,
                "simulated nodes did not register"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A pod running one `busybox:1.36` container `app` (sleeping) with the given
/// `resources` (a YAML flow mapping such as `{limits: {memory: 1Gi}}`).
pub fn pod_manifest(name: &str, resources: &str) -> String {
    format!(
        "
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [sleep, '3600']
    resources: {resources}
"
    )
}
