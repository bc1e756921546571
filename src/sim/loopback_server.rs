//! The HTTP server under a fake of a tenant's endpoint: actix-web on 127.0.0.1 with a port the
//! OS chooses, one worker, one handler for every path and method (so that everything that
//! arrives is recorded, wrong paths and methods too), stopped by [`LoopbackServer::stop`] or
//! when dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::{App, FromRequest, Handler, HttpServer, Responder, web};
use tokio::task::JoinHandle;

pub(crate) struct LoopbackServer {
    address: SocketAddr,
    handle: ServerHandle,
    /// The server future, spawned on the caller's runtime; awaited by [`LoopbackServer::stop`].
    server: Option<JoinHandle<io::Result<()>>>,
}

impl LoopbackServer {
    /// Serves every request with `handler`, which finds `data` in the app data.
    pub(crate) fn start<T, F, Args>(data: web::Data<T>, handler: F) -> io::Result<Self>
    where
        T: Send + Sync + 'static + ?Sized,
        F: Handler<Args> + Clone + Send + 'static,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let address = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handler.clone()))
        })
        .workers(1)
        // The test owns the process; it stops the fake by dropping it.
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        Ok(LoopbackServer {
            address,
            handle,
            server: Some(tokio::spawn(server)),
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The URL of `path` (the leading `/` is optional).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// Stops the server (in-flight requests are dropped) and waits until it has stopped.
    pub(crate) async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(server) = self.server.take() {
            // The server's own result does not matter once it is stopped on purpose.
            let _ = server.await;
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        // `ServerHandle::stop` sends the stop command when called; the future only waits for
        // completion. Driving it on the runtime when there is one keeps this correct even if
        // that detail changes.
        let stopping = self.handle.stop(false);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(stopping);
        }
    }
}
