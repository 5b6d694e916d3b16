"""ApiextensionsV1Api (CustomResourceDefinitions) and CustomObjectsApi: a CRD becomes
Established, its objects are created, read, listed with selectors, patched (main resource and
status subresource), watched and deleted, schema violations answer 422, and deleting the CRD
removes the resource."""

from kubernetes import client, watch

from r8s_common import check, eq, expect_status, finish, gone, load, step, wait_for

load()
ext = client.ApiextensionsV1Api()
custom = client.CustomObjectsApi()
GROUP, VERSION, PLURAL, NS = "py.example.com", "v1", "gadgets", "default"

crd = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "%s.%s" % (PLURAL, GROUP)},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer", "minimum": 0},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                }},
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
            }}},
        }],
    },
}
made = ext.create_custom_resource_definition(crd)
eq(made.metadata.name, "gadgets.py.example.com", "CRD name")


def established():
    got = ext.read_custom_resource_definition("gadgets.py.example.com")
    conds = (got.status.conditions or []) if got.status else []
    return any(c.type == "Established" and c.status == "True" for c in conds)


wait_for("the CRD to be Established", established)
got = ext.read_custom_resource_definition("gadgets.py.example.com")
eq(got.status.accepted_names.kind, "Gadget", "acceptedNames.kind")
eq(got.status.stored_versions, ["v1"], "storedVersions")
step("CustomResourceDefinition created and Established")

w = watch.Watch()
body = {"apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "Gadget",
        "metadata": {"name": "g1", "labels": {"tier": "a"}}, "spec": {"size": 2, "color": "red"}}
obj = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
eq(obj["spec"]["size"], 2, "created spec")
eq(obj["metadata"]["generation"], 1, "generation on create")
custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
    "apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "Gadget",
    "metadata": {"name": "g2", "labels": {"tier": "b"}}, "spec": {"size": 5}})
listed = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, label_selector="tier=a")
eq([i["metadata"]["name"] for i in listed["items"]], ["g1"], "label-selected list")
eq(listed["kind"], "GadgetList", "list kind")
all_ns = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
eq(sorted(i["metadata"]["name"] for i in all_ns["items"]), ["g1", "g2"], "list across namespaces")
step("CustomObjectsApi create/list")

patched = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "g1",
                                                {"spec": {"size": 3}})
eq(patched["spec"]["size"], 3, "merge patch")
eq(patched["metadata"]["generation"], 2, "generation after a spec change")
status = custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "g1",
                                                      {"status": {"phase": "Ready"}})
eq(status["status"]["phase"], "Ready", "status patch")
eq(status["metadata"]["generation"], 2, "status does not move the generation")
read = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "g1")
eq(read["status"], {"phase": "Ready"}, "status read back")
step("patch main resource and status subresource")

bad = dict(body, metadata={"name": "bad"}, spec={"size": -1, "color": "green"})
st = expect_status(custom.create_namespaced_custom_object, 422, "Invalid",
                   GROUP, VERSION, NS, PLURAL, bad)
fields = sorted(c.get("field") for c in st.get("details", {}).get("causes", []))
eq(fields, ["spec.color", "spec.size"], "422 causes")
missing = dict(body, metadata={"name": "missing"}, spec={"color": "red"})
expect_status(custom.create_namespaced_custom_object, 422, "Invalid",
              GROUP, VERSION, NS, PLURAL, missing)
step("schema violations are 422 with causes")

events = []
for ev in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                   timeout_seconds=2):
    events.append((ev["type"], ev["object"]["metadata"]["name"]))
check(("ADDED", "g1") in events and ("ADDED", "g2") in events, "watch lists existing objects",
      events)
step("watch through CustomObjectsApi")

custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "g2")
wait_for("g2 deleted", lambda: gone(custom.get_namespaced_custom_object,
                                    GROUP, VERSION, NS, PLURAL, "g2"))
ext.delete_custom_resource_definition("gadgets.py.example.com")
wait_for("the CRD deleted", lambda: gone(ext.read_custom_resource_definition,
                                         "gadgets.py.example.com"))
expect_status(custom.list_namespaced_custom_object, 404, "NotFound", GROUP, VERSION, NS, PLURAL)
step("delete object and CRD")

finish("custom_objects")
