//! The Redis the drill breaks: a private server behind a proxy the drill controls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache::testing::{Fault, Proxy, RedisServer};

/// What a phase does to Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Traffic passes (Redis up).
    Heal,
    /// The server is killed, as a crash would.
    Kill,
    /// The server is started again, empty, and traffic passes.
    Restart,
    /// Every reply arrives this much later.
    Slow(Duration),
    /// Connections are held open, nothing is answered.
    BlackHole,
}

impl Action {
    /// Whether Redis is answering again once this action is taken.
    #[must_use]
    pub fn returns(self) -> bool {
        matches!(self, Self::Heal | Self::Restart)
    }
}

/// A private `redis-server` and a proxy in front of it; instances connect to [`FaultyRedis::url`].
#[derive(Debug)]
pub struct FaultyRedis {
    server: Arc<Mutex<RedisServer>>,
    proxy: Proxy,
}

impl FaultyRedis {
    /// Starts both (blocking: call it from `spawn_blocking` inside a runtime).
    #[must_use]
    pub fn spawn() -> Self {
        let server = RedisServer::spawn();
        let proxy = Proxy::spawn(server.port());
        Self {
            server: Arc::new(Mutex::new(server)),
            proxy,
        }
    }

    /// The URL instances use: through the proxy.
    #[must_use]
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// The URL of the server itself, for tests that look behind the proxy.
    #[must_use]
    pub fn direct_url(&self) -> String {
        self.server.lock().expect("server").url()
    }

    /// Does `action` to Redis.
    pub async fn apply(&self, action: Action) {
        match action {
            Action::Heal => self.proxy.set(Fault::None),
            Action::Slow(d) => self.proxy.set(Fault::Delay(d)),
            Action::BlackHole => self.proxy.set(Fault::BlackHole),
            Action::Kill | Action::Restart => {
                let server = self.server.clone();
                tokio::task::spawn_blocking(move || {
                    let mut server = server.lock().expect("server");
                    if action == Action::Kill {
                        server.stop();
                    } else {
                        server.restart();
                    }
                })
                .await
                .expect("redis-server control");
                if action == Action::Restart {
                    self.proxy.set(Fault::None);
                }
            }
        }
    }
}
