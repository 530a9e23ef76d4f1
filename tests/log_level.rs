//! The log subscriber tells `tracing` and `log` the most verbose level it
//! can use, so that disabled `trace!`/`debug!` calls (actix's and mio's, on
//! every request) stop at the macro instead of asking the filter each time.
//!
//! A binary of its own: the subscriber is global to the process.

use tracing::level_filters::LevelFilter;

#[test]
fn the_installed_subscriber_caps_tracing_and_log_at_the_filter_level() {
    // What `RUST_LOG` (default `info`) asks for, read as `init` reads it.
    let (filter, _) = tlog::telemetry::log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let expected = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    assert_ne!(
        expected,
        LevelFilter::TRACE,
        "run this test with RUST_LOG below trace, or it proves nothing"
    );
    let _guard = tlog::telemetry::init(None).expect("install the subscriber");
    assert_eq!(LevelFilter::current(), expected);
    // The two crates name their levels alike ("info" / "INFO").
    let (log_level, tracing_level) = (log::max_level().to_string(), expected.to_string());
    assert!(
        log_level.eq_ignore_ascii_case(&tracing_level),
        "log caps at {log_level}, tracing at {tracing_level}"
    );
    // The cap is not a mute: what the filter allows still gets through.
    assert_eq!(
        tracing::enabled!(target: "tlog", tracing::Level::INFO),
        expected >= LevelFilter::INFO
    );
    assert!(!tracing::enabled!(target: "actix_http", tracing::Level::TRACE));
}
