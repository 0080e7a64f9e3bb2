//! The client to the Kubernetes API server: kube's own layers (base URI, retries, credentials,
//! extra headers) over an HTTP client that speaks HTTP/2 when the server offers it, as client-go
//! does.
//!
//! kube-client builds its hyper client for HTTP/1.1 only, so every request in flight holds a TCP
//! and TLS connection of its own: a stack writing its children, the passes writing statuses and
//! one long-lived connection per watch came to some 50 connections of about 80 KB each. Over
//! HTTP/2 they are streams of one connection. With a proxy configured, kube's own stack is used
//! (it tunnels through the proxy; this one does not).

use std::time::Duration;

use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use tower::retry::RetryLayer;
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// The request stack every client of the operator's is built on.
pub type ApiService = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// A ping this often on a connection that carries nothing else, and the connection is given up
/// when the answer takes longer than `PING_TIMEOUT`: with every request on one connection, a
/// connection the network dropped silently must not stall them all (client-go: 30 s and 15 s).
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of one response may wait in memory unread (hyper's default, 2 MB, would let a watch
/// that falls behind hold megabytes that HTTP/1.1 left in the kernel's socket buffer), and of
/// all of them together: room for 32 such streams, so that responses a slow reader leaves
/// unread never hold up the others on the connection.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 32 * STREAM_WINDOW;

/// A client builder like `ClientBuilder::try_from(config)`, but over HTTP/2 where the server
/// negotiates it (ALPN `h2`), HTTP/1.1 otherwise.
pub fn builder(config: &kube::Config) -> Result<ClientBuilder<ApiService>, kube::Error> {
    if config.proxy_url.is_some() {
        // kube's default stack is this same boxed service type.
        return ClientBuilder::try_from(config.clone());
    }
    Ok(ClientBuilder::new(
        service(config)?,
        config.default_namespace.clone(),
    ))
}

/// The request stack of [`builder`] without a proxy.
fn service(config: &kube::Config) -> Result<ApiService, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    let tls = match &config.tls_server_name {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.clone())
                .map_err(|e| kube::Error::Service(format!("tls-server-name {name:?}: {e}").into()))?;
            tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => tls,
    };
    let connector = tls.enable_http1().enable_http2().wrap_connector(http);
    let hyper = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_EVERY)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper)
        .map_response(|response| {
            response
                .map(|body| Box::new(http_body_util::BodyExt::map_err(body, BoxError::from)) as Box<DynBody>)
        });
    Ok(BoxService::new(service))
}

/// A client of this stack as it is: for the election's and the logs API's own clients.
pub fn client(config: &kube::Config) -> Result<kube::Client, kube::Error> {
    Ok(builder(config)?.build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use futures::{StreamExt, TryStreamExt};
    use http_body_util::BodyExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DeleteParams, PostParams};
    use kube::runtime::watcher;
    use tower::{Service, ServiceExt};

    use super::*;

    async fn get(service: &mut ApiService, path: &str) -> Response<Box<DynBody>> {
        let request = Request::get(path).body(Body::empty()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap()
    }

    #[tokio::test]
    #[ignore = "needs the real API server (KUBECONFIG): scripts/test.sh runs it"]
    async fn the_api_server_is_spoken_to_over_http2_answers_watches_and_all() {
        let config = kube::Config::infer().await.unwrap();
        let mut service = service(&config).unwrap();
        let version = get(&mut service, "/version").await;
        assert_eq!(version.status(), 200);
        assert_eq!(version.version(), http::Version::HTTP_2, "ALPN h2 negotiated");

        // An answer larger than a stream's window arrives whole: the window is given back as it
        // is read.
        let openapi = get(&mut service, "/openapi/v2").await;
        assert_eq!(openapi.version(), http::Version::HTTP_2);
        let body = openapi.into_body().collect().await.unwrap().to_bytes();
        assert!(body.len() > STREAM_WINDOW as usize, "{} bytes", body.len());
        serde_json::from_slice::<serde_json::Value>(&body).expect("the whole document");

        // A watch streams on the connection while other requests come and go on it.
        let client = builder(&config).unwrap().build();
        let maps: Api<ConfigMap> = Api::namespaced(client, "default");
        let name = format!("h2-{}", std::process::id());
        let fields = format!("metadata.name={name}");
        let mut events = watcher(maps.clone(), watcher::Config::default().fields(&fields)).boxed();
        const WITHIN: Duration = Duration::from_secs(20);
        while !matches!(
            tokio::time::timeout(WITHIN, events.try_next())
                .await
                .unwrap()
                .unwrap(),
            Some(watcher::Event::InitDone)
        ) {}
        let mut map = ConfigMap::default();
        map.metadata.name = Some(name.clone());
        maps.create(&PostParams::default(), &map).await.unwrap();
        map.data = Some([("k".to_string(), "v".to_string())].into());
        maps.replace(&name, &PostParams::default(), &map).await.unwrap();
        loop {
            let event = tokio::time::timeout(WITHIN, events.try_next())
                .await
                .expect("the watch reports within 20 s");
            if let Some(watcher::Event::Apply(m)) = event.unwrap()
                && m.data.is_some()
            {
                assert_eq!(m.data.unwrap()["k"], "v");
                break;
            }
        }
        maps.delete(&name, &DeleteParams::default()).await.unwrap();
    }
}
