use super::*;
use serde_json::json;

/// The object schema of a CRD whose `spec` has schema `spec` (completed as the catalog
/// completes it).
fn object_schema(spec: Value) -> Value {
    json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": spec,
    }})
}

fn validator(spec: Value) -> Validator {
    Validator::new(&object_schema(spec)).expect("rules")
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default", "labels": {"a": "b"}}, "spec": spec})
}

fn shown(errors: Vec<FieldError>) -> Vec<String> {
    errors.into_iter().map(|e| e.to_string()).collect()
}

fn create(v: &Validator, spec: Value) -> Vec<String> {
    shown(v.validate(&obj(spec), None))
}

fn update(v: &Validator, new: Value, old: Value) -> Vec<String> {
    shown(v.validate(&obj(new), Some(&obj(old))))
}

/// CRD errors for rules in the `spec` schema.
fn crd_errors(spec: Value) -> Vec<String> {
    let mut errs = Vec::new();
    check_schema(
        &json!({"type": "object", "properties": {"spec": spec}}),
        "spec.validation.openAPIV3Schema",
        &mut errs,
    );
    shown(errs)
}

fn replicas_schema(rules: Value) -> Value {
    json!({"type": "object", "x-kubernetes-validations": rules, "properties": {
        "replicas": {"type": "integer"},
        "maxReplicas": {"type": "integer"},
        "name": {"type": "string"},
    }})
}

#[test]
fn rules_pass_and_fail_with_upstream_messages() {
    let v = validator(replicas_schema(json!([
        {"rule": "self.replicas <= self.maxReplicas"},
        {"rule": "self.name.startsWith('w')", "message": "name must start with w"},
    ])));
    assert!(create(&v, json!({"replicas": 1, "maxReplicas": 3, "name": "web"})).is_empty());
    assert_eq!(
        create(&v, json!({"replicas": 5, "maxReplicas": 3, "name": "api"})),
        [
            "spec: Invalid value: \"object\": failed rule: self.replicas <= self.maxReplicas",
            "spec: Invalid value: \"object\": name must start with w",
        ]
    );
    // No spec, no rule to run.
    assert!(shown(v.validate(&json!({"metadata": {"name": "w"}}), None)).is_empty());
}

#[test]
fn missing_fields_are_evaluation_errors() {
    let v = validator(replicas_schema(
        json!([{"rule": "self.replicas <= self.maxReplicas"}]),
    ));
    assert_eq!(
        create(&v, json!({"replicas": 5})),
        [
            "spec: Invalid value: \"object\": no such key: maxReplicas evaluating rule: self.replicas <= self.maxReplicas"
        ]
    );
    let v = validator(replicas_schema(json!([
        {"rule": "!has(self.maxReplicas) || self.replicas <= self.maxReplicas", "message": "too many"}
    ])));
    assert!(create(&v, json!({"replicas": 5})).is_empty());
    // Null fields are absent.
    assert!(create(&v, json!({"replicas": 5, "maxReplicas": null})).is_empty());
}

#[test]
fn message_expression_field_path_and_reason() {
    let v = validator(replicas_schema(json!([
        {"rule": "self.replicas <= self.maxReplicas",
         "messageExpression": "'replicas ' + string(self.replicas) + ' exceed ' + string(self.maxReplicas)",
         "fieldPath": ".replicas"},
        {"rule": "self.name != 'forbidden'", "reason": "FieldValueForbidden", "message": "not this name"},
        {"rule": "self.name != 'dup'", "reason": "FieldValueDuplicate"},
        {"rule": "self.name != 'req'", "reason": "FieldValueRequired", "message": "needed"},
        // A messageExpression that fails falls back to the message.
        {"rule": "self.replicas > 0", "messageExpression": "self.missing", "message": "positive"},
    ])));
    assert_eq!(
        create(
            &v,
            json!({"replicas": 5, "maxReplicas": 3, "name": "forbidden"})
        ),
        [
            "spec.replicas: Invalid value: \"object\": replicas 5 exceed 3",
            "spec: Forbidden: not this name",
        ]
    );
    assert_eq!(
        create(&v, json!({"replicas": 0, "maxReplicas": 3, "name": "dup"})),
        [
            "spec: Duplicate value: \"object\"",
            "spec: Invalid value: \"object\": positive"
        ]
    );
    assert_eq!(
        create(&v, json!({"replicas": 1, "maxReplicas": 3, "name": "req"})),
        ["spec: Required value: needed"]
    );
}

