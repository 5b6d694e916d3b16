"""CoreV1Api and VersionApi against r8s: CRUD of namespaces, configmaps, secrets, services
and pods; selectors; pagination; the Status bodies of API errors."""

import base64
import ipaddress

from kubernetes import client

from r8s_common import (api_error, check, eq, expect_status, finish, gone, load, meta, step,
                        wait_for)

load()
v1 = client.CoreV1Api()
NS = "py-core"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def names(items):
    return sorted(i.metadata.name for i in items)


# --- version -------------------------------------------------------------------------
info = client.VersionApi().get_code()
eq(info.major, "1", "version major")
check(info.minor.rstrip("+").isdigit(), "version minor is not numeric", info.minor)
check(info.git_version.startswith("v1."), "gitVersion", info.git_version)
check(info.platform, "platform empty", info)
step("VersionApi.get_code: %s" % info.git_version)

# --- namespaces ----------------------------------------------------------------------
ns = v1.create_namespace(client.V1Namespace(metadata=meta(NS, {"team": "py"})))
eq(ns.metadata.name, NS, "namespace name")
eq(ns.status.phase, "Active", "namespace phase")
eq(ns.spec.finalizers, ["kubernetes"], "namespace spec.finalizers")
eq(ns.metadata.labels.get("kubernetes.io/metadata.name"), NS, "automatic namespace name label")
check(ns.metadata.uid and ns.metadata.resource_version, "uid/resourceVersion unset", ns.metadata)
check(ns.metadata.creation_timestamp is not None, "creationTimestamp unset")
body = expect_status(v1.create_namespace, 409, "AlreadyExists",
                     client.V1Namespace(metadata=meta(NS)))
eq(body["details"].get("name"), NS, "AlreadyExists details.name")
eq(body["details"].get("kind"), "namespaces", "AlreadyExists details.kind")
eq(body["message"], 'namespaces "%s" already exists' % NS, "AlreadyExists message")
step("namespace create + 409 AlreadyExists")

got = v1.read_namespace(NS)
eq(got.metadata.uid, ns.metadata.uid, "read_namespace uid")
listed = v1.list_namespace(label_selector="team=py")
eq(names(listed.items), [NS], "list_namespace by label")
check(listed.metadata.resource_version, "list resourceVersion unset")
all_ns = names(v1.list_namespace().items)
for want in ("default", "kube-system", "kube-public", "kube-node-lease", NS):
    check(want in all_ns, "namespace missing from list", want, all_ns)
patched = v1.patch_namespace(NS, {"metadata": {"labels": {"extra": "1", "team": None}}})
eq(patched.metadata.labels.get("extra"), "1", "patched label")
check("team" not in patched.metadata.labels, "null in a strategic merge patch must delete the key",
      patched.metadata.labels)
patched.metadata.annotations = {"note": "replaced"}
replaced = v1.replace_namespace(NS, patched)
eq(replaced.metadata.annotations, {"note": "replaced"}, "replace_namespace annotations")
check(replaced.metadata.resource_version != patched.metadata.resource_version,
      "resourceVersion did not change on replace")
step("namespace read/list/patch/replace")

# --- configmaps: CRUD, conflicts, errors -----------------------------------------------
cm = v1.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=meta("cm1", {"app": "web"}), data={"k": "v"}))
eq(cm.data, {"k": "v"}, "created data")
eq(cm.metadata.namespace, NS, "created namespace")
read = v1.read_namespaced_config_map("cm1", NS)
eq(read.metadata.resource_version, cm.metadata.resource_version, "read rv")

cm.data["k2"] = "v2"
upd = v1.replace_namespaced_config_map("cm1", NS, cm)
eq(upd.data, {"k": "v", "k2": "v2"}, "replaced data")
# The first object's resourceVersion is stale now: 409 Conflict.
cm.data["k3"] = "v3"
body = expect_status(v1.replace_namespaced_config_map, 409, "Conflict", "cm1", NS, cm)
eq(body["details"].get("name"), "cm1", "Conflict details.name")
eq(body["details"].get("kind"), "configmaps", "Conflict details.kind")
check("the object has been modified" in body["message"], "Conflict message", body["message"])
step("configmap create/read/replace + 409 Conflict on stale resourceVersion")

