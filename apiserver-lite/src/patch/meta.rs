//! The strategic-merge-patch and list metadata of the served kinds, field by field: what kube's API server
//! reads from the Go struct tags (`patchStrategy`, `patchMergeKey`) and markers (`+listType`,
//! `+listMapKey`) of k8s.io/api, and publishes as `x-kubernetes-*` extensions in its OpenAPI documents.
//! The table is generated from k8s.io/api 1.32 by `scripts/gen-patch-meta.py`.
//!
//! Types are named as in OpenAPI (`io.k8s.api.core.v1.PodSpec`). A struct-typed field names its type, so
//! a patch can be walked from the kind down.

use super::table::FIELDS;

/// One field: (type, field, the field's struct type or `""`, patchStrategy, patchMergeKey, listType,
/// listMapKeys).
pub struct Field(
    pub &'static str,
    pub &'static str,
    pub &'static str,
    pub &'static str,
    pub &'static str,
    pub &'static str,
    pub &'static [&'static str],
);

impl Field {
    /// The type of the field's value (of its items, for a list), if it is a struct.
    pub fn item_type(&self) -> Option<&'static str> {
        Some(self.2).filter(|t| !t.is_empty())
    }

    /// `merge`, `retainKeys`, `merge,retainKeys` or `""`.
    pub fn strategy(&self) -> &'static str {
        self.3
    }

    /// Whether a list is merged (by its merge key, or as a set of scalars) rather than replaced.
    pub fn merges(&self) -> bool {
        self.3.split(',').any(|s| s == "merge")
    }

    pub fn merge_key(&self) -> Option<&'static str> {
        Some(self.4).filter(|k| !k.is_empty())
    }

    /// `atomic`, `set`, `map` or `""`.
    pub fn list_type(&self) -> &'static str {
        self.5
    }

    pub fn map_keys(&self) -> &'static [&'static str] {
        self.6
    }
}

/// The metadata of `ty`'s field `name`, if the field is a struct or carries patch or list metadata.
pub fn field(ty: &str, name: &str) -> Option<&'static Field> {
    FIELDS
        .binary_search_by(|f| (f.0, f.1).cmp(&(ty, name)))
        .ok()
        .map(|i| &FIELDS[i])
}

/// Every field of `ty` with metadata.
pub fn fields_of(ty: &str) -> &'static [Field] {
    let start = FIELDS.partition_point(|f| f.0 < ty);
    let end = FIELDS.partition_point(|f| f.0 <= ty);
    &FIELDS[start..end]
}

/// Whether `name` is the first key of a list keyed by several (`containerPort` of container ports keyed by
/// port and protocol).
pub fn first_of_several_keys(name: &str) -> bool {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            let mut names: Vec<&str> = FIELDS
                .iter()
                .filter(|f| f.6.len() > 1)
                .map(|f| f.6[0])
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        })
        .binary_search(&name)
        .is_ok()
}

/// The OpenAPI name of a kind's type: `io.k8s.api.<group's first label, or core>.<version>.<kind>`.
pub fn type_name(group: &str, version: &str, kind: &str) -> String {
    let short = match group.split('.').next() {
        None | Some("") => "core",
        Some(label) => label,
    };
    format!("io.k8s.api.{short}.{version}.{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique() {
        for pair in FIELDS.windows(2) {
            assert!(
                (pair[0].0, pair[0].1) < (pair[1].0, pair[1].1),
                "{}.{} then {}.{}",
                pair[0].0,
                pair[0].1,
                pair[1].0,
                pair[1].1
            );
        }
    }

    #[test]
    fn kube_metadata_of_well_known_fields() {
        let containers = field("io.k8s.api.core.v1.PodSpec", "containers").expect("containers");
        assert_eq!(containers.item_type(), Some("io.k8s.api.core.v1.Container"));
        assert!(containers.merges());
        assert_eq!(containers.merge_key(), Some("name"));
        assert_eq!(containers.list_type(), "map");
        let volumes = field("io.k8s.api.core.v1.PodSpec", "volumes").expect("volumes");
        assert_eq!(volumes.strategy(), "merge,retainKeys");
        let ports = field("io.k8s.api.core.v1.ServiceSpec", "ports").expect("ports");
        assert_eq!(ports.merge_key(), Some("port"));
        assert_eq!(ports.map_keys(), ["port", "protocol"]);
        let gates = field("io.k8s.api.core.v1.PodSpec", "readinessGates").expect("gates");
        assert!(!gates.merges(), "readiness gates are atomic");
        let finalizers = field(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
        )
        .expect("finalizers");
        assert!(finalizers.merges() && finalizers.merge_key().is_none());
        assert!(field("io.k8s.api.core.v1.PodSpec", "nodeName").is_none());
        assert!(first_of_several_keys("containerPort") && first_of_several_keys("port"));
        assert!(!first_of_several_keys("name"));
        assert!(
            fields_of("io.k8s.api.apps.v1.DeploymentSpec")
                .iter()
                .any(|f| f.1 == "template")
        );
        assert_eq!(
            type_name("apps", "v1", "Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(type_name("", "v1", "Pod"), "io.k8s.api.core.v1.Pod");
        assert_eq!(
            type_name("rbac.authorization.k8s.io", "v1", "Role"),
            "io.k8s.api.rbac.v1.Role"
        );
    }
}
