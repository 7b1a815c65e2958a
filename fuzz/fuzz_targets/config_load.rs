//! The config loader: `Config::from_yaml_str_with` on arbitrary UTF-8, with a fixed environment
//! and a scratch directory for relative file names, so no real variable or config file is read.
//!
//! Beyond "never panics", a config that loads must be usable: its session settings build
//! `Sessions` and `Set-Cookie` values (which `expect` header-safe attributes), and every path it
//! holds is already canonical, as the validator promises.
//!
//! Inputs that could name a device or kernel file (`/dev/zero` for `users_file` or
//! `${file:...}` would read forever) are skipped: those holding `/dev`, `/proc` or `/sys`
//! (relative names resolve inside the scratch directory, so reaching one takes a `/` before it),
//! or a YAML escape that could spell one (`\/`, `\x`, `\u`, `\U`, an escaped line break).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portcullis::access::{canonicalize, canonicalize_with, CanonicalPath, PathPattern};
use portcullis::config::Config;
use portcullis::session::store::MemoryStore;
use portcullis::session::{SessionId, Sessions};

/// A user entry for `users_file: users.yaml` (the demo user of config.example.yaml).
const USERS_YAML: &str = "- username: filed\n  password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$GXoImXgfmHCRJn0cAAcq3A$+DzcMooRNpJTt0Gg2e1zrvKPjn1HDSIpM1Plu7bUh2s\"\n  roles: [ops]\n";

/// The scratch directory relative names resolve against: `secret`, `users.yaml`, `tls.crt`,
/// `tls.key`.
fn base_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("portcullis-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("secret"),
            "file-secret-0123456789abcdef0123456789\n",
        )
        .unwrap();
        std::fs::write(dir.join("users.yaml"), USERS_YAML).unwrap();
        std::fs::write(dir.join("tls.crt"), "not a certificate").unwrap();
        std::fs::write(dir.join("tls.key"), "not a key").unwrap();
        dir
    })
}

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some("env-secret-0123456789abcdef0123456789ab".into()),
        "UPSTREAM" => Some("http://127.0.0.1:3000".into()),
        "REDIS_URL" => Some("redis://:pass@127.0.0.1:6379/0".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn might_name_a_device(yaml: &str) -> bool {
    [
        "/dev", "/proc", "/sys", "\\/", "\\x", "\\u", "\\U", "\\\n", "\\\r",
    ]
    .iter()
    .any(|needle| yaml.contains(needle))
}

#[track_caller]
fn assert_canonical(what: &str, path: &str, config: &Config) {
    assert_eq!(canonicalize(path).as_deref(), Ok(path), "{what}");
    assert_eq!(
        canonicalize_with(path, &config.paths).as_deref(),
        Ok(path),
        "{what}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    if might_name_a_device(yaml) {
        return;
    }
    let Ok(config) = Config::from_yaml_str_with(yaml, base_dir(), &env) else {
        return;
    };
    let _ = format!("{config:?}");

    assert!(!config.session.secrets.is_empty());
    let sessions = Sessions::new(&config.session, Arc::new(MemoryStore::new()));
    let id = SessionId::generate();
    let _ = sessions.set_cookie(&id);
    let _ = sessions.clear_cookie();

    assert_canonical("session_api.path", &config.session_api_path, &config);
    let prefix = config.upstream.url.path();
    assert_canonical("upstream.url path", prefix, &config);
    for rule in config.access.rules() {
        let (PathPattern::Prefix(path) | PathPattern::Exact(path)) = &rule.path;
        assert_canonical("access rule path", path, &config);
        let parsed = CanonicalPath::parse(path, &config.paths).unwrap();
        let _ = config.access.decide(&parsed, &http::Method::GET);
    }
});
