//! `kubectl swarm logs` through the API server: the operator serves logs.swarmoperator.io as an
//! aggregated API (the APIService here points at this test's operator), lines read as
//! `docker service logs` prints them, a followed stream carries on across task restarts, and a
//! user without `get swarmservices/log` is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use swarm_operator_e2e::{TestEnv, free_port, kubectl_swarm_command, test_image, token_kubeconfig};

const WITHIN: Duration = Duration::from_secs(120);

/// A CA and a serving certificate for `<service>.<namespace>.svc` (the name the API server checks
/// an aggregated API's certificate for) in `dir`: (ca.crt, tls.crt, tls.key).
fn serving_certificate(dir: &std::path::Path, service: &str, namespace: &str) -> (String, String, String) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=logs-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("tls.ext"),
        format!("subjectAltName=DNS:{service}.{namespace}.svc\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "2",
        "-extfile",
        "tls.ext",
    ]);
    let path = |f: &str| dir.join(f).display().to_string();
    (path("ca.crt"), path("tls.crt"), path("tls.key"))
}

/// `kubectl swarm ARGS -n <namespace>`, with `kubeconfig` when given: (success, stdout, stderr).
fn kubectl_swarm(
    env: &TestEnv,
    kubeconfig: Option<&std::path::Path>,
    args: &[&str],
) -> (bool, String, String) {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["-n", env.namespace.as_str()])
        .collect();
    swarm_operator_e2e::kubectl_swarm(&args, kubeconfig)
}

fn plugin(env: &TestEnv, kubeconfig: Option<&std::path::Path>, args: &[&str]) -> Command {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["-n", env.namespace.as_str()])
        .collect();
    kubectl_swarm_command(&args, kubeconfig)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real API server and swarm: scripts/test.sh runs it"]
