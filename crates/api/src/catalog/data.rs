//! The served resources, with the names, scopes, verbs and subresources that upstream
//! Kubernetes v1.33 reports for them in discovery.
//!
//! Verb lists are sorted, as the upstream installer sorts them.

use super::{ResourceInfo, Subresource};

/// Verbs of an ordinary stored resource.
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection.
const RW_NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// `status`, `scale`, `ephemeralcontainers`, `resize`.
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
/// `binding`, `eviction`, `token`.
const CREATE: &[&str] = &["create"];
/// `exec`, `attach`, `portforward` (connect with GET and POST).
const CONNECT: &[&str] = &["create", "get"];
/// `proxy`: GET, POST, PUT, PATCH, DELETE (HEAD and OPTIONS have no verb).
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
const GET: &[&str] = &["get"];
const UPDATE: &[&str] = &["update"];

const NONE: &[&str] = &[];
const ALL: &[&str] = &["all"];

const fn sub(
    name: &'static str,
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        kind,
        group,
        version,
        verbs,
    }
}

/// The `status` subresource, whose body is the parent kind itself.
pub(super) const fn status(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
) -> Subresource {
    sub("status", kind, group, version, GET_PATCH_UPDATE)
}

/// The `scale` subresource: always autoscaling/v1 Scale, whatever the parent's group.
pub(super) const SCALE: Subresource = sub("scale", "Scale", "autoscaling", "v1", GET_PATCH_UPDATE);

/// A resource served with the ordinary verbs and stored at its own version.
#[allow(clippy::too_many_arguments)]
pub(super) const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        verbs: RW,
        subresources,
        storage_group: group,
        storage_version: version,
    }
}

/// A create-only review kind (TokenReview, SubjectAccessReview, …): answered from the
/// request and never stored, so `create` is its only verb.
const fn review(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names: NONE,
        categories: NONE,
        verbs: CREATE,
        subresources: &[],
        storage_group: group,
        storage_version: "v1",
    }
}

const POD_SUBRESOURCES: &[Subresource] = &[
    sub("attach", "PodAttachOptions", "", "v1", CONNECT),
    sub("binding", "Binding", "", "v1", CREATE),
    sub("ephemeralcontainers", "Pod", "", "v1", GET_PATCH_UPDATE),
    sub("eviction", "Eviction", "policy", "v1", CREATE),
    sub("exec", "PodExecOptions", "", "v1", CONNECT),
    sub("log", "Pod", "", "v1", GET),
    sub("portforward", "PodPortForwardOptions", "", "v1", CONNECT),
    sub("proxy", "PodProxyOptions", "", "v1", PROXY),
    sub("resize", "Pod", "", "v1", GET_PATCH_UPDATE),
    status("Pod", "", "v1"),
];