body = expect_status(v1.read_namespaced_config_map, 404, "NotFound", "nope", NS)
eq(body["message"], 'configmaps "nope" not found', "NotFound message")
eq(body["details"], {"name": "nope", "kind": "configmaps"}, "NotFound details")
expect_status(v1.read_namespace, 404, "NotFound", "no-such-ns")
expect_status(v1.delete_namespaced_config_map, 404, "NotFound", "nope", NS)
body = expect_status(v1.create_namespaced_config_map, 404, "NotFound", "no-such-ns",
                     client.V1ConfigMap(metadata=meta("x")))
eq(body["message"], 'namespaces "no-such-ns" not found', "create in a missing namespace")
expect_status(v1.delete_namespace, 403, "Forbidden", "default")
step("404 NotFound Status bodies; 403 deleting the default namespace")

body = expect_status(v1.create_namespaced_config_map, 422, "Invalid", NS,
                     client.V1ConfigMap(metadata=meta("Bad_Name"), data={"a": "b"}))
eq(body["details"].get("kind"), "ConfigMap", "Invalid details.kind")
eq(body["details"].get("name"), "Bad_Name", "Invalid details.name")
causes = body["details"].get("causes") or []
check(any(c.get("field") == "metadata.name" and c.get("reason") == "FieldValueInvalid"
          for c in causes), "Invalid causes lack metadata.name", causes)
check(body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value'),
      "Invalid message", body["message"])
body = expect_status(v1.create_namespaced_config_map, 422, "Invalid", NS,
                     client.V1ConfigMap(metadata=meta("badkey"), data={"bad key!": "x"}))
check(any(c.get("field") == "data[bad key!]" for c in body["details"].get("causes") or []),
      "Invalid causes lack data[bad key!]", body)
step("422 Invalid Status bodies with causes")

# Strategic merge patch (dict body) and JSON patch (list body), as the client sends them.
p = v1.patch_namespaced_config_map("cm1", NS, {"data": {"k": "smp", "k2": None}})
eq(p.data, {"k": "smp"}, "strategic merge patch data")
p = v1.patch_namespaced_config_map("cm1", NS, [
    {"op": "add", "path": "/data/j", "value": "json"},
    {"op": "replace", "path": "/metadata/labels/app", "value": "api"},
])
eq(p.data, {"k": "smp", "j": "json"}, "json patch data")
eq(p.metadata.labels, {"app": "api"}, "json patch labels")
body = expect_status(v1.patch_namespaced_config_map, 422, "Invalid", "cm1", NS,
                     [{"op": "test", "path": "/data/k", "value": "other"}])
body = expect_status(v1.patch_namespaced_config_map, 409, "Conflict", "cm1", NS,
                     {"metadata": {"resourceVersion": cm.metadata.resource_version},
                      "data": {"x": "y"}})
step("patch: strategic merge (dict), JSON patch (list), failed test op 422, stale rv 409")

res, code, _ = v1.delete_namespaced_config_map_with_http_info("cm1", NS)
eq(code, 200, "HTTP status of an immediate delete")
if not check(isinstance(res, dict), "delete returned %r" % type(res)):
    res = {}
# Upstream answers an immediate delete of most kinds with a Status naming the object
# (details.kind is the resource), not with the object itself.
eq({k: res.get(k) for k in ("kind", "apiVersion", "status", "details")},
   {"kind": "Status", "apiVersion": "v1", "status": "Success",
    "details": {"name": "cm1", "kind": "configmaps", "uid": cm.metadata.uid}},
   "delete_namespaced_config_map response")
check(gone(v1.read_namespaced_config_map, "cm1", NS), "configmap still readable after delete")
gen = v1.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(generate_name="gen-")))
check(gen.metadata.name.startswith("gen-") and len(gen.metadata.name) == 9,
      "generateName", gen.metadata.name)
