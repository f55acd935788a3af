//! containerd's event stream as the agent's evented PLEG: task exits and OOM kills, filtered by namespace.

use std::time::Duration;

use containerd_client::events::{TaskExit, TaskOom};
use containerd_client::services::v1::SubscribeRequest;
use containerd_client::services::v1::events_client::EventsClient;
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;

use super::{Runtime, timestamp};

#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    /// The init process of a task exited.
    Exit {
        container_id: String,
        exit_status: u32,
        exited_at: Option<jiff::Timestamp>,
    },
    Oom {
        container_id: String,
    },
    /// The stream is being (re)subscribed: events may have been missed, relist.
    Resync,
}

pub fn filters(namespace: &str) -> Vec<String> {
    ["/tasks/exit", "/tasks/oom"]
        .iter()
        .map(|topic| format!("namespace=={namespace},topic==\"{topic}\""))
        .collect()
}

/// Decode one envelope's payload; `None` for topics the agent does not follow or undecodable payloads.
pub fn decode(topic: &str, payload: &prost_types::Any) -> Option<RuntimeEvent> {
    match topic {
        "/tasks/exit" => {
            let e = TaskExit::decode(payload.value.as_slice()).ok()?;
            // Exits of exec'd processes carry their exec id; only the init process ends the container.
            if !e.id.is_empty() && e.id != e.container_id {
                return None;
            }
            Some(RuntimeEvent::Exit {
                container_id: e.container_id,
                exit_status: e.exit_status,
                exited_at: timestamp(e.exited_at.as_ref()),
            })
        }
        "/tasks/oom" => {
            let e = TaskOom::decode(payload.value.as_slice()).ok()?;
            Some(RuntimeEvent::Oom {
                container_id: e.container_id,
            })
        }
        _ => None,
    }
}

/// Follow the event stream forever, reconnecting with a short back-off.
pub fn spawn(
    runtime: Runtime,
    tx: mpsc::UnboundedSender<RuntimeEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            let req = SubscribeRequest {
                filters: filters(runtime.cd.namespace()),
            };
            // containerd sends the response headers only with the first event, so the call below may
            // wait until something happens: announce the (re)subscription first.
            if tx.send(RuntimeEvent::Resync).is_err() {
                return;
            }
            match EventsClient::new(runtime.cd.channel())
                .subscribe(tonic::Request::new(req))
                .await
            {
                Ok(resp) => {
                    delay = Duration::from_millis(200);
                    let mut stream = resp.into_inner();
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(env) => {
                                let Some(payload) = env.event.as_ref() else {
                                    continue;
                                };
                                if let Some(ev) = decode(&env.topic, payload)
                                    && tx.send(ev).is_err()
                                {
                                    return;
                                }
                            }
                            Err(s) => {
                                tracing::warn!(error = %s, "containerd event stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(s) => tracing::warn!(error = %s, "cannot subscribe to containerd events"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_syntax() {
        assert_eq!(
            filters("skiff")[0],
            "namespace==skiff,topic==\"/tasks/exit\""
        );
    }

    #[test]
    fn decodes_exit() {
        let e = TaskExit {
            container_id: "c1".into(),
            id: "c1".into(),
            pid: 7,
            exit_status: 3,
            exited_at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 5,
            }),
        };
        let any = prost_types::Any {
            type_url: "containerd.events.TaskExit".into(),
            value: e.encode_to_vec(),
        };
        match decode("/tasks/exit", &any) {
            Some(RuntimeEvent::Exit {
                container_id,
                exit_status,
                exited_at,
            }) => {
                assert_eq!(container_id, "c1");
                assert_eq!(exit_status, 3);
                assert!(exited_at.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
        let exec = TaskExit {
            id: "exec-1".into(),
            ..e
        };
        let any = prost_types::Any {
            type_url: String::new(),
            value: exec.encode_to_vec(),
        };
        assert!(decode("/tasks/exit", &any).is_none());
        assert!(
            decode(
                "/tasks/exit",
                &prost_types::Any {
                    type_url: String::new(),
                    value: vec![0xff, 0xff]
                }
            )
            .is_none()
        );
        assert!(decode("/tasks/create", &any).is_none());
    }
}
