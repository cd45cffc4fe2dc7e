//! [`RedisServer`]: a `redis-server` a test owns, so that it can kill and restart it.

use std::time::Duration;

use crate::dead_addr;

/// A `redis-server` this test owns (so it can kill and restart it), on a free loopback port.
pub struct RedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one, or explains why it cannot: `Err` outside CI means "skip", and inside CI
    /// (`CI` set, or `COMMS_TEST_REDIS_URL`, which `.ci/run` sets when it has installed and
    /// started `redis-server`) a missing server panics, so nothing is skipped silently there.
    pub async fn start() -> Result<RedisServer, String> {
        let port = dead_addr().await.port();
        let mut server = RedisServer { port, child: None };
        match server.spawn().await {
            Ok(()) => Ok(server),
            Err(why)
                if std::env::var_os("CI").is_some()
                    || std::env::var_os("COMMS_TEST_REDIS_URL").is_some_and(|v| !v.is_empty()) =>
            {
                panic!("redis-server is required in CI ({why}); .ci/run installs it")
            }
            Err(why) => Err(why),
        }
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let binary =
            std::env::var("COMMS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        // A directory of its own: a server made a replica writes the snapshot it receives
        // there, and a server started in a directory holding one loads it.
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {dir:?}: {e}"))?;
        let child = std::process::Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `{binary}`: {e}"))?;
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("redis-server did not listen on port {}", self.port))
    }

    /// The server's working directory, where a replica's snapshot would go.
    fn dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("comms-test-redis-{}", self.port))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (every connection drops).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await.expect("restart redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir());
    }
}
