//! Pure choice of registry credentials for an image from `kubernetes.io/dockerconfigjson` Secrets,
//! as `docker login` would have stored them. The credentials only ever go to the manager as
//! X-Registry-Auth: never into logs, events, status or error messages.

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use serde::Deserialize;
use std::collections::HashMap;

const DOCKER_HUB: &str = "https://index.docker.io/v1/";

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
}

/// The registry host an image reference pulls from, as Docker reads it: the first path component
/// when it looks like a host (has a dot or a port, or is localhost), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => DOCKER_HUB.to_string(),
    }
}

/// The key of `auths` that names `registry`: `host`, `https://host`, `http://host/v2/`...
fn key_names(key: &str, registry: &str) -> bool {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    if registry == DOCKER_HUB {
        return matches!(host, "index.docker.io" | "docker.io" | "registry-1.docker.io");
    }
    host == registry
}

/// Credentials for `image` from one Secret's `.dockerconfigjson`, if it has an entry for its registry.
/// An unreadable document is an error that names no value from it.
pub fn credentials_for(dockerconfigjson: &[u8], image: &str) -> Result<Option<DockerCredentials>, String> {
    let config: DockerConfig = serde_json::from_slice(dockerconfigjson)
        .map_err(|_| "its .dockerconfigjson is not valid JSON".to_string())?;
    let registry = registry_of(image);
    let Some((_, entry)) = config.auths.iter().find(|(k, _)| key_names(k, &registry)) else {
        return Ok(None);
    };
    let (username, password) = match (&entry.username, &entry.password, &entry.auth) {
        (Some(u), Some(p), _) => (u.clone(), p.clone()),
        (_, _, Some(auth)) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| format!("its auth entry for {registry} is not base64"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| format!("its auth entry for {registry} is not text"))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| format!("its auth entry for {registry} is not user:password"))?;
            (u.to_string(), p.to_string())
        }
        _ => {
            return Err(format!(
                "its entry for {registry} has neither username/password nor auth"
            ));
        }
    };
    Ok(Some(DockerCredentials {
        username: Some(username),
        password: Some(password),
        serveraddress: Some(registry),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_of_image_references() {
        assert_eq!(registry_of("127.0.0.1:5000/team/app:1"), "127.0.0.1:5000");
        assert_eq!(
            registry_of("registry.example.com/app@sha256:abc"),
            "registry.example.com"
        );
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("traefik/whoami:v1.10"), DOCKER_HUB);
        assert_eq!(registry_of("redis"), DOCKER_HUB);
    }

    #[test]
    fn picks_the_entry_of_the_image_registry() {
        let doc = br#"{"auths": {"https://other.example": {"auth": "eDp5"},
                                 "127.0.0.1:5000": {"username": "u", "password": "p"}}}"#;
        let c = credentials_for(doc, "127.0.0.1:5000/app:1").unwrap().unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(c.serveraddress.as_deref(), Some("127.0.0.1:5000"));
        assert!(credentials_for(doc, "elsewhere.example/app").unwrap().is_none());
    }

    #[test]
    fn auth_field_is_user_colon_password_in_base64() {
        let doc = br#"{"auths": {"https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjN0"}}}"#;
        let c = credentials_for(doc, "alice/app").unwrap().unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("alice"), Some("s3cr3t"))
        );
    }

    #[test]
    fn errors_never_carry_the_document() {
        let doc = br#"{"auths": {"r.example": {"auth": "not base64 s3cr3t"}}}"#;
        let err = credentials_for(doc, "r.example/app").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = credentials_for(b"{s3cr3t", "r.example/app").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
