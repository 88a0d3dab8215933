//! What handlers need besides the request: the data manager and the state
//! of the front (authentication, uploads in progress, machines' reports,
//! rates), built once at start.

use super::auth::Auth;
use super::core::request::Peer;
use super::meter::Meter;
use crate::store::DataManager;
use crossbeam::channel::Receiver;
use tiny_http::Request;

pub struct Ctx {
    pub dm: &'static DataManager,
    pub max_upload_bytes: u64,
    /// Accounts, sessions, the login limiter.
    pub auth: Auth,
    /// Resumable uploads in progress.
    pub uploads: crate::uploads::Uploads,
    /// Last contact and last report of each client machine.
    pub clients: crate::clients::Clients,
    /// The client programs offered for download.
    pub builds: crate::client_builds::ClientBuilds,
    /// Which client version each machine is offered.
    pub updates: crate::updates::Updates,
    /// The backup policy every client applies.
    pub policies: crate::policies::Policies,
    /// Where alerts go, and the conditions being told.
    pub alerts: crate::alerts::Alerts,
    /// Storage figures per day, for the charts.
    pub history: crate::history::History,
    /// Who may create an account from the browser.
    pub registration: crate::config::Registration,
    /// Seconds without contact after which a client is shown as stale.
    pub stale_after: u64,
    /// Request and error rates.
    pub meter: Meter,
    /// Bearer token a metrics scraper may use for `/metrics`.
    pub metrics_token: Option<String>,
    /// Queues unpacks of packed files that were downloaded (none in tests
    /// that run without a hotspot).
    pub unpacker: Option<crate::hotspot::Unpacker>,
    /// The worker queues (one per lane), for their depth.
    queue: once_cell::sync::OnceCell<[Receiver<Request>; 2]>,
    pub queue_capacity: usize,
}

impl Ctx {
    pub fn new(
        dm: &'static DataManager,
        config: &crate::Config,
        accounts: crate::accounts::AccountStore,
        (uploads, updates, policies, alerts): (
            crate::uploads::Uploads,
            crate::updates::Updates,
            crate::policies::Policies,
            crate::alerts::Alerts,
        ),
        unpacker: Option<crate::hotspot::Unpacker>,
    ) -> Ctx {
        Ctx {
            unpacker,
            dm,
            max_upload_bytes: config.max_upload_bytes,
            auth: Auth::new(
                accounts,
                Peer {
                    trust_proxy: config.trust_proxy,
                },
            ),
            uploads,
            clients: crate::clients::Clients::open(&config.data, dm.vault().clone()),
            builds: crate::client_builds::ClientBuilds::new(config.clients_dir.clone()),
            updates,
            policies,
            alerts,
            history: crate::history::History::open(&config.data, dm.vault().clone()),
            registration: config.registration,
            stale_after: config.stale_after,
            meter: Meter::default(),
            metrics_token: config.metrics_token.clone(),
            queue: Default::default(),
            // Both lanes together, as queue_depth counts them.
            queue_capacity: 2 * config.queue,
        }
    }

    /// Gives the context the worker queues, to report their depth.
    pub fn watch_queues(&self, lanes: [Receiver<Request>; 2]) {
        let _ = self.queue.set(lanes);
    }

    /// Requests waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue
            .get()
            .map_or(0, |lanes| lanes.iter().map(|q| q.len()).sum())
    }

    /// How to tell the client's address and scheme.
    pub fn peer(&self) -> Peer {
        self.auth.peer
    }
}
