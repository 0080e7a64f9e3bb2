//! One SwarmSecret or SwarmConfig pass: read the source, name the content `<name>-<hash>`, plan,
//! create that version when missing, remove old versions no service uses, report the rest.

use std::collections::HashMap;

use kube::{ResourceExt, runtime::events::EventType};
use swarm_operator_crds::{
    conditions::{REASON_NAME_CONFLICT, REASON_RUNNING, REASON_SOURCE_MISSING},
    data::DataVersion,
};
use tracing::info;

use super::{DataResource, Facts, plan::plan, version_hash};
use crate::{
    conditions::Summary,
    context::Context,
    error::Error,
    labels::{owner_labels, ownership},
    pass::Outcome,
};

pub async fn converge<K: DataResource>(obj: &K, ctx: &Context) -> Result<Outcome<Facts>, Error> {
    let content = match obj.content(&ctx.client).await? {
        Ok(content) => content,
        Err(missing) => {
            return Ok(Outcome {
                summary: Summary::Stalled {
                    reason: REASON_SOURCE_MISSING,
                    message: missing,
                },
                facts: Facts::before(obj),
                requeue: ctx.settings.resync_interval,
            });
        }
    };
    let uid = obj.uid().unwrap_or_default();
    let name = format!("{}-{}", obj.name_any(), version_hash(&uid, &content));
    let engine = ctx.engine_for(obj).await?;
    let owned = engine.owned_data(K::KIND, &obj.uid().unwrap_or_default()).await?;
    // Older versions stay while services use them (they roll over at their own pace) and go after.
    // The shared listing may be a second old: a version is removed only when no service uses it now.
    let mut users = HashMap::new();
    for (id, _) in owned.iter().filter(|(_, n)| *n != name) {
        let mut using = engine.services_using_data(K::KIND, id, false).await?;
        if using.is_empty() {
            using = engine.services_using_data(K::KIND, id, true).await?;
        }
        users.insert(id.clone(), using);
    }
    let plan = plan(&name, &owned, &users);
    let word = K::KIND.word();
    let id = match &plan.create {
        Some(name) => {
            let mut labels: HashMap<String, String> = obj.labels().clone().into_iter().collect();
            labels.extend(owner_labels(obj));
            let id = match engine.create_data(K::KIND, name, &content, labels).await {
                Ok(id) => id,
                // Swarm names are global in a swarm: someone else holds this one.
                Err(e) if e.is_conflict() => {
                    let labels = engine.data_labels(K::KIND, name).await?;
                    let holder = ownership(obj, labels.as_ref()).holder(&K::kind(&()));
                    let message = format!(
                        "a Swarm {word} named {name} already exists and belongs to {holder}; it is left untouched. \
                         Remove it or rename this resource"
                    );
                    return Ok(Outcome {
                        summary: Summary::Stalled {
                            reason: REASON_NAME_CONFLICT,
                            message,
                        },
                        facts: Facts::before(obj),
                        requeue: ctx.settings.resync_interval,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            info!(swarm_object = %name, %id, "created new version");
            let note = format!("Created {word} version {name} ({id})");
            ctx.publish(obj, EventType::Normal, "VersionCreated", "Create", note)
                .await;
            id
        }
        None => owned
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_default(),
    };
    for (old_id, old_name) in &plan.remove {
        engine.remove_data(K::KIND, old_id, old_name).await?;
        info!(swarm_object = %old_name, "removed unused old version");
        let note = format!("Removed old {word} version {old_name}; no service uses it");
        ctx.publish(obj, EventType::Normal, "VersionRemoved", "Delete", note)
            .await;
    }
    let current = DataVersion {
        swarm_name: name.clone(),
        swarm_id: id.clone(),
        services: engine.services_using_data(K::KIND, &id, false).await?,
    };
    let old = plan.keep.len();
    let message = if old == 0 {
        format!("current version {name}")
    } else {
        format!("current version {name}; {old} older version(s) still in use")
    };
    // Look again soon while old versions wait for their services to roll over.
    let requeue = if old > 0 {
        ctx.settings.progress_interval * 2
    } else {
        ctx.settings.resync_interval
    };
    Ok(Outcome {
        summary: Summary::Ready {
            reason: REASON_RUNNING,
            message,
        },
        facts: Facts {
            current: Some((name, id)),
            versions: std::iter::once(current).chain(plan.keep).collect(),
        },
        requeue,
    })
}
