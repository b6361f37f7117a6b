//! The outbox: call records and events in SQLite under `node.data_dir`
//! ([`FILE_NAME`]), kept until the receiver answered 2xx, and delivered
//! items kept for a retention period after that.
//!
//! The database runs in WAL mode with `synchronous=FULL`: an
//! [`Store::append`] that returned has reached the disk (fsync of the WAL
//! at commit), so a `kill -9` or a power cut after it loses nothing. A
//! restart loads every pending item ([`Store::load_pending`]); one that was
//! in flight at the crash is posted again with the same idempotency key.
//!
//! Items move `pending` → `delivered` (2xx) or `pending` → `dead`
//! (retry window closed, or an operator), and `dead` → `pending` on replay.
//! Nothing leaves the table except delivered items older than the
//! retention ([`Store::purge_delivered`]).
//!
//! [`Store`] is the synchronous store; [`Outbox`] runs one on its own
//! thread and hands out an async, cloneable handle. Every SQLite error
//! comes back as an [`OutboxError`] that names the file and the operation
//! (a full disk says so).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::delivery::{Item, ItemId};

/// The database file, under `node.data_dir`.
pub const FILE_NAME: &str = "outbox.sqlite3";

/// Capacity of the channel to the store thread.
const QUEUE: usize = 1024;

/// What failed in the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The data directory could not be created.
    #[error("cannot create the outbox directory {path} (config key `node.data_dir`): {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An SQLite operation failed.
    #[error("outbox {path}: {op} failed: {source}{hint}", hint = sql_hint(.source))]
    Sql {
        /// The database file.
        path: PathBuf,
        /// What we were doing (`open`, `append`, `mark delivered`, ...).
        op: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database refused WAL mode (`journal_mode` stayed something else).
    #[error("outbox {path}: journal_mode is {got:?}, not \"wal\"; the file system may not support WAL (e.g. a network share): put node.data_dir on a local disk")]
    NotWal {
        /// The database file.
        path: PathBuf,
        /// The mode SQLite reports.
        got: String,
    },
    /// An item with this idempotency key is already stored.
    #[error("outbox: an item with idempotency key {0:?} is already stored")]
    DuplicateKey(String),
    /// A stored row does not hold what this version writes.
    #[error("outbox {path}: row {id}: {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The row id.
        id: i64,
        /// What is wrong with it.
        what: String,
    },
    /// The store thread is gone (it panicked or the process is stopping).
    #[error("the outbox thread has stopped; the item was not stored")]
    Closed,
}

fn sql_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => {
            "\n  help: the disk holding node.data_dir is full; free space (nothing was stored)"
        }
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
            "\n  help: check that node.data_dir exists and the gateway's user may write to it"
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "\n  help: another process holds the outbox; run one gateway per data_dir"
        }
        _ => "",
    }
}

/// Where an item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not yet answered with a 2xx; being delivered.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Parked: no longer tried, kept, replayable.
    Dead,
}

impl State {
    /// The value stored in the `state` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "delivered" => Some(State::Delivered),
            "dead" => Some(State::Dead),
            _ => None,
        }
    }
}

/// An item to store: the caller's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// Ordering domain (the call id): items of a stream are delivered in
    /// the order they were appended.
    pub stream: String,
    /// Idempotency key: unique across the store, sent with every attempt.
    pub key: String,
    /// Event type, e.g. `call.ended` (the `X-Hotline-Event` header).
    pub kind: String,
    /// The JSON body, exactly as it will be posted and signed.
    pub body: String,
}

/// A stored item with its delivery history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// Row id.
    pub id: ItemId,
    /// Ordering domain.
    pub stream: String,
    /// Position in the stream (1, 2, ...).
    pub seq: u64,
    /// Idempotency key.
    pub key: String,
    /// Event type.
    pub kind: String,
    /// JSON body.
    pub body: String,
    /// When it was appended, Unix milliseconds.
    pub created_ms: i64,
    /// Its state.
    pub state: State,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the first attempt started, Unix milliseconds.
    pub first_attempt_ms: Option<i64>,
    /// When the next attempt is planned, Unix milliseconds (pending only).
    pub next_attempt_ms: Option<i64>,
    /// HTTP status of the last failed attempt, if it got one.
    pub last_status: Option<u16>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// When it was delivered or dead-lettered, Unix milliseconds.
    pub done_ms: Option<i64>,
}