#[test]
fn rules_run_per_item_and_per_map_value() {
    let v = validator(json!({"type": "object", "properties": {
        "ports": {"type": "array", "items": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.port > 0 && self.port < 65536", "message": "bad port"}],
            "properties": {"port": {"type": "integer"}}}},
        "labels": {"type": "object", "additionalProperties": {"type": "string",
            "x-kubernetes-validations": [{"rule": "size(self) <= 3"}]}},
        "tags": {"type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{"rule": "self.all(t, t.lowerAscii() == t)", "message": "lower case"}]},
        "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.0"}]},
    }}));
    assert_eq!(
        create(
            &v,
            json!({"ports": [{"port": 80}, {"port": 0}, {"port": 70000}],
            "labels": {"a": "abc", "b": "abcd"}, "tags": ["x", "Y"], "ratio": 1})
        ),
        [
            "spec.labels[b]: Invalid value: \"string\": failed rule: size(self) <= 3",
            "spec.ports[1]: Invalid value: \"object\": bad port",
            "spec.ports[2]: Invalid value: \"object\": bad port",
            "spec.ratio: Invalid value: \"number\": failed rule: self < 1.0",
            "spec.tags: Invalid value: \"array\": lower case",
        ]
    );
}

#[test]
fn transition_rules_need_an_old_value() {
    let v = validator(json!({"type": "object", "properties": {
        "mode": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "mode is immutable"}]},
        "size": {"type": "integer", "x-kubernetes-validations": [
            {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()", "message": "may not shrink",
             "optionalOldSelf": true},
            {"rule": "oldSelf.hasValue() || self < 100", "message": "starts small",
             "optionalOldSelf": true}]},
    }}));
    assert!(create(&v, json!({"mode": "a", "size": 5})).is_empty());
    assert_eq!(
        create(&v, json!({"mode": "a", "size": 500})),
        ["spec.size: Invalid value: \"integer\": starts small"]
    );
    assert!(
        update(
            &v,
            json!({"mode": "a", "size": 6}),
            json!({"mode": "a", "size": 5})
        )
        .is_empty()
    );
    assert_eq!(
        update(
            &v,
            json!({"mode": "b", "size": 4}),
            json!({"mode": "a", "size": 5})
        ),
        [
            "spec.mode: Invalid value: \"string\": mode is immutable",
            "spec.size: Invalid value: \"integer\": may not shrink",
        ]
    );
    // No old value at that place: the transition rule does not run.
    assert!(update(&v, json!({"mode": "b"}), json!({})).is_empty());
}

#[test]
fn map_lists_correlate_by_key() {
    let v = validator(json!({"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "value": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "immutable"}]}}}},
    }}));
    let old = json!({"items": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]});
    // Reordered and one added: the same values by key.
    let new = json!({"items": [{"name": "c", "value": "9"}, {"name": "b", "value": "2"}, {"name": "a", "value": "1"}]});
    assert!(update(&v, new, old.clone()).is_empty());
    let changed = json!({"items": [{"name": "b", "value": "3"}, {"name": "a", "value": "1"}]});
    assert_eq!(
        update(&v, changed, old),
        ["spec.items[0].value: Invalid value: \"string\": immutable"]
    );
}

#[test]
fn unchanged_values_are_ratcheted() {
    let v = validator(json!({"type": "object", "properties": {
        "name": {"type": "string", "x-kubernetes-validations": [{"rule": "size(self) < 5"}]},
        "other": {"type": "string"},
    }}));
    let old = json!({"name": "toolong", "other": "a"});
    assert!(update(&v, json!({"name": "toolong", "other": "b"}), old.clone()).is_empty());
    assert_eq!(
        update(&v, json!({"name": "toolong2"}), old),
        ["spec.name: Invalid value: \"string\": failed rule: size(self) < 5"]
    );
}

#[test]
fn root_rules_see_type_and_name_only_of_metadata() {
    let schema = json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('w') && self.kind == 'Widget'"},
            {"rule": "self.spec.x == 1"}],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"type": "object", "properties": {"x": {"type": "integer"}}}}});
    let v = Validator::new(&schema).expect("rules");
    assert!(shown(v.validate(&obj(json!({"x": 1})), None)).is_empty());
    assert_eq!(
        shown(v.validate(&obj(json!({"x": 2})), None)),
        ["<nil>: Invalid value: \"object\": failed rule: self.spec.x == 1"]
    );
}

