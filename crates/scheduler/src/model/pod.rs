//! `PodInfo`: a pod as the scheduler sees it (requests, ports, tolerations, affinity,
//! spread constraints, priority), built from the typed object.

use super::{Resources, Toleration};
use crate::selector::{LabelSelector, Labels, NodeSelectorTerms, NodeTerm};
use k8s_openapi::api::core::v1::{Container, Pod, PodAffinityTerm};

/// Default CPU request used for scoring containers that request none (upstream 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Default memory request used for scoring containers that request none (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A `hostPort` a container binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// `0.0.0.0` when unset.
    pub ip: String,
    /// `TCP` when unset.
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream `HostPortInfo.CheckConflict`: a wildcard address conflicts with every
    /// address on the same protocol and port.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod (anti-)affinity term with its namespaces resolved as upstream does: the listed
/// namespaces, plus those matching `namespaceSelector`; the pod's own namespace when both
/// are unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTerm {
    pub namespaces: Vec<String>,
    pub ns_selector: LabelSelector,
    pub selector: LabelSelector,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Whether `pod` (whose namespace has labels `ns_labels`) is selected by this term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || (!self.ns_selector.nothing
                && ns_labels.is_some_and(|l| self.ns_selector.matches(l)))
            || self.ns_selector.is_everything();
        ns_ok && self.selector.matches(&pod.labels)
    }

    fn parse(t: &PodAffinityTerm, own_ns: &str, own_labels: &Labels) -> Result<Self, String> {
        let mut selector = LabelSelector::parse(t.label_selector.as_ref())?;
        // matchLabelKeys / mismatchLabelKeys: merge the incoming pod's own values.
        if !selector.nothing {
            for k in t.match_label_keys.iter().flatten() {
                if let Some(v) = own_labels.get(k) {
                    selector.and_equals(k, v);
                }
            }
            for k in t.mismatch_label_keys.iter().flatten() {
                if let Some(v) = own_labels.get(k) {
                    selector.reqs.push(crate::selector::Requirement {
                        key: k.clone(),
                        op: crate::selector::Op::NotIn,
                        values: vec![v.clone()],
                    });
                }
            }
        }
        let ns_selector = match &t.namespace_selector {
            Some(s) => LabelSelector::parse(Some(s))?,
            None => LabelSelector::nothing(),
        };
        let listed = t.namespaces.clone().unwrap_or_default();
        let namespaces = if listed.is_empty() && t.namespace_selector.is_none() {
            vec![own_ns.to_string()]
        } else {
            listed
        };
        Ok(AffinityTerm {
            namespaces,
            ns_selector,
            selector,
            topology_key: t.topology_key.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTerm {
    pub weight: i32,
    pub term: AffinityTerm,
}

/// Parsed pod affinity and anti-affinity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodAffinity {
    pub required: Vec<AffinityTerm>,
    pub required_anti: Vec<AffinityTerm>,
    pub preferred: Vec<WeightedTerm>,
    pub preferred_anti: Vec<WeightedTerm>,
}

impl PodAffinity {
    pub fn is_empty(&self) -> bool {
        self.required.is_empty()
            && self.required_anti.is_empty()
            && self.preferred.is_empty()
            && self.preferred_anti.is_empty()
    }

    /// Whether `pod` matches every required affinity term (upstream `podMatchesAllAffinityTerms`).
    pub fn all_required_match(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        !self.required.is_empty() && self.required.iter().all(|t| t.matches(pod, ns_labels))
    }
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    /// `DoNotSchedule` (filter) vs `ScheduleAnyway` (score).
    pub hard: bool,
    pub selector: LabelSelector,
    pub min_domains: i32,
    /// `nodeAffinityPolicy: Honor` (default).
    pub honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore).
    pub honor_taints: bool,
    /// Counting by owner (the system default constraints) instead of the selector.
    pub by_owner: bool,
}

/// A PersistentVolumeClaim a pod's volume uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodClaim {
    /// The claim's name (for generic ephemeral volumes, `<pod>-<volume>`).
    pub name: String,
    /// A generic ephemeral volume (the claim is created for the pod by a controller).
    pub ephemeral: bool,
}

