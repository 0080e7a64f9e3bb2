//! The swarm-operator binary: flags, logging, connections, then the controllers until a signal.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use swarm_operator::{
    Context, Settings, cluster,
    connections::{self, Clusters},
    data,
    leader::{LeaderElection, Leadership, Timing, WriteGate},
    logs,
    metrics::Metrics,
    network, node,
    queue::Queues,
    service, stack,
    swarm::EngineCalls,
};
use swarm_operator_crds::{SwarmCluster, SwarmConfig, SwarmSecret};
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(version, about = "Drives Docker Swarm clusters through the Kubernetes API")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Docker Engine of a Swarm manager for resources of cluster `default` while no SwarmCluster
    /// named `default` exists: unix:///var/run/docker.sock or tcp://host:2375.
    #[arg(long, env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    docker_host: String,
    /// Serve only the SwarmClusters with these labels (a label selector, e.g. `shard=a`), to
    /// split clusters between operator deployments.
    #[arg(long, env = "SWARM_OPERATOR_CLUSTER_SELECTOR")]
    cluster_selector: Option<String>,
    /// Seconds between safety-net re-checks of a converged resource.
    #[arg(long, env = "SWARM_OPERATOR_RESYNC_SECONDS", default_value_t = 60)]
    resync_seconds: u64,
    /// Watch only these namespaces, comma-separated or repeated (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// Reconciles running at once.
    #[arg(long, env = "SWARM_OPERATOR_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Engine API calls per second, at most, over all clusters (0: no bound).
    #[arg(long, env = "SWARM_OPERATOR_ENGINE_QPS", default_value_t = 1000)]
    engine_qps: u32,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "SWARM_OPERATOR_METRICS_ADDR", default_value = "127.0.0.1:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Take part in leader election on a Lease, so that of several replicas only one acts.
    #[arg(long, env = "SWARM_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "swarm-operator")]
    leader_election_id: String,
    /// Seconds a leader's lease lasts without renewal; a standby takes over after that. The leader
    /// stops acting two thirds of it after its last renewal began, and renews every 2/15 of it.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Let resources on the --docker-host engine (cluster `default` without a SwarmCluster) adopt
    /// Swarm services they did not make, with the annotation swarmoperator.io/adopt. Off: any
    /// namespace could otherwise take over a service made by hand. SwarmClusters say it themselves
    /// (spec.allowAdoption).
    #[arg(long, env = "SWARM_OPERATOR_ALLOW_ADOPTION", default_value_t = false)]
    allow_adoption: bool,
    /// Log format: text or json.
    #[arg(long, env = "SWARM_OPERATOR_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Serve SwarmServices' logs as the aggregated API logs.swarmoperator.io/v1alpha1 on this
    /// address (HTTPS, behind the API server's front proxy), for `kubectl swarm logs`. Off when
    /// unset; needs --logs-tls-cert and --logs-tls-key.
    #[arg(long, env = "SWARM_OPERATOR_LOGS_ADDR", requires_all = ["logs_tls_cert", "logs_tls_key"])]
    logs_addr: Option<std::net::SocketAddr>,
    /// The logs API's serving certificate (PEM), the one the APIService's caBundle trusts.
    #[arg(long, env = "SWARM_OPERATOR_LOGS_TLS_CERT")]
    logs_tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "SWARM_OPERATOR_LOGS_TLS_KEY")]
    logs_tls_key: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the SwarmStack that deploys a stack file (or, with --split, the SwarmServices,
    /// SwarmNetworks, SwarmSecrets and SwarmConfigs it makes) as YAML, compiled exactly as the
    /// controller compiles it.
    Convert {
        /// The stack file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// The stack's name (`docker stack deploy ... <name>`).
        #[arg(long)]
        name: String,
        /// Namespace of the printed resources.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// A variable of the file, KEY=value; repeatable.
        #[arg(long = "set")]
        set: Vec<String>,
        /// Where a file-based secret or config comes from:
        /// NAME=secret:<secret>/<key> or NAME=configmap:<configmap>/<key>; repeatable.
        #[arg(long = "source")]
        sources: Vec<String>,
        /// Print the child resources instead of the SwarmStack.
        #[arg(long)]
        split: bool,
        /// Compare the children with those in the cluster (KUBECONFIG) and print what applying
        /// the file would change, as `kubectl diff` does; exit status 1 when something would.
        #[arg(long, conflicts_with = "split")]
        diff: bool,
    },
}

