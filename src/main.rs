//! The `tasker` binary: parses the command line, nothing else.

fn main() -> std::process::ExitCode {
    tasker::cli::main()
}
