//! The Redis keys of `session`: one topology, URLs, TLS and ACL credentials, each error naming
//! its key and never repeating a URL or password.

use super::*;

/// A redis-store config whose `session` section also holds `lines` (indented by two spaces).
fn redis(lines: &str) -> String {
    base(&format!(
        "session:\n  store: redis\n  secrets: [{SECRET_32}]\n{lines}"
    ))
}

fn redis_config(lines: &str) -> RedisConfig {
    match load_ok(&redis(lines)).session.store {
        StoreConfig::Redis(redis) => redis,
        StoreConfig::Memory => panic!("redis store expected"),
    }
}

fn with_env(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    Config::from_yaml_str_with(yaml, Path::new(""), &env)
}

#[test]
fn cluster_lists_its_node_urls() {
    let redis =
        redis_config("  redis_cluster: [\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n");
    let RedisTopology::Cluster(nodes) = &redis.topology else {
        panic!("cluster expected: {:?}", redis.topology)
    };
    let nodes: Vec<&str> = nodes.iter().map(|n| n.expose().as_str()).collect();
    assert_eq!(nodes, ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    assert_eq!(redis.topology.kind(), "cluster");
}

#[test]
fn sentinel_names_the_primary_and_its_sentinels() {
    let redis = redis_config(
        "  redis_sentinel:\n    master_name: mymaster\n    nodes: [\"redis://s1:26379\", \"redis://s2:26379\"]\n",
    );
    let RedisTopology::Sentinel { master_name, nodes } = &redis.topology else {
        panic!("sentinel expected: {:?}", redis.topology)
    };
    assert_eq!(master_name, "mymaster");
    assert_eq!(nodes.len(), 2);
    assert_eq!(redis.topology.kind(), "sentinel");
}

#[test]
fn more_than_one_topology_is_an_error_naming_both_keys() {
    let url = "  redis_url: redis://h:6379\n";
    let cluster = "  redis_cluster: [\"redis://h:7000\"]\n";
    let sentinel = "  redis_sentinel:\n    master_name: m\n    nodes: [\"redis://h:26379\"]\n";
    for (lines, key, other) in [
        (
            format!("{url}{cluster}"),
            "session.redis_cluster",
            "session.redis_url",
        ),
        (
            format!("{url}{sentinel}"),
            "session.redis_sentinel",
            "session.redis_url",
        ),
        (
            format!("{cluster}{sentinel}"),
            "session.redis_sentinel",
            "session.redis_cluster",
        ),
    ] {
        let yaml = redis(&lines);
        assert_eq!(err_key(&yaml), key, "{lines}");
        assert!(err_message(&yaml).contains(other), "{}", err_message(&yaml));
    }
}

#[test]
fn no_topology_is_an_error_naming_the_three_keys() {
    let yaml = redis("");
    assert_eq!(err_key(&yaml), "session.redis_url");
    let message = err_message(&yaml);
    for key in [
        "session.redis_url",
        "session.redis_cluster",
        "session.redis_sentinel",
    ] {
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn empty_lists_and_bad_node_urls_name_the_entry_without_echoing_it() {
    assert_eq!(
        err_key(&redis("  redis_cluster: []\n")),
        "session.redis_cluster"
    );
    let yaml = redis("  redis_sentinel:\n    master_name: m\n    nodes: []\n");
    assert_eq!(err_key(&yaml), "session.redis_sentinel.nodes");
    let yaml = redis("  redis_sentinel:\n    master_name: \"\"\n    nodes: [\"redis://h:1\"]\n");
    assert_eq!(err_key(&yaml), "session.redis_sentinel.master_name");
    for (lines, key) in [
        (
            "  redis_cluster: [\"redis://h:7000\", \"http://:hunter2pw@h\"]\n",
            "session.redis_cluster[1]",
        ),
        (
            "  redis_cluster: [\"redis://:hunter2pw@h:notaport\"]\n",
            "session.redis_cluster[0]",
        ),
        (
            "  redis_cluster: [\"redis://:hunter2pw@h:7000/3\"]\n",
            "session.redis_cluster[0]",
        ),
        (
            "  redis_sentinel:\n    master_name: m\n    nodes: [\"redis://h:1\", \"redis://:hunter2pw@h:1/2\"]\n",
            "session.redis_sentinel.nodes[1]",
        ),
    ] {
        let yaml = redis(lines);
        assert_eq!(err_key(&yaml), key, "{lines}");
        assert!(!err_message(&yaml).contains("hunter2pw"), "{lines}");
    }
}

#[test]
fn nodes_must_agree_on_scheme_and_credentials() {
    let yaml = redis("  redis_cluster: [\"rediss://h:7000\", \"redis://h:7001\"]\n");
    assert_eq!(err_key(&yaml), "session.redis_cluster[1]");
    let yaml =
        redis("  redis_cluster: [\"redis://:hunter2pw@h:7000\", \"redis://:otherpw@h:7001\"]\n");
    assert_eq!(err_key(&yaml), "session.redis_cluster[1]");
    let message = err_message(&yaml);
    assert!(!message.contains("hunter2pw") && !message.contains("otherpw"));
}

#[test]
fn rediss_is_accepted_and_a_ca_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["redis.internal".into()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let load_in = |lines: &str| {
        Config::from_yaml_str_with(&redis(lines), dir.path(), &env).map(|c| c.session.store)
    };
    let url = "  redis_url: rediss://redis.internal:6380\n";
    let Ok(StoreConfig::Redis(redis)) = load_in(&format!("{url}  redis_ca_file: ca.pem\n")) else {
        panic!("rediss with a CA file loads")
    };
    assert_eq!(redis.ca_pem.as_deref(), Some(cert.cert.pem().as_bytes()));
    let Ok(StoreConfig::Redis(redis)) = load_in(url) else {
        panic!("rediss without a CA file (system roots) loads")
    };
    assert!(redis.ca_pem.is_none());
    for file in ["junk.pem", "missing.pem"] {
        let err = load_in(&format!("{url}  redis_ca_file: {file}\n")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "session.redis_ca_file"),
            "{file}: {err}"
        );
    }
    // A CA file without TLS is a mistake, not a no-op.
    let err = load_in("  redis_url: redis://h:6379\n  redis_ca_file: ca.pem\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "session.redis_ca_file"),
        "{err}"
    );
}

#[test]
fn credentials_come_from_env_or_file_and_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("redis-password"), "file-hunter2pw\n").unwrap();
    let yaml = redis(&format!(
        "  redis_cluster: [\"redis://h:7000\"]\n  redis_username: \"${{REDIS_USER}}\"\n  redis_password: \"${{file:{}}}\"\n",
        dir.path().join("redis-password").display()
    ));
    let config = with_env(&yaml, &[("REDIS_USER", "portcullis")]).unwrap();
    let StoreConfig::Redis(redis) = &config.session.store else {
        panic!("redis store expected")
    };
    assert_eq!(redis.username.as_ref().unwrap().expose(), "portcullis");
    assert_eq!(redis.password.as_ref().unwrap().expose(), "file-hunter2pw");
    assert!(!format!("{config:?}").contains("file-hunter2pw"));
    let yaml = redis_yaml_with_password("${REDIS_PASSWORD}");
    let err = with_env(&yaml, &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "session.redis_password"),
        "{err}"
    );
}

