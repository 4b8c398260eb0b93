//! Running third-party code (tract) that may panic on models it does not support.
//!
//! A panic there means "tract cannot handle this model", which callers report as such; it must
//! not print a panic message or abort the run. [`contain`] catches the panic and keeps the panic
//! hook quiet while it runs; panics anywhere else still print as usual.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`; a panic inside becomes `Err` with its message, and prints nothing.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was = CONTAINED.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_contained_panic_is_an_error_with_its_message() {
        assert_eq!(super::contain(|| 7), Ok(7));
        assert_eq!(
            super::contain(|| -> i32 { panic!("tract says no") }),
            Err("tract says no".to_string())
        );
        let n = 3;
        assert_eq!(
            super::contain(|| -> i32 { panic!("{n} bad dims") }),
            Err("3 bad dims".to_string())
        );
    }
}