eq(gen.metadata.generate_name, "gen-", "generateName kept")
dry = v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("dry")), dry_run="All")
eq(dry.metadata.name, "dry", "dry-run create answer")
check(gone(v1.read_namespaced_config_map, "dry", NS), "dry-run create persisted")
v1.delete_namespaced_config_map(gen.metadata.name, NS)
step("configmap delete returns Status Success; generateName; dryRun")

# --- label and field selectors -----------------------------------------------------------
for name, labels in (("a", {"app": "web", "env": "prod", "tier": "fe"}),
                     ("b", {"app": "web", "env": "dev"}),
                     ("c", {"app": "db", "env": "prod"})):
    v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta(name, labels)))
wait_for("kube-root-ca.crt in %s" % NS,
         lambda: not gone(v1.read_namespaced_config_map, "kube-root-ca.crt", NS))


def sel(selector):
    return names(v1.list_namespaced_config_map(NS, label_selector=selector).items)


eq(sel("app=web"), ["a", "b"], "app=web")
eq(sel("app=web,env!=dev"), ["a"], "app=web,env!=dev")
eq(sel("env in (prod,staging)"), ["a", "c"], "env in (prod,staging)")
eq(sel("app,!tier"), ["b", "c"], "app,!tier")
eq(sel("env notin (prod)"), ["b", "kube-root-ca.crt"], "notin matches unlabelled objects too")
eq(sel("app=nothing"), [], "no match")
expect_status(v1.list_namespaced_config_map, 400, "BadRequest", NS, label_selector="app in (")
eq(names(v1.list_namespaced_config_map(NS, field_selector="metadata.name=b").items), ["b"],
   "field selector metadata.name")
eq(names(v1.list_namespaced_config_map(NS, field_selector="metadata.name!=b",
                                        label_selector="app").items), ["a", "c"],
   "field != with label selector")
expect_status(v1.list_namespaced_config_map, 400, "BadRequest", NS, field_selector="data.k=v")
cross = v1.list_config_map_for_all_namespaces(field_selector="metadata.namespace=%s" % NS,
                                              label_selector="env=prod")
eq(names(cross.items), ["a", "c"], "all-namespaces list with namespace field selector")
res = v1.delete_collection_namespaced_config_map(NS, label_selector="app=web")
eq(sel("app"), ["c"], "delete_collection by label selector")
step("label selectors (=, !=, in, notin, exists, !exists), field selectors, deletecollection")

# --- pagination ------------------------------------------------------------------------
PG = "py-page"
v1.create_namespace(client.V1Namespace(metadata=meta(PG)))
wait_for("kube-root-ca.crt in %s" % PG,
         lambda: not gone(v1.read_namespaced_config_map, "kube-root-ca.crt", PG))
for i in range(7):
    v1.create_namespaced_config_map(PG, client.V1ConfigMap(metadata=meta("page-%d" % i)))
full = names(v1.list_namespaced_config_map(PG).items)
eq(len(full), 8, "items in %s" % PG)
seen, token, pages, first_rv = [], None, 0, None
while True:
    page = v1.list_namespaced_config_map(PG, limit=3, _continue=token)
    pages += 1
    if first_rv is None:
        first_rv = page.metadata.resource_version
        # Created after the first page: a continued list is a consistent snapshot at the
        # first page's revision, so it must not show up.
        v1.create_namespaced_config_map(PG, client.V1ConfigMap(metadata=meta("zz-late")))
    eq(page.metadata.resource_version, first_rv, "every page carries the first page's RV")
    seen += [i.metadata.name for i in page.items]
    token = page.metadata._continue
    if not token:
        check(page.metadata.remaining_item_count in (None, 0), "last page remainingItemCount",
              page.metadata.remaining_item_count)
        break
    check(len(page.items) == 3, "page size", len(page.items))
    eq(page.metadata.remaining_item_count, len(full) - len(seen), "remainingItemCount")
eq(pages, 3, "number of pages")
eq(seen, full, "pages concatenated, in key order")
check("zz-late" in names(v1.list_namespaced_config_map(PG).items), "zz-late missing afterwards")
expect_status(v1.list_namespaced_config_map, 400, "BadRequest", PG, limit=3,
              _continue="not-a-token")
