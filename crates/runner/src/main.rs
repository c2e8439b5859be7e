//! The `azp-local` command; everything lives in the library.
fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(runner::main(&argv));
}
