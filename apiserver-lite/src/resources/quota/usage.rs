//! What an object costs against a ResourceQuota: kube's quota evaluators (`pkg/quota/v1/evaluator/core`)
//! for pods, services and PersistentVolumeClaims, the generic object count (`count/<plural>.<group>`,
//! and the legacy `configmaps`, `secrets`, `resourcequotas`) for every other served kind, and the pod
//! scopes (`Terminating`, `BestEffort`, `PriorityClass`, …). Shared by the admission and the controller.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::scopes::pod_in_scope;
pub use super::scopes::{ScopeRequirement, best_effort, scope_requirements};
use crate::resources::storage::quantity;
use crate::resources::{Kind, ResourceDef, find_resource};

/// An amount of a resource in nano-units, with the notation kube keeps for it (binary `Ki`/`Mi` or
/// decimal), so that sums print as kube prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub nano: i128,
    pub binary: bool,
}

const NANO: i128 = 1_000_000_000;

impl Amount {
    pub fn count(n: i128) -> Amount {
        Amount {
            nano: n * NANO,
            binary: false,
        }
    }

    pub fn parse(text: &str) -> Option<Amount> {
        Some(Amount {
            nano: quantity::parse(text)?,
            binary: text.ends_with('i'),
        })
    }

    /// kube's canonical text of the quantity (`Quantity.String()`).
    pub fn text(&self) -> String {
        quantity::Quantity {
            nano: self.nano,
            format: if self.binary {
                quantity::Format::BinarySI
            } else {
                quantity::Format::DecimalSI
            },
        }
        .to_string()
    }
}

/// Resource name → amount, sorted by name.
pub type Usage = BTreeMap<String, Amount>;

/// `a + b`; the notation of `a` wins where both have the resource (kube's `quota.Add`).
pub fn add(a: &Usage, b: &Usage) -> Usage {
    let mut out = a.clone();
    for (k, v) in b {
        out.entry(k.clone())
            .and_modify(|x| x.nano += v.nano)
            .or_insert(*v);
    }
    out
}

/// The entries of `u` whose names are in `names` (kube's `quota.Mask`).
pub fn mask<'a>(u: &Usage, names: impl IntoIterator<Item = &'a String>) -> Usage {
    names
        .into_iter()
        .filter_map(|n| u.get(n).map(|v| (n.clone(), *v)))
        .collect()
}

/// A map of quantities (`status.hard`, `spec.hard`) as a usage; unparsable entries are skipped.
pub fn from_json(v: Option<&Value>) -> Usage {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Amount::parse(q.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn to_json(u: &Usage) -> Value {
    Value::Object(
        u.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.text())))
            .collect(),
    )
}