/// `swarm-operator convert`.
async fn convert(command: Command) -> ExitCode {
    let Command::Convert {
        file,
        name,
        namespace,
        set,
        sources,
        split,
        diff,
    } = command;
    let compose = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&file)
    };
    let compose = match compose {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let request = stack::cli::Request {
        compose,
        name,
        namespace,
        set,
        sources,
        split,
    };
    if diff {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot reach the API server: {e}");
                return ExitCode::from(2);
            }
        };
        return match stack::cli::diff(&request, client).await {
            Ok((text, changed)) => {
                print!("{text}");
                if changed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    match stack::cli::convert(&request) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    one_malloc_arena();
    run_main()
}

/// One glibc malloc arena, not one per thread: the heap is many small objects (stores,
/// listings, requests) made on one thread and freed on another, which per-thread arenas keep as
/// RSS about three times the live heap (measured at 2000 SwarmServices: 62 MiB for 21 MiB live;
/// one arena 47 MiB; mimalloc, tried too, 102 MiB). glibc reads MALLOC_ARENA_MAX when the process
/// starts, so a process started without it starts itself again with it (same PID, same
/// arguments). A value set by whoever starts it is kept.
fn one_malloc_arena() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(me)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "1")
        .exec();
    // Only reached when the exec failed: run on as started.
    eprintln!("could not restart with MALLOC_ARENA_MAX=1: {err}");
}

#[tokio::main]
async fn run_main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(command) = args.command.take() {
        return convert(command).await;
    }
    init_logging(&args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let metrics = Arc::new(Metrics::new());
    let queues = Arc::new(Queues::default());
    let leadership = if args.leader_elect {
        Leadership::elected()
    } else {
        Leadership::always()
    };
    let engine_calls = EngineCalls::new(args.engine_qps, metrics.clone(), leadership.clone());
    let config = kube::Config::infer().await?;
    // The controllers' client sends writes only while this replica leads; the election's own
    // client writes the Lease before it does.
    let client = swarm_operator::api_client::builder(&config)?
        .with_layer(&WriteGate::new(leadership.clone(), metrics.clone()))
        .build();
    let addr = args.metrics_addr;
    let (served_metrics, served_queues) = (metrics.clone(), queues.clone());
    tokio::spawn(async move {
        if let Err(e) = swarm_operator::metrics::serve(addr, served_metrics, served_queues).await {
            error!(%addr, "cannot serve metrics: {e}");
        }
    });
    metrics.set_ready();
    if let (Some(addr), Some(cert), Some(key)) = (
        args.logs_addr,
        args.logs_tls_cert.clone(),
        args.logs_tls_key.clone(),
    ) {
        let listen = logs::Listen { addr, cert, key };
        let fallback = (args.docker_host.clone(), args.allow_adoption);
        let selector = args.cluster_selector.clone().filter(|s| !s.is_empty());
        tokio::spawn(serve_logs(
            listen,
            config.clone(),
            engine_calls.clone(),
            selector,
            fallback,
        ));
    }
    info!(fallback_endpoint = %args.docker_host, "resources of cluster `default` use this engine while no SwarmCluster `default` exists");
    let election = match args.leader_elect {
        true => {
            // A pod keeps its name across container restarts, and takes its own lease back at once.
            // Without one, the host name and PID are not enough: two containers on the host's
            // network share the host name and are both PID 1. A random part tells them apart.
            let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
                use rand::Rng;
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "swarm-operator".into());
                let nonce: u32 = rand::rng().random();
                format!("{host}-{}-{nonce:08x}", std::process::id())
            });
            Some(LeaderElection::new(
                swarm_operator::api_client::client(&config)?,
                &args.leader_election_namespace,
                &args.leader_election_id,
                &identity,
                Timing::from_lease(Duration::from_secs(args.lease_duration_seconds)),
                leadership,
                metrics.clone(),
            ))
        }
        false => {
            metrics.set_leader(true);
            None
        }
    };
    let Some(election) = election else {
        term(&args, client, metrics, queues, engine_calls).await;
        info!("shut down");
        return Ok(());
    };
    // Terms of leadership: a replica that loses its lease drops everything the term started
    // (watches, queues, event streams) and stands by again, as a fresh standby would.
    loop {
        tokio::select! {
            _ = election.acquire() => {}
            // A standby asked to stop has nothing to finish.
            _ = shutdown_signal() => {
                info!("shut down while standing by");
                return Ok(());
            }
        }
        let work = term(
            &args,
            client.clone(),
            metrics.clone(),
            queues.clone(),
            engine_calls.clone(),
        );
        tokio::select! {
            _ = work => {
                election.release().await;
                info!("shut down");
                return Ok(());
            }
            lost = election.hold() => error!("{lost}; stopped acting and standing by again"),
        }
    }
}

