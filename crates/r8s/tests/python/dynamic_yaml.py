"""kubernetes.dynamic.DynamicClient (discovery-driven CRUD, subresources, watch), server-side
apply through it, and kubernetes.utils.create_from_yaml with a multi-document file."""

import json
import os
import tempfile

from kubernetes import client, dynamic, utils
from kubernetes.dynamic import exceptions as dyn_errors

from r8s_common import check, eq, finish, load, step, wait_for

load()
NS = "py-dyn"
tmp = tempfile.mkdtemp(prefix="r8s-py-")
# A private discovery cache, so a cache of another server on the same port is never used.
dyn = dynamic.DynamicClient(client.ApiClient(), cache_file=os.path.join(tmp, "discovery.json"))


def dyn_error(exc_type, fn, *args, **kwargs):
    """Call fn, require the dynamic client's exception for the status; return the Status."""
    try:
        res = fn(*args, **kwargs)
    except dyn_errors.DynamicApiError as e:
        check(isinstance(e, exc_type), "want %s, got %s (%s)" % (
            exc_type.__name__, type(e).__name__, e.status), e.body)
        try:
            return json.loads(e.body)
        except (TypeError, ValueError):
            check(False, "error body is not JSON", e.body)
            return {}
    check(False, "%s succeeded, expected %s" % (fn, exc_type.__name__), res)
    return {}


# --- discovery -----------------------------------------------------------------------------
ver = dyn.version
eq(ver.get("kubernetes", {}).get("major"), "1", "dynamic version major")
deps = dyn.resources.get(api_version="apps/v1", kind="Deployment")
eq((deps.name, deps.group, deps.api_version, deps.namespaced), ("deployments", "apps", "v1", True),
   "Deployment resource")
for verb in ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"):
    check(verb in deps.verbs, "Deployment verb missing", verb, deps.verbs)
for sub in ("scale", "status"):
    check(sub in deps.subresources, "Deployment subresource missing", sub, list(deps.subresources))
check("deploy" in (deps.short_names or []), "Deployment shortNames", deps.short_names)
check("all" in (deps.categories or []), "Deployment categories", deps.categories)
cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
eq((cms.name, cms.namespaced, cms.short_names), ("configmaps", True, ["cm"]), "ConfigMap resource")
nss = dyn.resources.get(api_version="v1", kind="Namespace")
eq(nss.namespaced, False, "Namespace is cluster-scoped")
pods = dyn.resources.search(kind="Pod")
check(any(r.group_version == "v1" and r.name == "pods" for r in pods), "search(kind=Pod)", pods)
check(dyn.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="Role").namespaced,
      "Role resource")
step("discovery: resources.get/search, verbs, subresources, shortNames, categories")

# --- CRUD ----------------------------------------------------------------------------------
nss.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
made = cms.create(namespace=NS, body={
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "d1", "labels": {"via": "dynamic"}}, "data": {"a": "1"}})
eq(made.metadata.name, "d1", "dynamic create")
eq(made.kind, "ConfigMap", "dynamic create kind")
got = cms.get(name="d1", namespace=NS)
eq(got.data.a, "1", "dynamic get")
lst = cms.get(namespace=NS, label_selector="via=dynamic")
eq(lst.kind, "ConfigMapList", "dynamic list kind")
eq([i.metadata.name for i in lst.items], ["d1"], "dynamic list with label selector")
p = cms.patch(name="d1", namespace=NS, body={"data": {"b": "2"}})
eq(p.data.to_dict(), {"a": "1", "b": "2"}, "dynamic strategic merge patch")
p = cms.patch(name="d1", namespace=NS, body={"data": {"a": None}},
              content_type="application/merge-patch+json")
eq(p.data.to_dict(), {"b": "2"}, "dynamic merge patch")
p = cms.patch(name="d1", namespace=NS, body=[{"op": "add", "path": "/data/c", "value": "3"}],
              content_type="application/json-patch+json")
