"""kubernetes.watch.Watch against r8s (order, resume, selectors, timeouts) and AppsV1Api
Deployments (scale subresource, status, patch flavours, cascading deletion). Needs
simulated nodes so pods get scheduled and become ready."""

import threading
import time

from kubernetes import client, watch

from r8s_common import (api_error, check, eq, expect_status, finish, gone, load, meta, step,
                        wait_for)

load()
v1 = client.CoreV1Api()
apps = client.AppsV1Api()
NS = "py-watch"


def cm(name, labels=None, data=None):
    return client.V1ConfigMap(metadata=meta(name, labels), data=data)


def collect(timeout=2, **kwargs):
    """All events of one watch request that ends by its timeoutSeconds."""
    w = watch.Watch()
    return list(w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=timeout, **kwargs))


def kinds(events):
    return [e["type"] for e in events]


v1.create_namespace(client.V1Namespace(metadata=meta(NS)))
wait_for("kube-root-ca.crt",
         lambda: not gone(v1.read_namespaced_config_map, "kube-root-ca.crt", NS))

# --- replay from a resourceVersion, in order, and resume ----------------------------------
rv0 = v1.list_namespaced_config_map(NS).metadata.resource_version
v1.create_namespaced_config_map(NS, cm("w1", {"app": "w"}, {"n": "1"}))
v1.patch_namespaced_config_map("w1", NS, {"data": {"n": "2"}})
v1.delete_namespaced_config_map("w1", NS)
start = time.time()
events = collect(timeout=2, label_selector="app=w", resource_version=rv0)
elapsed = time.time() - start
eq(kinds(events), ["ADDED", "MODIFIED", "DELETED"], "event types from rv0")
check(elapsed < 15, "watch with timeout_seconds=2 did not end in time", elapsed)
if len(events) == 3:
    check(all(isinstance(e["object"], client.V1ConfigMap) for e in events),
          "events not deserialized to V1ConfigMap", [type(e["object"]) for e in events])
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    check(rvs == sorted(rvs) and len(set(rvs)) == 3, "event resourceVersions not increasing", rvs)
    eq(events[1]["object"].data, {"n": "2"}, "MODIFIED object")
    eq(events[2]["object"].data, {"n": "2"}, "DELETED carries the last state")
    eq(events[0]["raw_object"]["kind"], "ConfigMap", "raw event object kind")
    eq(events[0]["raw_object"]["apiVersion"], "v1", "raw event object apiVersion")
    resumed = collect(timeout=2, label_selector="app=w",
                      resource_version=events[0]["object"].metadata.resource_version)
    eq(kinds(resumed), ["MODIFIED", "DELETED"], "events resumed after the ADDED event")
    resumed = collect(timeout=1, label_selector="app=w",
                      resource_version=events[2]["object"].metadata.resource_version)
    eq(kinds(resumed), [], "no events after the last one")
step("watch replays ADDED/MODIFIED/DELETED in order; resume from resourceVersion")

# --- without a resourceVersion: synthetic ADDED for existing objects first ------------------
v1.create_namespaced_config_map(NS, cm("keep", {"app": "keep"}))
events = collect(timeout=1, label_selector="app=keep")
eq([(e["type"], e["object"].metadata.name) for e in events], [("ADDED", "keep")],
   "initial state of a watch without resourceVersion")
events = collect(timeout=1, field_selector="metadata.name=keep")
eq([(e["type"], e["object"].metadata.name) for e in events], [("ADDED", "keep")],
   "watch with a field selector")
step("watch without resourceVersion starts with the current state; field selector")

# --- live delivery in a second thread ---------------------------------------------------
rv1 = v1.list_namespaced_config_map(NS).metadata.resource_version
live, w = [], watch.Watch()


def run():
    for e in w.stream(v1.list_namespaced_config_map, NS, label_selector="app=live",
                      resource_version=rv1, timeout_seconds=20):
        live.append((e["type"], e["object"].metadata.name, time.time()))
        if e["type"] == "DELETED":
            w.stop()


