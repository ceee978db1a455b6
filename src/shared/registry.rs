//! Lockstep's connection ids and what each stands for, so that `KILL <id>`
//! and `CONNECTION_ID()` use lockstep's ids and reach the right backend thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

#[derive(Debug, Default)]
struct Entry {
    /// The master's thread id for this session's connection.
    master_thread: Option<u32>,
    /// The synchronous slave's node and thread id for this session's
    /// connection there (B runs the statement first: a KILL stops it there too).
    sync_thread: Option<(String, u32)>,
    /// Ends the session's task (KILL CONNECTION).
    abort: Option<AbortHandle>,
    /// The session is running a command that may be in the middle of the
    /// write path: it must not be cut short there (B would miss a commit A
    /// made), so a KILL waits for the command to end.
    in_command: bool,
    /// KILL CONNECTION was asked for: the session closes at the end of its
    /// current command, or at once when idle.
    killed: bool,
    /// The session has a transaction open on the master.
    in_transaction: bool,
    /// When its current command started, while it runs one.
    command_started: Option<Instant>,
    /// Its statement on the master was interrupted to break a lock cycle
    /// across the nodes (`write::deadlocks`): it answers 1213.
    deadlock_victim: bool,
}

#[derive(Debug)]
pub struct Registry {
    next_id: AtomicU32,
    sessions: Mutex<HashMap<u32, Entry>>,
}

/// A session's threads on the nodes, for the lock-cycle watcher.
#[derive(Debug, Clone)]
pub struct SessionThreads {
    pub id: u32,
    pub master_thread: Option<u32>,
    pub sync_thread: Option<(String, u32)>,
}

/// What KILL needs to know about a session.
#[derive(Debug, Clone)]
pub struct KillTarget {
    pub master_thread: Option<u32>,
    pub sync_thread: Option<(String, u32)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            next_id: AtomicU32::new(1),
            sessions: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    /// A new connection id, registered until `remove`.
    pub fn register(&self) -> u32 {
        let id = loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            // 0 is not a valid connection id; skip it when the counter wraps.
            if id != 0 {
                break id;
            }
        };
        self.lock().insert(id, Entry::default());
        id
    }

    pub fn set_abort(&self, id: u32, abort: AbortHandle) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.abort = Some(abort);
        }
    }

    pub fn set_master_thread(&self, id: u32, thread: Option<u32>) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.master_thread = thread;
        }
    }

    pub fn set_sync_thread(&self, id: u32, thread: Option<(String, u32)>) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.sync_thread = thread;
        }
    }

    /// The threads other sessions than `except` hold on `node` as their
    /// synchronous slave.
    pub fn sync_threads_on(&self, node: &str, except: u32) -> Vec<u32> {
        self.lock()
            .iter()
            .filter(|(id, _)| **id != except)
            .filter_map(|(_, e)| match &e.sync_thread {
                Some((name, thread)) if name == node => Some(*thread),
                _ => None,
            })
            .collect()
    }

    pub fn target(&self, id: u64) -> Option<KillTarget> {
        let id = u32::try_from(id).ok()?;
        self.lock().get(&id).map(|e| KillTarget {
            master_thread: e.master_thread,
            sync_thread: e.sync_thread.clone(),
        })
    }

    /// Marks a session killed; an idle session's task is ended at once,
    /// a busy one closes when its command is done.
    pub fn kill(&self, id: u64) {
        let Ok(id) = u32::try_from(id) else {
            return;
        };
        let mut sessions = self.lock();
        if let Some(e) = sessions.get_mut(&id) {
            e.killed = true;
            if !e.in_command {
                if let Some(abort) = &e.abort {
                    abort.abort();
                }
            }
        }
    }

    pub fn set_in_transaction(&self, id: u32, open: bool) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.in_transaction = open;
        }
    }

    /// Ends every session with an open transaction (the master it was
    /// open on died): idle ones at once, busy ones after their command.
    pub fn kill_in_transaction(&self) {
        let ids: Vec<u32> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.in_transaction)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.kill(u64::from(id));
        }
    }

    /// Ends every session: idle ones at once, busy ones after their command.
    pub fn kill_all(&self) {
        let ids: Vec<u32> = self.lock().keys().copied().collect();
        for id in ids {
            self.kill(u64::from(id));
        }
    }

    /// Ends the sessions still running a command, at once: a last resort
    /// when the master hangs instead of failing their statements.
    pub fn abort_busy(&self) {
        for e in self.lock().values_mut() {
            if e.in_command {
                e.killed = true;
                if let Some(abort) = &e.abort {
                    abort.abort();
                }
            }
        }
    }

    /// A command starts; false when the session was killed meanwhile.
    pub fn begin_command(&self, id: u32) -> bool {
        match self.lock().get_mut(&id) {
            Some(e) if !e.killed => {
                e.in_command = true;
                e.command_started = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    pub fn end_command(&self, id: u32) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.in_command = false;
            e.command_started = None;
        }
    }

    /// Whether some session's command has run for at least `long`.
    pub fn has_command_older_than(&self, long: Duration) -> bool {
        self.lock()
            .values()
            .any(|e| e.command_started.is_some_and(|t| t.elapsed() >= long))
    }

    /// Every session's threads on the nodes.
    pub fn threads(&self) -> Vec<SessionThreads> {
        self.lock()
            .iter()
            .map(|(id, e)| SessionThreads {
                id: *id,
                master_thread: e.master_thread,
                sync_thread: e.sync_thread.clone(),
            })
            .collect()
    }

    /// The session's statement on the master is about to be interrupted to
    /// break a lock cycle across the nodes.
    pub fn mark_deadlock_victim(&self, id: u32) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.deadlock_victim = true;
        }
    }

    /// Whether the session's statement was interrupted to break a lock
    /// cycle (and forgets it).
    pub fn take_deadlock_victim(&self, id: u32) -> bool {
        self.lock()
            .get_mut(&id)
            .is_some_and(|e| std::mem::take(&mut e.deadlock_victim))
    }

    pub fn is_killed(&self, id: u32) -> bool {
        self.lock().get(&id).is_some_and(|e| e.killed)
    }

    pub fn remove(&self, id: u32) {
        self.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every update is one insert/remove), so a poisoned lock is usable.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}
