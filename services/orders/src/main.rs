//! The orders service binary: `orders serve` or `orders healthcheck`.

fn main() -> std::process::ExitCode {
    meshkit::main_with(orders::NAME, orders::DEPENDENCIES, orders::routes)
}