t = threading.Thread(target=run, daemon=True)
t.start()
time.sleep(0.5)
v1.create_namespaced_config_map(NS, cm("l1", {"app": "live"}))
v1.replace_namespaced_config_map("l1", NS, cm("l1", {"app": "live"}, {"x": "y"}))
sent = time.time()
v1.delete_namespaced_config_map("l1", NS)
t.join(15)
check(not t.is_alive(), "live watch did not see DELETED within 15s", live)
eq([k for k, _, _ in live], ["ADDED", "MODIFIED", "DELETED"], "live events")
if live:
    check(live[-1][2] - sent < 5, "DELETED arrived late", live[-1][2] - sent)
step("live watch in a thread, Watch.stop()")

# --- label-selector watch: objects leaving/entering the selection ------------------------
rv2 = v1.list_namespaced_config_map(NS).metadata.resource_version
v1.create_namespaced_config_map(NS, cm("sel", {"tier": "gold"}))
v1.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"tier": "silver"}}})
v1.patch_namespaced_config_map("sel", NS, {"data": {"ignored": "while silver"}})
v1.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"tier": "gold"}}})
v1.delete_namespaced_config_map("sel", NS)
events = collect(timeout=2, label_selector="tier=gold", resource_version=rv2)
eq(kinds(events), ["ADDED", "DELETED", "ADDED", "DELETED"],
   "a filtered watch shows leaving the selector as DELETED and entering as ADDED")
step("filtered watch semantics")

# --- bookmarks are accepted and errors surface as ApiException ---------------------------
events = collect(timeout=1, label_selector="app=keep", allow_watch_bookmarks=True)
eq([e["type"] for e in events if e["type"] != "BOOKMARK"], ["ADDED"], "watch with bookmarks")
expect_status(v1.list_namespaced_config_map, 400, "BadRequest", NS, watch=True,
              label_selector="a in (", timeout_seconds=1)
step("allow_watch_bookmarks, bad selector on a watch")

# --- deployments ------------------------------------------------------------------------
LABELS = {"app": "web"}


def deployment(name, replicas, labels=LABELS):
    return client.V1Deployment(
        metadata=meta(name, dict(labels, owner="py")),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="c", image="busybox:1.36", command=["sleep", "3600"],
                    env=[client.V1EnvVar(name="A", value="1"),
                         client.V1EnvVar(name="B", value="2")],
                    ports=[client.V1ContainerPort(container_port=8080)])]))))


d = apps.create_namespaced_deployment(NS, deployment("web", 2))
eq(d.metadata.generation, 1, "generation")
eq(d.spec.strategy.type, "RollingUpdate", "strategy default")
eq(d.spec.strategy.rolling_update.max_surge, "25%", "maxSurge default")
eq(d.spec.strategy.rolling_update.max_unavailable, "25%", "maxUnavailable default")
eq(d.spec.revision_history_limit, 10, "revisionHistoryLimit default")
eq(d.spec.progress_deadline_seconds, 600, "progressDeadlineSeconds default")
expect_status(apps.create_namespaced_deployment, 409, "AlreadyExists", NS, deployment("web", 1))


def ready(name, n):
    def probe():
        s = apps.read_namespaced_deployment_status(name, NS)
        st = s.status
        if (st.replicas == n and st.ready_replicas == n and st.available_replicas == n
                and st.updated_replicas == n
                and st.observed_generation == s.metadata.generation):
            return s
        return None
    return wait_for("deployment %s with %d ready replicas" % (name, n), probe, 40)


s = ready("web", 2)
conds = {c.type: (c.status, c.reason) for c in (s.status.conditions if s else None) or []}
eq(conds.get("Available"), ("True", "MinimumReplicasAvailable"), "Available condition")
eq(conds.get("Progressing"), ("True", "NewReplicaSetAvailable"), "Progressing condition")
pods = v1.list_namespaced_pod(NS, label_selector="app=web").items
eq(len(pods), 2, "pods of the deployment")
for p in pods:
    check((p.spec.node_name or "").startswith("sim-"), "pod not on a simulated node",
          p.spec.node_name)
    eq(p.status.phase, "Running", "pod phase")
    check(p.metadata.owner_references and p.metadata.owner_references[0].kind == "ReplicaSet",
          "pod owner", p.metadata.owner_references)
step("deployment create, defaults, status ready with simulated nodes")

scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
eq(scale.kind, "Scale", "Scale kind")
eq(scale.api_version, "autoscaling/v1", "Scale apiVersion")
eq(scale.spec.replicas, 3, "patched scale")
scale = apps.read_namespaced_deployment_scale("web", NS)
eq(scale.spec.replicas, 3, "read scale")
eq(scale.status.selector, "app=web", "scale status.selector")
ready("web", 3)
stale = apps.read_namespaced_deployment_scale("web", NS)
apps.replace_namespaced_deployment_scale("web", NS, client.V1Scale(
    metadata=meta("web", resource_version=stale.metadata.resource_version),
    spec=client.V1ScaleSpec(replicas=3)))
expect_status(apps.replace_namespaced_deployment_scale, 409, "Conflict", "web", NS, client.V1Scale(
    metadata=meta("web", resource_version="1"), spec=client.V1ScaleSpec(replicas=4)))
step("scale subresource: patch, read, replace, 409 on stale resourceVersion")

# Strategic merge patch merges containers by name; a JSON merge patch replaces the list.
gen = apps.read_namespaced_deployment("web", NS).metadata.generation
eq(gen, 2, "generation after a scale (spec.replicas changed once)")
p = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
    {"name": "c", "image": "busybox:1.37"}]}}}})
c = p.spec.template.spec.containers
eq(len(c), 1, "containers after strategic merge patch")
eq(c[0].image, "busybox:1.37", "patched image")
eq([(e.name, e.value) for e in c[0].env or []], [("A", "1"), ("B", "2")], "env kept by SMP")
eq([x.container_port for x in c[0].ports or []], [8080], "ports kept by SMP")
eq(p.metadata.generation, gen + 1, "generation after a template change")
s = ready("web", 3)
eq((s.metadata.annotations or {}).get("deployment.kubernetes.io/revision"), "2",
   "revision annotation after rollout")
rss = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
eq(sorted(r.spec.replicas for r in rss), [0, 3], "old and new ReplicaSet sizes")
p = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
    {"name": "c", "env": [{"name": "A", "$patch": "delete"}]}]}}}})
eq([e.name for e in p.spec.template.spec.containers[0].env or []], ["B"], "$patch: delete")
p = apps.patch_namespaced_deployment("web", NS, [
    {"op": "replace", "path": "/spec/replicas", "value": 1},
    {"op": "add", "path": "/metadata/labels/patched", "value": "json"},
    {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "c"},
])
eq(p.spec.replicas, 1, "replicas after JSON patch")
eq(p.metadata.labels.get("patched"), "json", "label after JSON patch")
p = apps.patch_namespaced_deployment(
    "web", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "busybox:1.37", "command": ["sleep", "1"]}]}}}},
    _content_type="application/merge-patch+json")
eq(p.spec.template.spec.containers[0].env, None, "a merge patch replaces the containers list")
eq(p.spec.template.spec.containers[0].ports, None, "merge patch dropped ports")
step("strategic merge (dict), $patch delete, JSON patch (list), merge patch")

body = expect_status(apps.patch_namespaced_deployment, 422, "Invalid", "web", NS,
                     {"spec": {"replicas": -1}})
check(any(c.get("field") == "spec.replicas" for c in body["details"].get("causes") or []),
      "causes for negative replicas", body)
eq(body["details"].get("kind"), "Deployment", "Invalid details.kind")
eq(body["details"].get("group"), "apps", "Invalid details.group")
check(body["message"].startswith('Deployment.apps "web" is invalid: spec.replicas'),
      "Invalid message", body["message"])
bad = deployment("bad", 1)
bad.spec.template.metadata.labels = {"app": "other"}
body = expect_status(apps.create_namespaced_deployment, 422, "Invalid", NS, bad)
check(any(c.get("field") == "spec.template.metadata.labels" for c in
          body["details"].get("causes") or []), "selector/template mismatch causes", body)
# Read-modify-replace, retried as clients do: the controllers may write the Deployment's
# status between the read and the replace.
for attempt in range(10):
    cur = apps.read_namespaced_deployment("web", NS)
    cur.spec.min_ready_seconds = 1
    try:
        apps.replace_namespaced_deployment("web", NS, cur)
        break
    except client.exceptions.ConflictException:
        time.sleep(0.2)
