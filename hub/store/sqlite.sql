-- SQL of the SQLite store, in named blocks (``-- name: <block>``), loaded by hub.store.sql.
-- Timestamps are Unix seconds (REAL). Delivery states: 0 pending, 1 inflight, 2 delivered,
-- 3 dead, 4 discarded. For an inflight delivery ``next_at`` is its lease expiry, so one
-- partial index finds both due work and expired leases.

-- name: schema
CREATE TABLE IF NOT EXISTS messages (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    source          TEXT    NOT NULL,
    dataset         TEXT    NOT NULL,
    dataset_version TEXT    NOT NULL,
    idem_key        TEXT,
    partition_key   TEXT,
    created_at      REAL    NOT NULL,
    accepted_at     REAL    NOT NULL,
    traceparent     TEXT,
    payload         BLOB    NOT NULL,
    subject         TEXT,
    digest          BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_idem ON messages (source, idem_key)
    WHERE idem_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id            INTEGER PRIMARY KEY,
    msg           INTEGER NOT NULL REFERENCES messages (seq),
    target        TEXT    NOT NULL,
    route         TEXT    NOT NULL,
    ordered       INTEGER NOT NULL DEFAULT 0,
    partition_key TEXT,
    state         INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    retries       INTEGER NOT NULL DEFAULT 0,
    next_at       REAL    NOT NULL,
    lease_owner   TEXT,
    last_status   INTEGER,
    last_error    TEXT,
    delivered_at  REAL,
    dead_at       REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (target, next_at) WHERE state < 2;
CREATE INDEX IF NOT EXISTS deliveries_partition ON deliveries (target, partition_key, id)
    WHERE ordered = 1 AND state IN (0, 1, 3);
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries (target, id) WHERE state = 3;
CREATE INDEX IF NOT EXISTS deliveries_msg ON deliveries (msg);
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY,
    msg        INTEGER NOT NULL,
    at         REAL    NOT NULL,
    step       TEXT    NOT NULL,
    target     TEXT,
    attempt    INTEGER,
    status     INTEGER,
    latency_ms REAL,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS events_msg ON events (msg);

-- name: schema_v2
-- Version 2: governance (business keys, subjects, quarantine) and source cursors. Applied to a
-- new file after ``schema``, and to a version-1 file after ``migrate_1_2``.
CREATE INDEX IF NOT EXISTS messages_subject ON messages (subject) WHERE subject IS NOT NULL;
-- One row per business key (e.g. a 决定文书号 from one source): the current version.
CREATE TABLE IF NOT EXISTS business_keys (
    source   TEXT NOT NULL,
    dataset  TEXT NOT NULL,
    bkey     TEXT NOT NULL,
    version  TEXT,
    digest   BLOB NOT NULL,
    msg_id   TEXT NOT NULL,
    PRIMARY KEY (source, dataset, bkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_state (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    at    REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    id      INTEGER PRIMARY KEY,
    source  TEXT NOT NULL,
    dataset TEXT NOT NULL,
    qkey    TEXT NOT NULL,
    origin  TEXT NOT NULL,
    code    TEXT NOT NULL,
    field   TEXT,
    detail  TEXT NOT NULL,
    raw     TEXT NOT NULL,
    at      REAL NOT NULL,
    UNIQUE (source, qkey)
);
-- Nonces of signed requests, kept until their signature's window has passed (replay guard).
CREATE TABLE IF NOT EXISTS nonces (
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
-- Named leases (locks) shared by the nodes of one store: a scheduled job runs on one node.
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT NOT NULL PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
-- 上报台账: what external systems accepted from us, for reconciliation (对账); see LedgerEntry.
CREATE TABLE IF NOT EXISTS ledger (
    book     TEXT    NOT NULL,
    dataset  TEXT    NOT NULL,
    rkey     TEXT    NOT NULL,
    day      TEXT    NOT NULL,
    digest   TEXT    NOT NULL,
    body     BLOB    NOT NULL,
    version  INTEGER NOT NULL,
    receipt  TEXT,
    at       REAL    NOT NULL,
    PRIMARY KEY (book, dataset, rkey)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_day ON ledger (book, dataset, day);
PRAGMA user_version = 2;

-- name: migrate_1_2
ALTER TABLE messages ADD COLUMN subject TEXT;
ALTER TABLE messages ADD COLUMN digest BLOB;

-- name: remember_nonce
INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
 WHERE nonces.expires_at <= ?;

-- name: acquire_lease
INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE leases.owner = excluded.owner OR leases.expires_at <= ?;

-- name: release_lease
DELETE FROM leases WHERE name = ? AND owner = ?;

-- name: ledger_put
-- A newer version replaces everything; the same version again (a re-send) keeps its first
-- receipt; an older version changes nothing.
INSERT INTO ledger (book, dataset, rkey, day, digest, body, version, receipt, at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (book, dataset, rkey) DO UPDATE
   SET day = excluded.day, digest = excluded.digest, body = excluded.body,
       receipt = CASE WHEN excluded.version > ledger.version THEN excluded.receipt
                      ELSE coalesce(ledger.receipt, excluded.receipt) END,
       version = excluded.version, at = excluded.at
 WHERE excluded.version >= ledger.version;

-- name: ledger_entries
SELECT book, dataset, rkey, day, digest, body, version, receipt, at FROM ledger
 WHERE book = :book AND dataset = :dataset AND (:day IS NULL OR day = :day)
 ORDER BY rkey;

-- name: prune_nonces
DELETE FROM nonces WHERE expires_at <= ?;

-- name: find_bkey
SELECT msg_id, version, digest FROM business_keys WHERE source = ? AND dataset = ? AND bkey = ?;

-- name: upsert_bkey
INSERT INTO business_keys (source, dataset, bkey, version, digest, msg_id)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (source, dataset, bkey) DO UPDATE
   SET version = excluded.version, digest = excluded.digest, msg_id = excluded.msg_id;

-- name: get_state
SELECT value FROM source_state WHERE scope = ? AND key = ?;

-- name: put_state
INSERT INTO source_state (scope, key, value, at) VALUES (?, ?, ?, ?)
ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, at = excluded.at;

-- name: insert_quarantine
INSERT INTO quarantine (source, dataset, qkey, origin, code, field, detail, raw, at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, qkey) DO NOTHING;

-- name: quarantined
SELECT id, source, dataset, qkey, origin, code, field, detail, raw, at
  FROM quarantine
 WHERE (:source IS NULL OR source = :source) AND id > :after
 ORDER BY id LIMIT :limit;

-- name: subject_messages
SELECT id, source, dataset, accepted_at FROM messages
 WHERE subject = ? ORDER BY seq DESC LIMIT ?;

-- name: insert_event_seq
INSERT INTO events (msg, at, step, target, attempt, status, latency_ms, detail)
VALUES (?, ?, ?, NULL, NULL, NULL, NULL, ?);

-- name: max_seq
SELECT coalesce(max(seq), 0) FROM messages;

-- name: find_idem
-- ``digest``: SHA-256 of the clear payload (the stored one may be field-encrypted); NULL in
-- rows written before schema 2, whose payload is then compared itself.
SELECT id, coalesce(digest, payload) FROM messages WHERE source = ? AND idem_key = ?;

-- name: insert_message
INSERT INTO messages (seq, id, source, dataset, dataset_version, idem_key, partition_key,
                      created_at, accepted_at, traceparent, payload, subject, digest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_delivery
INSERT INTO deliveries (msg, target, route, ordered, partition_key, next_at)
VALUES (?, ?, ?, ?, ?, ?);

-- The same two inserts without the columns that are NULL in every row of a job (the common
-- case: no Idempotency-Key, partition key or subject). Binding a None costs the sqlite3 module
-- an adapter lookup per value; an omitted column is NULL just the same (no DEFAULT).
-- name: insert_message_nonull
INSERT INTO messages (seq, id, source, dataset, dataset_version, created_at, accepted_at,
                      traceparent, payload, digest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_delivery_nonull
INSERT INTO deliveries (msg, target, route, ordered, next_at)
VALUES (?, ?, ?, ?, ?);

-- On ordered routes a delivery queued behind an unfinished one of its (target, partition) is
-- *parked*: its next_at is far in the future, so claims never walk over it. When the head is
-- delivered or discarded, the next one is unparked (due now).

-- name: partition_busy
SELECT 1 FROM deliveries
 WHERE target = ? AND partition_key IS ? AND ordered = 1 AND state IN (0, 1, 3)
 LIMIT 1;

-- name: unpark_next
UPDATE deliveries SET next_at = :now
 WHERE id = (SELECT e.id FROM deliveries d JOIN deliveries e
               ON e.target = d.target AND e.partition_key IS d.partition_key
              WHERE d.id = :id AND d.ordered = 1
                AND e.ordered = 1 AND e.state IN (0, 1, 3) AND e.id > d.id
              ORDER BY e.id LIMIT 1)
   AND state = 0 AND next_at > :now;

-- name: ordered_of
-- Which of these deliveries (a JSON array of ids) are ordered: only those unpark a successor.
SELECT id FROM deliveries WHERE ordered = 1 AND id IN (SELECT value FROM json_each(?));

-- name: claim
UPDATE deliveries
   SET state = 1, attempts = attempts + 1, next_at = :lease_until, lease_owner = :owner
 WHERE id IN (
       SELECT d.id FROM deliveries d
        WHERE d.target = :target AND d.state < 2 AND d.next_at <= :now
          AND (d.ordered = 0 OR NOT EXISTS (
                SELECT 1 FROM deliveries e
                 WHERE e.target = d.target AND e.ordered = 1 AND e.state IN (0, 1, 3)
                   AND e.partition_key IS d.partition_key AND e.id < d.id))
        ORDER BY d.next_at
        LIMIT :limit)
RETURNING id, msg, route, attempts, partition_key;

-- name: claimed_messages
SELECT seq, id, source, dataset, dataset_version, payload, accepted_at, traceparent
  FROM messages WHERE seq IN (SELECT value FROM json_each(?));

-- Settling is fenced by the attempt number: when a lease ran out and the delivery was claimed
-- again, the late answer of the older attempt must not undo the newer one. A success counts
-- from any attempt (the target has the message); a failure only from the current attempt.
-- Every answer still goes into the trace.

-- name: settle_ack
UPDATE deliveries
   SET state = 2, delivered_at = ?, last_status = ?, last_error = NULL, lease_owner = NULL
 WHERE id = ? AND state IN (0, 1);

-- name: settle_ack_many
-- The acks of one settle that share every value but the id (a batch's records: one answer),
-- in one statement: :ids is a JSON array of delivery ids.
UPDATE deliveries
   SET state = 2, delivered_at = :at, last_status = :status, last_error = NULL,
       lease_owner = NULL
 WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN (0, 1);

-- name: insert_events_for_deliveries
-- One trace event for each delivery of :ids (a JSON array), all with the same values (a trace
-- orders a message's events by time and id; across messages the order is not significant).
INSERT INTO events (msg, at, step, target, attempt, status, latency_ms, detail)
SELECT d.msg, :at, :step, d.target, :attempt, :status, :latency_ms, :detail
  FROM json_each(:ids) AS j JOIN deliveries AS d ON d.id = j.value;

-- name: settle_retry
UPDATE deliveries
   SET state = 0, next_at = ?, last_status = ?, last_error = ?, lease_owner = NULL,
       retries = retries + 1
 WHERE id = ? AND state = 1 AND attempts = ?;

-- name: settle_dead
UPDATE deliveries
   SET state = 3, dead_at = ?, last_status = ?, last_error = ?, lease_owner = NULL
 WHERE id = ? AND state = 1 AND attempts = ?;

-- name: insert_event_for_delivery
INSERT INTO events (msg, at, step, target, attempt, status, latency_ms, detail)
SELECT msg, ?, ?, target, ?, ?, ?, ? FROM deliveries WHERE id = ?;

-- name: insert_event
INSERT INTO events (msg, at, step, target, attempt, status, latency_ms, detail)
SELECT seq, ?, ?, ?, ?, ?, ?, ? FROM messages WHERE id = ?;

-- name: next_due
SELECT min(next_at) FROM deliveries WHERE target = ? AND state < 2;

-- name: release_all
UPDATE deliveries SET state = 0, next_at = ?, lease_owner = NULL WHERE state = 1;

-- name: release_owner
UPDATE deliveries SET state = 0, next_at = ?, lease_owner = NULL
 WHERE state = 1 AND lease_owner = ?;

-- name: message
SELECT seq, id, source, dataset, dataset_version, idem_key, partition_key, traceparent,
       created_at, accepted_at, payload
  FROM messages WHERE id = ?;

-- name: message_deliveries
SELECT id, target, route, state, attempts, next_at, last_status, last_error, delivered_at
  FROM deliveries WHERE msg = ? ORDER BY id;

-- name: message_events
SELECT at, step, target, attempt, status, latency_ms, detail
  FROM events WHERE msg = ? ORDER BY at, id;

-- name: dead_letters
SELECT d.id, m.id, m.source, m.dataset, d.target, d.route, d.attempts, d.dead_at,
       d.last_status, d.last_error
  FROM deliveries d JOIN messages m ON m.seq = d.msg
 WHERE d.state = 3 AND (:target IS NULL OR d.target = :target)
 ORDER BY d.id LIMIT :limit OFFSET :offset;

-- name: undelivered
-- Deliveries of one target not acknowledged yet (pending, inflight, dead), oldest first. The ids
-- are chosen first (each half from its partial index, deliveries_due and deliveries_dead) and
-- only the chosen ones are joined with their payloads: with a backlog of a million, nothing but
-- ids is sorted.
SELECT d.id, m.id AS mid, d.route, m.dataset, d.state, d.attempts, m.accepted_at, m.payload
  FROM (SELECT id FROM (
            SELECT id FROM (SELECT id FROM deliveries
                             WHERE target = :target AND state < 2 ORDER BY id LIMIT :limit) AS p
            UNION ALL
            SELECT id FROM (SELECT id FROM deliveries
                             WHERE target = :target AND state = 3 ORDER BY id LIMIT :limit) AS x
        ) AS u ORDER BY id LIMIT :limit) AS w
  JOIN deliveries d ON d.id = w.id
  JOIN messages m ON m.seq = d.msg
 ORDER BY d.id;

-- name: replay
UPDATE deliveries SET state = 0, attempts = 0, next_at = ?, dead_at = NULL
 WHERE id = ? AND state = 3;

-- name: discard
UPDATE deliveries SET state = 4 WHERE id = ? AND state = 3;

-- name: route_totals
SELECT route, target, count(*),
       sum(state = 2), sum(state < 2), sum(state = 3), sum(retries)
  FROM deliveries GROUP BY route, target ORDER BY route, target;

-- name: route_latency_rank
SELECT (d.delivered_at - m.accepted_at) * 1000.0 AS ms
  FROM deliveries d JOIN messages m ON m.seq = d.msg
 WHERE d.route = ? AND d.target = ? AND d.state = 2
 ORDER BY ms LIMIT 1 OFFSET ?;

-- name: state_counts
SELECT state, count(*) FROM deliveries GROUP BY state;

-- name: message_count
SELECT count(*) FROM messages;

-- name: queue_stats
SELECT target, sum(state = 0), sum(state = 1), min(CASE WHEN state = 0 THEN next_at END)
  FROM deliveries WHERE state < 2 GROUP BY target;

-- name: dead_counts
SELECT target, count(*) FROM deliveries WHERE state = 3 GROUP BY target;

-- name: find_messages
SELECT m.id, m.source, m.dataset, m.accepted_at
  FROM messages m
 WHERE (:source IS NULL OR m.source = :source)
   AND (:idem IS NULL OR m.idem_key = :idem)
   AND (:bkey IS NULL OR m.id IN (SELECT b.msg_id FROM business_keys b
                                   WHERE b.bkey = :bkey
                                     AND (:source IS NULL OR b.source = :source)))
 ORDER BY m.seq DESC LIMIT :limit;

-- name: prune_index
-- Retention looks messages up by age: the index is built by the first pruning run, so a store
-- without a retention policy pays nothing for it on ingest.
CREATE INDEX IF NOT EXISTS messages_accepted ON messages (accepted_at);

-- name: prune_candidates
-- Retention (same rule as PostgreSQL): messages accepted before the cut-off whose every
-- delivery is finished (delivered or discarded). Dead letters and pending work are never
-- pruned. Oldest first, in batches.
SELECT m.seq FROM messages m
 WHERE m.accepted_at < ?
   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg = m.seq AND d.state IN (0, 1, 3))
 ORDER BY m.accepted_at
 LIMIT ?;

-- name: archive_row
SELECT m.id, m.source, m.dataset, m.dataset_version, m.idem_key, m.accepted_at,
       (SELECT count(*) FROM deliveries d WHERE d.msg = m.seq AND d.state = 2),
       (SELECT count(*) FROM events e WHERE e.msg = m.seq)
  FROM messages m WHERE m.seq = ?;

-- name: prune_events
DELETE FROM events WHERE msg = ?;

-- name: prune_deliveries
DELETE FROM deliveries WHERE msg = ?;

-- name: prune_message
DELETE FROM messages WHERE seq = ?;

-- name: schema_v3
-- Version 3: data sharing (数据共享, hub.sharing). Applications (共享申请), grants (授权) and
-- subscriptions (订阅) keep their searched columns plus the object as JSON (``doc``); ``rev``
-- counts writes (optimistic concurrency). An application's history is append-only. Quota
-- counters are per grant and day. ``superseded`` names messages replaced by a newer version
-- of their business key, so a dataset's current records are one index walk over messages.
CREATE TABLE IF NOT EXISTS share_applications (
    id         TEXT    PRIMARY KEY,
    rev        INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    dataset    TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    due_at     REAL,
    created_at REAL    NOT NULL,
    updated_at REAL    NOT NULL,
    doc        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS share_applications_due ON share_applications (due_at)
    WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS share_grants (
    id         TEXT    PRIMARY KEY,
    rev        INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    dataset    TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    due_at     REAL,
    created_at REAL    NOT NULL,
    updated_at REAL    NOT NULL,
    doc        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS share_grants_holder ON share_grants (holder, dataset);
CREATE TABLE IF NOT EXISTS share_subscriptions (
    id         TEXT    PRIMARY KEY,
    rev        INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    dataset    TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    due_at     REAL,
    created_at REAL    NOT NULL,
    updated_at REAL    NOT NULL,
    doc        TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS share_application_events (
    id          INTEGER PRIMARY KEY,
    application TEXT    NOT NULL,
    at          REAL    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    details     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS share_application_events_app ON share_application_events (application);
CREATE TABLE IF NOT EXISTS share_quota (
    grant_id TEXT    NOT NULL,
    day      TEXT    NOT NULL,
    requests INTEGER NOT NULL,
    records  INTEGER NOT NULL,
    PRIMARY KEY (grant_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS superseded (
    msg_id TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_dataset ON messages (dataset, seq);
PRAGMA user_version = 3;

-- name: share_insert
-- {table} is one of share_applications, share_grants, share_subscriptions (named in code).
INSERT INTO {table} (id, rev, state, dataset, provider, holder, due_at, created_at, updated_at,
                     doc)
VALUES (:id, :rev, :state, :dataset, :provider, :holder, :due_at, :created_at, :updated_at,
        :doc)
ON CONFLICT (id) DO NOTHING;

-- name: share_update
UPDATE {table}
   SET rev = :rev, state = :state, dataset = :dataset, provider = :provider, holder = :holder,
       due_at = :due_at, updated_at = :updated_at, doc = :doc
 WHERE id = :id AND rev = :expect_rev;

-- name: share_get
SELECT id, rev, state, dataset, provider, holder, due_at, created_at, updated_at, doc
  FROM {table} WHERE id = ?;

-- name: share_list
SELECT id, rev, state, dataset, provider, holder, due_at, created_at, updated_at, doc
  FROM {table}
 WHERE (:dataset IS NULL OR dataset = :dataset)
   AND (:provider IS NULL OR provider = :provider)
   AND (:holder IS NULL OR holder = :holder)
   AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
   AND (:due_before IS NULL OR due_at < :due_before)
 ORDER BY created_at, id LIMIT :limit;

-- name: share_event_insert
INSERT INTO share_application_events (application, at, actor, action, state, reason, details)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: share_events
SELECT application, at, actor, action, state, reason, details FROM share_application_events
 WHERE application = ? ORDER BY id;

-- name: quota_add
INSERT INTO share_quota (grant_id, day, requests, records) VALUES (?, ?, ?, ?)
ON CONFLICT (grant_id, day) DO UPDATE
   SET requests = share_quota.requests + excluded.requests,
       records = share_quota.records + excluded.records
RETURNING requests, records;

-- name: quota_get
SELECT requests, records FROM share_quota WHERE grant_id = ? AND day = ?;

-- name: insert_superseded
INSERT INTO superseded (msg_id) VALUES (?) ON CONFLICT (msg_id) DO NOTHING;

-- name: current_records
SELECT m.seq, m.payload FROM messages m
 WHERE m.dataset = ? AND m.seq > ?
   AND NOT EXISTS (SELECT 1 FROM superseded s WHERE s.msg_id = m.id)
 ORDER BY m.seq LIMIT ?;
