//! Warnings for people, on stderr: what a run should know but that does not stop it.

/// Print `warning: MESSAGE` on stderr, once per process: a command that reads a model twice (to
/// plan, then to verify) or reads halves that carry the same quirk says it once.
pub fn once(message: &str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SAID: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let said = SAID.get_or_init(|| Mutex::new(HashSet::new()));
    if said
        .lock()
        .map(|mut s| s.insert(message.to_string()))
        .unwrap_or(true)
    {
        eprintln!("warning: {message}");
    }
}
