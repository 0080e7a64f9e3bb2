//! `kubectl swarm`: day-two commands for swarm-operator's resources, with the caller's own
//! Kubernetes identity (kubeconfig) and nothing of the swarm's: `ps` (tasks, as `docker service
//! ps`), `history` and `rollback` (the specs the operator wrote, as `kubectl rollout`), and
//! `drain`, `cordon`, `uncordon` (a SwarmNode's availability, as `kubectl drain` and friends),
//! and `logs` (through the operator's aggregated logs API, with the caller's permission).

mod show;

use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::{api::apps::v1::ControllerRevision, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use swarm_operator_crds::{
    SwarmNode, SwarmService,
    service::history::{HISTORY_OF, spec_of},
};

#[derive(Parser)]
#[command(
    name = "kubectl swarm",
    version,
    about = "Day two for swarm-operator's SwarmServices, from kubectl"
)]
struct Cli {
    /// The namespace; the kubeconfig context's when not given.
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand)]
enum Command {
    /// The tasks of a SwarmService, as `docker service ps` lists them (with their errors).
    Ps {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// The specs the operator wrote to the swarm, one revision per generation (the last 10).
    History {
        name: String,
        /// Show this revision's whole spec.
        #[arg(long)]
        revision: Option<i64>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// The logs of a SwarmService's tasks, as `docker service logs` shows them, through the API
    /// server (you need `get` on `swarmservices/log` in API group logs.swarmoperator.io, not the
    /// swarm's keys). With -l or --stack, of every SwarmService they select.
    Logs {
        /// The SwarmService; or use -l / --stack.
        #[arg(required_unless_present_any = ["selector", "stack"])]
        name: Option<String>,
        /// Keep following: new lines, and the tasks that replace others.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines of each task.
        #[arg(long)]
        tail: Option<u64>,
        /// Only lines newer than this: 30s, 10m, 2h, 1h30m.
        #[arg(long)]
        since: Option<String>,
        /// Each line's time, as the Engine recorded it.
        #[arg(long)]
        timestamps: bool,
        /// Only the tasks of this slot (replicated services).
        #[arg(long)]
        task: Option<i64>,
        /// The SwarmServices with these labels.
        #[arg(short = 'l', long, conflicts_with = "name")]
        selector: Option<String>,
        /// The services of this SwarmStack.
        #[arg(long, conflicts_with_all = ["name", "selector"])]
        stack: Option<String>,
    },
    /// Drains a SwarmNode (`docker node update --availability drain`): its tasks move elsewhere.
    Drain { node: String },
    /// Pauses a SwarmNode: it keeps its tasks and takes no new ones (`--availability pause`).
    Cordon { node: String },
    /// Makes a SwarmNode active again (`--availability active`).
    Uncordon { node: String },
    /// Writes an earlier spec back to the SwarmService, as a new generation (`kubectl rollout
    /// undo`). Under GitOps, revert the commit instead: the next sync would undo this.
    Rollback {
        name: String,
        /// The revision to go back to; the one before the current generation when not given.
        #[arg(long)]
        to_revision: Option<i64>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("kubeconfig: {e}"))?;
    let namespace = cli.namespace.unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    let services: Api<SwarmService> = Api::namespaced(client.clone(), &namespace);
    let get = |name: String| {
        let services = services.clone();
        let namespace = namespace.clone();
        async move {
            services
                .get_opt(&name)
                .await
                .map_err(said)?
                .ok_or_else(|| format!("SwarmService {name} not found in namespace {namespace}"))
        }
    };
    match cli.command {
        Command::Ps { name, output } => {
            let svc = get(name).await?;
            let tasks = svc.status.clone().unwrap_or_default().tasks;
            print(output, &tasks, || show::tasks(&svc, Timestamp::now()))
        }
        Command::History {
            name,
            revision,
            output,
        } => {
            let svc = get(name.clone()).await?;
            of_no_stack(&svc)?;
            let revisions = revisions(&client, &namespace, &svc).await?;
            let written = svc.status.as_ref().and_then(|s| s.written_generation);
            match revision {
                Some(n) => {
                    let found = revisions.iter().find(|r| r.revision == n);
                    let spec = found
                        .and_then(spec_of)
                        .ok_or_else(|| format!("SwarmService {name} has no revision {n}"))?;
                    let output = if matches!(output, Output::Table) {
                        Output::Yaml
                    } else {
                        output
                    };
                    print(output, &spec, String::new)
                }
                None => {
                    let listed: Vec<serde_json::Value> = revisions
                        .iter()
                        .map(|r| serde_json::json!({"revision": r.revision, "spec": r.data.as_ref().map(|d| &d.0)}))
                        .collect();
                    print(output, &listed, || show::history(&revisions, written))
                }
            }
        }
        Command::Logs {
            name,
            follow,
            tail,
            since,
            timestamps,
            task,
            selector,
            stack,
        } => {
            let since = since.as_deref().map(seconds).transpose()?;
            let mut query = vec![format!("follow={follow}"), format!("timestamps={timestamps}")];
            query.extend(tail.map(|n| format!("tailLines={n}")));
            query.extend(since.map(|s| format!("sinceSeconds={s}")));
            query.extend(task.map(|t| format!("task={t}")));
            let names = match (name, selector, stack) {
                (Some(name), _, _) => vec![name],
                (None, selector, stack) => {
                    let selector = stack
                        .map(|s| format!("swarmoperator.io/stack={s}"))
                        .or(selector)
                        .unwrap_or_default();
                    let listed = services
                        .list(&ListParams::default().labels(&selector))
                        .await
                        .map_err(said)?;
                    let names: Vec<String> = listed.items.iter().map(|s| s.name_any()).collect();
                    if names.is_empty() {
                        return Err(format!(
                            "no SwarmService matches {selector} in namespace {namespace}"
                        ));
                    }
                    names
                }
            };
            let streams = names.into_iter().map(|name| {
                let path = format!(
                    "/apis/logs.swarmoperator.io/v1alpha1/namespaces/{namespace}/swarmservices/{name}/log?{}",
                    query.join("&")
                );
                logs(client.clone(), path)
            });
            for outcome in futures::future::join_all(streams).await {
                outcome?;
            }
            Ok(())
        }
        Command::Drain { node } => availability(&client, &node, "Drain", "drained").await,
        Command::Cordon { node } => availability(&client, &node, "Pause", "cordoned").await,
        Command::Uncordon { node } => availability(&client, &node, "Active", "uncordoned").await,
        Command::Rollback { name, to_revision } => {
            let svc = get(name.clone()).await?;
            of_no_stack(&svc)?;
            let revisions = revisions(&client, &namespace, &svc).await?;
            let target = show::rollback_target(&svc, &revisions, to_revision)?;
            let spec = target.data.as_ref().map(|d| d.0.clone()).unwrap_or_default();
            // Only over the generation read: a change made meanwhile is not overwritten blindly.
            let patch = serde_json::json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": svc.resource_version()},
                {"op": "replace", "path": "/spec", "value": spec},
            ]);
            let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|e| e.to_string())?;
            let params = PatchParams {
                field_manager: Some("kubectl-swarm".into()),
                ..Default::default()
            };
            let written = services
                .patch(&name, &params, &Patch::<()>::Json(patch))
                .await
                .map_err(said)?;
            println!(
                "swarmservice.swarmoperator.io/{name} rolled back to revision {} (generation {})",
                target.revision,
                written.metadata.generation.unwrap_or_default()
            );
            Ok(())
        }
    }
}