cur.spec.min_ready_seconds = 2
expect_status(apps.replace_namespaced_deployment, 409, "Conflict", "web", NS, cur)
body = expect_status(apps.read_namespaced_deployment, 404, "NotFound", "nope", NS)
eq(body["message"], 'deployments.apps "nope" not found', "NotFound message for a group resource")
eq(body["details"], {"name": "nope", "group": "apps", "kind": "deployments"}, "NotFound details")
step("deployment 422 / 409 / 404 Status bodies")

# --- nodes, leases, eviction --------------------------------------------------------------
nodes = v1.list_node().items
eq(sorted(n.metadata.name for n in nodes), ["sim-0", "sim-1"], "nodes")
for n in nodes:
    ready_cond = [c for c in n.status.conditions or [] if c.type == "Ready"]
    eq([c.status for c in ready_cond], ["True"], "node %s Ready" % n.metadata.name)
    check(n.status.capacity and n.status.capacity.get("cpu") and n.status.allocatable,
          "node capacity", n.status.capacity)
    check(n.spec.pod_cidr, "node podCIDR", n.spec)
leases = client.CoordinationV1Api().list_namespaced_lease("kube-node-lease").items
check({"sim-0", "sim-1"} <= {x.metadata.name for x in leases}, "node leases",
      [x.metadata.name for x in leases])
ready("web", 1)
victim = v1.list_namespaced_pod(NS, label_selector="app=web").items[0].metadata.name
_, code, _ = v1.create_namespaced_pod_eviction_with_http_info(victim, NS, client.V1Eviction(
    metadata=meta(victim, namespace=NS)))
eq(code, 201, "HTTP status of an eviction")
wait_for("evicted pod gone", lambda: gone(v1.read_namespaced_pod, victim, NS), 30)
ready("web", 1)
expect_status(v1.create_namespaced_pod_eviction, 404, "NotFound", "nope", NS,
              client.V1Eviction(metadata=meta("nope", namespace=NS)))
step("nodes and leases of simulated nodes; pod eviction")

# --- cascading deletion -------------------------------------------------------------------
web_uid = apps.read_namespaced_deployment("web", NS).metadata.uid
res, code, _ = apps.delete_namespaced_deployment_with_http_info(
    "web", NS, body=client.V1DeleteOptions(propagation_policy="Foreground"))
eq(code, 200, "HTTP status of a foreground delete (upstream: 200 unless orphanDependents=false)")
if check(isinstance(res, dict), "delete response type", type(res)):
    eq(res.get("kind"), "Deployment", "foreground delete returns the object")
    check("foregroundDeletion" in (res.get("metadata", {}).get("finalizers") or []),
          "foregroundDeletion finalizer", res.get("metadata"))
    check(res.get("metadata", {}).get("deletionTimestamp"), "deletionTimestamp",
          res.get("metadata"))
wait_for("foreground-deleted deployment gone",
         lambda: gone(apps.read_namespaced_deployment, "web", NS), 40)
left_rs = [r.metadata.name for r in apps.list_namespaced_replica_set(NS).items
           if any(o.uid == web_uid for o in r.metadata.owner_references or [])]
eq(left_rs, [], "ReplicaSets left when the foreground-deleted owner is gone")
eq([p.metadata.name for p in v1.list_namespaced_pod(NS, label_selector="app=web").items], [],
   "pods left when the foreground-deleted owner is gone")
step("Foreground deletion removes dependents before the owner")

apps.create_namespaced_deployment(NS, deployment("orph", 1, {"app": "orph"}))
ready("orph", 1)
apps.delete_namespaced_deployment("orph", NS,
                                  body=client.V1DeleteOptions(propagation_policy="Orphan"))
wait_for("orphan-deleted deployment gone",
         lambda: gone(apps.read_namespaced_deployment, "orph", NS))
rss = apps.list_namespaced_replica_set(NS, label_selector="app=orph").items
eq(len(rss), 1, "ReplicaSet kept by Orphan deletion")
for r in rss:
    eq(r.metadata.owner_references, None, "orphaned ReplicaSet ownerReferences")
e, _ = api_error(apps.delete_namespaced_deployment, "x", NS,
                 body=client.V1DeleteOptions(propagation_policy="Sideways"))
eq(e and e.status, 422, "invalid propagationPolicy")
step("Orphan deletion keeps dependents; bad propagationPolicy 422")

v1.delete_namespace(NS)
finish("watch_apps")