/// `k=v,k=v` (kube's `prettyPrint`).
pub fn pretty(u: &Usage) -> String {
    u.iter()
        .map(|(k, v)| format!("{k}={}", v.text()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The suffix of the per-StorageClass PVC resources (`gold.storageclass.storage.k8s.io/requests.storage`).
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Pod resources tracked by the pod evaluator (hugepages are not).
const POD_RESOURCES: &[&str] = &[
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];
/// The resources a pod must name in every container when a quota tracks them (kube's `validationSet`).
const POD_REQUIRED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];
const SERVICE_RESOURCES: &[&str] = &[
    "services",
    "count/services",
    "services.nodeports",
    "services.loadbalancers",
];
const CLAIM_RESOURCES: &[&str] = &[
    "persistentvolumeclaims",
    "count/persistentvolumeclaims",
    "requests.storage",
];

/// Core kinds whose object count also goes by its bare plural (kube's `legacyObjectCountAliases`).
const LEGACY_COUNTS: [&str; 4] = [
    "configmaps",
    "secrets",
    "resourcequotas",
    "replicationcontrollers",
];

/// One of kube's quota evaluators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evaluator {
    Pods,
    Services,
    Claims,
    /// Object count of any other served kind.
    Count(&'static str, &'static str),
}

/// `count/<plural>` (core) or `count/<plural>.<group>`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

impl Evaluator {
    pub fn for_def(def: &ResourceDef) -> Evaluator {
        match def.kind_id {
            Kind::Pod => Evaluator::Pods,
            Kind::Service => Evaluator::Services,
            Kind::PersistentVolumeClaim => Evaluator::Claims,
            _ => Evaluator::Count(def.group, def.plural),
        }
    }

    /// The evaluator a quota resource name belongs to, if any (`None` for hugepages, extended
    /// resources and kinds that are not served).
    pub fn for_resource(name: &str) -> Option<Evaluator> {
        if POD_RESOURCES.contains(&name) {
            return Some(Evaluator::Pods);
        }
        if SERVICE_RESOURCES.contains(&name) {
            return Some(Evaluator::Services);
        }
        if CLAIM_RESOURCES.contains(&name) || storage_class_resource(name) {
            return Some(Evaluator::Claims);
        }
        let (group, plural) = match name.strip_prefix("count/") {
            Some(rest) => match rest.split_once('.') {
                Some((plural, group)) => (group, plural),
                None => ("", rest),
            },
            None if LEGACY_COUNTS.contains(&name) => ("", name),
            None => return None,
        };
        find_resource(group, plural).map(Evaluator::for_def)
    }

    /// The kind whose objects this evaluator counts.
    pub fn def(&self) -> Option<&'static ResourceDef> {
        match self {
            Evaluator::Pods => find_resource("", "pods"),
            Evaluator::Services => find_resource("", "services"),
            Evaluator::Claims => find_resource("", "persistentvolumeclaims"),
            Evaluator::Count(group, plural) => find_resource(group, plural),
        }
    }

    /// Whether `name` is a resource this evaluator accounts for (kube's `MatchingResources`).
    pub fn tracks(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => POD_RESOURCES.contains(&name),
            Evaluator::Services => SERVICE_RESOURCES.contains(&name),
            Evaluator::Claims => CLAIM_RESOURCES.contains(&name) || storage_class_resource(name),
            Evaluator::Count(group, plural) => {
                name == count_name(group, plural)
                    || (group.is_empty() && LEGACY_COUNTS.contains(plural) && name == *plural)
            }
        }
    }

    /// The names of `hard` this evaluator accounts for.
    pub fn matching<'a>(&self, hard: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        hard.into_iter()
            .filter(|n| self.tracks(n))
            .cloned()
            .collect()
    }

    /// Whether `obj` still counts at UNIX time `now` (kube's `QuotaV1Pod`: terminal pods and pods past
    /// their deletion grace period do not).
    pub fn counts(&self, obj: &Value, now: i64) -> bool {
        if *self != Evaluator::Pods {
            return true;
        }
        let phase = obj.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return false;
        }
        let deleted = obj
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        match (deleted, grace) {
            (Some(at), Some(grace)) => now <= at.as_second() + grace,
            _ => true,
        }
    }

    /// What `obj` costs (kube's evaluator `Usage`).
    pub fn usage(&self, obj: &Value) -> Usage {
        let mut u = Usage::new();
        match self {
            Evaluator::Pods => pod_usage(obj, &mut u),
            Evaluator::Services => service_usage(obj, &mut u),
            Evaluator::Claims => claim_usage(obj, &mut u),
            Evaluator::Count(group, plural) => {
                u.insert(count_name(group, plural), Amount::count(1));
                if group.is_empty() && LEGACY_COUNTS.contains(plural) {
                    u.insert(plural.to_string(), Amount::count(1));
                }
            }
        }
        u
    }

    /// Whether `obj` is in every scope of `selectors` (kube's `Matches`): only pods have scopes, so a
    /// scoped quota matches no other kind.
    pub fn in_scopes(&self, selectors: &[ScopeRequirement], obj: &Value) -> bool {
        match self {
            Evaluator::Pods => selectors.iter().all(|s| pod_in_scope(s, obj)),
            _ => selectors.is_empty(),
        }
    }

    /// kube's `Constraints`: a pod must name, in every container, the cpu and memory requests and limits
    /// `required` tracks. The error is kube's `must specify …` text.
    pub fn constraints(&self, required: &[String], obj: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| POD_REQUIRED.contains(r))
            .collect();
        let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for list in ["/spec/containers", "/spec/initContainers"] {
            for c in obj
                .pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut have = Usage::new();
                compute_usage(
                    &resource_map(c.pointer("/resources/requests")),
                    &resource_map(c.pointer("/resources/limits")),
                    &mut have,
                );
                let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                for r in &required {
                    if !have.contains_key(*r) {
                        missing.entry(r).or_default().insert(name.to_string());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

fn storage_class_resource(name: &str) -> bool {
    name.split_once(STORAGE_CLASS_SUFFIX)
        .is_some_and(|(class, r)| {
            !class.is_empty() && (r == "requests.storage" || r == "persistentvolumeclaims")
        })
}

/// A container's `requests` or `limits` map.
fn resource_map(v: Option<&Value>) -> Usage {
    from_json(v)
}

/// kube's `podComputeUsageHelper`: the quota names of a requests and limits pair.
fn compute_usage(requests: &Usage, limits: &Usage, out: &mut Usage) {
    for (res, aliases) in [
        ("cpu", &["cpu", "requests.cpu"][..]),
        ("memory", &["memory", "requests.memory"]),
        (
            "ephemeral-storage",
            &["ephemeral-storage", "requests.ephemeral-storage"],
        ),
    ] {
        if let Some(v) = requests.get(res) {
            for a in aliases {
                out.insert(a.to_string(), *v);
            }
        }
        if let Some(v) = limits.get(res) {
            out.insert(format!("limits.{res}"), *v);
        }
    }
}

/// The larger of each resource (kube's `maxResourceList`).
fn max_into(acc: &mut Usage, other: &Usage) {
    for (k, v) in other {
        match acc.get(k) {
            Some(x) if x.nano >= v.nano => {}
            _ => {
                acc.insert(k.clone(), *v);
            }
        }
    }
}

/// A pod's effective requests or limits (kube's `PodRequests`/`PodLimits`): the containers plus the
/// sidecars (restartable init containers), at least what any init container needs while the sidecars
/// started before it run, plus the overhead.
fn pod_total(pod: &Value, field: &str) -> Usage {
    let of = |c: &Value| resource_map(c.pointer(&format!("/resources/{field}")));
    let mut total = Usage::new();
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        total = add(&total, &of(c));
    }
    let mut sidecars = Usage::new();
    let mut init_max = Usage::new();
    for c in pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let own = of(c);
        let need = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            total = add(&total, &own);
            sidecars = add(&sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        max_into(&mut init_max, &need);
    }
    max_into(&mut total, &init_max);
    add(&total, &resource_map(pod.pointer("/spec/overhead")))
}

fn pod_usage(pod: &Value, out: &mut Usage) {
    out.insert("pods".into(), Amount::count(1));
    out.insert("count/pods".into(), Amount::count(1));
    compute_usage(&pod_total(pod, "requests"), &pod_total(pod, "limits"), out);
}

fn service_usage(svc: &Value, out: &mut Usage) {
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    out.insert("services".into(), Amount::count(1));
    out.insert("count/services".into(), Amount::count(1));
    let mut node_ports = 0;
    let mut balancers = 0;
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => node_ports = ports.len(),
        Some("LoadBalancer") => {
            balancers = 1;
            let allocate = svc
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            node_ports = if allocate {
                ports.len()
            } else {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            };
        }
        _ => {}
    }
    out.insert(
        "services.nodeports".into(),
        Amount::count(node_ports as i128),
    );
    out.insert("services.loadbalancers".into(), Amount::count(balancers));
}

fn claim_usage(claim: &Value, out: &mut Usage) {
    out.insert("persistentvolumeclaims".into(), Amount::count(1));
    out.insert("count/persistentvolumeclaims".into(), Amount::count(1));
    let class = claim
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .or_else(|| claim.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Amount::count(1),
        );
    }
    let requested = claim
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(Amount::parse);
    let allocated = claim
        .pointer("/status/allocatedResources/storage")
        .and_then(Value::as_str)
        .and_then(Amount::parse);
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) if a.nano > r.nano => Some(a),
        (Some(r), _) => Some(r),
        (None, a) => a,
    };
    if let Some(s) = storage {
        out.insert("requests.storage".into(), s);
        if !class.is_empty() {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), s);
        }
    }
}
