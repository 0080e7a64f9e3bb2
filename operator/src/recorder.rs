//! Kubernetes events, counted as a series only when they say the same thing. kube's `Recorder`
//! folds every event of one reason on one object within six minutes into the first one, keeping
//! the first note: a second refusal for another field would show the first field's message, and
//! `Updated ...: Image` would read `Updated ...: Replicas`. Here the note is part of what makes two
//! events the same.

use std::{sync::Mutex, time::Duration};

use crate::expiring::Expiring;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent, events::v1::EventSeries},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType},
};

/// How long a published event is counted again rather than published anew (kube's and client-go's).
const SERIES_FOR: Duration = Duration::from_secs(6 * 60);

/// What makes two events one series: the object, the type, reason, action, and the note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    uid: Option<String>,
    namespace: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    warning: bool,
    reason: String,
    action: String,
    note: Option<String>,
}

pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<Expiring<Key, Series>>,
}

/// What is kept of a published event to count it again: its name and how many it stands for
/// (not the whole Event: a deletion of 1000 objects publishes 1000 of them).
#[derive(Clone, Debug)]
struct Series {
    name: String,
    count: i32,
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Recorder {
        Recorder {
            client,
            controller: controller.into(),
            instance: instance.unwrap_or_else(|| controller.into()),
            published: Mutex::new(Expiring::new(SERIES_FOR)),
        }
    }

    /// Publishes `ev` on `regarding`: a new Event, or one more of the same series.
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let key = Key {
            uid: regarding.uid.clone(),
            namespace: regarding.namespace.clone(),
            kind: regarding.kind.clone(),
            name: regarding.name.clone(),
            warning: matches!(ev.type_, EventType::Warning),
            reason: ev.reason.clone(),
            action: ev.action.clone(),
            note: ev.note.clone(),
        };
        let earlier = {
            let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
            published.get(&key).cloned()
        };
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let series = match earlier {
            Some(Series { name, count }) => {
                // As client-go does: a patch of the series alone.
                let count = count + 1;
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let patch = serde_json::json!({ "series": series });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Series { name, count }
            }
            None => {
                let event = self.new_event(ev, regarding, now);
                let created = api.create(&PostParams::default(), &event).await?;
                Series {
                    name: created.name_any(),
                    count: 1,
                }
            }
        };
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, series);
        Ok(())
    }

    fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: ev.note.as_deref().map(fit_note),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(match ev.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            related: ev.secondary.clone(),
            ..Default::default()
        }
    }
}

/// The API server refuses an Event whose note is longer than 1024 bytes, and the Warning would be
/// lost: a longer note (a stack file with many mistakes) is cut at a character boundary, ending in
/// an ellipsis. The condition keeps the whole message.
const NOTE_LIMIT: usize = 1024;

fn fit_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    const MORE: &str = "…";
    let mut end = NOTE_LIMIT - MORE.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_fits_the_api_servers_limit_in_whole_characters() {
        assert_eq!(fit_note("short"), "short");
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(fit_note(&exact), exact);
        let long = "é".repeat(NOTE_LIMIT);
        let fitted = fit_note(&long);
        assert!(fitted.len() <= NOTE_LIMIT, "{}", fitted.len());
        assert!(fitted.ends_with('…'));
        assert!(fitted.trim_end_matches('…').chars().all(|c| c == 'é'));
        assert_eq!(fit_note(&"y".repeat(5000)).len(), NOTE_LIMIT);
    }
}
