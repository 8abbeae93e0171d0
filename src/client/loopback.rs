//! Loopback ports for programs that start local `yakt node` processes (the bench, the tests).

/// A loopback port that was free a moment ago: bound on `127.0.0.1:0`, read, released. Another
/// process may take it before the caller binds it; callers that start nodes on it must expect
/// that rare failure.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
