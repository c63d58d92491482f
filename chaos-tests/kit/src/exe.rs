//! Where the `qastore` program is.

use std::path::PathBuf;

use crate::KitError;

/// The `qastore` binary: `$QASTORE_BIN`, or beside (or one level above) this executable, as
/// cargo lays out `target/<profile>/` and `target/<profile>/deps/`.
pub fn find_qastore() -> Result<PathBuf, KitError> {
    if let Ok(p) = std::env::var("QASTORE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| KitError::io("finding this program", e))?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("qastore");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(KitError::Cluster(
        "the qastore binary was not found beside this program; build it or set QASTORE_BIN".into(),
    ))
}