/// Prints the lines of one logs request as they come.
async fn logs(client: Client, path: String) -> Result<(), String> {
    use futures::{AsyncBufReadExt, TryStreamExt};
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let body = client.request_stream(request).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 404 && !status.message.starts_with("SwarmService") => {
            "logs are not served here: the APIService v1alpha1.logs.swarmoperator.io is missing \
             (helm upgrade ... --set logs.enabled=true)"
                .to_string()
        }
        other => said(other),
    })?;
    let mut lines = body.lines();
    while let Some(line) = lines.try_next().await.map_err(|e| e.to_string())? {
        println!("{line}");
    }
    Ok(())
}

/// `30s`, `10m`, `2h`, `1h30m`, `1d` in seconds.
fn seconds(text: &str) -> Result<i64, String> {
    let bad = || format!("--since {text:?}: expected a duration such as 30s, 10m, 2h or 1h30m");
    let (mut total, mut number) = (0i64, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        total += number.parse::<i64>().map_err(|_| bad())? * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// Sets `spec.availability` of SwarmNode `name` (cluster-scoped); the operator carries it out.
async fn availability(client: &Client, name: &str, value: &str, done: &str) -> Result<(), String> {
    let nodes: Api<SwarmNode> = Api::all(client.clone());
    if nodes.get_opt(name).await.map_err(said)?.is_none() {
        return Err(format!("SwarmNode {name} not found (kubectl get swarmnodes)"));
    }
    let patch = serde_json::json!({"spec": {"availability": value}});
    let params = PatchParams {
        field_manager: Some("kubectl-swarm".into()),
        ..Default::default()
    };
    nodes
        .patch(name, &params, &Patch::Merge(patch))
        .await
        .map_err(said)?;
    println!("swarmnode.swarmoperator.io/{name} {done}");
    Ok(())
}

/// The revisions kept of `svc`, oldest first.
/// A stack's service has no history of its own: its spec is the stack file's, and the stack
/// would put back a spec rolled back by hand.
fn of_no_stack(svc: &SwarmService) -> Result<(), String> {
    match swarm_operator_crds::service::history::stack_of(svc) {
        Some(stack) => Err(format!(
            "SwarmService {} belongs to SwarmStack {stack}: its spec is the stack file's; change the stack (or its variables) to roll it back",
            svc.name_any()
        )),
        None => Ok(()),
    }
}

async fn revisions(
    client: &Client,
    namespace: &str,
    svc: &SwarmService,
) -> Result<Vec<ControllerRevision>, String> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{HISTORY_OF}={}", svc.uid().unwrap_or_default());
    let mut found = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(said)?
        .items;
    found.sort_by_key(|r| r.revision);
    Ok(found)
}

fn print<T: serde::Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<(), String> {
    let text = match output {
        Output::Table => table(),
        Output::Json => serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n",
        Output::Yaml => serde_yaml_ng::to_string(value).map_err(|e| e.to_string())?,
    };
    print!("{text}");
    Ok(())
}

/// The API server's own words, on one line.
fn said(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_reads_go_style_durations() {
        assert_eq!(super::seconds("30s"), Ok(30));
        assert_eq!(super::seconds("1h30m"), Ok(5400));
        assert_eq!(super::seconds("2d"), Ok(172_800));
        for bad in ["10", "m", "1x", ""] {
            assert!(super::seconds(bad).is_err(), "{bad}");
        }
    }
}
