//! The garbage collector, as upstream's: metadata-only watches of every deletable resource
//! feed a graph of owner references ([`graph`]); objects whose owners are all gone are
//! deleted (with the propagation their own finalizers ask for), `foregroundDeletion`
//! owners wait for their blocking dependents before the finalizer is removed, and `orphan`
//! owners have their dependents' references to them removed first.

mod attempt;
pub mod graph;
mod mapper;
mod monitors;

use crate::Context;
use crate::util::{AbortOnDrop, WorkQueue, run_workers};
use graph::{Graph, Work};
use mapper::Mapper;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Concurrent attempt-to-delete/orphan workers (upstream `--concurrent-gc-syncs`).
const WORKERS: usize = 20;

/// Garbage collector failures (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("no resource serves kind {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    #[error("{0}: kept conflicting")]
    Conflicts(String),
}

/// State shared by the monitors and the workers.
pub(crate) struct Shared {
    pub client: kube::Client,
    graph: Mutex<Graph>,
    pub mapper: RwLock<Mapper>,
    pub queue: WorkQueue<Work>,
    /// First-discovery monitors that have not listed once yet.
    pub pending_monitors: AtomicUsize,
    /// The first discovery has started its monitors.
    pub discovered: AtomicBool,
}

impl Shared {
    /// The graph (held briefly, never across an await).
    pub fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue the work a graph change produced.
    pub fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            self.queue.add(w);
        }
    }
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        mapper: RwLock::new(Mapper::default()),
        queue: WorkQueue::new(),
        pending_monitors: AtomicUsize::new(0),
        discovered: AtomicBool::new(false),
    });
    // Build the graph from the first discovery before acting on it.
    let monitors = tokio::spawn(monitors::run(shared.clone()));
    // The monitors (a watch per resource) end with this future.
    let _monitors = AbortOnDrop(monitors.abort_handle());
    monitors::wait_initial_sync(&shared).await;
    let s = shared.clone();
    let workers = run_workers(shared.queue.clone(), WORKERS, move |work: Work| {
        let s = s.clone();
        async move {
            match work {
                Work::AttemptToDelete(uid) => attempt::attempt_to_delete(&s, &uid).await,
                Work::AttemptToOrphan(uid) => attempt::attempt_to_orphan(&s, &uid).await,
            }
            .map(|()| None)
        }
    });
    tokio::select! {
        r = monitors => match r {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("garbage collector monitors failed: {e}")),
        },
        () = workers => Ok(()),
    }
}
