//! The `yakt` command: run a node, a local cluster, or look at one.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: cheaper per allocation on the request path, and it gives
/// freed memory back to the OS (glibc kept a node's peak after a large read). See Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Raises the soft limit on open files to the hard limit: every client connection, peer
/// connection and segment file is a descriptor, and the usual soft limit of 1024 would make a
/// node refuse connections (EMFILE) long before it runs out of anything real.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> ExitCode {
    raise_nofile_limit();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("yakt: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, skipping a cause whose text its parent already shows
            // (thiserror messages often embed their source).
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("yakt: {msg}");
            ExitCode::FAILURE
        }
    }
}
