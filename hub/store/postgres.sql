-- SQL of the PostgreSQL store, in named blocks (``-- name: <block>``), loaded by hub.store.sql.
--
-- Kept to standard SQL where it can be, so PostgreSQL-compatible databases (openGauss,
-- KingbaseES) run it too. PostgreSQL-specific, and noted where used: ``FOR UPDATE SKIP LOCKED``
-- (claims), ``ON CONFLICT`` (upserts), ``= ANY(array)`` / ``unnest`` (batches), ``pg_notify``
-- (wake-ups; without it nodes fall back to their idle poll), ``RETURNING``.
--
-- Timestamps are Unix seconds (double precision) from the hub's clock, as in the SQLite store.
-- Delivery states: 0 pending, 1 inflight, 2 delivered, 3 dead, 4 discarded. For an inflight
-- delivery ``next_at`` is its lease expiry, so one partial index finds both due work and
-- expired leases (a dead node's work returns by itself). ``part`` names an ordered delivery's
-- partition: 'k:' || partition key, or '-' without one (indexable, unlike IS NOT DISTINCT FROM).

-- name: version_table
CREATE TABLE IF NOT EXISTS jghub_schema (
    version    integer          NOT NULL,
    applied_at double precision NOT NULL
);

-- name: lock_version
LOCK TABLE jghub_schema IN EXCLUSIVE MODE;

-- name: get_version
SELECT max(version) FROM jghub_schema;

-- name: set_version
INSERT INTO jghub_schema (version, applied_at) VALUES (%s, %s);

-- name: migrate_1
-- Version 1: messages, deliveries, events, governance, source state, nonces, job leases.
CREATE TABLE messages (
    seq             bigserial        PRIMARY KEY,
    id              text             NOT NULL UNIQUE,
    source          text             NOT NULL,
    dataset         text             NOT NULL,
    dataset_version text             NOT NULL,
    idem_key        text,
    partition_key   text,
    created_at      double precision NOT NULL,
    accepted_at     double precision NOT NULL,
    traceparent     text,
    payload         bytea            NOT NULL,
    subject         text,
    digest          bytea            NOT NULL
);
CREATE UNIQUE INDEX messages_idem ON messages (source, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_subject ON messages (subject) WHERE subject IS NOT NULL;
CREATE INDEX messages_accepted ON messages (accepted_at);
CREATE TABLE deliveries (
    id           bigserial        PRIMARY KEY,
    msg          bigint           NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    target       text             NOT NULL,
    route        text             NOT NULL,
    ordered      boolean          NOT NULL DEFAULT false,
    part         text             NOT NULL,
    state        smallint         NOT NULL DEFAULT 0,
    attempts     integer          NOT NULL DEFAULT 0,
    retries      integer          NOT NULL DEFAULT 0,
    next_at      double precision NOT NULL,
    lease_owner  text,
    last_status  integer,
    last_error   text,
    delivered_at double precision,
    dead_at      double precision
);
CREATE INDEX deliveries_due ON deliveries (target, next_at, id) WHERE state < 2;
CREATE INDEX deliveries_partition ON deliveries (target, part, id)
    WHERE ordered AND state IN (0, 1, 3);
CREATE INDEX deliveries_dead ON deliveries (target, id) WHERE state = 3;
CREATE INDEX deliveries_msg ON deliveries (msg);
CREATE TABLE events (
    id         bigserial        PRIMARY KEY,
    msg        bigint           NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    at         double precision NOT NULL,
    step       text             NOT NULL,
    target     text,
    attempt    integer,
    status     integer,
    latency_ms double precision,
    detail     text
);
CREATE INDEX events_msg ON events (msg);
-- One row per business key (e.g. a 决定文书号 from one source): the current version.
CREATE TABLE business_keys (
    source  text  NOT NULL,
    dataset text  NOT NULL,
    bkey    text  NOT NULL,
    version text,
    digest  bytea NOT NULL,
    msg_id  text  NOT NULL,
    PRIMARY KEY (source, dataset, bkey)
);
CREATE TABLE source_state (
    scope text             NOT NULL,
    key   text             NOT NULL,
    value text             NOT NULL,
    at    double precision NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE quarantine (
    id      bigserial        PRIMARY KEY,
    source  text             NOT NULL,
    dataset text             NOT NULL,
    qkey    text             NOT NULL,
    origin  text             NOT NULL,
    code    text             NOT NULL,
    field   text,
    detail  text             NOT NULL,
    raw     text             NOT NULL,
    at      double precision NOT NULL,
    UNIQUE (source, qkey)
);
-- Nonces of signed requests, kept until their signature's window has passed (replay guard).
CREATE TABLE nonces (
    key_id     text             NOT NULL,
    nonce      text             NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX nonces_expiry ON nonces (expires_at);
-- Scheduled jobs run on one node at a time: the node holding a job's unexpired lease runs it.
CREATE TABLE job_leases (
    job         text             PRIMARY KEY,
    owner       text             NOT NULL,
    expires_at  double precision NOT NULL
);

-- name: migrate_2
-- Version 2: 上报台账, what external systems accepted from us, for reconciliation (对账) by any
-- node (see LedgerEntry).
CREATE TABLE ledger (
    book     text             NOT NULL,
    dataset  text             NOT NULL,
    rkey     text             NOT NULL,
    day      text             NOT NULL,
    digest   text             NOT NULL,
    body     bytea            NOT NULL,
    version  bigint           NOT NULL,
    receipt  text,
    at       double precision NOT NULL,
    PRIMARY KEY (book, dataset, rkey)
);
CREATE INDEX ledger_day ON ledger (book, dataset, day);

-- name: migrate_3
-- Version 3: data sharing (数据共享, hub.sharing). Applications (共享申请), grants (授权) and
-- subscriptions (订阅) keep their searched columns plus the object as JSON (``doc``); ``rev``
-- counts writes (optimistic concurrency across nodes). An application's history is
-- append-only. Quota counters are per grant and day, shared by every node. ``superseded``
-- names messages replaced by a newer version of their business key (written in the enqueue
-- transaction), so a dataset's current records are one index walk over messages.
CREATE TABLE share_applications (
    id         text             PRIMARY KEY,
    rev        integer          NOT NULL,
    state      text             NOT NULL,
    dataset    text             NOT NULL,
    provider   text             NOT NULL,
    holder     text             NOT NULL,
    due_at     double precision,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    doc        jsonb            NOT NULL
);
CREATE INDEX share_applications_due ON share_applications (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE share_grants (LIKE share_applications INCLUDING ALL);
CREATE INDEX share_grants_holder ON share_grants (holder, dataset);
CREATE TABLE share_subscriptions (LIKE share_applications INCLUDING ALL);
CREATE TABLE share_application_events (
    id          bigserial        PRIMARY KEY,
    application text             NOT NULL,
    at          double precision NOT NULL,
    actor       text             NOT NULL,
    action      text             NOT NULL,
    state       text             NOT NULL,
    reason      text             NOT NULL,
    details     jsonb            NOT NULL
);
CREATE INDEX share_application_events_app ON share_application_events (application);
CREATE TABLE share_quota (
    grant_id text   NOT NULL,
    day      text   NOT NULL,
    requests bigint NOT NULL,
    records  bigint NOT NULL,
    PRIMARY KEY (grant_id, day)
);
CREATE TABLE superseded (
    msg_id text PRIMARY KEY
);
CREATE INDEX messages_dataset ON messages (dataset, seq);

-- name: share_insert
-- {table} is one of share_applications, share_grants, share_subscriptions (named in code).
INSERT INTO {table} (id, rev, state, dataset, provider, holder, due_at, created_at, updated_at,
                     doc)
VALUES (%(id)s, %(rev)s, %(state)s, %(dataset)s, %(provider)s, %(holder)s, %(due_at)s,
        %(created_at)s, %(updated_at)s, %(doc)s::jsonb)
ON CONFLICT (id) DO NOTHING;

-- name: share_update
UPDATE {table}
   SET rev = %(rev)s, state = %(state)s, dataset = %(dataset)s, provider = %(provider)s,
       holder = %(holder)s, due_at = %(due_at)s, updated_at = %(updated_at)s, doc = %(doc)s::jsonb
 WHERE id = %(id)s AND rev = %(expect_rev)s;

-- name: share_get
SELECT id, rev, state, dataset, provider, holder, due_at, created_at, updated_at, doc::text
  FROM {table} WHERE id = %s;

-- name: share_list
SELECT id, rev, state, dataset, provider, holder, due_at, created_at, updated_at, doc::text
  FROM {table}
 WHERE (%(dataset)s::text IS NULL OR dataset = %(dataset)s)
   AND (%(provider)s::text IS NULL OR provider = %(provider)s)
   AND (%(holder)s::text IS NULL OR holder = %(holder)s)
   AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
   AND (%(due_before)s::double precision IS NULL OR due_at < %(due_before)s)
 ORDER BY created_at, id LIMIT %(limit)s;

-- name: share_event_insert
INSERT INTO share_application_events (application, at, actor, action, state, reason, details)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb);

-- name: share_events
SELECT application, at, actor, action, state, reason, details::text
  FROM share_application_events WHERE application = %s ORDER BY id;

-- name: quota_add
INSERT INTO share_quota (grant_id, day, requests, records) VALUES (%s, %s, %s, %s)
ON CONFLICT (grant_id, day) DO UPDATE
   SET requests = share_quota.requests + excluded.requests,
       records = share_quota.records + excluded.records
RETURNING requests, records;

-- name: quota_get
SELECT requests, records FROM share_quota WHERE grant_id = %s AND day = %s;

-- name: insert_superseded
INSERT INTO superseded (msg_id) VALUES (%s) ON CONFLICT (msg_id) DO NOTHING;

-- name: current_records
SELECT m.seq, m.payload FROM messages m
 WHERE m.dataset = %s AND m.seq > %s
   AND NOT EXISTS (SELECT 1 FROM superseded s WHERE s.msg_id = m.id)
 ORDER BY m.seq LIMIT %s;

-- name: ledger_put
-- A newer version replaces everything; the same version again (a re-send) keeps its first
-- receipt; an older version changes nothing.
INSERT INTO ledger (book, dataset, rkey, day, digest, body, version, receipt, at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (book, dataset, rkey) DO UPDATE
   SET day = excluded.day, digest = excluded.digest, body = excluded.body,
       receipt = CASE WHEN excluded.version > ledger.version THEN excluded.receipt
                      ELSE coalesce(ledger.receipt, excluded.receipt) END,
       version = excluded.version, at = excluded.at
 WHERE excluded.version >= ledger.version;

-- name: ledger_entries
SELECT book, dataset, rkey, day, digest, body, version, receipt, at FROM ledger
 WHERE book = %(book)s AND dataset = %(dataset)s
   AND (%(day)s::text IS NULL OR day = %(day)s::text)
 ORDER BY rkey;

-- name: try_lease
-- Take the lease when it is free, expired or ours already; one row back when we hold it.
INSERT INTO job_leases (job, owner, expires_at) VALUES (%(job)s, %(owner)s, %(until)s)
ON CONFLICT (job) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE job_leases.owner = excluded.owner OR job_leases.expires_at <= %(now)s
RETURNING owner;

-- name: drop_lease
DELETE FROM job_leases WHERE job = %s AND owner = %s;

-- name: remember_nonce
INSERT INTO nonces (key_id, nonce, expires_at) VALUES (%s, %s, %s)
ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
 WHERE nonces.expires_at <= %s;

-- name: prune_nonces
DELETE FROM nonces WHERE expires_at <= %s;

-- name: find_idem
-- Existing messages for (source, idempotency key) pairs given as two arrays.
SELECT m.source, m.idem_key, m.id, m.digest
  FROM messages m JOIN unnest(%s::text[], %s::text[]) AS k (source, idem_key)
    ON m.source = k.source AND m.idem_key = k.idem_key;

-- name: find_bkeys
-- Current versions of business keys, locked so concurrent versions of one key serialise.
SELECT b.source, b.dataset, b.bkey, b.msg_id, b.version, b.digest
  FROM business_keys b JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k (source, dataset, bkey)
    ON b.source = k.source AND b.dataset = k.dataset AND b.bkey = k.bkey
   FOR UPDATE OF b;

-- name: insert_bkey
-- A key not seen before; a concurrent insert of the same key fails the transaction, which
-- is then run again and finds the other one's row.
INSERT INTO business_keys (source, dataset, bkey, version, digest, msg_id)
VALUES (%s, %s, %s, %s, %s, %s);

-- name: update_bkey
UPDATE business_keys SET version = %s, digest = %s, msg_id = %s
 WHERE source = %s AND dataset = %s AND bkey = %s;

-- name: partition_tail
-- The last unfinished delivery of an ordered partition, locked: an ack of that delivery (and
-- its unpark of the next one) waits for this transaction, so a delivery parked here is always
-- seen by the ack that frees the partition.
SELECT id FROM deliveries
 WHERE target = %s AND part = %s AND ordered AND state IN (0, 1, 3)
 ORDER BY id DESC LIMIT 1
   FOR UPDATE;

-- name: next_seqs
-- Sequence numbers for a group of new messages (their deliveries refer to them).
SELECT nextval(pg_get_serial_sequence('messages', 'seq')) FROM generate_series(1, %s);

-- name: insert_message
INSERT INTO messages (seq, id, source, dataset, dataset_version, idem_key, partition_key,
                      created_at, accepted_at, traceparent, payload, subject, digest)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: insert_delivery
INSERT INTO deliveries (msg, target, route, ordered, part, next_at)
VALUES (%s, %s, %s, %s, %s, %s);

-- name: insert_note
INSERT INTO events (msg, at, step, detail) VALUES (%s, %s, 'governed', %s);

-- name: notify
SELECT pg_notify(%s, %s);

-- name: claim
-- Oldest due first; rows another node is claiming right now are skipped, not waited for. On
-- ordered routes only a partition's earliest unfinished delivery is due.
WITH due AS (
    SELECT d.id FROM deliveries d
     WHERE d.target = %(target)s AND d.state < 2 AND d.next_at <= %(now)s
       AND (NOT d.ordered OR NOT EXISTS (
             SELECT 1 FROM deliveries e
              WHERE e.target = d.target AND e.part = d.part AND e.ordered
                AND e.state IN (0, 1, 3) AND e.id < d.id))
     ORDER BY d.next_at, d.id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
   SET state = 1, attempts = d.attempts + 1, next_at = %(lease_until)s, lease_owner = %(owner)s
  FROM due, messages m
 WHERE d.id = due.id AND m.seq = d.msg
RETURNING d.id, m.id, d.route, d.attempts, m.dataset, m.dataset_version, m.source, m.payload,
          m.accepted_at, m.partition_key, m.traceparent;

-- Settling is fenced by the attempt number, as in the SQLite store: a late failure of an
-- older attempt must not undo a newer one; a success counts from any attempt.

-- name: settle_ack
UPDATE deliveries d
   SET state = 2, delivered_at = u.at, last_status = u.status, last_error = NULL,
       lease_owner = NULL
  FROM unnest(%s::bigint[], %s::float8[], %s::integer[]) AS u (id, at, status)
 WHERE d.id = u.id AND d.state IN (0, 1);

-- name: settle_retry
UPDATE deliveries d
   SET state = 0, next_at = u.next_at, last_status = u.status, last_error = u.detail,
       lease_owner = NULL, retries = d.retries + 1
  FROM unnest(%s::bigint[], %s::float8[], %s::integer[], %s::text[], %s::integer[])
       AS u (id, next_at, status, detail, attempt)
 WHERE d.id = u.id AND d.state = 1 AND d.attempts = u.attempt;

-- name: settle_dead
UPDATE deliveries d
   SET state = 3, dead_at = u.at, last_status = u.status, last_error = u.detail,
       lease_owner = NULL
  FROM unnest(%s::bigint[], %s::float8[], %s::integer[], %s::text[], %s::integer[])
       AS u (id, at, status, detail, attempt)
 WHERE d.id = u.id AND d.state = 1 AND d.attempts = u.attempt;

-- name: unpark_next
-- A partition's head was delivered or discarded: the next delivery of it is due now. Its own
-- statement (a fresh snapshot under READ COMMITTED) so it sees a delivery another node parked
-- and committed while this transaction waited for that node's lock.
UPDATE deliveries SET next_at = %(now)s
 WHERE id IN (SELECT (SELECT e.id FROM deliveries e
                       WHERE e.target = d.target AND e.part = d.part AND e.ordered
                         AND e.state IN (0, 1, 3) AND e.id > d.id
                       ORDER BY e.id LIMIT 1)
                FROM deliveries d
               WHERE d.id = ANY(%(ids)s) AND d.ordered)
   AND state = 0 AND next_at > %(now)s;

-- name: insert_events_for_deliveries
INSERT INTO events (msg, at, step, target, attempt, status, latency_ms, detail)
SELECT d.msg, u.at, u.step, d.target, u.attempt, u.status, u.latency_ms, u.detail
  FROM unnest(%s::bigint[], %s::float8[], %s::text[], %s::integer[], %s::integer[],
              %s::float8[], %s::text[]) AS u (id, at, step, attempt, status, latency_ms, detail)
  JOIN deliveries d ON d.id = u.id;

-- name: insert_event
INSERT INTO events (msg, at, step, target, attempt, status, latency_ms, detail)
SELECT seq, %s, %s, %s, %s, %s, %s, %s FROM messages WHERE id = %s;

-- name: next_due
SELECT min(next_at) FROM deliveries WHERE target = %s AND state < 2;

-- name: release_all
UPDATE deliveries SET state = 0, next_at = %s, lease_owner = NULL WHERE state = 1;

-- name: release_owner
UPDATE deliveries SET state = 0, next_at = %s, lease_owner = NULL
 WHERE state = 1 AND lease_owner = %s;

-- name: find_idem_one
SELECT id FROM messages WHERE source = %s AND idem_key = %s;

-- name: message
SELECT seq, id, source, dataset, dataset_version, idem_key, partition_key, traceparent,
       created_at, accepted_at, payload
  FROM messages WHERE id = %s;

-- name: message_deliveries
SELECT id, target, route, state, attempts, next_at, last_status, last_error, delivered_at
  FROM deliveries WHERE msg = %s ORDER BY id;

-- name: message_events
SELECT at, step, target, attempt, status, latency_ms, detail
  FROM events WHERE msg = %s ORDER BY at, id;

-- name: dead_letters
SELECT d.id, m.id, m.source, m.dataset, d.target, d.route, d.attempts, d.dead_at,
       d.last_status, d.last_error
  FROM deliveries d JOIN messages m ON m.seq = d.msg
 WHERE d.state = 3 AND (%(target)s::text IS NULL OR d.target = %(target)s)
 ORDER BY d.id LIMIT %(limit)s OFFSET %(offset)s;

-- name: undelivered
-- Deliveries of one target not acknowledged yet (pending, inflight, dead), oldest first. The ids
-- are chosen first (each half from its partial index, deliveries_due and deliveries_dead) and
-- only the chosen ones are joined with their payloads: with a backlog of a million, nothing but
-- ids is sorted.
SELECT d.id, m.id AS mid, d.route, m.dataset, d.state, d.attempts, m.accepted_at, m.payload
  FROM (SELECT id FROM (
            SELECT id FROM (SELECT id FROM deliveries
                             WHERE target = %(target)s AND state < 2 ORDER BY id LIMIT %(limit)s) AS p
            UNION ALL
            SELECT id FROM (SELECT id FROM deliveries
                             WHERE target = %(target)s AND state = 3 ORDER BY id LIMIT %(limit)s) AS x
        ) AS u ORDER BY id LIMIT %(limit)s) AS w
  JOIN deliveries d ON d.id = w.id
  JOIN messages m ON m.seq = d.msg
 ORDER BY d.id;

-- name: replay
UPDATE deliveries SET state = 0, attempts = 0, next_at = %s, dead_at = NULL
 WHERE id = ANY(%s) AND state = 3
RETURNING id, target;

-- name: discard
UPDATE deliveries SET state = 4 WHERE id = ANY(%s) AND state = 3
RETURNING id, target;

-- name: route_stats
SELECT d.route, d.target, count(*),
       count(*) FILTER (WHERE d.state = 2), count(*) FILTER (WHERE d.state < 2),
       count(*) FILTER (WHERE d.state = 3), coalesce(sum(d.retries), 0),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY CASE WHEN d.state = 2
           THEN (d.delivered_at - m.accepted_at) * 1000.0 END),
       percentile_disc(0.99) WITHIN GROUP (ORDER BY CASE WHEN d.state = 2
           THEN (d.delivered_at - m.accepted_at) * 1000.0 END)
  FROM deliveries d JOIN messages m ON m.seq = d.msg
 GROUP BY d.route, d.target ORDER BY d.route, d.target;

-- name: state_counts
SELECT state, count(*) FROM deliveries GROUP BY state;

-- name: message_count
SELECT count(*) FROM messages;

-- name: get_state
SELECT value FROM source_state WHERE scope = %s AND key = %s;

-- name: put_state
INSERT INTO source_state (scope, key, value, at) VALUES (%s, %s, %s, %s)
ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, at = excluded.at;

-- name: insert_quarantine
INSERT INTO quarantine (source, dataset, qkey, origin, code, field, detail, raw, at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source, qkey) DO NOTHING;

-- name: quarantined
SELECT id, source, dataset, qkey, origin, code, field, detail, raw, at
  FROM quarantine
 WHERE (%(source)s::text IS NULL OR source = %(source)s) AND id > %(after)s
 ORDER BY id LIMIT %(limit)s;

-- name: subject_messages
SELECT id, source, dataset, accepted_at FROM messages
 WHERE subject = %s ORDER BY seq DESC LIMIT %s;

-- name: prune_candidates
-- Retention: messages accepted before the cut-off whose every delivery is finished (delivered
-- or discarded). Dead letters and pending work are never pruned. Oldest first, in batches.
SELECT m.seq FROM messages m
 WHERE m.accepted_at < %s
   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg = m.seq AND d.state IN (0, 1, 3))
 ORDER BY m.accepted_at
 LIMIT %s;

-- name: archive_rows
SELECT m.id, m.source, m.dataset, m.dataset_version, m.idem_key, m.accepted_at,
       (SELECT count(*) FROM deliveries d WHERE d.msg = m.seq AND d.state = 2),
       (SELECT count(*) FROM events e WHERE e.msg = m.seq)
  FROM messages m WHERE m.seq = ANY(%s) ORDER BY m.seq;

-- name: prune_messages
-- Deliveries and events go with their message (ON DELETE CASCADE).
DELETE FROM messages WHERE seq = ANY(%s);

-- name: queue_stats
SELECT target, count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1),
       min(CASE WHEN state = 0 THEN next_at END)
  FROM deliveries WHERE state < 2 GROUP BY target;

-- name: dead_counts
SELECT target, count(*) FROM deliveries WHERE state = 3 GROUP BY target;

-- name: find_messages
SELECT m.id, m.source, m.dataset, m.accepted_at
  FROM messages m
 WHERE (%(source)s::text IS NULL OR m.source = %(source)s)
   AND (%(idem)s::text IS NULL OR m.idem_key = %(idem)s)
   AND (%(bkey)s::text IS NULL OR m.id IN (SELECT b.msg_id FROM business_keys b
                                            WHERE b.bkey = %(bkey)s
                                              AND (%(source)s::text IS NULL
                                                   OR b.source = %(source)s)))
 ORDER BY m.seq DESC LIMIT %(limit)s;