/// Everything the scheduler needs about one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub node_name: String,
    pub scheduler_name: String,
    pub priority: Option<i32>,
    pub priority_class: String,
    /// `preemptionPolicy: Never`.
    pub preempt_never: bool,
    pub deleting: bool,
    pub phase: String,
    pub gated: bool,
    pub nominated_node: String,
    /// `status.startTime` in seconds (preemption prefers evicting the youngest).
    pub start_time: Option<i64>,
    pub requests: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    pub host_ports: Vec<HostPort>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: Labels,
    pub required_node_affinity: Option<NodeSelectorTerms>,
    pub preferred_node_affinity: Vec<(i32, NodeTerm)>,
    pub affinity: PodAffinity,
    pub affinity_error: Option<String>,
    pub spread: Vec<SpreadConstraint>,
    pub spread_error: Option<String>,
    /// UID of the first owner reference (system default spreading counts siblings).
    pub owner_uid: Option<String>,
    /// The current PodScheduled condition: (status, reason, message).
    pub scheduled_condition: Option<(String, String, String)>,
    /// Claims of `persistentVolumeClaim` and generic `ephemeral` volumes, in volume order.
    pub claims: Vec<PodClaim>,
}

fn container_requests(c: &Container) -> Resources {
    Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref())).0
}

/// `(cpu, memory)` requests with upstream's non-zero defaults for missing ones.
fn non_zero(c: &Container) -> Resources {
    let reqs = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::default();
    let has = |k: &str| reqs.is_some_and(|m| m.contains_key(k));
    let parsed = container_requests(c);
    r.milli_cpu = if has("cpu") {
        parsed.milli_cpu
    } else {
        DEFAULT_MILLI_CPU_REQUEST
    };
    r.memory = if has("memory") {
        parsed.memory
    } else {
        DEFAULT_MEMORY_REQUEST
    };
    r
}

/// Upstream `PodRequests`: sum of containers, the running maximum over init containers
/// (sidecars accumulate), plus overhead.
fn pod_requests(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    per_container: fn(&Container) -> Resources,
) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&per_container(c), 1);
    }
    let mut restartable = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = per_container(c);
        let current = if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r, 1);
            restartable.add(&r, 1);
            restartable.clone()
        } else {
            let mut t = r;
            t.add(&restartable, 1);
            t
        };
        init_max.max_with(&current);
    }
    reqs.max_with(&init_max);
    let (overhead, _) = Resources::from_list(spec.overhead.as_ref());
    reqs.add(&overhead, 1);
    reqs
}

fn parse_spread(pod: &Pod, labels: &Labels) -> Result<Vec<SpreadConstraint>, String> {
    let spec = pod.spec.as_ref();
    let mut out = Vec::new();
    for c in spec
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .into_iter()
        .flatten()
    {
        let mut selector = LabelSelector::parse(c.label_selector.as_ref())?;
        if !selector.nothing {
            for k in c.match_label_keys.iter().flatten() {
                if let Some(v) = labels.get(k) {
                    selector.and_equals(k, v);
                }
            }
        }
        let hard = match c.when_unsatisfiable.as_str() {
            "DoNotSchedule" => true,
            "ScheduleAnyway" => false,
            other => return Err(format!("unknown whenUnsatisfiable {other:?}")),
        };
        out.push(SpreadConstraint {
            max_skew: c.max_skew.max(1),
            topology_key: c.topology_key.clone(),
            hard,
            selector,
            min_domains: c.min_domains.unwrap_or(1).max(1),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            by_owner: false,
        });
    }
    Ok(out)
}

