use super::*;
use serde_json::json;

fn decls() -> Declarations<'static> {
    Declarations {
        params: false,
        authorizer: true,
        variables: Some(&[]),
    }
}

fn deployment(replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "test", "labels": {"app": "nginx"}},
        "spec": {"replicas": replicas, "paused": false,
                 "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
}

fn request() -> Value {
    json!({"kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "nginx", "namespace": "test", "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["dev", "system:authenticated"]},
        "dryRun": false, "options": {"kind": "CreateOptions"}})
}

fn eval(source: &str, object: &Value) -> Result<cel::Value, String> {
    let expr = compile(source, &decls(), Expect::Any)?;
    let request = request();
    let input = Input {
        object: Some(object),
        request: Some(&request),
        ..Input::default()
    };
    Activation::new(&input, &[]).evaluate(&expr)
}

#[test]
fn objects_and_requests_are_visible() {
    let d = deployment(6);
    assert_eq!(
        eval("object.spec.replicas <= 5", &d),
        Ok(cel::Value::Bool(false))
    );
    assert_eq!(
        eval("object.spec.replicas <= 5", &deployment(3)),
        Ok(cel::Value::Bool(true))
    );
    assert_eq!(
        eval(
            "request.operation == 'CREATE' && request.userInfo.username == 'alice' && 'dev' in request.userInfo.groups",
            &d
        ),
        Ok(cel::Value::Bool(true))
    );
    assert_eq!(
        eval("oldObject == null && has(object.metadata.labels)", &d),
        Ok(cel::Value::Bool(true))
    );
    assert_eq!(
        eval(
            "object.spec.template.spec.containers.all(c, c.image.startsWith('nginx'))",
            &d
        ),
        Ok(cel::Value::Bool(true))
    );
    let err = eval("object.spec.missing > 1", &d).unwrap_err();
    assert_eq!(
        err,
        "expression 'object.spec.missing > 1' resulted in error: no such key: missing"
    );
}

