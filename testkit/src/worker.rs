//! The worker run in-process against a [`Moto`] server.

use std::net::SocketAddr;

use aux_worker::Config;
use aux_worker::aws::Aws;
use aux_worker::metrics::Metrics;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Moto, REGION};

/// A worker serving on free 127.0.0.1 ports until [`Worker::stop`] or drop.
#[derive(Debug)]
pub struct Worker {
    pub api: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a worker with the demo prefix; `extra` flags override the
    /// defaults (e.g. `["--expose-secure-parameters", "true"]`).
    pub async fn start(moto: &Moto, extra: &[&str]) -> Worker {
        let mut args = vec![
            "aux-worker",
            "--parameter-prefix",
            "/kantox-challenge/dev",
            "--aws-region",
            REGION,
            "--aws-endpoint-url",
            moto.endpoint(),
            "--listen-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--shutdown-drain-seconds",
            "0",
            "--shutdown-timeout-seconds",
            "5",
            "--service-version",
            "test-aux",
            "--log-format",
            "text",
        ];
        args.extend_from_slice(extra);
        let config = match Config::try_from_args(args) {
            Ok(c) => c,
            Err(e) => panic!("test worker configuration: {e:?}"),
        };
        let api = TcpListener::bind(config.listen_addr)
            .await
            .expect("bind api");
        let admin = TcpListener::bind(config.admin_addr)
            .await
            .expect("bind admin");
        let (api_addr, admin_addr) = (
            api.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let metrics = Metrics::new(&config.service_version).expect("metrics");
        let sdk = moto.sdk_config(&config.aws).await;
        let aws = Aws::from_sdk_config(&sdk, &config.aws, metrics.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(aux_worker::serve_with(
            config,
            aws,
            metrics,
            api,
            admin,
            async {
                let _ = stopped.await;
            },
        ));
        Worker {
            api: api_addr,
            admin: admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` of the API listener.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// Signals shutdown and waits for the worker to finish draining.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
