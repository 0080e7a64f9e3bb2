//! The operator's own metrics, in Prometheus text format on /metrics, with /healthz and /readyz.
//! What they answer at rest is the point: reads may tick, Engine writes and status writes must not.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tracing::{info, warn};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineCallLabels {
    pub operation: &'static str,
    /// read or write
    pub access: &'static str,
    pub result: &'static str,
}

pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_seconds: Family<KindLabels, Histogram>,
    pub engine_calls: Family<EngineCallLabels, Counter>,
    pub status_writes: Family<KindLabels, Counter>,
    pub drift_corrections: Family<KindLabels, Counter>,
    pub endpoint_switches: Family<ClusterLabels, Counter>,
    pub engine_events: Family<ResultLabels, Counter>,
    pub leader: Gauge,
    pub kubernetes_writes: Family<MethodLabels, Counter>,
    pub writes_refused: Family<TargetLabels, Counter>,
    pub engine_throttled_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    pub reconciles_in_flight: Family<KindLabels, Gauge>,
    pub reconcile_queue_depth: Family<KindLabels, Gauge>,
    pub reconcile_queue_scheduled: Family<KindLabels, Gauge>,
    /// What /readyz answers: clients connected, controllers started.
    ready: AtomicBool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// kubernetes or engine
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("swarm_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconcile passes by kind and outcome",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            reconcile_seconds.clone(),
        );
        let engine_calls = Family::<EngineCallLabels, Counter>::default();
        registry.register(
            "engine_api_calls",
            "Docker Engine API calls by operation and result",
            engine_calls.clone(),
        );
        let status_writes = Family::<KindLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status writes to the Kubernetes API",
            status_writes.clone(),
        );
        let drift_corrections = Family::<KindLabels, Counter>::default();
        registry.register(
            "drift_corrections",
            "Out-of-band changes reverted",
            drift_corrections.clone(),
        );
        let endpoint_switches = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "endpoint_switches",
            "Times a cluster's connection took a manager endpoint other than the one it had",
            endpoint_switches.clone(),
        );
        let engine_events = Family::<ResultLabels, Counter>::default();
        registry.register(
            "engine_events",
            "Swarm events received from the managers' event streams",
            engine_events.clone(),
        );
        let engine_throttled_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "engine_throttled_seconds",
            "Time Engine API calls waited for the --engine-qps bound",
            engine_throttled_seconds.clone(),
        );
        let reconciles_in_flight = Family::<KindLabels, Gauge>::default();
        registry.register(
            "reconciles_in_flight",
            "Reconcile passes running now, by kind (at most --concurrency each)",
            reconciles_in_flight.clone(),
        );
        let reconcile_queue_depth = Family::<KindLabels, Gauge>::default();
        registry.register(
            "reconcile_queue_depth",
            "Reconcile requests due and not yet started, by kind: waiting for a free --concurrency slot or for the object's running pass",
            reconcile_queue_depth.clone(),
        );
        let reconcile_queue_scheduled = Family::<KindLabels, Gauge>::default();
        registry.register(
            "reconcile_queue_scheduled",
            "Reconcile requests due later, by kind: resync, progress checks and backoff",
            reconcile_queue_scheduled.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without leader election)",
            leader.clone(),
        );
        let kubernetes_writes = Family::<MethodLabels, Counter>::default();
        registry.register(
            "kubernetes_writes",
            "Requests that change something sent to the Kubernetes API by the controllers (the leader lease's own aside), by HTTP method",
            kubernetes_writes.clone(),
        );
        let writes_refused = Family::<TargetLabels, Counter>::default();
        registry.register(
            "writes_refused",
            "Writes not sent because this replica no longer knew itself leader (its lease unrenewed past the renew deadline)",
            writes_refused.clone(),
        );
        Metrics {
            kubernetes_writes,
            writes_refused,
            ready: AtomicBool::new(false),
            registry,
            engine_throttled_seconds,
            reconciles_in_flight,
            reconcile_queue_depth,
            reconcile_queue_scheduled,
            leader,
            engine_events,
            endpoint_switches,
            reconciles,
            reconcile_seconds,
            engine_calls,
            status_writes,
            drift_corrections,
        }
    }

    pub fn engine_call(&self, operation: &'static str, write: bool, ok: bool) {
        let labels = EngineCallLabels {
            operation,
            access: if write { "write" } else { "read" },
            result: if ok { "ok" } else { "error" },
        };
        self.engine_calls.get_or_create(&labels).inc();
    }

    /// Counts one reconcile pass of `kind` that started at `start`.
    pub fn reconciled(&self, kind: &str, start: Instant, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_string(),
                outcome,
            })
            .inc();
        let seconds = start.elapsed().as_secs_f64();
        self.reconcile_seconds
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .observe(seconds);
    }

    pub fn status_written(&self, kind: &str) {
        self.status_writes
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn drift_corrected(&self, kind: &str) {
        self.drift_corrections
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn engine_throttled(&self, waited: std::time::Duration) {
        self.engine_throttled_seconds.inc_by(waited.as_secs_f64());
    }

    /// Counts a pass of `kind` as running until the guard drops.
    pub fn in_flight(&self, kind: &str) -> InFlight {
        let gauge = self
            .reconciles_in_flight
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    pub fn kubernetes_write(&self, method: &str) {
        self.kubernetes_writes
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .inc();
    }

    pub fn write_refused(&self, to: &'static str) {
        self.writes_refused.get_or_create(&TargetLabels { to }).inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn engine_event(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.engine_events.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn failover(&self, cluster: &str) {
        self.endpoint_switches
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .inc();
    }

    /// Marks the operator ready (/readyz answers 200).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The text /metrics answers, with the queue depths of `queues` as they are now.
    pub fn render(&self, queues: &crate::queue::Queues) -> String {
        for (kind, due, later) in queues.depths() {
            let kind = KindLabels { kind };
            self.reconcile_queue_depth.get_or_create(&kind).set(due as i64);
            self.reconcile_queue_scheduled
                .get_or_create(&kind)
                .set(later as i64);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// How long requests may wait with no pass starting before /healthz fails (and a liveness probe
/// restarts the operator): longer than any pass takes, Engine calls time out in 30 s.
pub const WEDGED_AFTER: std::time::Duration = std::time::Duration::from_secs(180);

/// Serves /metrics, /healthz (failing when the controllers are wedged) and /readyz on `addr`
/// until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    queues: Arc<crate::queue::Queues>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    loop {
        let (stream, _) = listener.accept().await?;
        let (metrics, queues) = (metrics.clone(), queues.clone());
        tokio::spawn(async move {
            let service = service_fn(|req: Request<hyper::body::Incoming>| {
                let (metrics, queues) = (metrics.clone(), queues.clone());
                async move {
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (200, metrics.render(&queues)),
                        "/healthz" => match queues.wedged(std::time::Instant::now(), WEDGED_AFTER) {
                            None => (200, "ok\n".to_string()),
                            Some(why) => (500, format!("{why}\n")),
                        },
                        "/readyz" if metrics.is_ready() => (200, "ready\n".to_string()),
                        "/readyz" => (503, "starting\n".to_string()),
                        _ => (404, "not found\n".to_string()),
                    };
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
                    Ok::<_, Infallible>(response)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                warn!(error = %e, "metrics connection");
            }
        });
    }
}