impl StoredItem {
    /// The scheduler's view of it.
    #[must_use]
    pub fn item(&self) -> Item {
        Item {
            id: self.id,
            stream: self.stream.clone(),
            seq: self.seq,
            key: self.key.clone(),
            kind: self.kind.clone(),
        }
    }
}

/// A failed attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When the attempt started, Unix milliseconds.
    pub attempt_ms: i64,
    /// When the next one is planned, Unix milliseconds.
    pub next_attempt_ms: i64,
    /// HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// What went wrong, for operators.
    pub error: String,
}

/// Undelivered items: how many, and the oldest one's creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Pending items.
    pub pending: u64,
    /// Dead-lettered items (undelivered too, but no longer tried).
    pub dead: u64,
    /// Creation time of the oldest pending item, Unix milliseconds.
    pub oldest_pending_ms: Option<i64>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    stream           TEXT    NOT NULL,
    seq              INTEGER NOT NULL,
    key              TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    created_ms       INTEGER NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_ms INTEGER,
    next_attempt_ms  INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    done_ms          INTEGER,
    UNIQUE (stream, seq)
);
CREATE INDEX IF NOT EXISTS items_due ON items (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS items_created ON items (state, created_ms);
CREATE INDEX IF NOT EXISTS items_done ON items (state, done_ms);
";

const COLUMNS: &str = "id, stream, seq, key, kind, body, created_ms, state, attempts, \
                       first_attempt_ms, next_attempt_ms, last_status, last_error, done_ms";

/// The outbox database, used from one thread.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The next `seq` of streams written lately (one writer: this store),
    /// so an item is one INSERT; a stream not here is looked up once.
    next_seq: HashMap<String, u64>,
}

/// Streams remembered in [`Store::next_seq`] at most; beyond, it starts
/// over (a miss costs one indexed lookup).
const SEQ_CACHE_MAX: usize = 50_000;

