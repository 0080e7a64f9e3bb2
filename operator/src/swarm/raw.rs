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

/// The most a connection's read buffer holds.
const READ_BUFFER: usize = 64 * 1024;

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
        let mut builder = Client::builder(TokioExecutor::new());
        // Each connection's read buffer grows to this at most (hyper's default is 400 KB, kept
        // by every connection that once read a large listing: 2 MB of a stack of 1000's peak).
        // A listing of 1000 services (1.5 MB) then takes some two dozen reads more.
        builder.http1_max_buf_size(READ_BUFFER);
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

    /// GET `/v{version}{path}`: the whole body, within READ_TIMEOUT.
    pub async fn get(&self, version: &str, path: &str) -> Result<Vec<u8>, RawError> {
        use futures::TryStreamExt;
        // Each chunk copied out as it comes, so the connection's read buffer is free again for
        // the next: collecting the chunks first held a large listing twice (and the buffers they
        // were cut from) until the end, 3.6 MB for 1000 services' 1.5 MB.
        let whole = async {
            let mut body = Vec::new();
            let mut chunks = self.open(version, path).await?;
            while let Some(chunk) = chunks.try_next().await? {
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout(READ_TIMEOUT, whole)
            .await
            .unwrap_or_else(|_| Err(transport(&format!("no answer within {READ_TIMEOUT:?}"))))
    }

    /// GET `/v{version}{path}` and hand over the body as it arrives, with no time limit once the
    /// answer has begun (a followed log runs as long as its reader wants).
    pub async fn get_stream(&self, version: &str, path: &str) -> Result<BodyStream, RawError> {
        tokio::time::timeout(READ_TIMEOUT, self.open(version, path))
            .await
            .unwrap_or_else(|_| Err(transport(&format!("no answer within {READ_TIMEOUT:?}"))))
    }

    async fn open(&self, version: &str, path: &str) -> Result<BodyStream, RawError> {
        let full = format!("/v{version}{path}");
        match self {
            RawClient::Unix { socket, client } => {
                open(client, hyperlocal::Uri::new(socket, &full).into()).await
            }
            RawClient::Http { base, client } => open(client, uri(base, &full)?).await,
            RawClient::Https { base, client } => open(client, uri(base, &full)?).await,
        }
    }
}

/// A body read as it arrives (a followed log), chunk by chunk.
pub type BodyStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, RawError>> + Send>>;

/// Sends the GET; an answer other than 2xx is the Engine's message as an error, else the body.
async fn open<C>(client: &Client<C, Empty<Bytes>>, uri: hyper::Uri) -> Result<BodyStream, RawError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    use futures::StreamExt;
    let req = Request::get(uri).body(Empty::new()).map_err(|e| transport(&e))?;
    let response = client
        .request(req)
        .await
        .map_err(|e| transport(&crate::cause::cause_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(&e))?
            .to_bytes();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(RawError {
            status: Some(status.as_u16()),
            message,
        });
    }
    let frames = http_body_util::BodyStream::new(response.into_body());
    Ok(Box::pin(frames.filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(transport(&e))),
        }
    })))
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

/// Renames the key Engine 20.10 spells differently from bollard's models (`Healthcheck` for
/// `HealthCheck`, in every ContainerSpec) in the raw body, in place: the body is then parsed
/// straight into typed structs, without a JSON tree of a whole listing in memory. Only a
/// ContainerSpec has that key with an object value; labels and env hold strings only.
pub fn repair_keys(body: &mut [u8]) {
    const ENGINE: &[u8] = b"\"Healthcheck\":{";
    let mut at = 0;
    while let Some(found) = body[at..].windows(ENGINE.len()).position(|w| w == ENGINE) {
        let start = at + found;
        body[start + 7] = b'C';
        at = start + ENGINE.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repaired(v: serde_json::Value) -> Vec<u8> {
        let mut body = serde_json::to_vec(&v).unwrap();
        repair_keys(&mut body);
        body
    }

    #[test]
    fn healthcheck_survives_the_trip_into_bollard_types() {
        let service = json!({"ID": "x", "Spec": {"Labels": {"note": "\"Healthcheck\":{"}, "TaskTemplate": {"ContainerSpec": {
            "Image": "img", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000i64}}}}});
        let lossy: bollard::models::Service = serde_json::from_value(service.clone()).unwrap();
        let spec = lossy.spec.unwrap().task_template.unwrap().container_spec.unwrap();
        assert!(spec.health_check.is_none());
        let kept: bollard::models::Service = serde_json::from_slice(&repaired(service)).unwrap();
        let spec = kept.spec.unwrap();
        let hc = spec
            .task_template
            .unwrap()
            .container_spec
            .unwrap()
            .health_check
            .unwrap();
        assert_eq!(hc.interval, Some(2_000_000_000));
        assert_eq!(
            spec.labels.unwrap()["note"],
            "\"Healthcheck\":{",
            "string values stay as they are"
        );
    }

    #[test]
    fn every_container_spec_of_a_listing_is_repaired() {
        let tasks = json!([{"Spec": {"ContainerSpec": {"Healthcheck": {"Test": ["NONE"]}}}},
                           {"Spec": {"ContainerSpec": {"Healthcheck": {"Test": ["CMD", "x"]}}}}]);
        let parsed: Vec<bollard::models::Task> = serde_json::from_slice(&repaired(tasks)).unwrap();
        for task in parsed {
            assert!(task.spec.unwrap().container_spec.unwrap().health_check.is_some());
        }
    }
}
