-- SQL of the nonce cache (security.replay.SQLiteNonceCache), in named blocks loaded by
-- hub.store.sql. Times are Unix seconds (REAL).

-- name: schema
CREATE TABLE IF NOT EXISTS seen_nonces (
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_nonces_expiry ON seen_nonces (expires_at);

-- name: remember
-- One row changes when the pair is new or its earlier use has expired; none for a replay.
INSERT INTO seen_nonces (key_id, nonce, expires_at) VALUES (:key_id, :nonce, :expires_at)
ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
WHERE seen_nonces.expires_at <= :now;

-- name: prune
DELETE FROM seen_nonces WHERE expires_at <= :now;

-- name: count
SELECT count(*) FROM seen_nonces;
