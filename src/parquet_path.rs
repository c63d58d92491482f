//! `qastore parquet-path`: prints where a node keeps its Parquet files right now.
//!
//! The files live in the node's live engine directory, `<data_dir>/engine/db-NNNNNN/olap`, and
//! `db-NNNNNN` changes whenever the node installs a snapshot; this command reads which one is
//! live (without opening or locking anything, so it works beside a running node).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use qastore_lsm::checkpoint::EngineHome;
use qastore_lsm::vfs::OsVfs;

/// Which stream's directory to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamArg {
    /// Market ticks.
    Ticks,
    /// Trades.
    Trades,
}

/// Arguments of `qastore parquet-path`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qastore parquet-path --data-dir qastore-demo/node1
  qastore parquet-path --data-dir /var/lib/qastore --stream ticks --day 20241202
  python -c \"import pyarrow.dataset as ds, sys; print(ds.dataset(sys.argv[1], partitioning='hive').count_rows())\" \\
      \"$(qastore parquet-path --data-dir qastore-demo/node1 --stream ticks)\"")]
pub struct ParquetPathArgs {
    /// The node's data directory (`data_dir` in its config file).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Print the directory of one stream (`.../olap/ticks`) instead of the OLAP root.
    #[arg(long, value_enum)]
    pub stream: Option<StreamArg>,
    /// With --stream: the directory of one trading day (YYYYMMDD).
    #[arg(long, requires = "stream")]
    pub day: Option<u32>,
}

/// The OLAP directory (or one stream's, or one day's) of the node in `data_dir`, as it is now.
pub fn olap_dir(args: &ParquetPathArgs) -> Result<PathBuf, String> {
    if !args.data_dir.is_dir() {
        return Err(format!(
            "{} is not a directory (give the node's data_dir)",
            args.data_dir.display()
        ));
    }
    // A node keeps its engine home (ACTIVE and the db-NNNNNN directories) under `engine/`.
    let home = args.data_dir.join("engine");
    let engine = EngineHome::current_dir(&OsVfs, &home)
        .map_err(|e| format!("reading {}: {e}", home.display()))?
        .ok_or_else(|| {
            format!(
                "{} holds no engine yet (is it a node's data_dir, and has the node run?)",
                args.data_dir.display()
            )
        })?;
    let mut dir = absolute(&engine.join("olap"));
    if let Some(stream) = args.stream {
        dir.push(match stream {
            StreamArg::Ticks => "ticks",
            StreamArg::Trades => "trades",
        });
        if let Some(day) = args.day {
            dir.push(format!("trading_day={day}"));
        }
    }
    Ok(dir)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Prints the directory; a note on standard error when nothing was converted there yet.
pub fn run(args: &ParquetPathArgs) -> Result<(), String> {
    let dir = olap_dir(args)?;
    if !dir.exists() {
        eprintln!("note: nothing converted to Parquet there yet");
    }
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", dir.display()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // The reader went away (`| head`): nothing left to tell.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to standard output: {e}")),
    }
}
