//! The `warden` binary: parses the command line and hands over to the library.

/// mimalloc instead of the C library's allocator: every governed call allocates and frees
/// many small buffers across threads (the request, the records, the upstream's answer), and
/// glibc's `malloc`/`free` (with their consolidation of freed chunks) were about a fifth of
/// the gateway's CPU per call under load (docs/benchmarks.md, "Where an MCP call's time
/// goes"). Only this binary: the libraries leave the choice to whoever links them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    warden::run()
}
