//! Table-driven tests for label and field selectors; expected texts and errors are
//! those kube-apiserver v1.33 produces for the same input (its `RegexError` leaves two
//! spaces before each "or").

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::*;

const NAME_RX: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_RX: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// (selector, labels, expected match)
type MatchCase = (&'static str, &'static [(&'static str, &'static str)], bool);
/// (input, parsed requirements, canonical text)
type FieldCase = (
    &'static str,
    &'static [(&'static str, FieldOperator, &'static str)],
    &'static str,
);

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn label_parse_valid_and_canonical_text() {
    let cases = [
        ("", ""),
        ("   ", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("!x", "!x"),
        ("x>1", "x>1"),
        ("x>1,z<5", "x>1,z<5"),
        ("x=a,a=x", "a=x,x=a"),
        ("a==b", "a==b"),
        (" a , b ", "a,b"),
        ("a in (x,y)", "a in (x,y)"),
        ("a notin (y,x,y)", "a notin (x,y)"),
        ("a in(b)", "a in (b)"),
        ("a\tin\t(\tb\t)", "a in (b)"),
        (
            "x in (foo,,baz),y,z notin ()",
            "x in (,baz,foo),y,z notin ()",
        ),
        ("a in (b,)", "a in (,b)"),
        ("a in (,)", "a in ()"),
        ("a in (in,notin)", "a in (in,notin)"),
        ("in", "in"),
        ("a=in", "a=in"),
        ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
        ("!a,b", "!a,b"),
    ];
    for (input, want) in cases {
        let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(sel.to_string(), *want, "{input:?}");
        // The canonical text parses back to the same selector.
        assert_eq!(LabelSelector::parse(want).unwrap().to_string(), *want);
    }
}

#[test]
fn label_parse_errors_match_upstream() {
    let p = "unable to parse requirement: ";
    let long = format!("a={}", "v".repeat(64));
    let cases: Vec<(&str, String)> = vec![
        (
            "x=a||y=b",
            format!("{p}values[0][x]: Invalid value: \"a||y\": {VALUE_RX}"),
        ),
        (
            "x==a==b",
            "found '==', expected: ',' or 'end of string'".into(),
        ),
        ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
        (
            "x<a",
            format!(
                "{p}values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
            ),
        ),
        (
            "x>-1",
            format!("{p}values[0][x]: Invalid value: \"-1\": {VALUE_RX}"),
        ),
        (
            "x>a_",
            format!(
                "{p}[values[0]: Invalid value: \"a_\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"a_\": {VALUE_RX}]"
            ),
        ),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'".into(),
        ),
        (
            ",a",
            "found ',', expected: !, identifier, or 'end of string'".into(),
        ),
        (
            "(",
            "found '(', expected: !, identifier, or 'end of string'".into(),
        ),
        ("a,", "found '', expected: identifier after ','".into()),
        ("a,,b", "found ',', expected: identifier after ','".into()),
        ("!", format!("{p}found '', expected: identifier")),
        ("!!a", format!("{p}found '!', expected: identifier")),
        (
            "a b",
            format!("{p}found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ),
        (
            "a!b",
            format!("{p}found '!', expected: in, notin, =, ==, !=, gt, lt"),
        ),
        ("a in (b", format!("{p}found '', expected: ',' or ')'")),
        ("a in (b c)", format!("{p}found 'c', expected: ',' or ')'")),
        ("a in b)", format!("{p}found 'b' expected: '('")),
        ("a in", format!("{p}found '' expected: '('")),
        (
            "a in (b))",
            "found ')', expected: ',' or 'end of string'".into(),
        ),
        (
            "a in ((b)",
            format!("{p}found '(', expected: ',', ')' or identifier"),
        ),
        (
            "a in (",
            format!("{p}found '', expected: ',', ')' or identifier"),
        ),
        (
            "a in (b,=)",
            format!("{p}found '=', expected: ',', or identifier"),
        ),
        ("a=(", format!("{p}found '(', expected: identifier")),
        ("a>=1", format!("{p}found '=', expected: identifier")),
        (
            "a=b c",
            "found 'c', expected: ',' or 'end of string'".into(),
        ),
        ("-a", format!("{p}<nil>: Invalid value: \"-a\": {NAME_RX}")),
        ("!-a", format!("{p}<nil>: Invalid value: \"-a\": {NAME_RX}")),
        (
            "/a=b",
            format!("{p}<nil>: Invalid value: \"/a\": prefix part must be non-empty"),
        ),
        (
            "a/=b",
            format!("{p}<nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_RX}"),
        ),
        (
            "a/b/c=d",
            format!(
                "{p}<nil>: Invalid value: \"a/b/c\": a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                NAME_RX.trim_start_matches("name part ")
            ),
        ),
        ("é=a", format!("{p}<nil>: Invalid value: \"é\": {NAME_RX}")),
        (
            long.as_str(),
            format!(
                "{p}values[0][a]: Invalid value: \"{}\": must be no more than 63 characters",
                "v".repeat(64)
            ),
        ),
    ];
    for (input, want) in cases {
        match LabelSelector::parse(input) {
            Ok(sel) => panic!("{input:?} parsed as {sel}"),
            Err(e) => {
                assert!(matches!(e, SelectorError::Label(_)));
                assert_eq!(e.to_string(), want, "{input:?}");
            }
        }
    }
}

#[test]
fn label_matching() {
    let cases: &[MatchCase] = &[
        ("", &[], true),
        ("", &[("a", "b")], true),
        ("a=b", &[("a", "b")], true),
        ("a==b", &[("a", "b")], true),
        ("a=b", &[("a", "c")], false),
        ("a=b", &[], false),
        ("a!=b", &[], true),
        ("a!=b", &[("a", "b")], false),
        ("a!=b", &[("a", "c")], true),
        ("a in (b,c)", &[("a", "c")], true),
        ("a in (b,c)", &[("a", "d")], false),
        ("a in (b,c)", &[], false),
        ("a notin (b)", &[], true),
        ("a notin (b)", &[("a", "b")], false),
        ("a notin (b)", &[("a", "x")], true),
        ("a", &[("a", "")], true),
        ("a", &[("b", "")], false),
        ("!a", &[], true),
        ("!a", &[("a", "x")], false),
        ("x>1", &[("x", "2")], true),
        ("x>1", &[("x", "1")], false),
        ("x>1", &[("x", "a")], false),
        ("x>1", &[], false),
        ("x<1", &[("x", "0")], true),
        ("x<1", &[("x", "-5")], true),
        ("x=", &[("x", "")], true),
        ("x=", &[], false),
        ("a in ()", &[("a", "")], true),
        ("a=b,c=d", &[("a", "b"), ("c", "d")], true),
        ("a=b,c=d", &[("a", "b"), ("c", "x")], false),
    ];
    for (sel, ls, want) in cases {
        let s = LabelSelector::parse(sel).unwrap();
        let map = labels(ls);
        assert_eq!(s.matches(&map), *want, "{sel:?} on {ls:?}");
        let hash: HashMap<String, String> = map.clone().into_iter().collect();
        assert_eq!(s.matches(&hash), *want, "{sel:?} on {ls:?} (HashMap)");
        let json = serde_json::to_value(&map).unwrap();
        assert_eq!(s.matches(&json), *want, "{sel:?} on {ls:?} (JSON)");
    }
    // A missing labels object is no labels.
    let s = LabelSelector::parse("!a").unwrap();
    assert!(s.matches(&serde_json::Value::Null));
    assert!(!LabelSelector::parse("a").unwrap().matches(&json!({"a": 1})));
}

#[test]
fn label_selector_helpers() {
    let s = LabelSelector::parse("b in (x),a=1,c in (x,y),d!=z").unwrap();
    assert_eq!(s.requirements().len(), 4);
    assert_eq!(s.requirements()[0].key(), "a");
    assert_eq!(s.requires_exact_match("a"), Some("1"));
    assert_eq!(s.requires_exact_match("b"), Some("x"));
    assert_eq!(s.requires_exact_match("c"), None);
    assert_eq!(s.requires_exact_match("d"), None);
    assert_eq!(s.requires_exact_match("e"), None);
    assert!(LabelSelector::parse("").unwrap().is_empty());
    assert!(!LabelSelector::nothing().is_empty());
    assert!(!LabelSelector::nothing().matches(&labels(&[])));
    assert_eq!("a=b".parse::<LabelSelector>().unwrap().to_string(), "a=b");

    let set = labels(&[("z", "1"), ("a", "2")]);
    assert_eq!(
        LabelSelector::from_set(&set).unwrap().to_string(),
        "a=2,z=1"
    );
    assert!(LabelSelector::from_set(&labels(&[])).unwrap().is_empty());
    assert!(LabelSelector::from_set(&labels(&[("-", "x")])).is_err());
}

#[test]
fn metav1_label_selector_conversion() {
    // null selects nothing; {} selects everything.
    let nothing = from_label_selector_json(&serde_json::Value::Null).unwrap();
    assert!(nothing.matches_nothing());
    assert!(!nothing.matches(&labels(&[])));
    for everything in [
        json!({}),
        json!({"matchLabels": {}}),
        json!({"matchLabels": null, "matchExpressions": []}),
    ] {
        let s = from_label_selector_json(&everything).unwrap();
        assert!(s.is_empty(), "{everything}");
        assert!(s.matches(&labels(&[("x", "y")])));
    }

    let s = from_label_selector_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "team", "operator": "Exists", "values": []},
        ]
    }))
    .unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,env notin (prod),!legacy,team,tier in (be,fe)"
    );
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("team", "x")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
    assert!(!s.matches(&labels(&[
        ("app", "web"),
        ("tier", "fe"),
        ("team", "x"),
        ("legacy", "1")
    ])));

    let errors = [
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
            "\"Foo\" is not a valid label selector operator".to_string(),
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}),
            "\"in\" is not a valid label selector operator".into(),
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
                .into(),
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
                .into(),
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
                .into(),
        ),
        (
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            format!("key: Invalid value: \"\": name part must be non-empty; {NAME_RX}"),
        ),
        (
            json!({"matchLabels": {"-a": "b"}}),
            format!("key: Invalid value: \"-a\": {NAME_RX}"),
        ),
        (
            json!({"matchLabels": {"app": "-x"}}),
            format!("values[0][app]: Invalid value: \"-x\": {VALUE_RX}"),
        ),
    ];
    for (input, want) in errors {
        let err = from_label_selector_json(&input).unwrap_err();
        assert_eq!(err.to_string(), want, "{input}");
    }

    for malformed in [
        json!("app=web"),
        json!({"matchLabels": "x"}),
        json!({"matchLabels": {"a": 1}}),
        json!({"matchExpressions": {}}),
        json!({"matchExpressions": [1]}),
        json!({"matchExpressions": [{"key": 1, "operator": "Exists"}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
    ] {
        assert!(
            matches!(
                from_label_selector_json(&malformed),
                Err(SelectorError::Malformed(_))
            ),
            "{malformed}"
        );
    }
}

#[test]
fn field_parse_valid() {
    let cases: &[FieldCase] = &[
        ("", &[], ""),
        (
            "metadata.name=foo",
            &[("metadata.name", FieldOperator::Equals, "foo")],
            "metadata.name=foo",
        ),
        ("a==b", &[("a", FieldOperator::Equals, "b")], "a=b"),
        ("a!=b", &[("a", FieldOperator::NotEquals, "b")], "a!=b"),
        (
            "b=2,a=1",
            &[
                ("a", FieldOperator::Equals, "1"),
                ("b", FieldOperator::Equals, "2"),
            ],
            "a=1,b=2",
        ),
        (
            r"a=x\,y\=z\\",
            &[("a", FieldOperator::Equals, r"x,y=z\")],
            r"a=x\,y\=z\\",
        ),
        (
            r"d=e,a=b\,c",
            &[
                ("a", FieldOperator::Equals, "b,c"),
                ("d", FieldOperator::Equals, "e"),
            ],
            r"a=b\,c,d=e",
        ),
        ("=", &[], ""),
        ("=x", &[("", FieldOperator::Equals, "x")], "=x"),
        ("a=", &[("a", FieldOperator::Equals, "")], "a="),
        (",a=b,", &[("a", FieldOperator::Equals, "b")], "a=b"),
        ("a!b=c", &[("a!b", FieldOperator::Equals, "c")], "a!b=c"),
        (
            " a = b ",
            &[(" a ", FieldOperator::Equals, " b ")],
            " a = b ",
        ),
        (
            "spec.nodeName=,status.phase!=Running",
            &[
                ("spec.nodeName", FieldOperator::Equals, ""),
                ("status.phase", FieldOperator::NotEquals, "Running"),
            ],
            "spec.nodeName=,status.phase!=Running",
        ),
    ];
    for (input, reqs, text) in cases {
        let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        let got: Vec<(&str, FieldOperator, &str)> = sel
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator, r.value.as_str()))
            .collect();
        assert_eq!(got, *reqs, "{input:?}");
        assert_eq!(sel.to_string(), *text, "{input:?}");
        assert_eq!(sel.is_empty(), reqs.is_empty());
    }
}

#[test]
fn field_parse_errors_match_upstream() {
    let cases = [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("x=1,a", "invalid selector: 'x=1,a'; can't understand 'a'"),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (
            "a==b==c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            r"a=b\x",
            r"invalid field selector: invalid escape sequence: \x",
        ),
        (
            r"a=b\",
            r"invalid field selector: invalid escape sequence: \",
        ),
        (
            r"a=b\,c=d",
            "invalid field selector: unescaped character in value: 61",
        ),
    ];
    for (input, want) in cases {
        let err = FieldSelector::parse(input).unwrap_err();
        assert!(matches!(err, SelectorError::Field(_)));
        assert_eq!(err.to_string(), want, "{input:?}");
    }
}

#[test]
fn field_matching_and_fast_path() {
    let obj: HashMap<&str, &str> = [("metadata.name", "web-1"), ("status.phase", "Running")]
        .into_iter()
        .collect();
    let lookup = |f: &str| obj.get(f).map(|v| v.to_string());
    let cases = [
        ("", true),
        ("metadata.name=web-1", true),
        ("metadata.name==web-1", true),
        ("metadata.name=web-2", false),
        ("metadata.name!=web-2", true),
        ("metadata.name=web-1,status.phase!=Running", false),
        ("spec.nodeName=", true),
        ("spec.nodeName!=", false),
        ("spec.nodeName!=n1", true),
    ];
    for (sel, want) in cases {
        let s = FieldSelector::parse(sel).unwrap();
        assert_eq!(s.matches(&lookup), want, "{sel:?}");
    }
    let s = FieldSelector::parse("status.phase!=x,metadata.name=web-1").unwrap();
    assert_eq!(s.requires_exact_match("metadata.name"), Some("web-1"));
    assert_eq!(s.requires_exact_match("status.phase"), None);
    assert_eq!(
        FieldSelector::one_term_equal("metadata.name", "a,b").to_string(),
        r"metadata.name=a\,b"
    );
    assert!(FieldSelector::everything().matches(&|_| None));
    for raw in ["", "plain", r"a,b=c\d", "\\\\,,=="] {
        assert_eq!(unescape_value(&escape_value(raw)).unwrap(), raw);
    }
}

/// Every string up to four characters over an alphabet of the syntax's special
/// characters parses or errors, never panics.
#[test]
fn parsers_never_panic() {
    let alphabet = [
        'a', '=', '!', '(', ')', ',', ' ', '\\', '<', '>', 'i', 'n', '\0', 'é', '/',
    ];
    let mut inputs = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for s in &frontier {
            for c in alphabet {
                let mut t = s.clone();
                t.push(c);
                next.push(t);
            }
        }
        inputs.extend(next.iter().cloned());
        frontier = next;
    }
    let (mut ok, mut bad) = (0, 0);
    for s in &inputs {
        match LabelSelector::parse(s) {
            Ok(sel) => {
                ok += 1;
                // Whatever parsed prints as something that parses to the same thing.
                let again = LabelSelector::parse(&sel.to_string())
                    .unwrap_or_else(|e| panic!("{s:?} -> {sel} -> {e}"));
                assert_eq!(again.to_string(), sel.to_string());
            }
            Err(_) => bad += 1,
        }
        let _ = FieldSelector::parse(s);
    }
    assert!(ok > 100 && bad > 100, "{ok} ok, {bad} bad");
}
