use super::*;
use std::sync::Mutex;

#[tokio::test]
async fn monotonic_stops_at_first_exit() {
    let seen = Mutex::new(Vec::new());
    let r = run_for_all(5, true, |i| {
        seen.lock().unwrap().push(i);
        async move { Ok(i == 2) }
    })
    .await;
    assert!(matches!(r, Ok(true)));
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
}

#[tokio::test]
async fn burst_runs_everything_in_growing_batches() {
    let seen = Mutex::new(Vec::new());
    let r = run_for_all(7, false, |i| {
        seen.lock().unwrap().push(i);
        async move { Ok(true) }
    })
    .await;
    assert!(matches!(r, Ok(false)));
    assert_eq!(seen.lock().unwrap().len(), 7);
    // A failing batch stops the rest: 1 ok, then batch [1,2] fails.
    let seen = Mutex::new(Vec::new());
    let r = run_for_all(7, false, |i| {
        seen.lock().unwrap().push(i);
        async move {
            if i == 2 {
                Err(Error::Invalid("x".into()))
            } else {
                Ok(false)
            }
        }
    })
    .await;
    assert!(r.is_err());
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn counts() {
    let mut st = StatefulSetStatus::default();
    let mut a = Pod::default();
    a.metadata.labels = Some([(REVISION_LABEL.to_string(), "r1".to_string())].into());
    a.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    });
    let b = Pod::default(); // not created
    count_status(&mut st, 0, "r1", "r2", &[&[&a, &b]], Timestamp::now());
    assert_eq!(st.replicas, 1);
    assert_eq!(st.current_replicas, Some(1));
    assert_eq!(st.updated_replicas, Some(0));
    assert_eq!(st.ready_replicas, Some(0));
}