async fn logs_through_the_api_server_followed_across_restarts_and_refused_without_permission() {
    let mut env = TestEnv::new("logs").await;
    let dir = std::env::temp_dir().join(format!("{}-certs", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = serving_certificate(&dir, "logs", &env.namespace);
    let port = free_port();
    env.start_operator_with(&[
        "--resync-seconds",
        "30",
        "--logs-addr",
        &format!("127.0.0.1:{port}"),
        "--logs-tls-cert",
        &cert,
        "--logs-tls-key",
        &key,
    ]);
    // The APIService, as the chart makes it, pointing at this test's operator on loopback (an
    // ExternalName Service: the bed has no Service proxy). Cluster-scoped: one test owns it.
    use base64::Engine as _;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&ca).unwrap());
    env.kubectl_apply(
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: logs}}\nspec: {{type: ExternalName, externalName: localhost}}\n---\n\
             apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1alpha1.logs.swarmoperator.io}}\n\
             spec: {{group: logs.swarmoperator.io, version: v1alpha1, groupPriorityMinimum: 1000, versionPriority: 15, \
             caBundle: {ca_bundle}, service: {{namespace: {ns}, name: logs, port: {port}}}}}\n",
            ns = env.namespace
        ),
        false,
    )
    .unwrap();
    env.wait_for("the APIService Available", WITHIN, || async {
        let out = env.kubectl(&[
            "get",
            "apiservice",
            "v1alpha1.logs.swarmoperator.io",
            "-o",
            "json",
        ]);
        let api: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let available = api["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Available")
            .cloned()
            .unwrap_or_default();
        if available["status"] == "True" {
            Ok(())
        } else {
            Err(available.to_string())
        }
    })
    .await;

    // A service whose tasks print a known line twice a second.
    let talker = format!("{}-talker", env.prefix);
    let manifest = |round: &str| {
        format!(
            "apiVersion: swarmoperator.io/v1alpha1\nkind: SwarmService\nmetadata: {{name: {talker}}}\n\
             spec: {{image: {}, replicas: 2, healthcheck: {{test: [NONE]}}, env: [{{name: ROUND, value: '{round}'}}], command: ['/bin/sh', '-c', \
             'i=0; while :; do i=$((i+1)); echo \"round $ROUND line $i\"; sleep 0.5; done']}}",
            test_image("1")
        )
    };
    env.apply(&manifest("one")).await;
    env.wait_ready(&talker, WITHIN).await;

    // The last lines of each task, named as docker service logs names them.
    let lines = env
        .wait_for("two lines of each task", WITHIN, || async {
            let (ok, out, err) = kubectl_swarm(&env, None, &["logs", &talker, "--tail", "2"]);
            if !ok {
                return Err(err);
            }
            let lines: Vec<String> = out.lines().map(String::from).collect();
            if lines.len() == 4 { Ok(lines) } else { Err(out) }
        })
        .await;
    for slot in [1, 2] {
        let prefix = format!("{talker}.{slot}.");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&prefix) && l.contains(" | round one line "))
                .count(),
            2,
            "{lines:?}"
        );
    }
    let (ok, out, err) = kubectl_swarm(
        &env,
        None,
        &["logs", &talker, "--tail", "3", "--task", "2", "--timestamps"],
    );
    assert!(ok, "{err}");
    assert!(
        out.lines().count() == 3 && out.lines().all(|l| l.contains(&format!(" {talker}.2."))),
        "{out}"
    );

    // Followed: lines keep coming, and a new generation's tasks join the same stream.
    let mut follower = plugin(&env, None, &["logs", &talker, "-f", "--tail", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let seen = |want: &str, limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(want) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no followed line with {want:?}: {e}"),
            }
        }
    };
    seen(" | round one line ", WITHIN);
    env.apply(&manifest("two")).await;
    let restarted = seen(" | round two line ", WITHIN);
    assert!(restarted.starts_with(&format!("{talker}.")), "{restarted}");
    follower.kill().unwrap();
    follower.wait().unwrap();

    // A user who may read the SwarmService but not its logs is refused; granted, they read them.
    let role = |name: &str, rule: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {name}}}\nrules: [{rule}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}\n\
             subjects: [{{kind: ServiceAccount, name: reader, namespace: {}}}]\n",
            env.namespace
        )
    };
    let services_only = role(
        "read-services",
        "{apiGroups: [swarmoperator.io], resources: [swarmservices], verbs: [get, list]}",
    );
    env.kubectl_apply(
        &format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: reader}}\n---\n{services_only}"),
        false,
    )
    .unwrap();
    let token = String::from_utf8(env.kubectl(&["create", "token", "reader"]).stdout).unwrap();
    let reader = token_kubeconfig(token.trim(), &dir, "reader.kubeconfig");
    let (ok, _, err) = kubectl_swarm(&env, Some(&reader), &["ps", &talker]);
    assert!(ok, "the reader reads the SwarmService: {err}");
    let (ok, _, err) = kubectl_swarm(&env, Some(&reader), &["logs", &talker, "--tail", "1"]);
    assert!(!ok);
    assert!(
        err.lines().count() == 1
            && err.starts_with("error: ")
            && err.contains("forbidden")
            && err.contains("swarmservices/log"),
        "{err}"
    );
    let logs_too = role(
        "read-logs",
        "{apiGroups: [logs.swarmoperator.io], resources: [swarmservices/log], verbs: [get]}",
    );
    env.kubectl_apply(&logs_too, false).unwrap();
    env.wait_for("the reader to read the logs", WITHIN, || async {
        let (ok, out, err) = kubectl_swarm(&env, Some(&reader), &["logs", &talker, "--tail", "1"]);
        if ok && out.contains(" | round two line ") {
            Ok(())
        } else {
            Err(err)
        }
    })
    .await;

    // Straight to the operator, around the API server: only the front proxy's client certificate
    // is let in, and the user it names is checked all the same (a SubjectAccessReview).
    let bed = std::path::PathBuf::from(std::env::var("KUBECONFIG").unwrap())
        .parent()
        .unwrap()
        .join("certs");
    let direct = |certificate: Option<(&str, &str)>, user: &str, group: &str| {
        let host = format!("logs.{}.svc", env.namespace);
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "10", "--cacert", &ca])
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
            .args(["-H", &format!("X-Remote-User: {user}")])
            .args(["-H", &format!("X-Remote-Group: {group}")]);
        if let Some((crt, key)) = certificate {
            curl.arg("--cert")
                .arg(bed.join(crt))
                .arg("--key")
                .arg(bed.join(key));
        }
        let url = format!(
            "https://{host}:{port}/apis/logs.swarmoperator.io/v1alpha1/namespaces/{}/swarmservices/{talker}/log?tailLines=1",
            env.namespace
        );
        let out = curl.arg(url).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let proxy = Some(("front-proxy-client.crt", "front-proxy-client.key"));
    let (_, said) = direct(proxy, "mallory", "system:authenticated");
    assert!(
        said.contains(r#"User \"mallory\" cannot get resource \"swarmservices/log\""#),
        "{said}"
    );
    let (_, said) = direct(proxy, "admin", "system:masters");
    assert!(said.contains(" | round two line "), "{said}");
    let (ok, _) = direct(None, "admin", "system:masters");
    assert!(!ok, "a caller without a client certificate was let in");
    let (ok, said) = direct(Some(("admin.crt", "admin.key")), "admin", "system:masters");
    assert!(
        !ok && !said.contains(" | "),
        "a client certificate of another CA was let in: {said}"
    );

    env.kubectl(&["delete", "apiservice", "v1alpha1.logs.swarmoperator.io"]);
    std::fs::remove_dir_all(&dir).ok();
}