#[test]
fn escaped_property_names_and_library_functions() {
    let v = validator(json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.__namespace__ == 'ns' && self.x__dash__y == 1"},
            {"rule": "self.list.isSorted() && self.list.sum() == 6 && self.list.min() == 1 && self.list.max() == 3"},
            {"rule": "self.list.indexOf(2) == 1 && self.list.lastIndexOf(9) == -1"},
            {"rule": "self.s.split(',').join('-') == 'a-b' && ' A '.trim().lowerAscii() == 'a'"},
            {"rule": "self.s.find('[a-z]') == 'a' && self.s.findAll('[a-z]') == ['a', 'b']"},
            {"rule": "self.s.matches('^a,b$') && self.s in ['a,b', 'c'] && self.list.exists_one(i, i == 2)"},
            {"rule": "duration('1h30m') > duration('90s') && self.list.filter(i, i > 1).map(i, i * 2) == [4, 6]"},
        ],
        "properties": {
            "namespace": {"type": "string"}, "x-y": {"type": "integer"},
            "list": {"type": "array", "items": {"type": "integer"}},
            "s": {"type": "string"}}}));
    assert_eq!(
        create(
            &v,
            json!({"namespace": "ns", "x-y": 1, "list": [1, 2, 3], "s": "a,b"})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        create(
            &v,
            json!({"namespace": "ns", "x-y": 1, "list": [3, 2, 1], "s": "a,b"})
        )[0],
        "spec: Invalid value: \"object\": failed rule: self.list.isSorted() && self.list.sum() == 6 && self.list.min() == 1 && self.list.max() == 3"
    );
}

#[test]
fn overload_errors_read_like_upstream() {
    let v = validator(json!({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{"rule": "self > 0"}]}}}));
    assert!(create(&v, json!({"port": 80})).is_empty());
    assert_eq!(
        create(&v, json!({"port": "http"})),
        [
            "spec.port: Invalid value: \"\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self > 0"
        ]
    );
}

#[test]
fn crd_rules_that_do_not_compile_are_refused() {
    let errs = crd_errors(replicas_schema(json!([{"rule": "self.replicas <"}])));
    assert_eq!(
        errs,
        [
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas <\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n | self.replicas <\n | ...............^"
        ]
    );
    let errs = crd_errors(replicas_schema(json!([
        {"rule": "self.replicsa > 0"},
        {"rule": "self.name.startswith('a')"},
        {"rule": "foo == 1"},
        {"rule": "self.replicas + 1"},
        {"rule": "self.replicas > 0", "messageExpression": "'x' +"},
        {"rule": "self.replicas > 0", "reason": "Nope"},
        {"rule": "self.replicas > 0", "fieldPath": ".nope"},
        {"rule": "self.replicas > 0", "optionalOldSelf": true},
        {"rule": ""},
        {"rule": "a\n|| b"},
        // Fine: macros' variables, type names, namespaced and unsupported-here functions.
        {"rule": "self.all(k, k != '') && type(self.replicas) == int && optional.none().orValue(1) == 1"},
        {"rule": "!has(self.name) || isURL(self.name)"},
    ])));
    let want = [
        "[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicsa > 0\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:5: undefined field 'replicsa'\n | self.replicsa > 0\n | ....^",
        "[1].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.name.startswith('a')\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:21: undeclared reference to 'startswith' (in container '')\n | self.name.startswith('a')\n | ....................^",
        "[2].rule: Invalid value: apiextensions.ValidationRule{Rule:\"foo == 1\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo == 1\n | ^",
        "[3].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas + 1\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: cel expression must evaluate to a bool",
        "[4].messageExpression: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas > 0\", Message:\"\", MessageExpression:\"'x' +\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: messageExpression compilation failed: ERROR: <input>:1:6: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n | 'x' +\n | .....^",
        "[5].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
        "[6].fieldPath: Invalid value: \".nope\": fieldPath must be a valid path",
        "[7].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule",
        "[8].rule: Required value: rule is not specified",
        "[9].message: Required value: message must be specified if rule contains line breaks",
    ];
    let prefix = "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations";
    let want: Vec<String> = want.iter().map(|w| format!("{prefix}{w}")).collect();
    assert_eq!(errs, want);
}

#[test]
fn old_self_only_where_it_correlates() {
    let errs = crd_errors(json!({"type": "object", "properties": {
        "list": {"type": "array", "items": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self == oldSelf"}],
            "properties": {"a": {"type": "string"}}}},
        "map": {"type": "object", "additionalProperties": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
    }}));
    assert_eq!(
        errs,
        [
            "spec.validation.openAPIV3Schema.properties[spec].properties[list].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within spec.validation.openAPIV3Schema.properties[spec].properties[list]"
        ]
    );
}

