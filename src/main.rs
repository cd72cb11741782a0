fn main() {
    std::process::exit(hostform::cli::main());
}