#[test]
fn compile_errors_read_like_upstream() {
    let d = decls();
    let err = compile("object.spec.replicas <", &d, Expect::Bool).unwrap_err();
    assert!(
        err.starts_with("compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
    assert_eq!(
        compile("request.usr == 'x'", &d, Expect::Bool).unwrap_err(),
        "compilation failed: ERROR: <input>:1:8: undefined field 'usr'\n | request.usr == 'x'\n | .......^"
    );
    assert_eq!(
        compile("params.x == 1", &d, Expect::Bool).unwrap_err(),
        "compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')\n | params.x == 1\n | ^"
    );
    let with_params = Declarations {
        params: true,
        ..decls()
    };
    assert!(compile("params.x == 1", &with_params, Expect::Bool).is_ok());
    // Result types: a dyn field alone is not a bool, a literal not a string.
    assert_eq!(
        compile("object.spec.paused", &d, Expect::Bool).unwrap_err(),
        "must evaluate to bool but got dyn"
    );
    assert_eq!(
        compile("1", &d, Expect::Bool).unwrap_err(),
        "must evaluate to bool but got int"
    );
    assert_eq!(
        compile("object.metadata.name", &d, Expect::String).unwrap_err(),
        "must evaluate to string but got dyn"
    );
    for ok in [
        "request.dryRun",
        "!object.spec.paused",
        "has(object.spec) ? object.spec.replicas > 1 : true",
        "object.spec.containers.exists(c, c.name == 'x')",
        "request.namespace.startsWith('kube-')",
        "authorizer.group('apps').resource('deployments').check('create').allowed()",
    ] {
        assert!(compile(ok, &d, Expect::Bool).is_ok(), "{ok}");
    }
    for ok in [
        "'replicas ' + string(object.spec.replicas)",
        "'name ' + object.metadata.name",
    ] {
        assert!(compile(ok, &d, Expect::String).is_ok(), "{ok}");
    }
    assert_eq!(
        compile("object.a + object.b", &d, Expect::String).unwrap_err(),
        "must evaluate to string but got dyn"
    );
    // Without composition `variables` is not declared.
    let plain = Declarations {
        variables: None,
        ..decls()
    };
    assert!(
        compile("variables.x", &plain, Expect::Any)
            .unwrap_err()
            .contains("undeclared reference to 'variables'")
    );
}

#[test]
fn variables_are_lazy_typed_and_composed() {
    let list = vec![
        ("replicas".to_string(), "object.spec.replicas".to_string()),
        ("big".to_string(), "variables.replicas > 5".to_string()),
        ("broken".to_string(), "object.spec.nope.x".to_string()),
        ("later".to_string(), "variables.after".to_string()),
    ];
    let vars = compile_variables(&list, decls());
    // A variable may only use those declared before it.
    assert!(
        vars[3].error().unwrap().contains("undefined field 'after'"),
        "{:?}",
        vars[3].error()
    );
    let all = Declarations {
        variables: Some(&vars),
        ..decls()
    };
    // `variables.big` is a bool: it may be a validation on its own.
    let big = compile("variables.big", &all, Expect::Bool).unwrap();
    assert_eq!(
        compile("variables.replicas", &all, Expect::Bool).unwrap_err(),
        "must evaluate to bool but got dyn"
    );
    let d = deployment(6);
    let input = Input {
        object: Some(&d),
        ..Input::default()
    };
    let act = Activation::new(&input, &vars);
    assert_eq!(act.evaluate(&big), Ok(cel::Value::Bool(true)));
    // An unused broken variable costs nothing; a used one is an error naming it.
    let uses_broken = compile("variables.broken == 1", &all, Expect::Bool).unwrap();
    assert_eq!(
        act.evaluate(&uses_broken).unwrap_err(),
        "expression 'variables.broken == 1' resulted in error: composited variable \"broken\" fails to evaluate: no such key: nope"
    );
    let uses_later = compile("variables.later == 1", &all, Expect::Bool).unwrap();
    assert!(
        act.evaluate(&uses_later)
            .unwrap_err()
            .contains("composited variable \"later\" fails to compile: compilation failed:")
    );
}

#[test]
fn match_conditions_follow_upstreams_matcher() {
    let d = decls();
    let conds = |list: &[(&str, &str)]| -> Vec<MatchCondition> {
        list.iter()
            .map(|(n, e)| MatchCondition::compile(n, e, &d))
            .collect()
    };
    let obj = deployment(1);
    let input = Input {
        object: Some(&obj),
        ..Input::default()
    };
    let act = Activation::new(&input, &[]);
    assert_eq!(
        match_conditions(
            &conds(&[("a", "true"), ("b", "object.spec.replicas == 1")]),
            &act
        ),
        Ok(true)
    );
    // A false condition wins over errors.
    assert_eq!(
        match_conditions(&conds(&[("e", "object.x == 1"), ("f", "false")]), &act),
        Ok(false)
    );
    assert_eq!(
        match_conditions(&conds(&[("e", "object.x == 1")]), &act),
        Err("expression 'object.x == 1' resulted in error: no such key: x".into())
    );
    let two = match_conditions(
        &conds(&[("e", "object.x == 1"), ("g", "object.y == 1")]),
        &act,
    )
    .unwrap_err();
    assert!(two.starts_with("[expression 'object.x == 1'"), "{two}");
    let authz = match_conditions(
        &conds(&[("z", "authorizer.path('/x').check('get').allowed()")]),
        &act,
    )
    .unwrap_err();
    assert!(authz.contains("not supported by this server"), "{authz}");
}

#[test]
fn namespace_objects_keep_what_upstream_copies() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "test", "labels": {"environment": "test"}, "uid": "u",
                     "managedFields": [{"manager": "x"}]},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    let obj = namespace_object(&ns);
    assert_eq!(
        obj,
        json!({"metadata": {"name": "test", "labels": {"environment": "test"}, "uid": "u"},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    );
    let expr = compile(
        "namespaceObject.metadata.labels.environment == 'test' && namespaceObject.status.phase == 'Active'",
        &decls(),
        Expect::Bool,
    )
    .unwrap();
    let input = Input {
        namespace_object: Some(&obj),
        ..Input::default()
    };
    assert_eq!(
        Activation::new(&input, &[]).evaluate(&expr),
        Ok(cel::Value::Bool(true))
    );
}

#[test]
fn hostile_expressions_are_errors_not_crashes() {
    let d = decls();
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(compile(&deep, &d, Expect::Any).is_err());
    let chain = format!("object{} == 1", ".a".repeat(5000));
    let err = compile(&chain, &d, Expect::Bool).unwrap_err();
    assert!(
        err.contains("expression recursion limit exceeded: 250"),
        "{err}"
    );
    // Within the limit, a deep chain compiles and evaluates (to an error: no such key).
    let chain = format!("object{} == 1", ".a".repeat(200));
    let expr = compile(&chain, &d, Expect::Bool).unwrap();
    let obj = json!({});
    let input = Input {
        object: Some(&obj),
        ..Input::default()
    };
    assert!(Activation::new(&input, &[]).evaluate(&expr).is_err());
}