fn parse_affinity(pod: &Pod, ns: &str, labels: &Labels) -> Result<PodAffinity, String> {
    let mut a = PodAffinity::default();
    let Some(aff) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return Ok(a);
    };
    let parse = |t: &PodAffinityTerm| AffinityTerm::parse(t, ns, labels);
    if let Some(pa) = &aff.pod_affinity {
        for t in pa
            .required_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            a.required.push(parse(t)?);
        }
        for w in pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            a.preferred.push(WeightedTerm {
                weight: w.weight,
                term: parse(&w.pod_affinity_term)?,
            });
        }
    }
    if let Some(pa) = &aff.pod_anti_affinity {
        for t in pa
            .required_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            a.required_anti.push(parse(t)?);
        }
        for w in pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            a.preferred_anti.push(WeightedTerm {
                weight: w.weight,
                term: parse(&w.pod_affinity_term)?,
            });
        }
    }
    Ok(a)
}

/// The pod's claims; an ephemeral volume's claim is named `<pod name>-<volume name>`.
fn pod_claims(pod: &Pod) -> Vec<PodClaim> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(PodClaim {
                    name: c.claim_name.clone(),
                    ephemeral: false,
                })
            } else {
                v.ephemeral.as_ref().map(|_| PodClaim {
                    name: format!("{pod_name}-{}", v.name),
                    ephemeral: true,
                })
            }
        })
        .collect()
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        let empty_spec = k8s_openapi::api::core::v1::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty_spec);
        let status = pod.status.as_ref();
        let labels = meta.labels.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let requests = pod_requests(spec, container_requests);
        let nz = pod_requests(spec, non_zero);
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p
                    .protocol
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();
        let node_aff = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let (affinity, affinity_error) = match parse_affinity(pod, &namespace, &labels) {
            Ok(a) => (a, None),
            Err(e) => (PodAffinity::default(), Some(e)),
        };
        let (spread, spread_error) = match parse_spread(pod, &labels) {
            Ok(s) => (s, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().unwrap_or_default(),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
            priority: spec.priority,
            priority_class: spec.priority_class_name.clone().unwrap_or_default(),
            preempt_never: spec.preemption_policy.as_deref() == Some("Never"),
            deleting: meta.deletion_timestamp.is_some(),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            gated: spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
            nominated_node: status
                .and_then(|s| s.nominated_node_name.clone())
                .unwrap_or_default(),
            start_time: status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.as_second()),
            non_zero_cpu: nz.milli_cpu,
            non_zero_mem: nz.memory,
            requests,
            host_ports,
            tolerations: spec
                .tolerations
                .iter()
                .flatten()
                .map(Toleration::from_api)
                .collect(),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_aff
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(NodeSelectorTerms::parse),
            preferred_node_affinity: node_aff
                .and_then(|n| {
                    n.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .into_iter()
                .flatten()
                .map(|p| (p.weight, NodeTerm::parse(&p.preference)))
                .collect(),
            affinity,
            affinity_error,
            spread,
            spread_error,
            owner_uid: meta
                .owner_references
                .as_ref()
                .and_then(|o| o.first())
                .map(|o| o.uid.clone()),
            scheduled_condition: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                .map(|c| {
                    (
                        c.status.clone(),
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default(),
                    )
                }),
            claims: pod_claims(pod),
            labels,
            namespace,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Terminal pods hold no resources.
    pub fn is_terminal(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }

    /// Whether the node-independent inputs to scheduling differ (spec and labels, not
    /// status): a pending pod only needs another attempt when these change.
    pub fn scheduling_inputs_differ(&self, other: &PodInfo) -> bool {
        self.labels != other.labels
            || self.requests != other.requests
            || self.host_ports != other.host_ports
            || self.tolerations != other.tolerations
            || self.node_selector != other.node_selector
            || self.required_node_affinity != other.required_node_affinity
            || self.preferred_node_affinity != other.preferred_node_affinity
            || self.affinity != other.affinity
            || self.spread != other.spread
            || self.gated != other.gated
            || self.priority != other.priority
            || self.claims != other.claims
    }

    /// Whether the pod has required or preferred pod (anti-)affinity.
    pub fn has_affinity(&self) -> bool {
        !self.affinity.is_empty()
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