impl Store {
    /// Open (creating if needed) the outbox at `path`, in WAL mode with
    /// `synchronous=FULL`.
    ///
    /// # Errors
    /// The file cannot be opened or created, the schema cannot be set up,
    /// or WAL mode is refused.
    pub fn open(path: &Path) -> Result<Store, OutboxError> {
        let sql = |op| sql_err(path, op);
        let conn = Connection::open(path).map_err(sql("open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("set busy_timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql("set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OutboxError::NotWal {
                path: path.to_path_buf(),
                got: mode,
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("set synchronous=FULL"))?;
        conn.execute_batch(SCHEMA)
            .map_err(sql("create the schema"))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            next_seq: HashMap::new(),
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> OutboxError + '_ {
        sql_err(&self.path, op)
    }

    /// `journal_mode` and `synchronous` as SQLite reports them (`"wal"`, 2
    /// for FULL).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn pragmas(&self) -> Result<(String, i64), OutboxError> {
        let mode = self
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(self.err("read journal_mode"))?;
        let sync = self
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .map_err(self.err("read synchronous"))?;
        Ok((mode, sync))
    }

    /// Store `new` as the next item of its stream; returns after the commit
    /// (on disk: WAL + `synchronous=FULL`).
    ///
    /// # Errors
    /// [`OutboxError::DuplicateKey`] if its key is already stored; SQLite
    /// failures (a full disk among them).
    pub fn append(&mut self, new: &NewItem, now_ms: i64) -> Result<Item, OutboxError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(path, "begin append"))?;
        let mut seqs = HashMap::new();
        let item = insert_next(&tx, path, new, now_ms, &self.next_seq, &mut seqs)?
            .ok_or_else(|| OutboxError::DuplicateKey(new.key.clone()))?;
        tx.commit().map_err(sql_err(path, "commit append"))?;
        self.remember(seqs, std::slice::from_ref(new));
        Ok(item)
    }

    /// Store several items in **one** transaction (one fsync: group
    /// commit), each as the next item of its stream, in order. An item
    /// whose key is already stored is skipped (a retried batch), not an
    /// error. Returns the items stored.
    ///
    /// # Errors
    /// SQLite failures (a full disk among them): then nothing is stored.
    pub fn append_all(&mut self, news: &[NewItem], now_ms: i64) -> Result<Vec<Item>, OutboxError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(path, "begin append"))?;
        let mut stored = Vec::with_capacity(news.len());
        let mut seqs = HashMap::new();
        for new in news {
            stored.extend(insert_next(
                &tx,
                path,
                new,
                now_ms,
                &self.next_seq,
                &mut seqs,
            )?);
        }
        tx.commit().map_err(sql_err(path, "commit append"))?;
        self.remember(seqs, news);
        Ok(stored)
    }

    /// After a commit: keep the streams' next sequence numbers, except for
    /// streams that just got their last item (a sealed call record).
    fn remember(&mut self, seqs: HashMap<String, u64>, news: &[NewItem]) {
        if self.next_seq.len() + seqs.len() > SEQ_CACHE_MAX {
            self.next_seq.clear();
        }
        self.next_seq.extend(seqs);
        for new in news {
            if new.kind == crate::call::record::RECORD_KIND {
                self.next_seq.remove(&new.stream);
            }
        }
    }

    /// Every pending item, oldest first (what a restart resumes).
    ///
    /// # Errors
    /// SQLite failed, or a row is unreadable.
    pub fn load_pending(&self) -> Result<Vec<StoredItem>, OutboxError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM items WHERE state = 'pending' ORDER BY id"),
            &[],
            "load pending",
        )
    }

    /// The item `id`, in any state.
    ///
    /// # Errors
    /// SQLite failed, or the row is unreadable.
    pub fn get(&self, id: ItemId) -> Result<Option<StoredItem>, OutboxError> {
        let id = row_id(id);
        Ok(self
            .query(
                &format!("SELECT {COLUMNS} FROM items WHERE id = ?1"),
                &[&id],
                "get",
            )?
            .pop())
    }

    /// Up to `limit` items in `state`, newest first.
    ///
    /// # Errors
    /// SQLite failed, or a row is unreadable.
    pub fn list(&self, state: State, limit: u32) -> Result<Vec<StoredItem>, OutboxError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM items WHERE state = ?1 ORDER BY id DESC LIMIT ?2"),
            &[&state.as_str(), &limit],
            "list",
        )
    }

    fn query(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        op: &'static str,
    ) -> Result<Vec<StoredItem>, OutboxError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err(op))?;
        let rows = stmt
            .query_map(params, read_row)
            .map_err(self.err(op))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err(op))?;
        rows.into_iter()
            .map(|r| r.map_err(|(id, what)| self.corrupt(id, what)))
            .collect()
    }

    fn corrupt(&self, id: i64, what: String) -> OutboxError {
        OutboxError::Corrupt {
            path: self.path.clone(),
            id,
            what,
        }
    }

    /// A 2xx arrived for pending item `id`. Returns whether it was pending.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn mark_delivered(
        &self,
        id: ItemId,
        now_ms: i64,
        status: u16,
    ) -> Result<bool, OutboxError> {
        let n = self
            .conn
            .execute(
                "UPDATE items SET state = 'delivered', done_ms = ?2, last_status = ?3, \
                 next_attempt_ms = NULL, attempts = attempts + 1, \
                 first_attempt_ms = COALESCE(first_attempt_ms, ?2) \
                 WHERE id = ?1 AND state = 'pending'",
                params![row_id(id), now_ms, status],
            )
            .map_err(self.err("mark delivered"))?;
        Ok(n == 1)
    }

    /// An attempt at pending item `id` failed. Returns whether it was pending.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn record_failure(&self, id: ItemId, f: &Failure) -> Result<bool, OutboxError> {
        let n = self
            .conn
            .execute(
                "UPDATE items SET attempts = attempts + 1, \
                 first_attempt_ms = COALESCE(first_attempt_ms, ?2), next_attempt_ms = ?3, \
                 last_status = ?4, last_error = ?5 \
                 WHERE id = ?1 AND state = 'pending'",
                params![
                    row_id(id),
                    f.attempt_ms,
                    f.next_attempt_ms,
                    f.status,
                    f.error
                ],
            )
            .map_err(self.err("record failure"))?;
        Ok(n == 1)
    }

    /// Park pending item `id` (it stays, and can be replayed); `reason`
    /// goes into `last_error` when given. Returns whether it was pending.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn dead_letter(
        &self,
        id: ItemId,
        now_ms: i64,
        reason: Option<&str>,
    ) -> Result<bool, OutboxError> {
        let n = self
            .conn
            .execute(
                "UPDATE items SET state = 'dead', done_ms = ?2, next_attempt_ms = NULL, \
                 last_error = COALESCE(?3, last_error) WHERE id = ?1 AND state = 'pending'",
                params![row_id(id), now_ms, reason],
            )
            .map_err(self.err("dead-letter"))?;
        Ok(n == 1)
    }

    /// Make dead item `id` pending again, with a fresh retry window; returns
    /// it for the scheduler, or `None` if it was not dead.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn replay(&self, id: ItemId) -> Result<Option<StoredItem>, OutboxError> {
        let n = self
            .conn
            .execute(
                "UPDATE items SET state = 'pending', done_ms = NULL, attempts = 0, \
                 first_attempt_ms = NULL, next_attempt_ms = NULL \
                 WHERE id = ?1 AND state = 'dead'",
                [row_id(id)],
            )
            .map_err(self.err("replay"))?;
        if n == 0 {
            return Ok(None);
        }
        self.get(id)
    }

    /// Undelivered items and the age of the oldest pending one.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn backlog(&self) -> Result<Backlog, OutboxError> {
        self.conn
            .query_row(
                "SELECT \
                   (SELECT COUNT(*) FROM items WHERE state = 'pending'), \
                   (SELECT COUNT(*) FROM items WHERE state = 'dead'), \
                   (SELECT MIN(created_ms) FROM items WHERE state = 'pending')",
                [],
                |r| {
                    Ok(Backlog {
                        pending: r.get::<_, i64>(0)?.unsigned_abs(),
                        dead: r.get::<_, i64>(1)?.unsigned_abs(),
                        oldest_pending_ms: r.get(2)?,
                    })
                },
            )
            .map_err(self.err("count the backlog"))
    }

    /// Delete delivered items delivered before `before_ms`; pending and
    /// dead items are never touched. Returns how many were deleted.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn purge_delivered(&self, before_ms: i64) -> Result<usize, OutboxError> {
        self.conn
            .execute(
                "DELETE FROM items WHERE state = 'delivered' AND done_ms < ?1",
                [before_ms],
            )
            .map_err(self.err("purge delivered items"))
    }
}