/// Every served resource. Core first, then the groups in the order `/apis` lists them.
///
/// `events` exists twice (core/v1 and events.k8s.io/v1); as upstream, both are one key space
/// of core/v1 objects, and the events.k8s.io form is a conversion (`crate::conversion`).
pub(super) static RESOURCES: &[ResourceInfo] = &[
    // core/v1
    res(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        NONE,
        &[],
    ),
    // Deprecated upstream since 1.19 but still served (`kubectl get cs`): computed per
    // request, never stored.
    ResourceInfo {
        verbs: &["get", "list"],
        ..res(
            "",
            "v1",
            "ComponentStatus",
            "componentstatuses",
            "componentstatus",
            false,
            &["cs"],
            NONE,
            &[],
        )
    },
    res(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        true,
        &["limits"],
        NONE,
        &[],
    ),
    ResourceInfo {
        verbs: RW_NO_COLLECTION,
        ..res(
            "",
            "v1",
            "Namespace",
            "namespaces",
            "namespace",
            false,
            &["ns"],
            NONE,
            &[
                sub("finalize", "Namespace", "", "v1", UPDATE),
                status("Namespace", "", "v1"),
            ],
        )
    },
    res(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        NONE,
        &[
            sub("proxy", "NodeProxyOptions", "", "v1", PROXY),
            status("Node", "", "v1"),
        ],
    ),
    res(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        NONE,
        &[status("PersistentVolumeClaim", "", "v1")],
    ),
    res(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
        NONE,
        &[status("PersistentVolume", "", "v1")],
    ),
    res(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        ALL,
        POD_SUBRESOURCES,
    ),
    res(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        &["quota"],
        NONE,
        &[status("ResourceQuota", "", "v1")],
    ),
    res(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        NONE,
        &[sub(
            "token",
            "TokenRequest",
            "authentication.k8s.io",
            "v1",
            CREATE,
        )],
    ),
    res(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &[
            sub("proxy", "ServiceProxyOptions", "", "v1", PROXY),
            status("Service", "", "v1"),
        ],
    ),
    // apps/v1
    res(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &[status("DaemonSet", "apps", "v1")],
    ),
    res(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &[SCALE, status("Deployment", "apps", "v1")],
    ),
    res(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &[SCALE, status("ReplicaSet", "apps", "v1")],
    ),
    res(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        &[SCALE, status("StatefulSet", "apps", "v1")],
    ),
    // events.k8s.io/v1: a view of the core/v1 Events.
    ResourceInfo {
        storage_group: "",
        ..res(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            "event",
            true,
            &["ev"],
            NONE,
            &[],
        )
    },
    // authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews, never stored.
    review(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
    ),
    review(
        "authentication.k8s.io",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        true,
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
    ),
    // autoscaling/v2 (preferred) and autoscaling/v1 share one stored form, v2.
    res(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
        ALL,
        &[status("HorizontalPodAutoscaler", "autoscaling", "v2")],
    ),
    ResourceInfo {
        storage_version: "v2",
        ..res(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            true,
            &["hpa"],
            ALL,
            &[status("HorizontalPodAutoscaler", "autoscaling", "v1")],
        )
    },
    // batch/v1
    res(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        ALL,
        &[status("CronJob", "batch", "v1")],
    ),
    res(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        NONE,
        ALL,
        &[status("Job", "batch", "v1")],
    ),
    // networking.k8s.io/v1
    res(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
        NONE,
        &[status("Ingress", "networking.k8s.io", "v1")],
    ),
    res(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        &["netpol"],
        NONE,
        &[],
    ),
    // policy/v1
    res(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &["pdb"],
        NONE,
        &[status("PodDisruptionBudget", "policy", "v1")],
    ),
    // rbac.authorization.k8s.io/v1
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        NONE,
        NONE,
        &[],
    ),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        NONE,
        NONE,
        &[],
    ),
    // storage.k8s.io/v1
    res(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        &["sc"],
        NONE,
        &[],
    ),
    res(
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        "csidriver",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "storage.k8s.io",
        "v1",
        "CSINode",
        "csinodes",
        "csinode",
        false,
        NONE,
        NONE,
        &[],
    ),
    res(
        "storage.k8s.io",
        "v1",
        "VolumeAttachment",
        "volumeattachments",
        "volumeattachment",
        false,
        NONE,
        NONE,
        &[status("VolumeAttachment", "storage.k8s.io", "v1")],
    ),
    // admissionregistration.k8s.io/v1: the registry calls the configured webhooks and
    // evaluates the bound ValidatingAdmissionPolicies.
    res(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        false,
        NONE,
        &["api-extensions"],
        &[],
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        false,
        NONE,
        &["api-extensions"],
        &[],
    ),
    // ValidatingAdmissionPolicies: CEL validations the registry evaluates on writes.
    res(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        false,
        NONE,
        &["api-extensions"],
        &[status(
            "ValidatingAdmissionPolicy",
            "admissionregistration.k8s.io",
            "v1",
        )],
    ),
    res(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        false,
        NONE,
        &["api-extensions"],
        &[],
    ),
    // apiextensions.k8s.io/v1
    res(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        false,
        &["crd", "crds"],
        &["api-extensions"],
        &[status(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            "v1",
        )],
    ),
    // scheduling.k8s.io/v1
    res(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
        &["pc"],
        NONE,
        &[],
    ),
    // coordination.k8s.io/v1
    res(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        NONE,
        NONE,
        &[],
    ),
    // certificates.k8s.io/v1
    res(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
        NONE,
        &[
            sub(
                "approval",
                "CertificateSigningRequest",
                "certificates.k8s.io",
                "v1",
                GET_PATCH_UPDATE,
            ),
            status("CertificateSigningRequest", "certificates.k8s.io", "v1"),
        ],
    ),
    // node.k8s.io/v1
    res(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        "runtimeclass",
        false,
        NONE,
        NONE,
        &[],
    ),
    // apiregistration.k8s.io/v1: the served group versions (`kubectl get apiservices`).
    res(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        "apiservice",
        false,
        NONE,
        &["api-extensions"],
        &[status("APIService", "apiregistration.k8s.io", "v1")],
    ),
    // metrics.k8s.io/v1beta1: the resource metrics API (metrics-server's, served in
    // process from kubelet scrapes, never stored), read by `kubectl top` and the HPA.
    ResourceInfo {
        verbs: &["get", "list"],
        ..res(
            "metrics.k8s.io",
            "v1beta1",
            "NodeMetrics",
            "nodes",
            "",
            false,
            NONE,
            NONE,
            &[],
        )
    },
    ResourceInfo {
        verbs: &["get", "list"],
        ..res(
            "metrics.k8s.io",
            "v1beta1",
            "PodMetrics",
            "pods",
            "",
            true,
            NONE,
            NONE,
            &[],
        )
    },
    // discovery.k8s.io/v1
    res(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        NONE,
        NONE,
        &[],
    ),
];

/// Named groups in the order upstream's `/apis` lists them (by group priority), each with
/// its served versions, preferred first.
pub(super) static GROUPS: &[(&str, &[&str])] = &[
    ("apiregistration.k8s.io", &["v1"]),
    ("apps", &["v1"]),
    ("events.k8s.io", &["v1"]),
    ("authentication.k8s.io", &["v1"]),
    ("authorization.k8s.io", &["v1"]),
    ("autoscaling", &["v2", "v1"]),
    ("batch", &["v1"]),
    ("certificates.k8s.io", &["v1"]),
    ("networking.k8s.io", &["v1"]),
    ("policy", &["v1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1"]),
    ("admissionregistration.k8s.io", &["v1"]),
    ("apiextensions.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("node.k8s.io", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
    ("metrics.k8s.io", &["v1beta1"]),
];
