//! Objects every cluster starts with: the four system namespaces.

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::store::{Store, StoreError};

pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(uuid::Uuid::new_v4().to_string()),
            creation_timestamp: Some(Time(jiff::Timestamp::now())),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                name.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        }),
        status: Some(NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        }),
    }
}

/// Create the system namespaces that do not exist yet. Safe to run on every start and concurrently.
pub async fn bootstrap(store: &dyn Store) -> anyhow::Result<()> {
    for name in SYSTEM_NAMESPACES {
        let key = format!("{}{name}", super::NAMESPACES_PREFIX);
        if store
            .get(&key)
            .await
            .with_context(|| format!("failed to read namespace {name}"))?
            .is_some()
        {
            continue;
        }
        let mut value = serde_json::to_value(namespace(name))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("apiVersion".into(), "v1".into());
            object.insert("kind".into(), "Namespace".into());
        }
        match store.create(&key, serde_json::to_vec(&value)?).await {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(err) => {
                return Err(err).with_context(|| format!("failed to create namespace {name}"));
            }
        }
    }
    Ok(())
}
