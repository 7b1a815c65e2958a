//! `log`: format and level, with their defaults.

use tracing::level_filters::LevelFilter;

use super::*;

#[test]
fn log_defaults_to_text_at_info() {
    let c = load_ok(&base(""));
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Text,
            level: LevelFilter::INFO
        }
    );
}

#[test]
fn log_format_and_level_are_read() {
    let c = load_ok(&base("log:\n  format: json\n  level: warn\n"));
    assert_eq!(
        (c.log.format, c.log.level),
        (LogFormat::Json, LevelFilter::WARN)
    );
    for (word, level) in [
        ("trace", LevelFilter::TRACE),
        ("debug", LevelFilter::DEBUG),
        ("error", LevelFilter::ERROR),
        ("off", LevelFilter::OFF),
    ] {
        let c = load_ok(&base(&format!("log:\n  level: {word}\n")));
        assert_eq!(c.log.level, level, "{word}");
        assert_eq!(c.log.format, LogFormat::Text);
    }
}

#[test]
fn a_bad_log_format_or_level_names_its_key() {
    for (yaml, key) in [
        ("log:\n  format: logfmt\n", "log.format"),
        ("log:\n  format: JSON\n", "log.format"),
        ("log:\n  level: loud\n", "log.level"),
        ("log:\n  level: info,portcullis=debug\n", "log.level"),
    ] {
        assert_eq!(err_key(&base(yaml)), key, "{yaml}");
    }
    assert!(matches!(
        load(&base("log:\n  colour: true\n")),
        Err(ConfigError::Syntax(_))
    ));
}