fn sql_err<'p>(
    path: &'p Path,
    op: &'static str,
) -> impl FnOnce(rusqlite::Error) -> OutboxError + 'p {
    move |source| OutboxError::Sql {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn row_id(id: ItemId) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

type RowResult = Result<StoredItem, (i64, String)>;

fn read_row(r: &Row<'_>) -> rusqlite::Result<RowResult> {
    let id: i64 = r.get(0)?;
    let state: String = r.get(7)?;
    let Some(state) = State::parse(&state) else {
        return Ok(Err((id, format!("unknown state {state:?}"))));
    };
    let seq: i64 = r.get(2)?;
    let attempts: i64 = r.get(8)?;
    let last_status: Option<i64> = r.get(11)?;
    Ok(Ok(StoredItem {
        id: id.unsigned_abs(),
        stream: r.get(1)?,
        seq: seq.unsigned_abs(),
        key: r.get(3)?,
        kind: r.get(4)?,
        body: r.get(5)?,
        created_ms: r.get(6)?,
        state,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        first_attempt_ms: r.get(9)?,
        next_attempt_ms: r.get(10)?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(12)?,
        done_ms: r.get(13)?,
    }))
}

/// Insert `new` as the next item of its stream inside `tx`; `None` if its
/// key is already stored.
fn insert_next(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    new: &NewItem,
    now_ms: i64,
    known: &HashMap<String, u64>,
    seqs: &mut HashMap<String, u64>,
) -> Result<Option<Item>, OutboxError> {
    let sql = |op| sql_err(path, op);
    // One INSERT per item: the stream's next seq from this transaction or
    // the store's memory (looked up once per stream otherwise), a duplicate
    // key skipped by the UNIQUE constraint. Cached statements: parsing the
    // SQL each time cost 13 % of the gateway's CPU at 1,500 calls/s (perf).
    let seq = match seqs.get(&new.stream).or_else(|| known.get(&new.stream)) {
        Some(&s) => i64::try_from(s).unwrap_or(i64::MAX),
        None => tx
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM items WHERE stream = ?1")
            .and_then(|mut st| st.query_row([&new.stream], |r| r.get(0)))
            .map_err(sql("append (next seq)"))?,
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO items (stream, seq, key, kind, body, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                new.stream, seq, new.key, new.kind, new.body, now_ms
            ])
        })
        .map_err(sql("append"))?;
    if inserted == 0 {
        return Ok(None);
    }
    seqs.insert(new.stream.clone(), seq.unsigned_abs() + 1);
    Ok(Some(Item {
        id: tx.last_insert_rowid().unsigned_abs(),
        stream: new.stream.clone(),
        seq: seq.unsigned_abs(),
        key: new.key.clone(),
        kind: new.kind.clone(),
    }))
}

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A [`Store`] on its own thread, shared by cloning this handle. The thread
/// ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Outbox {
    jobs: mpsc::Sender<Job>,
}

