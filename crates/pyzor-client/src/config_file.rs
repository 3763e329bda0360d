//! Reading `<homedir>/config`: until `pyzor_core::config` (the shared
//! ConfigParser-compatible reader) lands, a missing file is the only
//! supported case and an existing one is reported instead of ignored.

use std::collections::HashMap;
use std::path::Path;

/// The `[client]` keys of the config file (lower-cased names).
pub fn client_section(path: &Path) -> Result<HashMap<String, String>, String> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    Err(format!(
        "{}: config files are not supported by this build yet",
        path.display()
    ))
}
