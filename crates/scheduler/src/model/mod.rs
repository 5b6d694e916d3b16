//! The scheduler's compact view of API objects: everything a filter or score needs, parsed
//! once when the object arrives from the watch (quantities as integers, selectors
//! compiled), so a scheduling cycle never touches JSON or strings it does not compare.

pub mod node;
pub mod pod;

pub use node::NodeSpec;
pub use pod::{
    AffinityTerm, HostPort, PodAffinity, PodClaim, PodInfo, SpreadConstraint, WeightedTerm,
};

/// Taint effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl Effect {
    pub fn parse(s: &str) -> Option<Effect> {
        match s {
            "NoSchedule" => Some(Effect::NoSchedule),
            "PreferNoSchedule" => Some(Effect::PreferNoSchedule),
            "NoExecute" => Some(Effect::NoExecute),
            _ => None,
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
}

/// A pod toleration (upstream `ToleratesTaint` semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    /// `operator: Exists` (else Equal; unknown operators tolerate nothing).
    pub exists: bool,
    pub valid: bool,
    pub value: String,
    /// `None`: every effect.
    pub effect: Option<Effect>,
}

impl Toleration {
    pub fn from_api(t: &k8s_openapi::api::core::v1::Toleration) -> Self {
        let op = t.operator.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().filter(|e| !e.is_empty());
        Toleration {
            key: t.key.clone().unwrap_or_default(),
            exists: op == "Exists",
            valid: matches!(op, "" | "Equal" | "Exists")
                && effect.is_none_or(|e| Effect::parse(e).is_some()),
            value: t.value.clone().unwrap_or_default(),
            effect: effect.and_then(Effect::parse),
        }
    }

    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.valid {
            return false;
        }
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.exists || self.value == taint.value
    }
}

/// Whether any toleration tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// Requested or allocatable amounts: CPU in millicores, memory and ephemeral storage in
/// bytes, extended resources (sorted by name) in units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral: i64,
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|i| self.scalar[i].1)
            .unwrap_or(0)
    }

    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        let i = match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.to_string(), 0));
                i
            }
        };
        &mut self.scalar[i].1
    }

    /// `self += sign * other`.
    pub fn add(&mut self, other: &Resources, sign: i64) {
        self.milli_cpu += sign * other.milli_cpu;
        self.memory += sign * other.memory;
        self.ephemeral += sign * other.ephemeral;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) += sign * v;
        }
    }

    /// Element-wise maximum.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral = self.ephemeral.max(other.ephemeral);
        for (n, v) in &other.scalar {
            let s = self.scalar_mut(n);
            *s = (*s).max(*v);
        }
    }

    /// Parse a resource list; `pods` is returned separately, unknown quantities are skipped.
    pub fn from_list(
        list: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
    ) -> (Resources, i64) {
        let mut r = Resources::default();
        let mut pods = 0;
        for (name, q) in list.into_iter().flatten() {
            let q = q.0.as_str();
            match name.as_str() {
                "cpu" => r.milli_cpu = crate::quantity::milli_value(q).unwrap_or(0),
                "memory" => r.memory = crate::quantity::value(q).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral = crate::quantity::value(q).unwrap_or(0),
                "pods" => pods = crate::quantity::value(q).unwrap_or(0),
                "storage" => {}
                other => *r.scalar_mut(other) = crate::quantity::value(q).unwrap_or(0),
            }
        }
        (r, pods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tol(v: serde_json::Value) -> Toleration {
        Toleration::from_api(&serde_json::from_value(v).expect("toleration"))
    }

    #[test]
    fn toleration_table() {
        let taint = Taint {
            key: "k".into(),
            value: "v".into(),
            effect: Effect::NoSchedule,
        };
        let cases = [
            (
                json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "k", "value": "v"}), true),
            (json!({"key": "k", "value": "other"}), false),
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "k", "operator": "Bogus"}), false),
        ];
        for (t, want) in cases {
            assert_eq!(tol(t.clone()).tolerates(&taint), want, "{t}");
        }
    }

    #[test]
    fn resources_arithmetic() {
        let mut a = Resources {
            milli_cpu: 100,
            memory: 10,
            ephemeral: 0,
            scalar: vec![("gpu".into(), 1)],
        };
        let b = Resources {
            milli_cpu: 50,
            memory: 20,
            ephemeral: 5,
            scalar: vec![("fpga".into(), 2), ("gpu".into(), 3)],
        };
        a.add(&b, 1);
        assert_eq!(
            (
                a.milli_cpu,
                a.memory,
                a.ephemeral,
                a.scalar("gpu"),
                a.scalar("fpga")
            ),
            (150, 30, 5, 4, 2)
        );
        a.add(&b, -1);
        assert_eq!(
            (a.milli_cpu, a.scalar("gpu"), a.scalar("fpga")),
            (100, 1, 0)
        );
        let mut m = Resources {
            milli_cpu: 10,
            memory: 100,
            ..Default::default()
        };
        m.max_with(&b);
        assert_eq!((m.milli_cpu, m.memory, m.scalar("gpu")), (50, 100, 3));
        assert!(Resources::default().is_zero());
    }
}