impl Outbox {
    /// Open `data_dir`/[`FILE_NAME`] (creating the directory) on a new
    /// thread.
    ///
    /// # Errors
    /// The directory or the database cannot be created or opened.
    pub async fn open(data_dir: &Path) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OutboxError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        let (opened, open_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("outbox".to_owned())
            .spawn(move || {
                let mut store = match Store::open(&path) {
                    Ok(store) => {
                        let _ = opened.send(Ok(()));
                        store
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                while let Some(job) = rx.blocking_recv() {
                    job(&mut store);
                }
            })
            .map_err(|source| OutboxError::CreateDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        open_rx.await.map_err(|_| OutboxError::Closed)??;
        Ok(Outbox { jobs })
    }

    /// Run `f` on the store thread and return its result.
    ///
    /// # Errors
    /// What `f` returns, or [`OutboxError::Closed`] if the thread is gone.
    pub async fn call<T, F>(&self, f: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, OutboxError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.jobs.send(job).await.map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            let unique = format!(
                "hotline-{name}-{}-{}",
                std::process::id(),
                crate::time::unix_now().as_nanos()
            );
            let path = std::env::temp_dir().join(unique);
            if let Err(e) = std::fs::create_dir_all(&path) {
                panic!("cannot create {}: {e}", path.display());
            }
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ok<T>(r: Result<T, OutboxError>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn new(stream: &str, key: &str) -> NewItem {
        NewItem {
            stream: stream.into(),
            key: key.into(),
            kind: "call.ended".into(),
            body: format!("{{\"key\":\"{key}\"}}"),
        }
    }

    #[test]
    fn sequence_numbers_continue_across_commits_reopens_and_duplicates() {
        let dir = TempDir::new("seq");
        let path = dir.0.join(FILE_NAME);
        let mut store = ok(Store::open(&path));
        let first = ok(store.append_all(&[new("c", "c/1"), new("d", "d/1"), new("c", "c/2")], 1));
        let seqs: Vec<_> = first.iter().map(|i| (i.stream.clone(), i.seq)).collect();
        assert_eq!(seqs, [("c".into(), 1), ("d".into(), 1), ("c".into(), 2)]);
        // A retried batch: its keys are skipped, the next item takes seq 3.
        let again = ok(store.append_all(&[new("c", "c/2"), new("c", "c/3")], 2));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].key.as_str(), again[0].seq), ("c/3", 3));
        // The sealed record is the stream's last item: its memory goes, a
        // (hypothetical) later item still gets the right seq from the table.
        let mut record = new("c", "c/4");
        record.kind = crate::call::record::RECORD_KIND.into();
        assert_eq!(ok(store.append(&record, 3)).seq, 4);
        assert!(!store.next_seq.contains_key("c"));
        assert_eq!(ok(store.append(&new("c", "c/5"), 4)).seq, 5);
        // After a reopen the table is the truth.
        drop(store);
        let mut store = ok(Store::open(&path));
        assert_eq!(ok(store.append(&new("d", "d/2"), 5)).seq, 2);
        assert!(matches!(
            store.append(&new("d", "d/2"), 6),
            Err(OutboxError::DuplicateKey(_))
        ));
        assert_eq!(ok(store.append(&new("d", "d/3"), 7)).seq, 3);
    }

    #[test]
    fn wal_and_synchronous_full_are_set() {
        let dir = TempDir::new("pragmas");
        let store = ok(Store::open(&dir.0.join(FILE_NAME)));
        let (mode, sync) = ok(store.pragmas());
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL is 2");
        // and again after a reopen (synchronous is per connection)
        drop(store);
        let store = ok(Store::open(&dir.0.join(FILE_NAME)));
        assert_eq!(ok(store.pragmas()), ("wal".to_owned(), 2));
    }

    #[test]
    fn pending_items_survive_a_reopen_in_order() {
        let dir = TempDir::new("reopen");
        let path = dir.0.join(FILE_NAME);
        let mut store = ok(Store::open(&path));
        let a1 = ok(store.append(&new("call-a", "k1"), 1000));
        let b1 = ok(store.append(&new("call-b", "k2"), 1001));
        let a2 = ok(store.append(&new("call-a", "k3"), 1002));
        assert_eq!((a1.seq, b1.seq, a2.seq), (1, 1, 2));
        assert!(ok(store.mark_delivered(b1.id, 2000, 200)));
        let failure = Failure {
            attempt_ms: 1500,
            next_attempt_ms: 1600,
            status: Some(503),
            error: "503 Service Unavailable".into(),
        };
        assert!(ok(store.record_failure(a1.id, &failure)));
        drop(store);

        let store = ok(Store::open(&path));
        let pending = ok(store.load_pending());
        let keys: Vec<_> = pending.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["k1", "k3"]);
        assert_eq!(pending[0].attempts, 1);
        assert_eq!(pending[0].first_attempt_ms, Some(1500));
        assert_eq!(pending[0].last_status, Some(503));
        assert_eq!(pending[0].body, "{\"key\":\"k1\"}");
        assert_eq!(pending[0].item(), a1);
        assert_eq!(
            ok(store.backlog()),
            Backlog {
                pending: 2,
                dead: 0,
                oldest_pending_ms: Some(1000)
            }
        );
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let dir = TempDir::new("dup");
        let mut store = ok(Store::open(&dir.0.join(FILE_NAME)));
        ok(store.append(&new("a", "same"), 1));
        match store.append(&new("b", "same"), 2) {
            Err(OutboxError::DuplicateKey(k)) => assert_eq!(k, "same"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ok(store.backlog()).pending, 1);
    }

    #[test]
    fn append_all_stores_in_order_and_skips_keys_already_stored() {
        let dir = TempDir::new("append-all");
        let mut store = ok(Store::open(&dir.0.join(FILE_NAME)));
        ok(store.append(&new("call-1", "k1"), 1));
        let batch = [
            new("call-1", "k1"),
            new("call-1", "k2"),
            new("call-2", "k3"),
            new("call-1", "k4"),
        ];
        let stored = ok(store.append_all(&batch, 2));
        let keys: Vec<&str> = stored.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["k2", "k3", "k4"]);
        let seqs: Vec<u64> = stored.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [2, 1, 3]);
        assert_eq!(ok(store.backlog()).pending, 4);
    }

