//! The ledger service binary: `ledger serve` or `ledger healthcheck`.

use std::sync::Arc;

fn main() -> std::process::ExitCode {
    let store = Arc::new(ledger::Store::from_env());
    meshkit::main_with(ledger::NAME, ledger::DEPENDENCIES, ledger::routes(store))
}
