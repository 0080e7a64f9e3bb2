//! A SwarmService's logs for `kubectl swarm logs`, served as an aggregated API
//! (`logs.swarmoperator.io/v1alpha1`, `GET .../namespaces/<ns>/swarmservices/<name>/log`), the way
//! metrics-server serves metrics: the API server authenticates the caller however the cluster
//! does (certificates, tokens, OIDC) and forwards the request over mutual TLS with the caller's
//! identity in request headers; only a client certificate of the API server's front proxy is
//! accepted here, and the caller must be allowed `get` on `swarmservices/log` in that group and
//! namespace (a SubjectAccessReview). The caller never holds the swarm's keys.
//!
//! ```text
//!  kubectl swarm logs ─► kube-apiserver (authn, authz) ─► APIService ─► here: front-proxy cert,
//!  SubjectAccessReview ─► the Engine's service logs (lines.rs: frames → `web.1.<task>@node | ...`)
//! ```

mod lines;

use std::{collections::HashMap, convert::Infallible, net::SocketAddr, path::PathBuf, sync::Arc};

use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Frame},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    core::v1::ConfigMap,
};
use kube::{Api, api::PostParams};
use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use swarm_operator_crds::SwarmService;
use tracing::{debug, info, warn};

use swarm_operator_crds::OnCluster;

use crate::{connections::Clusters, swarm::LogOptions};
use lines::{Frames, TaskPlace};

pub const GROUP: &str = "logs.swarmoperator.io";
pub const VERSION: &str = "v1alpha1";

/// Where the logs API listens, and its serving certificate.
#[derive(Clone, Debug)]
pub struct Listen {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the API server's front proxy says who the caller is (kube-system's
/// extension-apiserver-authentication ConfigMap, which the API server writes).
struct FrontProxy {
    ca: Vec<u8>,
    allowed_names: Vec<String>,
    user_headers: Vec<String>,
    group_headers: Vec<String>,
    extra_prefixes: Vec<String>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves the logs API until the task is dropped. Fails at once on a bad certificate or key.
/// Every replica serves it, leader or not: `clusters` is a registry of its own (reads only).
pub async fn serve(listen: Listen, clusters: Arc<Clusters>, client: kube::Client) -> Result<(), String> {
    let proxy = front_proxy(&client).await;
    let config = Arc::new(server_config(&listen, &proxy)?);
    let listener = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|e| format!("--logs-addr {}: {e}", listen.addr))?;
    info!(addr = %listen.addr, "serving the logs API ({GROUP}/{VERSION})");
    let state = Arc::new(State {
        clusters,
        client,
        proxy,
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => return debug!(%peer, error = %e, "logs API: TLS handshake refused"),
            };
            let name = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| common_name(c.as_ref()));
            if !state.proxy.allowed_names.is_empty()
                && !name
                    .as_ref()
                    .is_some_and(|n| state.proxy.allowed_names.contains(n))
            {
                return warn!(%peer, ?name, "logs API: a client certificate not in requestheader-allowed-names");
            }
            let service = service_fn(move |req| handle(req, state.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                debug!(%peer, error = %e, "logs API connection ended");
            }
        });
    }
}

