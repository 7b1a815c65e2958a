//! The shipped Kubernetes manifests: valid against the Kubernetes schemas (offline, with
//! `kubernetes-validate`), a config the real binary accepts, and timings that let a drain finish.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::binary;

/// The oldest Kubernetes version the manifests are written for (README "Kubernetes").
const OLDEST_KUBERNETES: &str = "1.30.0";

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn manifest(name: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(manifests().join(name)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn seconds(text: &str) -> u64 {
    humantime::parse_duration(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .as_secs()
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for version in [OLDEST_KUBERNETES, "1.37.0"] {
        let output = Command::new("python3")
            // The oldest Kubernetes the manifests support (preStop `sleep` needs 1.30), and the
            // newest the pinned package knows.
            .args(["-m", "kubernetes_validate", "--strict", "-k", version])
            .args(&files)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run kubernetes-validate ({e}): install it with \
                 `python3 -m pip install kubernetes-validate` (tests/run.sh does)"
                )
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{version}: {text}");
        assert_eq!(
            text.matches(" passed ").count(),
            files.len(),
            "{version}: {text}"
        );
    }
}

#[test]
fn the_kubernetes_config_passes_check_config_and_its_timings_fit_the_pod() {
    let configmap = manifest("configmap.yaml");
    let config = configmap["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    // The Secret's files, where the pod mounts them, moved into a temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(
        secrets.join("session-secret"),
        "a-test-secret-of-at-least-32-bytes-0123456789",
    )
    .unwrap();
    let (hash, _, _) = crate::support::hashes();
    std::fs::write(
        secrets.join("users.yaml"),
        format!("- username: alice\n  password_hash: \"{hash}\"\n  roles: [admin]\n"),
    )
    .unwrap();
    let local = config.replace("/etc/portcullis/", &format!("{}/", dir.path().display()));
    let path = binary::write_config(dir.path(), &local);
    let output = binary::check_config_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let config: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
    let drain = seconds(config["shutdown"]["drain_delay"].as_str().unwrap());
    let grace = seconds(config["shutdown"]["grace_period"].as_str().unwrap());
    assert!(drain > 0, "the sidecar needs a drain delay");
    let deployment = manifest("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        termination > drain + grace,
        "{termination} <= {drain} + {grace}"
    );
    let containers = pod["containers"].as_sequence().unwrap();
    let by_name = |name: &str| {
        containers
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    };
    let app = by_name("app");
    let sleep = app["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    assert!(
        sleep >= drain + grace,
        "the app must outlive the drain: {sleep}"
    );
    let gateway = by_name("portcullis");
    let ports: Vec<u64> = gateway["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    // The app's port, the upstream, is not one of Portcullis's.
    let upstream = config["upstream"]["url"].as_str().unwrap();
    assert!(upstream.starts_with("http://127.0.0.1:"), "{upstream}");
    let app_port: u64 = upstream.rsplit(':').next().unwrap().parse().unwrap();
    assert!(!ports.contains(&app_port), "{ports:?}");
    assert_eq!(config["admin_listen"], "[::]:9091");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(gateway[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    // Only Portcullis's port is admitted.
    let policy = manifest("networkpolicy.yaml");
    let admitted: Vec<u64> = policy["spec"]["ingress"][0]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(admitted, [4180]);
    // ...and only from the ingress controller's namespace, the one trusted_proxies describes.
    assert!(policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"].is_mapping());
    let service = manifest("service.yaml");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let args: Vec<&str> = gateway["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mounted = gateway["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap()["mountPath"]
        .as_str()
        .unwrap();
    assert_eq!(args, ["--config", &format!("{mounted}/config.yaml")]);
    assert!(gateway["resources"]["requests"].is_mapping());
}
