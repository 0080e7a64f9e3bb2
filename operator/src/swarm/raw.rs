//! Reads the Engine's JSON as the Engine wrote it. bollard's models (generated from the newest
//! swagger) expect `HealthCheck` in a ContainerSpec where Engine 20.10 writes `Healthcheck`, and
//! serde drops the unknown key: a service read through them has lost its healthcheck, and every
//! comparison would find a difference. Reads go through here, keys are repaired, then the JSON is
//! handed to bollard's types; writes stay with bollard.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::{Request, body::Bytes};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{Connect, HttpConnector},
    },
    rt::TokioExecutor,
};
use serde_json::Value;

/// Longest a read may take; a manager that hangs must not hold a reconcile forever.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub enum RawClient {
    Unix {
        socket: String,
        client: Client<hyperlocal::UnixConnector, Empty<Bytes>>,
    },
    Http {
        base: String,
        client: Client<HttpConnector, Empty<Bytes>>,
    },
    Https {
        base: String,
        client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    },
}

/// An HTTP status and the Engine's message, or a transport failure (status None).
#[derive(Debug, Clone)]
pub struct RawError {
    pub status: Option<u16>,
    pub message: String,
}

impl RawClient {
    /// A reader for `host`: a unix socket, plain `tcp://`, or `tcp://` over `tls`.
    pub fn new(host: &str, tls: Option<HttpsConnector<HttpConnector>>) -> Option<Self> {
        let builder = Client::builder(TokioExecutor::new());
        if let Some(socket) = host.strip_prefix("unix://") {
            return Some(RawClient::Unix {
                socket: socket.to_string(),
                client: builder.build(hyperlocal::UnixConnector),
            });
        }
        let addr = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .or_else(|| host.strip_prefix("https://"))?
            .trim_end_matches('/');
        Some(match tls {
            Some(connector) => RawClient::Https {
                base: format!("https://{addr}"),
                client: builder.build(connector),
            },
            None => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(Duration::from_secs(5)));
                RawClient::Http {
                    base: format!("http://{addr}"),
                    client: builder.build(http),
                }
            }
        })
    }

    /// GET `/v{version}{path}` and parse the JSON body.
    pub async fn get(&self, version: &str, path: &str) -> Result<Value, RawError> {
        let full = format!("/v{version}{path}");
        let request = async {
            match self {
                RawClient::Unix { socket, client } => {
                    send(client, hyperlocal::Uri::new(socket, &full).into()).await
                }
                RawClient::Http { base, client } => send(client, uri(base, &full)?).await,
                RawClient::Https { base, client } => send(client, uri(base, &full)?).await,
            }
        };
        tokio::time::timeout(READ_TIMEOUT, request)
            .await
            .unwrap_or_else(|_| Err(transport(&format!("no answer within {READ_TIMEOUT:?}"))))
    }
}

fn transport(e: &dyn std::fmt::Display) -> RawError {
    RawError {
        status: None,
        message: e.to_string(),
    }
}

fn uri(base: &str, path: &str) -> Result<hyper::Uri, RawError> {
    format!("{base}{path}").parse().map_err(|e| transport(&e))
}

async fn send<C>(client: &Client<C, Empty<Bytes>>, uri: hyper::Uri) -> Result<Value, RawError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let req = Request::get(uri).body(Empty::new()).map_err(|e| transport(&e))?;
    let response = client
        .request(req)
        .await
        .map_err(|e| transport(&crate::error::cause_chain(&e)))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(&e))?
        .to_bytes();
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(RawError {
            status: Some(status.as_u16()),
            message,
        });
    }
    // The body arrived whole with a 2xx: a parse failure is the answer's fault, not the transport's.
    serde_json::from_slice(&body).map_err(|e| RawError {
        status: Some(status.as_u16()),
        message: format!("unexpected answer: {e}"),
    })
}

/// Renames the keys Engine 20.10 spells differently from bollard's models, in a service or task.
pub fn repair_keys(v: &mut Value) {
    for pointer in [
        "/Spec/TaskTemplate/ContainerSpec",
        "/PreviousSpec/TaskTemplate/ContainerSpec",
        "/Spec/ContainerSpec",
    ] {
        if let Some(Value::Object(spec)) = v.pointer_mut(pointer)
            && let Some(hc) = spec.remove("Healthcheck")
        {
            spec.insert("HealthCheck".into(), hc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn healthcheck_survives_the_trip_into_bollard_types() {
        let mut service = json!({"ID": "x", "Spec": {"TaskTemplate": {"ContainerSpec": {
            "Image": "img", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000i64}}}}});
        let lossy: bollard::models::Service = serde_json::from_value(service.clone()).unwrap();
        assert!(
            lossy
                .spec
                .unwrap()
                .task_template
                .unwrap()
                .container_spec
                .unwrap()
                .health_check
                .is_none()
        );
        repair_keys(&mut service);
        let kept: bollard::models::Service = serde_json::from_value(service).unwrap();
        let hc = kept
            .spec
            .unwrap()
            .task_template
            .unwrap()
            .container_spec
            .unwrap()
            .health_check
            .unwrap();
        assert_eq!(hc.interval, Some(2_000_000_000));
    }

    #[test]
    fn task_spec_keys_are_repaired_too() {
        let mut task = json!({"Spec": {"ContainerSpec": {"Healthcheck": {"Test": ["NONE"]}}}});
        repair_keys(&mut task);
        assert_eq!(task["Spec"]["ContainerSpec"]["HealthCheck"]["Test"][0], "NONE");
    }
}