eq(p.data.to_dict(), {"b": "2", "c": "3"}, "dynamic JSON patch")
body = p.to_dict()
body["data"] = {"only": "this"}
r = cms.replace(namespace=NS, body=body)
eq(r.data.to_dict(), {"only": "this"}, "dynamic replace")
status = dyn_error(dyn_errors.ConflictError, cms.replace, namespace=NS, body=body)
eq(status.get("reason"), "Conflict", "stale replace reason")
status = dyn_error(dyn_errors.ConflictError, cms.create, namespace=NS, body={
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d1"}})
eq(status.get("reason"), "AlreadyExists", "dynamic create twice")
status = dyn_error(dyn_errors.UnprocessibleEntityError, cms.create, namespace=NS, body={
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "UPPER"}})
eq(status.get("reason"), "Invalid", "dynamic invalid name")
cms.delete(name="d1", namespace=NS)
status = dyn_error(dyn_errors.NotFoundError, cms.get, name="d1", namespace=NS)
eq(status.get("reason"), "NotFound", "dynamic get after delete")
# Unknown fields: the default fieldValidation (Warn) drops them and says so in a Warning.
raw = cms.create(namespace=NS, serialize=False, body={
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bogus"}, "bogus": 1})
eq(raw.status, 201, "create with an unknown field")
warning = raw.headers.get("Warning") or ""
# RFC 7234 warning: the text is a quoted-string, so its quotes are escaped.
eq(warning, '299 - "unknown field \\"bogus\\""', "Warning header for an unknown field")
check("bogus" not in cms.get(name="bogus", namespace=NS).to_dict(), "unknown field stored")
step("dynamic create/get/list/patch (3 kinds)/replace/delete, errors, unknown-field warning")

# --- deployments via dynamic, with subresources -------------------------------------------
dep = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "dd", "labels": {"app": "dd"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "dd"}},
             "template": {"metadata": {"labels": {"app": "dd"}},
                          "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}
d = deps.create(namespace=NS, body=dep)
eq(d.spec.replicas, 1, "dynamic deployment create")
eq(d.spec.template.spec.containers[0].imagePullPolicy, "IfNotPresent", "defaults applied")
sc = deps.scale.get(name="dd", namespace=NS)
eq((sc.kind, sc.apiVersion, sc.spec.replicas), ("Scale", "autoscaling/v1", 1), "scale subresource")
sc = deps.scale.patch(name="dd", namespace=NS, body={"spec": {"replicas": 2}},
                      content_type="application/merge-patch+json")
eq(sc.spec.replicas, 2, "scale patched via dynamic")
eq(deps.get(name="dd", namespace=NS).spec.replicas, 2, "deployment replicas after scale")
wait_for("deployment status.replicas", lambda: (
    deps.status.get(name="dd", namespace=NS).status.replicas == 2), 30)
lst = deps.get(namespace=NS)
eq([i.metadata.name for i in lst.items], ["dd"], "dynamic list deployments")
allns = deps.get(label_selector="app=dd")
eq([(i.metadata.namespace, i.metadata.name) for i in allns.items], [(NS, "dd")],
   "dynamic list across namespaces")
events = list(deps.watch(namespace=NS, timeout=1))
eq([(e["type"], e["object"].metadata.name) for e in events], [("ADDED", "dd")], "dynamic watch")
deps.delete(name="dd", namespace=NS, body={"propagationPolicy": "Background"})
step("dynamic deployments: create, scale/status subresources, list, watch, delete")

# --- server-side apply --------------------------------------------------------------------
def applied(manager, data, force=None, **kw):
    return cms.server_side_apply(namespace=NS, field_manager=manager, force_conflicts=force,
                                 body={"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "ssa"}, "data": data}, **kw)


def owners(obj):
    """{manager: (operation, fieldsV1)} of an object."""
    return {m["manager"]: (m["operation"], m.get("fieldsV1"))
            for m in obj.to_dict()["metadata"].get("managedFields") or []}


a = applied("py-a", {"k": "1", "shared": "x"})
eq(a.data.to_dict(), {"k": "1", "shared": "x"}, "apply creates")
mf = owners(a)
eq(set(mf), {"py-a"}, "managers after create by apply")
eq(mf.get("py-a", (None,))[0], "Apply", "operation of an apply")
# An applied configuration owns its leaves (no "." for the data map itself).
eq((mf.get("py-a") or (None, {}))[1], {"f:data": {"f:k": {}, "f:shared": {}}}, "fieldsV1 of py-a")
entry = a.to_dict()["metadata"]["managedFields"][0]
eq((entry.get("apiVersion"), entry.get("fieldsType")), ("v1", "FieldsV1"), "managedFields entry")
status = dyn_error(dyn_errors.ConflictError, applied, "py-b", {"k": "2"})
eq(status.get("reason"), "Conflict", "apply conflict reason")
causes = (status.get("details") or {}).get("causes") or []
# StatusCause.Type is serialized as "reason".
eq([(c.get("reason"), c.get("field")) for c in causes], [("FieldManagerConflict", ".data.k")],
   "apply conflict causes")
eq(status.get("message"), 'Apply failed with 1 conflict: conflict with "py-a": .data.k',
   "apply conflict message")
b = applied("py-b", {"k": "2"}, force=True)
eq(b.data.to_dict(), {"k": "2", "shared": "x"}, "forced apply")
mf = owners(b)
eq((mf.get("py-b") or (None, {}))[1], {"f:data": {"f:k": {}}}, "py-b owns .data.k")
eq((mf.get("py-a") or (None, {}))[1], {"f:data": {"f:shared": {}}},
   "py-a lost .data.k to the forced apply")
# py-a stops applying `shared`: nobody else owns it, so it is removed.
a2 = applied("py-a", {})
eq(a2.data.to_dict(), {"k": "2"}, "field dropped from an apply configuration is removed")
# An update by another manager (a plain patch) shares ownership: no conflict for it.
u = cms.patch(name="ssa", namespace=NS, body={"data": {"extra": "u"}}, field_manager="py-upd")
eq(owners(u).get("py-upd", (None,))[0], "Update", "operation of a patch")
dry = applied("py-b", {"k": "dry"}, dry_run="All")
eq(dry.data.k, "dry", "dry-run apply answer")
eq(cms.get(name="ssa", namespace=NS).data.k, "2", "dry-run apply did not persist")
# PatchOptions validation: 422 Invalid, kind PatchOptions in meta.k8s.io.
status = dyn_error(dyn_errors.UnprocessibleEntityError, cms.server_side_apply, namespace=NS,
                   body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}})
eq((status.get("details") or {}).get("kind"), "PatchOptions", "apply without fieldManager: kind")
eq([c.get("field") for c in (status.get("details") or {}).get("causes") or []], ["fieldManager"],
   "apply without fieldManager: causes")
# A conflict with an Update manager names its apiVersion (upstream's manager identifier
# leaves the entry's time out, so modern servers print no "at <time>").
typed = client.CoreV1Api().create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="upd"), data={"k": "typed"}))
entry = typed.metadata.managed_fields[0]
eq((entry.manager, entry.operation), ("OpenAPI-Generator", "Update"),
   "manager of a typed create (from the User-Agent)")
