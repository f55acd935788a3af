//! The strategies of a Deployment sync (kube's `rolling.go`, `recreate.go`, `sync.go`): rolling update,
//! recreate, scaling without a rollout, and the clean-up of old ReplicaSets.

use serde_json::Value;

use super::rollout::{self, replicas};
use super::status;
use super::sync::{PodOwners, Sync};
use super::template;
use crate::controllers::owners::{self, int_at, str_at};
use crate::handlers::DeleteOpts;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

impl Sync<'_> {
    /// kube's `isScalingEvent`: an active ReplicaSet was sized for another `spec.replicas`.
    pub(super) async fn scaling_event(&mut self) -> ApiResult<bool> {
        self.find_new(false).await?;
        let want = replicas(&self.d);
        Ok(self.sets.iter().filter(|rs| replicas(rs) > 0).any(|rs| {
            template::annotation_int(rs, template::DESIRED_REPLICAS).is_some_and(|d| d != want)
        }))
    }

    /// kube's `scale`: follow `spec.replicas` without rolling.
    pub(super) async fn scale(&mut self, new: Option<usize>) -> ApiResult<()> {
        let want = replicas(&self.d);
        let active: Vec<usize> = (0..self.sets.len())
            .filter(|i| replicas(&self.sets[*i]) > 0)
            .collect();
        let single = match active.len() {
            0 => new.or_else(|| self.olds(new).last().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = single {
            self.scale_to(i, want).await?;
            return Ok(());
        }
        if rollout::saturated(&self.d, new.map(|i| &self.sets[i])) {
            for i in active.into_iter().filter(|i| Some(*i) != new) {
                self.scale_to(i, 0).await?;
            }
            return Ok(());
        }
        if !rollout::recreate(&self.d) {
            let refs: Vec<&Value> = active.iter().map(|i| &self.sets[*i]).collect();
            let sizes = rollout::proportional(&self.d, &refs);
            for (i, size) in active.into_iter().zip(sizes) {
                self.scale_rs(i, size).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn rolling(&mut self, pods: &PodOwners) -> ApiResult<()> {
        let new = self.find_new(true).await?;
        if let Some(i) = new {
            let (want, have) = (replicas(&self.d), replicas(&self.sets[i]));
            let scaled = if have > want {
                self.scale_to(i, want).await?
            } else if have < want {
                let all: Vec<&Value> = self.sets.iter().collect();
                let size = rollout::new_rs_replicas(&self.d, &all, have);
                self.scale_to(i, size).await?
            } else {
                false
            };
            if scaled {
                self.rollout_status(new);
                return Ok(());
            }
        }
        if self.scale_down_old(new).await? {
            self.rollout_status(new);
            return Ok(());
        }
        if status::complete(&self.d, &self.old_status) {
            self.cleanup(new, pods).await?;
        }
        self.rollout_status(new);
        Ok(())
    }

    /// kube's `reconcileOldReplicaSets`; whether anything was scaled down.
    pub(super) async fn scale_down_old(&mut self, new: Option<usize>) -> ApiResult<bool> {
        let olds = self.olds(new);
        if olds.iter().map(|i| replicas(&self.sets[*i])).sum::<i64>() == 0 {
            return Ok(false);
        }
        let all: Vec<&Value> = self.sets.iter().collect();
        let room = rollout::old_scale_down_room(&self.d, &all, new.map(|i| &self.sets[i]));
        if room <= 0 {
            return Ok(false);
        }
        let old_refs: Vec<&Value> = olds.iter().map(|i| &self.sets[*i]).collect();
        let (plan, _) = rollout::unhealthy_cleanup(&old_refs, room);
        let mut scaled = false;
        for (k, size) in plan {
            scaled |= self.scale_to(olds[k], size).await?;
        }
        let all: Vec<&Value> = self.sets.iter().collect();
        let old_refs: Vec<&Value> = olds.iter().map(|i| &self.sets[*i]).collect();
        let plan = rollout::rolling_scale_down(&self.d, &all, &old_refs);
        for (k, size) in plan {
            scaled |= self.scale_to(olds[k], size).await?;
        }
        Ok(scaled)
    }

    pub(super) async fn recreate(&mut self, pods: &PodOwners) -> ApiResult<()> {
        let mut new = self.find_new(false).await?;
        let mut scaled = false;
        for i in self.olds(new) {
            if replicas(&self.sets[i]) > 0 {
                scaled |= self.scale_to(i, 0).await?;
            }
        }
        if scaled {
            self.rollout_status(new);
            return Ok(());
        }
        let old_running = self.olds(new).into_iter().any(|i| {
            let rs = &self.sets[i];
            rollout::status_replicas(rs) > 0 || pods.running.contains(str_at(rs, "/metadata/uid"))
        });
        if old_running {
            self.rollout_status(new);
            return Ok(());
        }
        if new.is_none() {
            new = self.find_new(true).await?;
        }
        if let Some(i) = new
            && self.scale_to(i, replicas(&self.d)).await?
        {
            self.rollout_status(new);
            return Ok(());
        }
        if status::complete(&self.d, &self.old_status) {
            self.cleanup(new, pods).await?;
        }
        self.rollout_status(new);
        Ok(())
    }

    /// kube's `cleanupDeployment`: delete the oldest old ReplicaSets beyond `revisionHistoryLimit` that
    /// run nothing.
    pub(super) async fn cleanup(&mut self, new: Option<usize>, pods: &PodOwners) -> ApiResult<()> {
        let Some(limit) = int_at(&self.d, "/spec/revisionHistoryLimit") else {
            return Ok(());
        };
        let mut cleanable: Vec<Value> = self
            .olds(new)
            .into_iter()
            .map(|i| self.sets[i].clone())
            .filter(|rs| {
                rs.pointer("/metadata/deletionTimestamp")
                    .is_none_or(Value::is_null)
            })
            .collect();
        let diff = cleanable.len() as i64 - limit.max(0);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(rollout::by_revision);
        let def = by_kind(Kind::ReplicaSet);
        for rs in cleanable.iter().take(diff as usize) {
            let generation = int_at(rs, "/metadata/generation").unwrap_or(0);
            if rollout::status_replicas(rs) != 0
                || replicas(rs) != 0
                || generation > int_at(rs, "/status/observedGeneration").unwrap_or(0)
                || pods.any.contains(str_at(rs, "/metadata/uid"))
            {
                continue;
            }
            let opts = DeleteOpts {
                uid: Some(str_at(rs, "/metadata/uid").to_string()),
                ..DeleteOpts::default()
            };
            let name = str_at(rs, "/metadata/name");
            match self
                .api
                .delete(def, Some(&self.ns()), name, &opts, false)
                .await
            {
                Ok(gone) => owners::note_write(&mut self.out.rs_write, &gone),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
