//! Log setup for every command: a default filter per command (RUST_LOG overrides it), colour
//! only on a terminal, text or JSON lines, and identical warnings summarised instead of
//! repeated.

mod repeats;

use std::io::IsTerminal;
use std::time::Duration;

use clap::ValueEnum;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use repeats::Repeats;

/// The filter of a node when RUST_LOG is not set: our own INFO lines, but only warnings from
/// the Raft library, whose INFO lines print whole state structures.
pub const SERVE_FILTER: &str = "info,openraft=warn";

/// The filter of the client commands (demo, ctl, bench) when RUST_LOG is not set.
pub const CLIENT_FILTER: &str = "warn";

/// How long identical warnings are counted before their summary line.
const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only when stderr is a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether to colour text lines: only for a terminal, and never when `NO_COLOR` is set.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the process's logger: RUST_LOG or `default_filter`, lines in `format` on stderr,
/// repeated identical warnings summarised once per window.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let repeats = Repeats::new(REPEAT_WINDOW);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(repeats.clone())
        .with(lines)
        .try_init();
    if installed.is_ok() {
        repeats.spawn_flusher();
    }
}
