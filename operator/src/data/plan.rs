//! Which versions of a SwarmSecret or SwarmConfig to create and remove, decided from the name the
//! content gets and the versions the swarm holds with the services that use them (pure).

use std::collections::HashMap;

use swarm_operator_crds::data::DataVersion;

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The content has no version yet: create it under this name.
    pub create: Option<String>,
    /// Old versions no service uses: remove them, as (ID, name).
    pub remove: Vec<(String, String)>,
    /// Old versions services still use: they stay until those roll over.
    pub keep: Vec<DataVersion>,
}

/// `current`: the name the content gets; `owned`: (ID, name) of every version the swarm holds;
/// `users`: by ID, the services that use each old version.
pub fn plan(current: &str, owned: &[(String, String)], users: &HashMap<String, Vec<String>>) -> Plan {
    let mut plan = Plan {
        create: (!owned.iter().any(|(_, name)| name == current)).then(|| current.to_string()),
        ..Plan::default()
    };
    for (id, name) in owned.iter().filter(|(_, name)| name != current) {
        match users.get(id).filter(|u| !u.is_empty()) {
            Some(services) => plan.keep.push(DataVersion {
                swarm_name: name.clone(),
                swarm_id: id.clone(),
                services: services.clone(),
            }),
            None => plan.remove.push((id.clone(), name.clone())),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(versions: &[&str]) -> Vec<(String, String)> {
        versions
            .iter()
            .map(|v| (format!("id-{v}"), format!("db-{v}")))
            .collect()
    }

    #[test]
    fn new_content_gets_a_version_and_an_existing_one_is_reused() {
        assert_eq!(plan("db-a", &[], &HashMap::new()).create.as_deref(), Some("db-a"));
        assert_eq!(plan("db-a", &owned(&["a"]), &HashMap::new()), Plan::default());
    }

    #[test]
    fn old_versions_go_once_no_service_uses_them() {
        let users = HashMap::from([
            ("id-b".to_string(), vec!["web".to_string()]),
            ("id-c".to_string(), vec![]),
        ]);
        let plan = plan("db-d", &owned(&["b", "c"]), &users);
        assert_eq!(plan.create.as_deref(), Some("db-d"));
        assert_eq!(plan.remove, [("id-c".to_string(), "db-c".to_string())]);
        assert_eq!(
            plan.keep,
            [DataVersion {
                swarm_name: "db-b".into(),
                swarm_id: "id-b".into(),
                services: vec!["web".into()]
            }]
        );
    }
}
