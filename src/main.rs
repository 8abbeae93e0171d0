//! The `yakt` command: run a node, a local cluster, or look at one.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: cheaper per allocation on the request path, and it gives
/// freed memory back to the OS (glibc kept a node's peak after a large read). See Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults keep freed memory committed for a while and commit arenas eagerly: a node
/// that had just loaded a million-entity snapshot stayed at ~220 MiB resident instead of ~155.
/// Purging at once and committing on demand (the same as `MIMALLOC_PURGE_DELAY=0
/// MIMALLOC_ARENA_EAGER_COMMIT=0`) cost about 4 % of write throughput in an A/B run. mimalloc
/// also asks for transparent huge pages on its arenas, and a 2 MiB page counts as resident as
/// soon as any of it is used: a node that had taken 300,000 writes held 68-84 MiB of its
/// ~155 MiB of heap as huge pages, and 129 MiB without them (`MIMALLOC_ALLOW_THP=0`;
/// docs/performance-round-three.md). The environment variables, when set, still win: these calls
/// only change the defaults.
fn tune_allocator() {
    // Option numbers of mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49 builds v3).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
    for (option, var, value) in [
        (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0),
        (ALLOW_THP, "MIMALLOC_ALLOW_THP", 0),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: called first thing in main, before any other thread exists (mimalloc's
            // option setters are not thread safe).
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
    // mimalloc reserves (and advises huge pages on) its first arena before `main`, so the
    // option alone comes too late for it; what mimalloc does itself for `MIMALLOC_ALLOW_THP=0`
    // is to switch THP off for the process, which covers every page faulted in from now on.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

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
    tune_allocator();
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