    #[test]
    fn purge_removes_only_old_delivered_items() {
        let dir = TempDir::new("purge");
        let mut store = ok(Store::open(&dir.0.join(FILE_NAME)));
        let old_delivered = ok(store.append(&new("a", "1"), 0));
        let new_delivered = ok(store.append(&new("a", "2"), 0));
        let pending = ok(store.append(&new("b", "3"), 0));
        let dead = ok(store.append(&new("c", "4"), 0));
        assert!(ok(store.mark_delivered(old_delivered.id, 100, 200)));
        assert!(ok(store.mark_delivered(new_delivered.id, 5000, 204)));
        assert!(ok(store.dead_letter(
            dead.id,
            100,
            Some("retry window closed")
        )));
        assert_eq!(ok(store.purge_delivered(1_000_000)), 2);
        assert!(ok(store.get(pending.id)).is_some());
        assert!(ok(store.get(dead.id)).is_some());
        assert_eq!(ok(store.list(State::Delivered, 10)).len(), 0);

        // a delivered item inside the retention stays
        let d = ok(store.append(&new("e", "5"), 0));
        assert!(ok(store.mark_delivered(d.id, 10_000, 200)));
        assert_eq!(ok(store.purge_delivered(9_000)), 0);
        assert_eq!(ok(store.list(State::Delivered, 10)).len(), 1);
    }