/// One term of work: the controllers of every kind, and the swarm event streams they wake on,
/// until a shutdown signal (or until the caller drops it).
async fn term(
    args: &Args,
    client: kube::Client,
    metrics: Arc<Metrics>,
    queues: Arc<Queues>,
    engine_calls: Arc<EngineCalls>,
) {
    let (clusters_controller, store, ready) = cluster::controller(
        client.clone(),
        args.cluster_selector.as_deref().filter(|s| !s.is_empty()),
        queues.of::<SwarmCluster>(),
    );
    let clusters = Arc::new(Clusters::new(
        client.clone(),
        store,
        ready,
        &args.docker_host,
        args.allow_adoption,
        engine_calls,
    ));
    let settings = Settings {
        resync_interval: Duration::from_secs(args.resync_seconds),
        selected_clusters_only: args.cluster_selector.as_deref().is_some_and(|s| !s.is_empty()),
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(client, clusters, settings, metrics, queues));
    let scopes = watch_scopes(&args.namespace);
    // The reconciles allowed at once are shared by the namespaces' controllers.
    let concurrency = (args.concurrency / scopes.len() as u16).max(1);
    // Resources wait until the SwarmClusters are known, so none goes to the fallback engine by
    // mistake while a SwarmCluster `default` is still loading.
    let resources = async {
        ctx.clusters.wait_until_ready().await;
        // One set of controllers per watched namespace (or one over all): each with its own
        // watches and store, as the operator may read nothing outside them.
        futures::future::join_all(scopes.iter().map(|scope| {
            let (namespace, ctx) = (scope.as_deref(), ctx.clone());
            // The stacks read their services from the services' watch (see `share_services`).
            let (services, stack_services) = stack::controller::share_services();
            async move {
                tokio::join!(
                    service::run(ctx.clone(), namespace, concurrency, services),
                    network::run(ctx.clone(), namespace, concurrency),
                    data::run::<SwarmSecret>(ctx.clone(), namespace, concurrency),
                    data::run::<SwarmConfig>(ctx.clone(), namespace, concurrency),
                    stack::controller::run(ctx.clone(), namespace, concurrency, stack_services),
                )
            }
        }))
        .await
    };
    // The event streams end with the term: they are part of this future, not spawned.
    let events = connections::follow_all(ctx.clusters.clone(), ctx.events.clone());
    tokio::select! {
        _ = async {
            tokio::join!(
                cluster::run(clusters_controller, ctx.clone(), args.concurrency),
                async {
                    ctx.clusters.wait_until_ready().await;
                    node::run(ctx.clone(), args.concurrency).await
                },
                resources
            )
        } => {}
        () = events => {}
    }
}

/// The logs API (--logs-addr), on every replica, a standby too: the Service in front of the
/// replicas routes to any. It reads through a client and a SwarmCluster registry of its own; its
/// SubjectAccessReviews are no writes of the leader's, so they bypass the write gate.
async fn serve_logs(
    listen: logs::Listen,
    config: kube::Config,
    engine_calls: Arc<EngineCalls>,
    selector: Option<String>,
    (fallback_endpoint, fallback_adoption): (String, bool),
) {
    let client = match swarm_operator::api_client::client(&config) {
        Ok(client) => client,
        Err(e) => return error!(error = %e, "logs API: no Kubernetes client"),
    };
    let (store, ready, filling) = cluster::watched(client.clone(), selector.as_deref());
    let clusters = Arc::new(Clusters::new(
        client.clone(),
        store,
        ready,
        &fallback_endpoint,
        fallback_adoption,
        engine_calls,
    ));
    tokio::select! {
        () = filling => {}
        served = logs::serve(listen, clusters, client) => if let Err(e) = served {
            error!(error = %e, "logs API not served");
        }
    }
}

/// The namespaces to watch, each once, from `--namespace a,b`; `[None]` (all namespaces) when none
/// is named. Empty entries (a stack file's `${WATCH_NAMESPACE:-}`) name nothing.
fn watch_scopes(flags: &[String]) -> Vec<Option<String>> {
    let mut named: Vec<Option<String>> = Vec::new();
    for ns in flags.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !named.iter().any(|n| n.as_deref() == Some(ns)) {
            named.push(Some(ns.to_string()));
        }
    }
    if named.is_empty() { vec![None] } else { named }
}

/// SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Libraries that write request and response bodies or headers at debug or trace level: secret
/// values (base64 in a create request), registry credentials (X-Registry-Auth) and Kubernetes
/// Secrets would reach the log. They log at info at most, whatever RUST_LOG asks.
const NEVER_VERBOSE: [&str; 7] = [
    "bollard",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "kube_client",
    "tower",
];

fn init_logging(format: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    for target in NEVER_VERBOSE {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init()
    } else {
        builder.init()
    }
}

#[cfg(test)]
mod tests {
    use super::watch_scopes;

    #[test]
    fn namespaces_to_watch() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(watch_scopes(&[]), vec![None]);
        assert_eq!(watch_scopes(&v(&[""])), vec![None], "${{WATCH_NAMESPACE:-}}");
        assert_eq!(
            watch_scopes(&v(&["a", " b", "", "a"])),
            vec![Some("a".to_string()), Some("b".to_string())]
        );
    }
}
