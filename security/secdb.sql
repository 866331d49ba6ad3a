-- SQL of the security database (tokens, the audit log, wrapped data keys), in named blocks
-- (``-- name: <block>``), loaded by hub.store.sql. Its own SQLite file (e.g. data/security.db),
-- apart from the message store: it is backed up, retained and inspected on its own terms.
-- Audit times are RFC 3339 UTC text with microseconds (sortable as text); token and key times
-- are Unix seconds (REAL).

-- name: schema
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq              INTEGER PRIMARY KEY,
    at               TEXT    NOT NULL,
    actor_id         TEXT    NOT NULL,
    actor_department TEXT,
    actor_role       TEXT,
    action           TEXT    NOT NULL,
    object           TEXT,
    outcome          TEXT    NOT NULL,
    details          TEXT    NOT NULL,
    prev_hash        TEXT    NOT NULL,
    hash             TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
-- Append-only for the application: these stop accidental edits. They do not stop someone with
-- write access to the file (they can drop them); the hash chain and signed checkpoints do.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    at        TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    algorithm TEXT    NOT NULL,
    signature TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    department   TEXT,
    roles        TEXT NOT NULL,
    system       TEXT,
    grants       TEXT NOT NULL DEFAULT '[]',
    created_at   REAL NOT NULL,
    expires_at   REAL,
    revoked_at   REAL,
    last_used_at REAL
);
CREATE TABLE IF NOT EXISTS data_keys (
    id            TEXT    PRIMARY KEY,
    dataset       TEXT    NOT NULL,
    algorithm     TEXT    NOT NULL,
    wrapped       TEXT    NOT NULL,
    master_key_id TEXT    NOT NULL,
    created_at    REAL    NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS data_keys_dataset ON data_keys (dataset);

-- name: meta_get
SELECT value FROM meta WHERE key = ?;

-- name: meta_put
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: meta_put_if_absent
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING;

-- name: audit_head
SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1;

-- name: audit_insert
INSERT INTO audit (seq, at, actor_id, actor_department, actor_role, action, object, outcome,
                   details, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: audit_page
SELECT seq, at, actor_id, actor_department, actor_role, action, object, outcome, details,
       prev_hash, hash
FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?;

-- name: audit_seq_range
-- first and last seq of the entries written in [start, end) (RFC 3339 text compares as time)
SELECT min(seq), max(seq) FROM audit WHERE at >= ? AND at < ?;

-- name: audit_count
SELECT count(*) FROM audit;

-- name: checkpoint_insert
INSERT INTO audit_checkpoints (seq, at, hash, key_id, algorithm, signature)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING;

-- name: checkpoint_range
SELECT seq, at, hash, key_id, algorithm, signature
FROM audit_checkpoints WHERE seq >= ? AND seq <= ? ORDER BY seq;

-- name: token_insert
INSERT INTO tokens (id, token_hash, name, department, roles, system, grants, created_at,
                    expires_at, revoked_at, last_used_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: token_get
SELECT id, token_hash, name, department, roles, system, grants, created_at, expires_at,
       revoked_at, last_used_at
FROM tokens WHERE id = ?;

-- name: token_list
SELECT id, token_hash, name, department, roles, system, grants, created_at, expires_at,
       revoked_at, last_used_at
FROM tokens ORDER BY created_at, id;

-- name: token_revoke
UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL;

-- name: token_touch
UPDATE tokens SET last_used_at = ? WHERE id = ?;

-- name: data_key_list
SELECT id, dataset, algorithm, wrapped, master_key_id, created_at, active
FROM data_keys ORDER BY dataset, created_at, id;

-- name: data_key_deactivate
UPDATE data_keys SET active = 0 WHERE dataset = ?;

-- name: data_key_insert
INSERT INTO data_keys (id, dataset, algorithm, wrapped, master_key_id, created_at, active)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: data_key_rewrap
UPDATE data_keys SET wrapped = ?, master_key_id = ? WHERE id = ? AND master_key_id = ?;