step("pagination with limit/_continue, remainingItemCount, snapshot consistency")

# --- secrets ---------------------------------------------------------------------------
sec = v1.create_namespaced_secret(NS, client.V1Secret(
    metadata=meta("s1"), data={"password": b64("s3cr3t")}, string_data={"user": "admin"}))
eq(sec.type, "Opaque", "default secret type")
eq(sec.data, {"password": b64("s3cr3t"), "user": b64("admin")}, "stringData merged into data")
check(sec.string_data is None, "stringData must not be stored", sec.string_data)
got = v1.read_namespaced_secret("s1", NS)
eq(base64.b64decode(got.data["password"]).decode(), "s3cr3t", "decoded secret")
p = v1.patch_namespaced_secret("s1", NS, {"stringData": {"user": "root"}})
eq(p.data["user"], b64("root"), "stringData patch")
expect_status(v1.create_namespaced_secret, 400, "BadRequest", NS,
              client.V1Secret(metadata=meta("s2"), data={"x": "%%%not-base64"}))
body = expect_status(v1.create_namespaced_secret, 422, "Invalid", NS, client.V1Secret(
    metadata=meta("tls"), type="kubernetes.io/tls", data={"tls.crt": b64("c")}))
check(any(c.get("field") == "data[tls.key]" for c in body["details"].get("causes") or []),
      "tls secret without tls.key: causes", body)
p.string_data = {"extra": "x"}
p.data = {"password": b64("new")}
r = v1.replace_namespaced_secret("s1", NS, p)
eq(r.data, {"password": b64("new"), "extra": b64("x")}, "secret replace with stringData")
res = v1.delete_namespaced_secret("s1", NS)
eq((res.get("kind"), res.get("status")), ("Status", "Success"), "delete_namespaced_secret response")
step("secrets: base64 data, stringData, bad base64 400, tls validation 422")

# --- services --------------------------------------------------------------------------
kube_svc = v1.read_namespaced_service("kubernetes", "default")
eq([(p.name, p.port, p.protocol) for p in kube_svc.spec.ports], [("https", 443, "TCP")],
   "kubernetes service ports")
eq(kube_svc.spec.cluster_ip, "10.43.0.1", "kubernetes service ClusterIP")
svc_cidr = ipaddress.ip_network("10.43.0.0/16")
svc = v1.create_namespaced_service(NS, client.V1Service(
    metadata=meta("web"),
    spec=client.V1ServiceSpec(selector={"app": "web"},
                              ports=[client.V1ServicePort(name="http", port=80)])))
ip = svc.spec.cluster_ip
check(ipaddress.ip_address(ip) in svc_cidr and ip != "10.43.0.1", "ClusterIP", ip)
eq(svc.spec.cluster_ips, [ip], "clusterIPs")
eq(svc.spec.type, "ClusterIP", "default type")
eq(svc.spec.ip_families, ["IPv4"], "ipFamilies")
eq(svc.spec.ip_family_policy, "SingleStack", "ipFamilyPolicy")
eq(svc.spec.session_affinity, "None", "sessionAffinity")
eq(svc.spec.internal_traffic_policy, "Cluster", "internalTrafficPolicy")
eq(svc.spec.ports[0].protocol, "TCP", "port protocol")
eq(svc.spec.ports[0].target_port, 80, "targetPort defaults to port")
# A PUT without clusterIP keeps the allocated one (upstream's compatibility rule).
fresh = client.V1Service(
    metadata=meta("web", resource_version=svc.metadata.resource_version, labels={"v": "2"}),
    spec=client.V1ServiceSpec(selector={"app": "web"},
                              ports=[client.V1ServicePort(name="http", port=80)]))
rep = v1.replace_namespaced_service("web", NS, fresh)
eq(rep.spec.cluster_ip, ip, "ClusterIP kept on replace")
body = expect_status(v1.patch_namespaced_service, 422, "Invalid", "web", NS,
                     {"spec": {"clusterIP": "10.43.7.7", "clusterIPs": ["10.43.7.7"]}})
