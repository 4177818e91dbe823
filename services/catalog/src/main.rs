//! The catalog service binary: `catalog serve` or `catalog healthcheck`.

fn main() -> std::process::ExitCode {
    meshkit::main_with(catalog::NAME, catalog::DEPENDENCIES, catalog::routes)
}
