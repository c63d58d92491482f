//! Writing a side-by-side benchmark's table as `<stem>.json` and `<stem>.md`.

use std::collections::BTreeMap;
use std::path::Path;

/// Writes `json` to `<out>/<stem>.json` and the Markdown table `md`, followed by the run's
/// `context` as a list, to `<out>/<stem>.md`, creating `out` if needed.
pub fn write_report_files(
    out: &Path,
    stem: &str,
    json: &serde_json::Value,
    md: &str,
    context: &BTreeMap<String, String>,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(json).map_err(|e| e.to_string())?;
    let (json_path, md_path) = (
        out.join(format!("{stem}.json")),
        out.join(format!("{stem}.md")),
    );
    std::fs::write(&json_path, json).map_err(|e| format!("{}: {e}", json_path.display()))?;
    let context: String = context
        .iter()
        .map(|(k, v)| format!("- {k}: {v}\n"))
        .collect();
    std::fs::write(&md_path, format!("{md}\n{context}"))
        .map_err(|e| format!("{}: {e}", md_path.display()))?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}
