use super::*;
use serde_json::json;

#[test]
fn quantities_in_milli_units() {
    assert_eq!(milli_value("250123456n"), Ok(251));
    assert_eq!(milli_value("1500u"), Ok(2));
    assert_eq!(milli_value("250m"), Ok(250));
    assert_eq!(milli_value("2"), Ok(2000));
    assert_eq!(milli_value("0.5"), Ok(500));
    assert_eq!(milli_value("1Ki"), Ok(1024 * 1000));
    assert_eq!(milli_value("12345Ki"), Ok(12345 * 1024 * 1000));
    assert_eq!(milli_value("2Mi"), Ok(2 * 1024 * 1024 * 1000));
    assert_eq!(milli_value("1Gi"), Ok(1024 * 1024 * 1024 * 1000));
    assert_eq!(milli_value("3k"), Ok(3_000_000));
    assert_eq!(milli_value("1M"), Ok(1_000_000_000));
    assert_eq!(milli_value("1G"), Ok(1_000_000_000_000));
    assert_eq!(milli_value("1e3"), Ok(1_000_000));
    assert_eq!(milli_value("5E-1"), Ok(500));
    assert!(milli_value("abc").is_err());
    assert!(milli_value("1Qi").is_err());
}

#[test]
fn go_durations() {
    assert_eq!(
        parse_go_duration("10.5s"),
        Some(Duration::from_millis(10_500))
    );
    assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
    assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
    assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
    assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
    assert_eq!(parse_go_duration("1.5µs"), Some(Duration::from_nanos(1500)));
    assert_eq!(parse_go_duration("10"), None);
    assert_eq!(parse_go_duration("-1s"), None);
    assert_eq!(parse_go_duration("3d"), None);
}

#[test]
fn pod_metrics_list_as_metrics_server_sends_it() {
    let list = json!({"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[
        {"metadata":{"name":"web-abc","namespace":"default","labels":{"app":"web"}},
         "timestamp":"2026-11-28T12:00:00Z","window":"10.5s",
         "containers":[{"name":"c","usage":{"cpu":"250123456n","memory":"12345Ki"}},
                       {"name":"side","usage":{"cpu":"10m","memory":"1Mi"}}]},
        {"metadata":{"name":"web-def"},"timestamp":"2026-11-28T12:00:01Z","window":"15s",
         "containers":[{"name":"c","usage":{"cpu":"1"}}]}]});
    let pods = parse_pod_metrics_list(&list).unwrap();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0].name, "web-abc");
    assert_eq!(
        pods[0].timestamp,
        "2026-11-28T12:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(pods[0].window, Duration::from_millis(10_500));
    assert_eq!(pods[0].containers[0].usage["cpu"], 251);
    assert_eq!(pods[0].containers[0].usage["memory"], 12345 * 1024 * 1000);

    // Whole pods: containers summed; a pod lacking the resource in a container is left out.
    let cpu = resource_usage(&pods, "default", "cpu", None).unwrap();
    assert_eq!(cpu["web-abc"].value, 261);
    assert_eq!(cpu["web-def"].value, 1000);
    let mem = resource_usage(&pods, "default", "memory", None).unwrap();
    assert!(!mem.contains_key("web-def"));
    assert_eq!(mem["web-abc"].value, (12345 + 1024) * 1024 * 1000);

    // One container; absent from a pod's sample: an error, as upstream.
    let side = resource_usage(&pods[..1], "default", "cpu", Some("side")).unwrap();
    assert_eq!(side["web-abc"].value, 10);
    let err = resource_usage(&pods, "default", "cpu", Some("side")).unwrap_err();
    assert_eq!(
        err.0,
        "failed to get container metrics: container side not present in metrics for pod default/web-def"
    );
    assert_eq!(
        resource_usage(&[], "default", "cpu", None).unwrap_err().0,
        "no metrics returned from resource metrics API"
    );
}

#[test]
fn malformed_samples_are_errors() {
    let no_ts = json!({"items":[{"metadata":{"name":"a"},"containers":[]}]});
    assert!(parse_pod_metrics_list(&no_ts).is_err());
    let bad_q = json!({"items":[{"metadata":{"name":"a"},"timestamp":"2026-11-28T12:00:00Z",
        "containers":[{"name":"c","usage":{"cpu":"lots"}}]}]});
    assert!(parse_pod_metrics_list(&bad_q).is_err());
    assert_eq!(parse_pod_metrics_list(&json!({})).unwrap(), vec![]);
}