/// The front proxy's settings, waited for: the API server publishes them once it is up.
async fn front_proxy(client: &kube::Client) -> FrontProxy {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    loop {
        match api.get_opt("extension-apiserver-authentication").await {
            Ok(Some(map)) => {
                let data = map.data.unwrap_or_default();
                let list = |key: &str, default: &[&str]| -> Vec<String> {
                    data.get(key)
                        .and_then(|v| serde_json::from_str(v).ok())
                        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
                };
                if let Some(ca) = data.get("requestheader-client-ca-file") {
                    return FrontProxy {
                        ca: ca.clone().into_bytes(),
                        allowed_names: list("requestheader-allowed-names", &[]),
                        user_headers: list("requestheader-username-headers", &["X-Remote-User"]),
                        group_headers: list("requestheader-group-headers", &["X-Remote-Group"]),
                        extra_prefixes: list("requestheader-extra-headers-prefix", &["X-Remote-Extra-"]),
                    };
                }
                warn!(
                    "the API server publishes no requestheader-client-ca-file: is the aggregation layer on?"
                );
            }
            Ok(None) => warn!("kube-system/extension-apiserver-authentication not found yet"),
            Err(e) => warn!(error = %e, "kube-system/extension-apiserver-authentication not readable"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

fn server_config(listen: &Listen, proxy: &FrontProxy) -> Result<ServerConfig, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let chain = CertificateDer::pem_slice_iter(&read(&listen.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--logs-tls-cert: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(&read(&listen.key)?).map_err(|e| format!("--logs-tls-key: {e}"))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&proxy.ca) {
        roots
            .add(ca.map_err(|e| format!("requestheader-client-ca-file: {e}"))?)
            .map_err(|e| format!("requestheader-client-ca-file: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("requestheader-client-ca-file: {e}"))?;
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("--logs-tls-cert/--logs-tls-key: {e}"))
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(name)
}

struct State {
    clusters: Arc<Clusters>,
    client: kube::Client,
    proxy: FrontProxy,
}

/// Who the API server says the caller is.
struct Caller {
    user: String,
    groups: Vec<String>,
    extra: std::collections::BTreeMap<String, Vec<String>>,
}

fn caller(req: &Request<hyper::body::Incoming>, proxy: &FrontProxy) -> Option<Caller> {
    let headers = req.headers();
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = proxy
        .user_headers
        .iter()
        .find_map(|h| values(h).into_iter().next())?;
    let groups = proxy.group_headers.iter().flat_map(|h| values(h)).collect();
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers {
        let name = name.as_str();
        for prefix in &proxy.extra_prefixes {
            if let Some(key) = name.strip_prefix(&prefix.to_ascii_lowercase())
                && let Ok(value) = value.to_str()
            {
                extra.entry(key.to_string()).or_default().push(value.to_string());
            }
        }
    }
    Some(Caller { user, groups, extra })
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().trim_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').collect();
    Ok(match parts.as_slice() {
        ["apis", GROUP] => json(StatusCode::OK, group()),
        ["apis", GROUP, VERSION] => json(StatusCode::OK, resources()),
        [
            "apis",
            GROUP,
            VERSION,
            "namespaces",
            namespace,
            "swarmservices",
            name,
            "log",
        ] => {
            let query = query(req.uri().query().unwrap_or_default());
            match caller(&req, &state.proxy) {
                None => status(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "no user given by the API server".into(),
                ),
                Some(caller) => log(&state, &caller, namespace, name, &query).await,
            }
        }
        _ => status(StatusCode::NOT_FOUND, "NotFound", format!("no such path /{path}")),
    })
}

fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn log(
    state: &State,
    caller: &Caller,
    namespace: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Response<Body> {
    match allowed(state, caller, namespace, name).await {
        Ok(true) => {}
        Ok(false) => {
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "swarmservices.{GROUP} \"{name}\" is forbidden: User \"{}\" cannot get resource \"swarmservices/log\" \
                     in API group \"{GROUP}\" in the namespace \"{namespace}\"",
                    caller.user
                ),
            );
        }
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e),
    }
    let services: Api<SwarmService> = Api::namespaced(state.client.clone(), namespace);
    let svc = match services.get_opt(name).await {
        Ok(Some(svc)) => svc,
        Ok(None) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("SwarmService {name} not found in namespace {namespace}"),
            );
        }
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()),
    };
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let number = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    let options = LogOptions {
        follow: flag("follow"),
        tail: number("tailLines").map(|n| n.max(0) as u64),
        since: number("sinceSeconds").map(|s| k8s_openapi::jiff::Timestamp::now().as_second() - s),
        timestamps: flag("timestamps"),
    };
    let slot = number("task");
    let cluster = svc.cluster_name().to_string();
    match crate::pass::namespace_refused(&state.clusters, &state.client, namespace, &cluster).await {
        Ok(None) => {}
        Ok(Some(refused)) => return status(StatusCode::FORBIDDEN, "Forbidden", refused),
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()),
    }
    match stream(&state.clusters, &svc, options, slot).await {
        Ok(body) => Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body)
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())),
        Err(e) => status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", e),
    }
}