check(any((c.get("field") or "").startswith("spec.clusterIP") for c in
          body["details"].get("causes") or []), "immutable clusterIP causes", body)

np = v1.create_namespaced_service(NS, client.V1Service(
    metadata=meta("np"),
    spec=client.V1ServiceSpec(type="NodePort", selector={"app": "web"},
                              ports=[client.V1ServicePort(port=8080, target_port=80)])))
node_port = np.spec.ports[0].node_port
check(isinstance(node_port, int) and 30000 <= node_port <= 32767, "nodePort range", node_port)
eq(np.spec.external_traffic_policy, "Cluster", "externalTrafficPolicy")
check(ipaddress.ip_address(np.spec.cluster_ip) in svc_cidr, "NodePort ClusterIP",
      np.spec.cluster_ip)
body = expect_status(v1.create_namespaced_service, 422, "Invalid", NS, client.V1Service(
    metadata=meta("np2"),
    spec=client.V1ServiceSpec(type="NodePort", ports=[
        client.V1ServicePort(port=80, node_port=node_port)])))
check(any(c.get("field") == "spec.ports[0].nodePort" for c in
          body["details"].get("causes") or []), "duplicate nodePort causes", body)
body = expect_status(v1.create_namespaced_service, 422, "Invalid", NS, client.V1Service(
    metadata=meta("outside"),
    spec=client.V1ServiceSpec(cluster_ip="10.0.0.5", ports=[client.V1ServicePort(port=80)])))
check(any((c.get("field") or "").startswith("spec.clusterIP") for c in
          body["details"].get("causes") or []), "out-of-range clusterIP causes", body)
# ClusterIP -> NodePort by patch allocates a node port.
p = v1.patch_namespaced_service("web", NS, {"spec": {"type": "NodePort"}})
check(30000 <= (p.spec.ports[0].node_port or 0) <= 32767, "nodePort after type change", p.spec)
eq(p.spec.cluster_ip, ip, "ClusterIP kept on type change")
eq(names(v1.list_namespaced_service(NS).items), ["np", "web"], "list_namespaced_service")
res = v1.delete_namespaced_service("np", NS)
eq(res.metadata.name, "np", "delete_namespaced_service returns the Service")
check(gone(v1.read_namespaced_service, "np", NS), "service still there after delete")
step("services: ClusterIP from 10.43.0.0/16, defaults, NodePort, 422s, replace keeps IP")

# --- pods ------------------------------------------------------------------------------
pod = v1.create_namespaced_pod(NS, client.V1Pod(
    metadata=meta("p1", {"app": "web"}),
    spec=client.V1PodSpec(containers=[client.V1Container(
        name="c", image="busybox:1.36", command=["sleep", "3600"])])))
eq(pod.status.phase, "Pending", "new pod phase")
eq(pod.spec.restart_policy, "Always", "restartPolicy default")
eq(pod.spec.dns_policy, "ClusterFirst", "dnsPolicy default")
eq(pod.spec.scheduler_name, "default-scheduler", "schedulerName default")
eq(pod.spec.termination_grace_period_seconds, 30, "terminationGracePeriodSeconds default")
eq(pod.spec.service_account_name, "default", "serviceAccountName default")
eq(pod.spec.enable_service_links, True, "enableServiceLinks default")
eq(pod.spec.containers[0].image_pull_policy, "IfNotPresent", "imagePullPolicy for a tag")
eq(pod.spec.containers[0].termination_message_path, "/dev/termination-log",
   "terminationMessagePath default")
eq(pod.status.qos_class, "BestEffort", "qosClass")
tols = {(t.key, t.effect, t.toleration_seconds) for t in pod.spec.tolerations or []}
for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
    check((key, "NoExecute", 300) in tols, "default toleration missing", key, tols)


def unschedulable():
    p = v1.read_namespaced_pod_status("p1", NS)
    for c in p.status.conditions or []:
        if c.type == "PodScheduled" and c.status == "False":
            return c
    return None


