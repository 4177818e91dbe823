//! The gateway service binary: `gateway serve` or `gateway healthcheck`.

fn main() -> std::process::ExitCode {
    meshkit::main_with(gateway::NAME, gateway::DEPENDENCIES, gateway::routes)
}
