use serde_json::{Value, json};

use crate::strategy::test_support::{assert_has, create, defaulted, update};

fn svc(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

#[test]
fn defaults_by_type() {
    let got = defaulted(
        "",
        "Service",
        svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]})),
    );
    assert_eq!(
        got["spec"],
        json!({
            "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"]
        })
    );
    let np = defaulted(
        "",
        "Service",
        svc(json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]})),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");
    let lb = defaulted(
        "",
        "Service",
        svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]})),
    );
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    let en = defaulted(
        "",
        "Service",
        svc(json!({"type": "ExternalName", "externalName": "example.com"})),
    );
    assert!(en["spec"].get("ipFamilies").is_none());
    assert!(en["spec"].get("internalTrafficPolicy").is_none());
    let headless = defaulted("", "Service", svc(json!({"clusterIP": "None"})));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    let headless_sel = defaulted(
        "",
        "Service",
        svc(json!({"clusterIP": "None", "selector": {"a": "b"}})),
    );
    assert_eq!(headless_sel["spec"]["ipFamilyPolicy"], "SingleStack");
    let aff = defaulted(
        "",
        "Service",
        svc(json!({"sessionAffinity": "ClientIP", "ports": [{"port": 1}]})),
    );
    assert_eq!(
        aff["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
}

#[test]
fn create_sets_status_and_cluster_ips() {
    let (obj, errs) = create(
        "",
        "Service",
        svc(json!({"clusterIP": "10.0.0.10", "ports": [{"port": 80}]})),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(obj["spec"]["clusterIPs"], json!(["10.0.0.10"]));
    assert_eq!(obj["status"], json!({"loadBalancer": {}}));
    let (obj, errs) = create("", "Service", svc(json!({"clusterIP": "None"})));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(obj["spec"]["clusterIPs"], json!(["None"]));
}

#[test]
fn validation_table() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["spec.ports: Required value"]),
        (
            json!({"type": "Magic", "ports": [{"port": 1}]}),
            vec![
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
        (
            json!({"ports": [{"port": 80}, {"port": 81}]}),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
            ],
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 80}]}),
            vec![
                "spec.ports[1].name: Duplicate value: \"a\"",
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ],
        ),
        (
            json!({"ports": [{"port": 0, "protocol": "ICMP", "targetPort": "Bad_Name"}]}),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[0].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ],
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
            vec![
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
            ],
        ),
        (
            json!({"type": "ExternalName"}),
            vec!["spec.externalName: Required value"],
        ),
        (
            json!({"type": "ExternalName", "externalName": "Not_A_Host", "clusterIP": "10.0.0.1"}),
            vec!["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
        ),
        (
            json!({"sessionAffinity": "Sticky", "ports": [{"port": 1}]}),
            vec![
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            ],
        ),
        (
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}, "ports": [{"port": 1}]}),
            vec![
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
            ],
        ),
        (
            json!({"externalTrafficPolicy": "Local", "ports": [{"port": 1}]}),
            vec![
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
            ],
        ),
        (
            json!({"ipFamilies": ["IPv5", "IPv4", "IPv4"], "ipFamilyPolicy": "Triple", "ports": [{"port": 1}]}),
            vec![
                "spec.ipFamilyPolicy: Unsupported value: \"Triple\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
                "spec.ipFamilies[0]: Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
                "spec.ipFamilies[2]: Duplicate value: \"IPv4\"",
                "spec.ipFamilies: Invalid value: []string{\"IPv5\", \"IPv4\", \"IPv4\"}: may specify no more than two IP families",
            ],
        ),
        (
            json!({"selector": {"bad key": "v"}, "ports": [{"port": 1}], "allocateLoadBalancerNodePorts": true}),
            vec![
                "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
            ],
        ),
        (
            json!({"ports": "80"}),
            vec!["spec.ports: Invalid value: \"80\": must be of type array"],
        ),
        (
            json!({"ports": [{"port": "80"}]}),
            vec!["spec.ports[0].port: Invalid value: \"80\": must be of type integer"],
        ),
    ];
    for (i, (spec, want)) in cases.into_iter().enumerate() {
        let (_, errs) = create("", "Service", svc(spec));
        assert!(!errs.is_empty(), "case {i}");
        assert_has(&errs, &want);
    }
    // Headless services need no ports.
    assert!(
        create("", "Service", svc(json!({"clusterIP": "None"})))
            .1
            .is_empty()
    );
}

/// A service as the registry would store it after allocation.
fn allocated(spec: Value) -> Value {
    let (mut obj, errs) = create("", "Service", svc(spec));
    assert!(errs.is_empty(), "{errs:?}");
    if obj["spec"]["type"] != "ExternalName" {
        obj["spec"]["clusterIP"] = json!("10.43.0.10");
        obj["spec"]["clusterIPs"] = json!(["10.43.0.10"]);
    }
    let node_port = obj["spec"]["type"] == "NodePort";
    if let Some(ports) = obj["spec"]["ports"].as_array_mut()
        && node_port
    {
        for (i, p) in ports.iter_mut().enumerate() {
            p["nodePort"] = json!(30000 + i);
        }
    }
    obj
}

#[test]
fn updates_keep_allocated_values() {
    let old = allocated(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}));
    // A client replacing the object without clusterIP/nodePort keeps both.
    let (new, errs) = update(
        "",
        "Service",
        svc(json!({"type": "NodePort", "ports": [{"name": "http", "port": 81}]})),
        &old,
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(new["spec"]["clusterIP"], "10.43.0.10");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.10"]));
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30000);

    // Changing the clusterIP is refused.
    let mut moved = old.clone();
    moved["spec"]["clusterIP"] = json!("10.43.0.11");
    let (_, errs) = update("", "Service", moved, &old);
    assert_eq!(
        errs,
        ["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.11\"}: may not change once set"]
    );

    // NodePort → ClusterIP drops the untouched nodePorts and external policy.
    let mut to_cip = old.clone();
    to_cip["spec"]["type"] = json!("ClusterIP");
    let (new, errs) = update("", "Service", to_cip, &old);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    assert!(new["spec"].get("externalTrafficPolicy").is_none());

    // → ExternalName drops clusterIPs and families the client left as they were.
    let mut to_en = old.clone();
    to_en["spec"]["type"] = json!("ExternalName");
    to_en["spec"]["externalName"] = json!("example.com");
    let (new, errs) = update("", "Service", to_en, &old);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(new["spec"].get("clusterIP").is_none());
    assert!(new["spec"].get("ipFamilies").is_none());
}

#[test]
fn junk_never_panics() {
    let junk = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!(-5),
        json!(0.5),
        json!([{"port": {}}]),
    ];
    let keys = [
        "type",
        "ports",
        "clusterIP",
        "clusterIPs",
        "selector",
        "sessionAffinity",
        "sessionAffinityConfig",
        "externalIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "externalTrafficPolicy",
        "internalTrafficPolicy",
        "externalName",
    ];
    for j in &junk {
        let _ = create("", "Service", j.clone());
        let _ = create("", "Service", svc(j.clone()));
        for k in keys {
            let mut spec = json!({"ports": [{"port": 80}]});
            spec[k] = j.clone();
            let (obj, _) = create("", "Service", svc(spec));
            let old = allocated(json!({"type": "NodePort", "ports": [{"port": 80}]}));
            let _ = update("", "Service", obj.clone(), &old);
            let _ = update("", "Service", old, &obj);
        }
    }
}