#[test]
fn field_paths_normalize_as_upstream() {
    let v = validator(json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.labels.all(k, k != 'bad')", "fieldPath": ".labels['bad']"},
            {"rule": "self.inner.x > 0", "fieldPath": ".inner.x"}],
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "inner": {"type": "object", "properties": {"x": {"type": "integer"}}}}}));
    assert_eq!(
        create(&v, json!({"labels": {"bad": "1"}, "inner": {"x": 0}})),
        [
            "spec.labels[bad]: Invalid value: \"object\": failed rule: self.labels.all(k, k != 'bad')",
            "spec.inner.x: Invalid value: \"object\": failed rule: self.inner.x > 0",
        ]
    );
}

#[test]
fn deeply_nested_rules_are_refused_not_overflowing() {
    let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
    let errs = crd_errors(json!({"type": "object", "x-kubernetes-validations": [{"rule": deep}]}));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("compilation failed: ERROR: <input>"),
        "{errs:?}"
    );
}

#[test]
fn quantities_compare_and_add() {
    let v = validator(json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "quantity(self.memory).isLessThan(quantity('1Gi'))", "message": "under 1Gi"},
            {"rule": "quantity(self.cpu).add(quantity('500m')).compareTo(quantity('1')) <= 0"},
            {"rule": "quantity('2').asInteger() == 2 && quantity('1.5').asApproximateFloat() == 1.5"},
            {"rule": "isQuantity(self.cpu) && !isQuantity('x') && quantity('1k') == quantity('1000')"},
            {"rule": "quantity(self.cpu).sign() == 1 && quantity('1').sub(1).isInteger()"},
        ],
        "properties": {"memory": {"type": "string"}, "cpu": {"type": "string"}}}));
    assert!(create(&v, json!({"memory": "512Mi", "cpu": "500m"})).is_empty());
    assert_eq!(
        create(&v, json!({"memory": "2Gi", "cpu": "600m"})),
        [
            "spec: Invalid value: \"object\": under 1Gi",
            "spec: Invalid value: \"object\": failed rule: quantity(self.cpu).add(quantity('500m')).compareTo(quantity('1')) <= 0",
        ]
    );
    assert_eq!(
        create(&v, json!({"memory": "lots", "cpu": "1m"}))[0],
        "spec: Invalid value: \"object\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' evaluating rule: under 1Gi"
    );
}

#[test]
fn unsupported_upstream_functions_fail_by_name() {
    let v = validator(json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "isURL(self.u)"}],
        "properties": {"u": {"type": "string"}}}));
    assert_eq!(
        create(&v, json!({"u": "https://x"})),
        [
            "spec: Invalid value: \"object\": function 'isURL' is not supported by this server evaluating rule: isURL(self.u)"
        ]
    );
}

#[test]
fn formats_and_ip_predicates() {
    let v = validator(json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "!format.dns1123Label().validate(self.name).hasValue()", "message": "bad name"},
            {"rule": "format.named('uuid').value().validate(self.id) == optional.none()", "message": "bad id"},
            {"rule": "self.hosts.all(h, !isIP(h))", "message": "Hostnames cannot contain an IP"},
            {"rule": "isCIDR(self.net)", "message": "bad cidr"},
        ],
        "properties": {"name": {"type": "string"}, "id": {"type": "string"},
            "hosts": {"type": "array", "items": {"type": "string"}}, "net": {"type": "string"}}}));
    assert_eq!(
        create(
            &v,
            json!({"name": "web", "id": "123e4567-e89b-12d3-a456-426614174000",
                "hosts": ["example.com"], "net": "10.0.0.0/8"})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        create(
            &v,
            json!({"name": "Web", "id": "nope", "hosts": ["example.com", "10.1.2.3"], "net": "10.0.0.0/33"})
        ),
        [
            "spec: Invalid value: \"object\": bad name",
            "spec: Invalid value: \"object\": bad id",
            "spec: Invalid value: \"object\": Hostnames cannot contain an IP",
            "spec: Invalid value: \"object\": bad cidr",
        ]
    );
    let messages = validator(json!({"type": "string", "x-kubernetes-validations": [
        {"rule": "!format.dns1123Label().validate(self).hasValue()",
         "messageExpression": "format.dns1123Label().validate(self).value().join(', ')"}]}));
    assert_eq!(
        create(&messages, json!("Web"))[0],
        "spec: Invalid value: \"string\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    );
}

#[test]
fn schemaless_objects_are_seen_as_they_are() {
    let v = validator(json!({"type": "object", "properties": {
        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-validations": [{"rule": "!has(self.debug) || self.debug.level < 3"}]}}}));
    assert!(create(&v, json!({"config": {"debug": {"level": 1}}})).is_empty());
    assert_eq!(
        create(&v, json!({"config": {"debug": {"level": 5}}})),
        [
            "spec.config: Invalid value: \"object\": failed rule: !has(self.debug) || self.debug.level < 3"
        ]
    );
}
