//! The etcd watch stream as the store's [`WatchStream`]: etcd's responses flattened into events, a compacted
//! start reported as [`StoreError::Compacted`], the end of the etcd stream as the end of ours.

use futures::StreamExt;

use super::{backend, pb};
use crate::store::{KeyValue, Revision, StoreError, StoreResult, WatchEvent, WatchStream};

/// Events of one etcd watch. `tx` is the request half: it stays open as long as the stream is read,
/// because etcd ends a watch whose client half closes.
pub(super) fn events(
    responses: tonic::Streaming<pb::WatchResponse>,
    tx: tokio::sync::mpsc::Sender<pb::WatchRequest>,
    strip: String,
    after: Revision,
) -> WatchStream {
    let events = futures::stream::unfold(Some((responses, strip, tx)), move |state| async move {
        let (mut responses, strip, tx) = state?;
        loop {
            let resp = match responses.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return None,
                Err(e) => return Some((vec![Err(backend(e))], None)),
            };
            if resp.compact_revision > 0 {
                let err = StoreError::Compacted {
                    requested: after,
                    compacted: resp.compact_revision - 1,
                };
                return Some((vec![Err(err)], None));
            }
            if resp.canceled {
                return None;
            }
            if resp.events.is_empty() {
                continue;
            }
            let items = resp
                .events
                .iter()
                .map(|ev| convert_event(ev, &strip))
                .collect::<Vec<_>>();
            return Some((items, Some((responses, strip, tx))));
        }
    })
    .flat_map(futures::stream::iter);
    Box::pin(events)
}

fn convert_event(ev: &pb::Event, strip: &str) -> StoreResult<WatchEvent> {
    let kv = ev
        .kv
        .as_ref()
        .ok_or_else(|| StoreError::Backend("etcd watch event without a key".into()))?;
    let kv = super::convert(kv, strip)?;
    let prev = ev
        .prev_kv
        .as_ref()
        .map(|p| super::convert(p, strip))
        .transpose()?;
    if ev.r#type == pb::event::EventType::Delete as i32 {
        // etcd's delete event carries the key and the deletion's revision; the value and the creation
        // revision come from the previous value.
        let (value, create_revision) = match prev {
            Some(p) => (p.value, p.create_revision),
            None => (Vec::new(), kv.create_revision),
        };
        return Ok(WatchEvent::Delete {
            kv: KeyValue {
                key: kv.key,
                value,
                create_revision,
                mod_revision: kv.mod_revision,
            },
        });
    }
    Ok(WatchEvent::Put {
        prev: prev.filter(|p| p.create_revision == kv.create_revision),
        kv,
    })
}