cond = wait_for("PodScheduled=False with no nodes", unschedulable)
eq(cond and cond.reason, "Unschedulable", "PodScheduled reason")
eq(v1.read_namespaced_pod("p1", NS).status.phase, "Pending", "pod stays Pending without nodes")
for fs in ("status.phase=Pending", "spec.nodeName=", "metadata.name=p1",
           "spec.restartPolicy=Always", "spec.schedulerName=default-scheduler"):
    eq(names(v1.list_namespaced_pod(NS, field_selector=fs).items), ["p1"], "pods by " + fs)
eq(names(v1.list_namespaced_pod(NS, field_selector="status.phase=Running").items), [],
   "pods by status.phase=Running")
expect_status(v1.list_namespaced_pod, 400, "BadRequest", NS, field_selector="spec.foo=bar")
eq(names(v1.list_pod_for_all_namespaces(label_selector="app=web").items), ["p1"],
   "pods across namespaces by label")
p = v1.patch_namespaced_pod("p1", NS, {"spec": {"containers": [{"name": "c",
                                                                  "image": "busybox:1.37"}]}})
eq(p.spec.containers[0].image, "busybox:1.37", "pod image update")
eq(p.spec.containers[0].command, ["sleep", "3600"], "strategic merge keeps the command")
body = expect_status(v1.patch_namespaced_pod, 422, "Invalid", "p1", NS,
                     {"spec": {"restartPolicy": "Never"}})
check(any(c.get("field") == "spec" for c in body["details"].get("causes") or []),
      "forbidden pod update causes", body)
cur = v1.read_namespaced_pod("p1", NS)
cur.metadata.labels["replaced"] = "yes"
cur.spec.containers[0].image = "busybox:1.36"
r = v1.replace_namespaced_pod("p1", NS, cur)
eq((r.metadata.labels.get("replaced"), r.spec.containers[0].image), ("yes", "busybox:1.36"),
   "replace_namespaced_pod")


def failed_scheduling():
    evs = v1.list_namespaced_event(NS, field_selector="involvedObject.name=p1").items
    return [e for e in evs if e.reason == "FailedScheduling"]


evs = wait_for("FailedScheduling event", failed_scheduling, 20)
if evs:
    eq((evs[0].type, evs[0].involved_object.kind), ("Warning", "Pod"), "FailedScheduling event")
dp = v1.delete_namespaced_pod("p1", NS)
eq(dp.metadata.name, "p1", "delete_namespaced_pod returns the Pod")
wait_for("unscheduled pod deleted at once", lambda: gone(v1.read_namespaced_pod, "p1", NS), 10)
step("pods: defaults, Pending + Unschedulable, field selectors, update rules, delete")

# --- delete options / namespace deletion -----------------------------------------------
v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("fg")))
res = v1.delete_namespaced_config_map(
    "fg", NS, body=client.V1DeleteOptions(propagation_policy="Foreground"))
wait_for("foreground-deleted configmap gone", lambda: gone(v1.read_namespaced_config_map, "fg", NS))
e, _ = api_error(v1.delete_namespaced_config_map, "c", NS,
                 body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="wrong")))
eq(e.status, 409, "delete with a wrong uid precondition")
res, code, _ = v1.delete_namespace_with_http_info(NS)
eq(code, 200, "HTTP status of a delete that waits for finalizers (upstream: 200)")
if not check(isinstance(res, dict), "delete_namespace result type", type(res)):
    res = {}
eq(res.get("kind"), "Namespace", "delete_namespace returns the Namespace (it has finalizers)")
eq(res.get("status", {}).get("phase"), "Terminating", "namespace phase on delete")
check(res.get("metadata", {}).get("deletionTimestamp"), "deletionTimestamp unset", res)
wait_for("namespace %s gone" % NS, lambda: gone(v1.read_namespace, NS), 45)
eq(v1.list_config_map_for_all_namespaces(field_selector="metadata.namespace=%s" % NS).items, [],
   "configmaps left in a deleted namespace")
v1.delete_namespace(PG, body=client.V1DeleteOptions(propagation_policy="Background"))
step("delete options (Foreground, preconditions) and namespace deletion")
finish("core_v1")
