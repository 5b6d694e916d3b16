use super::*;
use serde_json::{Value, json};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn dns1123_subdomain() {
    for ok in ["a", "a.b", "example.com", "0-1.x9", &"a".repeat(253)] {
        assert!(is_dns1123_subdomain(ok).is_empty(), "{ok}");
    }
    for bad in ["", "A", "-a", "a-", "a..b", ".a", "a_b", "é", "a b"] {
        assert_eq!(
            is_dns1123_subdomain(bad),
            vec![SUBDOMAIN_MSG.to_string()],
            "{bad}"
        );
    }
    assert_eq!(
        is_dns1123_subdomain(&"a".repeat(254)),
        vec!["must be no more than 253 characters".to_string()]
    );
    assert!(is_dns1123_subdomain("a.b-c.d1").is_empty());
    for bad in [".", "a.", "-a", "a-"] {
        assert_eq!(is_dns1123_subdomain(bad).len(), 1, "{bad}");
    }
}

#[test]
fn dns1123_label() {
    assert!(is_dns1123_label("my-name").is_empty());
    assert_eq!(
        is_dns1123_label("a.b"),
        vec!["must not contain dots".to_string()]
    );
    // Upstream's RegexError leaves two spaces before "or".
    assert_eq!(is_dns1123_label("Foo"), vec![LABEL_MSG.to_string()]);
    assert_eq!(
        is_dns1123_label(&"a".repeat(64)),
        vec!["must be no more than 63 characters".to_string()]
    );
}

#[test]
fn regex_error_format() {
    assert_eq!(
        regex_error("m", "f", &["a", "b"]),
        "m (e.g. 'a',  or 'b', regex used for validation is 'f')"
    );
    assert_eq!(
        regex_error("m", "f", &[]),
        "m (regex used for validation is 'f')"
    );
}

#[test]
fn dns1035_label() {
    assert!(is_dns1035_label("svc-1").is_empty());
    assert_eq!(is_dns1035_label("1svc").len(), 1);
    assert!(is_dns1035_label("1svc")[0].starts_with("a DNS-1035 label must consist"));
}