status = dyn_error(dyn_errors.ConflictError, cms.server_side_apply, namespace=NS,
                   field_manager="py-c", body={"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "upd"}, "data": {"k": "c"}})
eq(status.get("message"), 'Apply failed with 1 conflict: conflict with "OpenAPI-Generator" '
   'using v1: .data.k', "conflict message for an Update manager")
eq([c.get("message") for c in (status.get("details") or {}).get("causes") or []],
   ['conflict with "OpenAPI-Generator" using v1'], "conflict cause message")
step("server-side apply: create, managedFields, conflict 409 with causes, force, dry-run")

# --- create_from_yaml -------------------------------------------------------------------------
MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: y-cm
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: y-secret
stringData:
  token: abc
---
apiVersion: v1
kind: Service
metadata:
  name: y-svc
spec:
  selector: {app: y}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: y-deploy
spec:
  replicas: 1
  selector:
    matchLabels: {app: y}
  template:
    metadata:
      labels: {app: y}
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: y-role
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: y-sa
"""
path = os.path.join(tmp, "manifest.yaml")
with open(path, "w") as f:
    f.write(MANIFEST)
api = client.ApiClient()
created = utils.create_from_yaml(api, path, namespace=NS)
flat = [o for group in created for o in (group if isinstance(group, list) else [group])]
eq([(o.kind, o.metadata.name) for o in flat], [
    ("ConfigMap", "y-cm"), ("Secret", "y-secret"), ("Service", "y-svc"),
    ("Deployment", "y-deploy"), ("Role", "y-role"), ("ServiceAccount", "y-sa")],
   "objects created from YAML")
v1 = client.CoreV1Api()
eq(v1.read_namespaced_secret("y-secret", NS).data, {"token": "YWJj"}, "secret from YAML")
check(v1.read_namespaced_service("y-svc", NS).spec.cluster_ip.startswith("10.43."),
      "service from YAML has a ClusterIP")
try:
    utils.create_from_yaml(api, path, namespace=NS)
    check(False, "creating the same YAML twice succeeded")
except utils.FailToCreateError as e:
    eq([x.status for x in e.api_exceptions], [409] * 6, "second create_from_yaml: all 409")
    eq({json.loads(x.body).get("reason") for x in e.api_exceptions}, {"AlreadyExists"},
       "second create_from_yaml reasons")
# Applying over objects the client created before must not conflict: the creator
# ("OpenAPI-Generator", from the User-Agent) owns what it set, e.g. the Secret's data (its
# stringData never reaches the stored object, so nobody can own .stringData).
try:
    again = utils.create_from_yaml(api, path, namespace=NS, apply=True)
    check(len(again) == 6, "create_from_yaml(apply=True) results", again)
except utils.FailToCreateError as e:
    check(False, "create_from_yaml(apply=True) over created objects failed",
          [(x.status, x.body) for x in e.api_exceptions])
sec = v1.read_namespaced_secret("y-secret", NS)
creator = [m for m in sec.metadata.managed_fields or [] if m.manager == "OpenAPI-Generator"]
eq([(m.operation, sorted(m.fields_v1)) for m in creator], [("Update", ["f:data", "f:type"])],
   "fields the creator of a Secret owns")
# Defaults are part of what the creator set (upstream tracks the decoded, defaulted object).
dep = client.AppsV1Api().read_namespaced_deployment("y-deploy", NS)
creator = [m for m in dep.metadata.managed_fields or [] if m.manager == "OpenAPI-Generator"]
spec_fields = set(creator[0].fields_v1.get("f:spec", {})) if creator else set()
check({"f:progressDeadlineSeconds", "f:revisionHistoryLimit", "f:strategy"} <= spec_fields,
      "defaulted Deployment fields owned by the creator", sorted(spec_fields))
y = v1.read_namespaced_config_map("y-cm", NS)
check(any(m.manager == "python-client" and m.operation == "Apply"
          for m in y.metadata.managed_fields or []), "python-client apply manager",
      y.metadata.managed_fields)
utils.create_from_yaml(api, yaml_objects=[{
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y-obj"},
    "data": {"from": "objects"}}], namespace=NS)
eq(v1.read_namespaced_config_map("y-obj", NS).data, {"from": "objects"}, "yaml_objects")
step("create_from_yaml: multi-document create, 409s on repeat, apply=True, yaml_objects")

nss.delete(name=NS)
finish("dynamic_yaml")
