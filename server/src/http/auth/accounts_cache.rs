//! The accounts file as last read, re-read when it changes on disk.

use crate::accounts::{AccountError, AccountStore, Accounts};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// The accounts file as last read, re-read when it changes on disk (the
/// `nimbus-server user` command may change it while the server runs).
pub struct AccountsCache {
    store: AccountStore,
    cached: RwLock<(Option<FileStamp>, Arc<Accounts>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp(Option<SystemTime>, u64, u64);

impl AccountsCache {
    pub fn new(store: AccountStore) -> AccountsCache {
        AccountsCache {
            store,
            cached: RwLock::new((None, Arc::new(Accounts::default()))),
        }
    }

    pub fn store(&self) -> &AccountStore {
        &self.store
    }

    pub fn current(&self) -> Result<Arc<Accounts>, AccountError> {
        let stamp = self
            .store
            .stamp()
            .map(|(m, len, ino)| FileStamp(m, len, ino));
        {
            let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if c.0.is_some() && c.0 == stamp {
                return Ok(c.1.clone());
            }
        }
        let fresh = Arc::new(self.store.load()?);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = (stamp, fresh.clone());
        Ok(fresh)
    }
}
