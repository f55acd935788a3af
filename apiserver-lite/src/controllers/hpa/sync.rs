//! One round of the controller: each HPA's scale, pods, metrics, recommendation, and the writes.

use serde_json::{Value, json};

use super::Controller;
use super::behavior;
use super::metric::s;
use crate::controllers::events::{self, EventType, ObjectRef};
use crate::controllers::object::{now_rfc3339, set_condition, write_opts};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiResult;

const COMPONENT: &str = "horizontal-pod-autoscaler";
const MANAGER: &str = "kube-controller-manager";

impl Controller {
    /// Sync every HPA once.
    pub async fn sync_all(&mut self) -> ApiResult<()> {
        let api = Api::new(self.store.clone());
        let def = by_kind(Kind::HorizontalPodAutoscaler);
        let (hpas, _) = api
            .list(
                def,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .await?;
        for hpa in hpas {
            if let Err(e) = self.sync_one(&api, hpa).await {
                tracing::warn!("horizontal pod autoscaler: {e}");
            }
        }
        Ok(())
    }

    async fn event(&self, hpa: &ObjectRef, ty: EventType, reason: &str, message: &str) {
        if let Err(e) =
            events::record_about(self.store.as_ref(), COMPONENT, hpa, ty, reason, message).await
        {
            tracing::warn!("recording {reason} for {}/{}: {e}", hpa.namespace, hpa.name);
        }
    }

    async fn sync_one(&mut self, api: &Api, mut hpa: Value) -> ApiResult<()> {
        let ns = s(&hpa, "/metadata/namespace").to_string();
        let name = s(&hpa, "/metadata/name").to_string();
        let me = ObjectRef {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: ns.clone(),
            name: name.clone(),
            uid: s(&hpa, "/metadata/uid").to_string(),
            resource_version: s(&hpa, "/metadata/resourceVersion").to_string(),
        };
        let spec = hpa["spec"].clone();
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        let max = spec["maxReplicas"].as_i64().unwrap_or(1);
        if !hpa["status"].is_object() {
            hpa["status"] = json!({});
        }
        hpa["status"]["observedGeneration"] = hpa
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let kind = match s(&spec, "/scaleTargetRef/kind") {
            "Deployment" => Some(Kind::Deployment),
            "ReplicaSet" => Some(Kind::ReplicaSet),
            "ReplicationController" => Some(Kind::ReplicationController),
            "StatefulSet" => Some(Kind::StatefulSet),
            _ => None,
        };
        let target_name = s(&spec, "/scaleTargetRef/name").to_string();
        let target = match kind {
            Some(k) => api
                .get(by_kind(k), Some(&ns), &target_name)
                .await
                .map_err(|e| e.message),
            None => Err(format!(
                "no matches for kind {:?}",
                s(&spec, "/scaleTargetRef/kind")
            )),
        };
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                let msg =
                    format!("the HPA controller was unable to get the target's current scale: {e}");
                self.event(&me, EventType::Warning, "FailedGetScale", &e)
                    .await;
                set_condition(
                    &mut hpa,
                    "AbleToScale",
                    "False",
                    Some("FailedGetScale"),
                    Some(&msg),
                );
                return self.write_status(api, &ns, &name, hpa).await;
            }
        };
        let scale = crate::scale::scale_of(&target);
        // kube reports the scale's spec as the current replicas.
        let current = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let now = self.started.elapsed().as_secs_f64();
        let key = (ns.clone(), name.clone(), me.uid.clone());
        self.histories
            .entry(key.clone())
            .or_insert_with(|| behavior::History::initial(current, now));
        set_condition(
            &mut hpa,
            "AbleToScale",
            "True",
            Some("SucceededGetScale"),
            Some("the HPA controller was able to get the target's current scale"),
        );
        let behavior = spec.get("behavior").filter(|b| b.is_object()).cloned();
        let mut current_metrics = Vec::new();
        let (desired, reason) = if current == 0 && min != 0 {
            set_condition(
                &mut hpa,
                "ScalingActive",
                "False",
                Some("ScalingDisabled"),
                Some("scaling is disabled since the replica count of the target is zero"),
            );
            (0, String::new())
        } else if current > max {
            (
                max,
                "Current number of replicas above Spec.MaxReplicas".to_string(),
            )
        } else if current < min {
            (
                min,
                "Current number of replicas below Spec.MinReplicas".to_string(),
            )
        } else {
            let (proposed, label) = match self
                .proposal(api, &me, &mut hpa, &scale, current, &mut current_metrics)
                .await?
            {
                Ok(p) => p,
                Err(message) => {
                    hpa["status"]["currentReplicas"] = json!(current);
                    hpa["status"]["currentMetrics"] = Value::Array(current_metrics);
                    self.write_status(api, &ns, &name, hpa).await?;
                    self.event(
                        &me,
                        EventType::Warning,
                        "FailedComputeMetricsReplicas",
                        &message,
                    )
                    .await;
                    return Ok(());
                }
            };
            let reason = if proposed > current {
                format!("{label} above target")
            } else if proposed < current {
                "All metrics below target".to_string()
            } else {
                String::new()
            };
            let history = self.histories.entry(key.clone()).or_default();
            let n =
                behavior::normalize(history, now, behavior.as_ref(), current, proposed, min, max);
            let (able_reason, able_message) = n.able;
            set_condition(
                &mut hpa,
                "AbleToScale",
                "True",
                Some(able_reason),
                Some(able_message),
            );
            let (limited, (limit_reason, limit_message)) = n.limited;
            set_condition(
                &mut hpa,
                "ScalingLimited",
                if limited { "True" } else { "False" },
                Some(limit_reason),
                Some(limit_message),
            );
            (n.replicas, reason)
        };
        let rescale = desired != current;
        if rescale {
            let patch = json!({"spec": {"replicas": desired}});
            let written = match kind {
                Some(k) => api
                    .patch(
                        by_kind(k),
                        Some(&ns),
                        &target_name,
                        None,
                        crate::patch::PatchType::Merge,
                        patch,
                        &[],
                        &write_opts(MANAGER),
                        false,
                    )
                    .await
                    .map(|_| ()),
                None => Ok(()),
            };
            if let Err(e) = written {
                self.event(
                    &me,
                    EventType::Warning,
                    "FailedRescale",
                    &format!(
                        "New size: {desired}; reason: {reason}; error: {}",
                        e.message
                    ),
                )
                .await;
                set_condition(
                    &mut hpa,
                    "AbleToScale",
                    "False",
                    Some("FailedUpdateScale"),
                    Some(&format!(
                        "the HPA controller was unable to update the target scale: {}",
                        e.message
                    )),
                );
                hpa["status"]["currentReplicas"] = json!(current);
                return self.write_status(api, &ns, &name, hpa).await;
            }
            set_condition(
                &mut hpa,
                "AbleToScale",
                "True",
                Some("SucceededRescale"),
                Some(&format!(
                    "the HPA controller was able to update the target scale to {desired}"
                )),
            );
            self.event(
                &me,
                EventType::Normal,
                "SuccessfulRescale",
                &format!("New size: {desired}; reason: {reason}"),
            )
            .await;
            if let Some(h) = self.histories.get_mut(&key) {
                h.record_scale(behavior.as_ref(), now, current, desired);
            }
            hpa["status"]["lastScaleTime"] = json!(now_rfc3339());
        }
        hpa["status"]["currentReplicas"] = json!(current);
        hpa["status"]["desiredReplicas"] = json!(if rescale { desired } else { current });
        hpa["status"]["currentMetrics"] = Value::Array(current_metrics);
        self.write_status(api, &ns, &name, hpa).await
    }

    /// kube's `computeReplicasForMetrics`: the biggest recommendation of the metrics and its metric's
    /// name, with `status.currentMetrics` (one entry per metric, empty for a failed one) and the
    /// ScalingActive condition; `Ok(Err(message))` when no recommendation can be trusted (every metric
    /// failed, or one failed and the others would scale down).
    async fn proposal(
        &self,
        api: &Api,
        me: &ObjectRef,
        hpa: &mut Value,
        scale: &Value,
        current: i64,
        current_metrics: &mut Vec<Value>,
    ) -> ApiResult<Result<(i64, String), String>> {
        let ns = me.namespace.as_str();
        let selector = LabelSelector::parse(s(scale, "/status/selector"))?;
        let (pods, _) = api
            .list(
                by_kind(Kind::Pod),
                Some(ns),
                &selector,
                &FieldSelector::default(),
            )
            .await?;
        let metrics = hpa["spec"]["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut best: Option<(i64, String)> = None;
        let mut first_error: Option<String> = None;
        let mut invalid = 0;
        for m in &metrics {
            match self.metric(ns, current, &pods, m) {
                Ok((n, status, label)) => {
                    current_metrics.push(status);
                    if best.as_ref().is_none_or(|(b, _)| n > *b) {
                        best = Some((n, label));
                    }
                }
                Err(e) => {
                    current_metrics.push(json!({"type": ""}));
                    let resource = m
                        .pointer("/resource/name")
                        .or(m.pointer("/containerResource/name"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    // kube's `getUnableComputeReplicaCountCondition`: an event per failed metric; the
                    // first failure becomes the condition.
                    self.event(me, EventType::Warning, "FailedGetResourceMetric", &e)
                        .await;
                    if first_error.is_none() {
                        set_condition(
                            hpa,
                            "ScalingActive",
                            "False",
                            Some("FailedGetResourceMetric"),
                            Some(&format!(
                                "the HPA was unable to compute the replica count: {e}"
                            )),
                        );
                        first_error = Some(format!(
                            "failed to get {resource} resource metric value: {e}"
                        ));
                    }
                    invalid += 1;
                }
            }
        }
        match (best, first_error) {
            (Some((n, label)), first) if first.is_none() || n >= current => {
                set_condition(
                    hpa,
                    "ScalingActive",
                    "True",
                    Some("ValidMetricFound"),
                    Some(&format!(
                        "the HPA was able to successfully calculate a replica count from {label}"
                    )),
                );
                Ok(Ok((n, label)))
            }
            (_, first) => Ok(Err(format!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {}",
                metrics.len(),
                first.unwrap_or_default()
            ))),
        }
    }

    async fn write_status(&self, api: &Api, ns: &str, name: &str, hpa: Value) -> ApiResult<()> {
        let def = by_kind(Kind::HorizontalPodAutoscaler);
        api.update(
            def,
            Some(ns),
            name,
            Some("status"),
            hpa,
            &[],
            &write_opts(MANAGER),
        )
        .await?;
        Ok(())
    }
}