fn redis_yaml_with_password(password: &str) -> String {
    redis(&format!(
        "  redis_url: redis://h:6379\n  redis_password: \"{password}\"\n"
    ))
}

#[test]
fn credentials_set_twice_or_half_are_errors_naming_the_key() {
    // A username needs a password.
    let yaml = redis("  redis_url: redis://h:6379\n  redis_username: app\n");
    assert_eq!(err_key(&yaml), "session.redis_username");
    // The URL already holds a password.
    let yaml = redis("  redis_url: \"redis://:hunter2pw@h:6379\"\n  redis_password: otherpw\n");
    assert_eq!(err_key(&yaml), "session.redis_password");
    let message = err_message(&yaml);
    assert!(!message.contains("hunter2pw") && !message.contains("otherpw"));
    let yaml = redis(
        "  redis_cluster: [\"redis://app:hunter2pw@h:7000\"]\n  redis_username: app\n  redis_password: otherpw\n",
    );
    assert_eq!(err_key(&yaml), "session.redis_username");
    assert_eq!(
        err_key(&redis_yaml_with_password("")),
        "session.redis_password"
    );
    // A sentinel's URL credentials are the sentinels': the primary's may be set beside them.
    let redis = redis_config(
        "  redis_sentinel:\n    master_name: m\n    nodes: [\"redis://:sentinelpw@h:26379\"]\n  redis_password: primarypw\n",
    );
    assert_eq!(redis.password.unwrap().expose(), "primarypw");
}

#[test]
fn redis_keys_with_the_memory_store_warn() {
    let c = load_ok(&base(
        "session:\n  store: memory\n  redis_cluster: [\"redis://h:7000\"]\n  redis_password: pw\n",
    ));
    for key in ["session.redis_cluster", "session.redis_password"] {
        assert!(
            c.warnings.iter().any(|w| w.starts_with(key)),
            "{key}: {:?}",
            c.warnings
        );
    }
}