    #[test]
    fn dead_letter_and_replay() {
        let dir = TempDir::new("replay");
        let mut store = ok(Store::open(&dir.0.join(FILE_NAME)));
        let it = ok(store.append(&new("a", "1"), 0));
        assert!(ok(store.dead_letter(it.id, 10, Some("operator"))));
        assert!(!ok(store.dead_letter(it.id, 10, None)), "already dead");
        let dead = ok(store.list(State::Dead, 10));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("operator"));
        assert_eq!(ok(store.backlog()).dead, 1);
        let replayed = ok(store.replay(it.id));
        assert_eq!(
            replayed.map(|r| (r.state, r.attempts)),
            Some((State::Pending, 0))
        );
        assert!(ok(store.replay(it.id)).is_none(), "not dead any more");
        assert!(!ok(store.mark_delivered(999, 0, 200)));
    }

    #[tokio::test]
    async fn the_async_handle_appends_and_reports_errors() {
        let dir = TempDir::new("async");
        let outbox = ok(Outbox::open(&dir.0.join("sub")).await);
        let n = new("a", "k");
        let again = n.clone();
        ok(outbox.call(move |s| s.append(&n, 1)).await);
        let dup = outbox.call(move |s| s.append(&again, 2)).await;
        assert!(matches!(dup, Err(OutboxError::DuplicateKey(_))), "{dup:?}");
        let pending = ok(outbox.call(|s| s.load_pending()).await);
        assert_eq!(pending.len(), 1);
    }

    #[tokio::test]
    async fn an_unwritable_directory_is_an_error_not_a_panic() {
        let dir = TempDir::new("bad");
        let file = dir.0.join("not-a-dir");
        if let Err(e) = std::fs::write(&file, b"x") {
            panic!("{e}");
        }
        let err = Outbox::open(&file).await.err();
        assert!(
            matches!(err, Some(OutboxError::CreateDir { .. })),
            "{err:?}"
        );
    }
}
