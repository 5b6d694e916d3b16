//! Preemption tests over a hand-built cache.

use super::*;
use crate::cache::Pdb;
use crate::cycle::tests::{node, place, pod};
use crate::selector::LabelSelector;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::json;

fn prio(name: &str, cpu: &str, p: i32) -> PodInfo {
    let mut x = pod(name, cpu, json!({}));
    x.priority = Some(p);
    x
}

/// Run a failing cycle for `p` and preempt.
fn run(c: &mut Cache, p: &PodInfo) -> Outcome {
    let mut s = crate::cycle::Sampling {
        percentage: 100,
        next_start: 0,
    };
    let mut rng = SmallRng::seed_from_u64(1);
    let diag = match crate::cycle::schedule(c, p, &mut s, &mut rng) {
        Err(crate::cycle::Failure::Fit(d)) => d,
        other => panic!("expected a fit failure, got {other:?}"),
    };
    let cycle = Cycle::prefilter(c, p).unwrap_or_else(|_| panic!("prefilter"));
    preempt(&cycle, &diag, &mut rng)
}

fn victims(c: &Cache, o: &Outcome) -> (String, Vec<String>) {
    match o {
        Outcome::Nominate { node, victims, .. } => {
            let mut v: Vec<String> = victims.iter().map(|p| p.name.clone()).collect();
            v.sort();
            (c.nodes[*node].name.clone(), v)
        }
        other => panic!("expected a nomination, got {other:?}"),
    }
}

#[test]
fn evicts_the_fewest_lowest_priority_pods() {
    let mut c = Cache::default();
    c.upsert_node(node("a", "4", json!({}), json!({})));
    c.upsert_node(node("b", "4", json!({}), json!({})));
    // a: two small low pods; b: one mid pod and one low pod.
    place(&mut c, "a", prio("a1", "2", 10));
    place(&mut c, "a", prio("a2", "2", 10));
    place(&mut c, "b", prio("b1", "2", 50));
    place(&mut c, "b", prio("b2", "2", 10));
    let o = run(&mut c, &prio("p", "2", 100));
    // Either node needs one victim; a's highest victim priority (10) beats b's (b2, 10) tie →
    // sum of priorities equal → count equal; both fine, but b must never lose b1.
    let (n, v) = victims(&c, &o);
    assert_eq!(v.len(), 1, "{n} {v:?}");
    assert!(!v.contains(&"b1".to_string()));
    // Needing 4 CPUs: on a both low pods go; on b the mid pod would have to go too → a.
    let o = run(&mut c, &prio("big", "4", 100));
    let (n, v) = victims(&c, &o);
    assert_eq!(
        (n.as_str(), v),
        ("a", vec!["a1".to_string(), "a2".to_string()])
    );
}

#[test]
fn honours_pdbs_when_possible() {
    let mut c = Cache::default();
    c.upsert_node(node("a", "2", json!({}), json!({})));
    c.upsert_node(node("b", "2", json!({}), json!({})));
    let mut protected = prio("guarded", "2", 10);
    protected.labels.insert("app".into(), "guarded".into());
    place(&mut c, "a", protected);
    place(&mut c, "b", prio("free", "2", 10));
    let mut sel = LabelSelector::everything();
    sel.and_equals("app", "guarded");
    c.pdbs.insert(
        "d/pdb".into(),
        Pdb {
            namespace: "d".into(),
            selector: sel,
            disruptions_allowed: 0,
            disrupted_pods: Default::default(),
        },
    );
    for _ in 0..5 {
        let o = run(&mut c, &prio("p", "2", 100));
        let (n, v) = victims(&c, &o);
        assert_eq!((n.as_str(), v), ("b", vec!["free".to_string()]));
    }
}

#[test]
fn not_helpful_or_not_eligible() {
    let mut c = Cache::default();
    c.upsert_node(node("a", "2", json!({}), json!({})));
    c.upsert_node(node(
        "b",
        "2",
        json!({}),
        json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
    ));
    place(&mut c, "a", prio("same", "2", 100));
    // Only equal-priority pods: no victims; the tainted node cannot be helped.
    match run(&mut c, &prio("p", "1", 100)) {
        Outcome::NoCandidate(m) => assert_eq!(
            m,
            "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        ),
        other => panic!("{other:?}"),
    }
    // Requests larger than any node: unresolvable everywhere.
    match run(&mut c, &prio("huge", "64", 1000)) {
        Outcome::NoCandidate(m) => {
            assert_eq!(
                m,
                "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
            )
        }
        other => panic!("{other:?}"),
    }
    let mut never = prio("never", "1", 1000);
    never.preempt_never = true;
    match run(&mut c, &never) {
        Outcome::NotEligible(m) => assert_eq!(m, "not eligible due to preemptionPolicy=Never."),
        other => panic!("{other:?}"),
    }
}

#[test]
fn demotes_lower_priority_nominations() {
    let mut c = Cache::default();
    c.upsert_node(node("a", "2", json!({}), json!({})));
    place(&mut c, "a", prio("low", "2", 10));
    let mut waiting = prio("waiting", "2", 20);
    waiting.nominated_node = "a".into();
    c.set_nominated(&Arc::new(waiting), "a");
    match run(&mut c, &prio("p", "2", 100)) {
        Outcome::Nominate {
            demote, victims, ..
        } => {
            assert_eq!(victims.len(), 1);
            assert_eq!(
                demote.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                ["waiting"]
            );
        }
        other => panic!("{other:?}"),
    }
}