#[test]
fn qualified_names() {
    for ok in ["app", "example.com/app", "A_b.c-D", "k8s.io/x"] {
        assert!(is_qualified_name(ok).is_empty(), "{ok}");
    }
    assert_eq!(
        is_qualified_name("/a"),
        vec!["prefix part must be non-empty".to_string()]
    );
    assert_eq!(is_qualified_name("a/"), {
        let mut v = vec!["name part must be non-empty".to_string()];
        v.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
        v
    });
    let many = is_qualified_name("a/b/c");
    assert_eq!(many.len(), 1);
    assert!(many[0].starts_with("a qualified name must consist of"));
    assert!(
        many[0]
            .ends_with("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
    );
    let bad_prefix = is_qualified_name("Bad_/x");
    assert!(bad_prefix[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
    assert_eq!(is_qualified_name(&"a".repeat(64)).len(), 1);
}

/// The exact texts label selectors report for bad keys (apimachinery `IsQualifiedName`).
#[test]
fn qualified_name_messages() {
    for ok in [
        "a",
        "A",
        "app",
        "app.kubernetes.io/name",
        "k8s.io/a-b_c.d",
        "a1",
        &"x".repeat(63),
        &format!("{}/x", ["a"; 127].join(".")),
    ] {
        assert!(
            is_qualified_name(ok).is_empty(),
            "{ok}: {:?}",
            is_qualified_name(ok)
        );
    }
    let name_rx = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    assert_eq!(is_qualified_name("-a"), [name_rx]);
    assert_eq!(is_qualified_name("a_"), [name_rx]);
    assert_eq!(
        is_qualified_name(""),
        ["name part must be non-empty", name_rx]
    );
    assert_eq!(
        is_qualified_name(&"x".repeat(64)),
        ["name part must be no more than 63 characters"]
    );
    assert_eq!(is_qualified_name("/a"), ["prefix part must be non-empty"]);
    assert_eq!(
        is_qualified_name("Foo.com/a"),
        [format!("prefix part {SUBDOMAIN_MSG}")]
    );
    assert_eq!(is_qualified_name("a..b/c").len(), 1);
    assert_eq!(is_qualified_name("é").len(), 1);
}

#[test]
fn label_values() {
    assert!(is_valid_label_value("").is_empty());
    assert!(is_valid_label_value("v1.2_x-y").is_empty());
    assert_eq!(is_valid_label_value("-x").len(), 1);
    assert!(is_valid_label_value("-x")[0].starts_with("a valid label must be an empty string"));
    assert_eq!(is_valid_label_value(&"a".repeat(64)).len(), 1);
    for ok in ["a", "a.b-c_d", "123", &"v".repeat(63)] {
        assert!(is_valid_label_value(ok).is_empty(), "{ok}");
    }
    assert_eq!(
        is_valid_label_value("-x"),
        [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ]
    );
    assert_eq!(
        is_valid_label_value(&"v".repeat(64)),
        ["must be no more than 63 characters"]
    );
    assert_eq!(
        is_valid_label_value(&format!("-{}", "v".repeat(64))).len(),
        2
    );
}

#[test]
fn other_formats() {
    assert!(is_config_map_key("a.b-c_D").is_empty());
    assert_eq!(
        is_config_map_key("..a"),
        vec!["must not start with '..'".to_string()]
    );
    assert_eq!(is_config_map_key("a/b").len(), 1);
    assert_eq!(
        is_valid_port_num(0),
        vec!["must be between 1 and 65535, inclusive".to_string()]
    );
    assert!(is_valid_port_num(65535).is_empty());
    assert!(is_valid_port_name("http").is_empty());
    assert_eq!(is_valid_port_name("80").len(), 1);
    assert_eq!(is_valid_port_name("-a--b-").len(), 2);
    assert!(is_valid_percent("25%").is_empty());
    assert_eq!(is_valid_percent("%").len(), 1);
    assert_eq!(is_valid_percent("1.5%").len(), 1);
    assert!(is_relaxed_env_var_name("MY VAR.1").is_empty());
    assert_eq!(is_relaxed_env_var_name("A=B").len(), 1);
}

#[test]
fn names_by_rule() {
    assert!(validate_name(NameRule::Dns1123Subdomain, "web-", true).is_empty());
    assert!(!validate_name(NameRule::Dns1123Subdomain, "web-", false).is_empty());
    assert!(validate_name(NameRule::PathSegment, "system:admin", false).is_empty());
    assert_eq!(
        validate_name(NameRule::PathSegment, "..", false),
        vec!["may not be '..'".to_string()]
    );
    assert_eq!(validate_name(NameRule::PathSegment, "a/%", false).len(), 2);
    assert!(!validate_name(NameRule::Dns1035Label, "1abc", false).is_empty());
    assert!(validate_name(NameRule::Dns1123Label, "1abc", false).is_empty());
    // A multibyte prefix ending in '-' must not panic.
    let _ = validate_name(NameRule::Dns1123Subdomain, "é-", true);
}

#[test]
fn labels_and_annotations() {
    let errs = validate_labels(
        &json!({"app": "ok", "bad key": "v", "k": "-bad", "n": 5}),
        "metadata.labels",
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["metadata.labels[n]", "metadata.labels", "metadata.labels"]
    );
    assert!(
        errs[1]
            .message
            .starts_with("Invalid value: \"bad key\": name part")
    );
    assert!(validate_labels(&json!("junk"), "l")[0].reason == "FieldValueTypeInvalid");

    let big = json!({"a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)});
    let errs = validate_annotations(&big, "metadata.annotations");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].reason, "FieldValueTooLong");
    assert_eq!(
        errs[0].message,
        "Too long: may not be more than 262144 bytes"
    );
    // Annotation keys are checked lower-cased.
    assert!(validate_annotations(&json!({"Example.COM/Key": "v"}), "a").is_empty());
}

#[test]
fn object_meta_cases() {
    struct Case {
        obj: Value,
        namespaced: bool,
        rule: NameRule,
        want: Vec<(&'static str, &'static str)>,
    }
    let cases = vec![
        Case {
            obj: json!({"metadata": {"name": "ok", "namespace": "default"}}),
            namespaced: true,
            rule: NameRule::Dns1123Subdomain,
            want: vec![],
        },
        Case {
            obj: json!({"metadata": {"namespace": "default"}}),
            namespaced: true,
            rule: NameRule::Dns1123Subdomain,
            want: vec![(
                "metadata.name",
                "Required value: name or generateName is required",
            )],
        },
        Case {
            obj: json!({}),
            namespaced: true,
            rule: NameRule::Dns1123Subdomain,
            want: vec![
                (
                    "metadata.name",
                    "Required value: name or generateName is required",
                ),
                ("metadata.namespace", "Required value"),
            ],
        },
        Case {
            obj: json!({"metadata": {"name": "x", "namespace": "ns"}}),
            namespaced: false,
            rule: NameRule::Dns1123Label,
            want: vec![("metadata.namespace", "Forbidden: not allowed on this type")],
        },
        Case {
            obj: json!({"metadata": {"name": "a.b"}}),
            namespaced: false,
            rule: NameRule::Dns1123Label,
            want: vec![(
                "metadata.name",
                "Invalid value: \"a.b\": must not contain dots",
            )],
        },
        Case {
            obj: json!({"metadata": {"name": "x", "generation": -1}}),
            namespaced: false,
            rule: NameRule::Dns1123Subdomain,
            want: vec![(
                "metadata.generation",
                "Invalid value: -1: must be greater than or equal to 0",
            )],
        },
        Case {
            obj: json!({"metadata": {"name": "x", "finalizers": ["custom"]}}),
            namespaced: false,
            rule: NameRule::Dns1123Subdomain,
            want: vec![(
                "metadata.finalizers",
                "Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
            )],
        },
        Case {
            obj: json!({"metadata": {"name": "x", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r"}]}}),
            namespaced: false,
            rule: NameRule::Dns1123Subdomain,
            want: vec![(
                "metadata.ownerReferences.uid",
                "Invalid value: \"\": uid must not be empty",
            )],
        },
        Case {
            obj: json!({"metadata": "junk"}),
            namespaced: false,
            rule: NameRule::Dns1123Subdomain,
            want: vec![
                (
                    "metadata",
                    "Invalid value: \"junk\": must be of type object",
                ),
                (
                    "metadata.name",
                    "Required value: name or generateName is required",
                ),
            ],
        },
        Case {
            obj: json!({"metadata": {"name": 7, "labels": [1], "annotations": 3, "finalizers": "x"}}),
            namespaced: false,
            rule: NameRule::Dns1123Subdomain,
            want: vec![
                ("metadata.name", "Invalid value: 7: must be of type string"),
                (
                    "metadata.name",
                    "Required value: name or generateName is required",
                ),
                (
                    "metadata.labels",
                    "Invalid value: [1]: must be of type object",
                ),
                (
                    "metadata.annotations",
                    "Invalid value: 3: must be of type object",
                ),
                (
                    "metadata.finalizers",
                    "Invalid value: \"x\": must be of type array",
                ),
            ],
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let got: Vec<(String, String)> = validate_object_meta(&c.obj, c.namespaced, c.rule)
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect();
        let want: Vec<(String, String)> = c
            .want
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn object_meta_update() {
    let old =
        json!({"metadata": {"name": "a", "uid": "u1", "resourceVersion": "5", "generation": 3}});
    let ok =
        json!({"metadata": {"name": "a", "uid": "u1", "resourceVersion": "5", "generation": 3}});
    assert!(validate_object_meta_update(&ok, &old).is_empty());
    let bad = json!({"metadata": {"name": "b", "uid": "u2", "generation": 2}});
    let fields: Vec<String> = validate_object_meta_update(&bad, &old)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "metadata.resourceVersion",
            "metadata.generation",
            "metadata.name",
            "metadata.uid"
        ]
    );
    let deleting =
        json!({"metadata": {"name": "a", "deletionTimestamp": "t", "finalizers": ["a/b"]}});
    let newer = json!({"metadata": {"name": "a", "deletionTimestamp": "t", "resourceVersion": "1", "finalizers": ["a/b", "c/d"]}});
    let errs = validate_object_meta_update(&newer, &deleting);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message,
        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\"}"
    );
}

#[test]
fn label_selector_validation_and_matching() {
    let mut errs = Vec::new();
    validate_label_selector(
        &json!({"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]}, {"key": "c", "operator": "Bogus"}]}),
        "spec.selector",
        &mut errs,
    );
    let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Bogus\": not a valid selector operator",
        ]
    );
    let labels = json!({"app": "web", "tier": "fe"});
    let m = |sel: Value| selector_match(&sel, Some(&labels));
    assert_eq!(
        m(json!({"matchLabels": {"app": "web"}})),
        SelectorMatch::Matches
    );
    assert_eq!(
        m(json!({"matchLabels": {"app": "db"}})),
        SelectorMatch::NoMatch
    );
    assert_eq!(m(json!({})), SelectorMatch::Everything);
    assert_eq!(
        m(json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]})),
        SelectorMatch::Matches
    );
    assert_eq!(
        m(json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]})),
        SelectorMatch::Matches
    );
    assert_eq!(
        m(json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]})),
        SelectorMatch::NoMatch
    );
    assert_eq!(
        m(json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]})),
        SelectorMatch::Matches
    );
    assert_eq!(
        m(json!({"matchExpressions": [{"key": "x", "operator": "In"}]})),
        SelectorMatch::Invalid
    );
    assert_eq!(m(json!("junk")), SelectorMatch::Invalid);
    assert_eq!(
        selector_match(&json!({"matchLabels": {"a": "b"}}), None),
        SelectorMatch::NoMatch
    );
}

#[test]
fn go_renderings() {
    assert_eq!(
        go_label_selector(&json!({"matchLabels": {"app": "x"}})),
        "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
    );
    assert_eq!(
        go_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]})
        ),
        "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"a\", Operator:\"In\", Values:[]string{\"b\"}}}}"
    );
    assert_eq!(go_labels(None), "map[string]string(nil)");
}
