//! The r8s default scheduler, behaving like upstream kube-scheduler v1.33 with the default
//! profile: a kube-rs client of the API server that watches pending pods, filters and
//! scores nodes with the default plugins, binds through `pods/NAME/binding`, reports
//! unschedulable pods (PodScheduled=False, FailedScheduling events), retries them on
//! cluster changes with backoff, and preempts lower-priority pods.
//!
//! - [`model`]: pods and nodes parsed once into what plugins need.
//! - [`cache`]: nodes with aggregated pods, assumed pods, nominations, classes, PDBs.
//! - [`queue`]: active / backoff / unschedulable queues.
//! - [`plugins`], [`cycle`], [`preemption`]: the filter/score framework.
//! - [`scheduler`]: the loop tying watches, cycles and API writes together.

pub mod actions;
pub mod cache;
pub mod cycle;
pub mod events;
pub mod framework;
pub mod informer;
pub mod model;
pub mod plugins;
pub mod preemption;
pub mod quantity;
pub mod queue;
pub mod scheduler;
pub mod selector;
pub mod topology;

pub use queue::QueueConfig;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
    /// Upstream `percentageOfNodesToScore`: 0 = adaptive (50% minus 1% per 125 nodes, at
    /// least 5%), 100 = every node.
    pub percentage_of_nodes_to_score: u32,
    /// Bindings (and status writes) in flight at once.
    pub bind_concurrency: usize,
    /// Record a `Scheduled` event for every bound pod (upstream does).
    pub record_scheduled_events: bool,
    /// Record events at all.
    pub record_events: bool,
    pub queue: QueueConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            percentage_of_nodes_to_score: 0,
            bind_concurrency: 128,
            record_scheduled_events: true,
            record_events: true,
            queue: QueueConfig::default(),
        }
    }
}

/// Run the scheduler until an unrecoverable error (watch and write errors are retried).
/// Dropping the future stops every background task.
pub async fn run(client: kube::Client, cfg: SchedulerConfig) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    informer::spawn_all(&client, &tx, &mut tasks);
    let recorder = if cfg.record_events {
        events::spawn(client.clone(), &cfg.scheduler_name, &mut tasks)
    } else {
        events::Recorder::disabled()
    };
    tracing::info!(name = %cfg.scheduler_name, "scheduler starting");
    let sched = scheduler::Scheduler::new(cfg, client, tx, recorder);
    tokio::select! {
        r = sched.run(rx) => r,
        Some(r) = tasks.join_next() => match r {
            Ok(()) => anyhow::bail!("a scheduler watch ended"),
            Err(e) => anyhow::bail!("a scheduler task failed: {e}"),
        },
    }
}