/// Whether the caller may `get swarmservices/log` of `name` in `namespace`.
async fn allowed(state: &State, caller: &Caller, namespace: &str, name: &str) -> Result<bool, String> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(caller.user.clone()),
            groups: Some(caller.groups.clone()),
            extra: (!caller.extra.is_empty()).then(|| caller.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("get".into()),
                group: Some(GROUP.into()),
                resource: Some("swarmservices".into()),
                subresource: Some("log".into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(state.client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("SubjectAccessReview: {e}"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The service's log lines as a response body, until the Engine's stream ends (or, followed,
/// until the caller goes).
async fn stream(
    clusters: &Clusters,
    svc: &SwarmService,
    options: LogOptions,
    slot: Option<i64>,
) -> Result<Body, String> {
    let connection = clusters
        .connection(svc.cluster_name())
        .await
        .map_err(|e| e.to_string())?;
    let engine = connection.engine().await.map_err(|e| e.to_string())?;
    let name = svc.service_name();
    let id = match svc.status.as_ref().and_then(|s| s.service_id.clone()) {
        Some(id) => id,
        None => engine
            .find_service(&name)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|s| s.id)
            .ok_or_else(|| format!("the Swarm service {name} does not exist (yet)"))?,
    };
    let mut logs = engine
        .service_logs(&id, &options)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let timestamps = options.timestamps;
    tokio::spawn(async move {
        let mut frames = Frames::default();
        let mut places: HashMap<String, TaskPlace> = HashMap::new();
        let mut looked_up: std::collections::HashSet<String> = Default::default();
        loop {
            // A caller that went (Ctrl-C on `-f`) ends the Engine's stream at once, not at the
            // next line a quiet service writes.
            let chunk = tokio::select! {
                chunk = logs.next() => chunk,
                () = tx.closed() => return,
            };
            let Some(Ok(chunk)) = chunk else { break };
            for raw in frames.push(&chunk) {
                let line = lines::parse(&raw, timestamps);
                // A task not seen yet (a restart): where it runs, looked up once.
                if !places.contains_key(&line.task_id) && looked_up.insert(line.task_id.clone()) {
                    places = task_places(&engine, &id).await;
                }
                if slot.is_some() && places.get(&line.task_id).and_then(|p| p.slot) != slot {
                    continue;
                }
                let text = lines::format(&name, &line, &places) + "\n";
                if tx.send(Bytes::from(text)).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = StreamBody::new(tokio_stream_of(rx).map(|b| Ok::<_, Infallible>(Frame::data(b))));
    Ok(BodyExt::boxed(body))
}

fn tokio_stream_of(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn task_places(engine: &crate::swarm::Engine, service_id: &str) -> HashMap<String, TaskPlace> {
    let nodes: HashMap<String, String> = engine
        .node_facts()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.id, n.hostname))
        .collect();
    engine
        .service_tasks(service_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| {
            let node = t
                .node_id
                .as_ref()
                .and_then(|n| nodes.get(n))
                .cloned()
                .unwrap_or_default();
            Some((t.id?, TaskPlace { slot: t.slot, node }))
        })
        .collect()
}

fn json(code: StatusCode, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// A Kubernetes Status, as the API server answers errors: kubectl prints its message.
fn status(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    json(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn group() -> serde_json::Value {
    let version = serde_json::json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    serde_json::json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
        "versions": [version.clone()], "preferredVersion": version})
}

fn resources() -> serde_json::Value {
    serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [{"name": "swarmservices/log", "singularName": "", "namespaced": true,
                       "kind": "SwarmServiceLog", "verbs": ["get"]}]})
}
