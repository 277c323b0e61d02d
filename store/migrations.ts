/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit a
 * released migration: append a new one. Times are Unix epoch milliseconds.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    min_size    INTEGER NOT NULL CHECK (min_size >= 0),
    max_size    INTEGER NOT NULL CHECK (max_size >= min_size),
    desired     INTEGER NOT NULL CHECK (desired >= 0),
    policy      TEXT NOT NULL,               -- JSON TargetTrackingPolicy
    paused      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );

  -- One row per instance ever launched or registered. The controller owns pending, terminating
  -- and terminated; the monitor server moves running, suspect and dead.
  CREATE TABLE instances (
    id               TEXT PRIMARY KEY,
    group_id         TEXT NOT NULL REFERENCES groups(id),
    provider_id      TEXT,
    state            TEXT NOT NULL CHECK (state IN ('pending','running','suspect','dead','terminating','terminated')),
    state_reason     TEXT,
    state_changed_at INTEGER NOT NULL,
    launched_at      INTEGER,
    registered_at    INTEGER,
    last_seen_at     INTEGER,
    terminated_at    INTEGER,
    address          TEXT,
    agent_version    TEXT
  );
  CREATE INDEX instances_by_group_state ON instances(group_id, state);

  -- Latest sample per instance: what status and the controller read. Never scan samples for it.
  CREATE TABLE latest (
    instance_id  TEXT PRIMARY KEY REFERENCES instances(id),
    seq          INTEGER NOT NULL,
    sample_at    INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    cpu          REAL NOT NULL,
    mem          REAL NOT NULL
  );

  -- Raw samples, clustered by time for cheap retention deletes.
  CREATE TABLE samples (
    ts           INTEGER NOT NULL,
    instance_id  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    cpu          REAL NOT NULL,
    mem          REAL NOT NULL,
    PRIMARY KEY (ts, instance_id, seq)
  ) WITHOUT ROWID;

  CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,
    group_id   TEXT NOT NULL,
    from_count INTEGER NOT NULL,
    to_count   INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    message    TEXT NOT NULL,
    details    TEXT NOT NULL                -- JSON: trail and inputs
  );
  CREATE INDEX decisions_by_group ON decisions(group_id, id);

  -- What the controller did about instances: launches and terminations with their cause.
  CREATE TABLE activities (
    id           INTEGER PRIMARY KEY,
    ts           INTEGER NOT NULL,
    group_id     TEXT NOT NULL,
    instance_id  TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('launch','terminate')),
    cause        TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('ok','failed')),
    error        TEXT
  );
  CREATE INDEX activities_by_group ON activities(group_id, id);

  -- Simulated demand per group (demo mode): a profile evaluated from started_at.
  CREATE TABLE sim_load (
    group_id    TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,               -- JSON DemandProfile
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );

  -- Each daemon's own heartbeat, so one can tell whether the other is alive.
  CREATE TABLE components (
    name          TEXT PRIMARY KEY,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    info          TEXT NOT NULL               -- JSON
  );
  `,
  `
  -- Provider contract v2 (docs/architecture.md, "Instance identity"): an instance's id is the
  -- provider's own id; a launch is an intent written before the cloud call, whose token is the
  -- cloud's idempotency key (EC2 ClientToken) and a tag on every instance it launched.
  ALTER TABLE instances ADD COLUMN launch_token TEXT;
  ALTER TABLE instances ADD COLUMN zone TEXT;
  ALTER TABLE instances ADD COLUMN instance_type TEXT;
  -- launched: by this controller; adopted: found at the provider; registered: an agent said so first.
  ALTER TABLE instances ADD COLUMN origin TEXT NOT NULL DEFAULT 'launched';
  ALTER TABLE instances ADD COLUMN provider_state TEXT;
  ALTER TABLE instances ADD COLUMN provider_seen_at INTEGER;
  ALTER TABLE instances ADD COLUMN terminate_requested_at INTEGER;

  CREATE TABLE launch_intents (
    token       TEXT PRIMARY KEY,
    group_id    TEXT NOT NULL REFERENCES groups(id),
    count       INTEGER NOT NULL CHECK (count >= 1),
    cause       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL CHECK (status IN ('open','done','failed')),
    error       TEXT,
    closed_at   INTEGER
  );
  CREATE INDEX launch_intents_open ON launch_intents(group_id, status);

  -- Activities gain 'adopt' (an instance found at the provider) and 'set-desired' (a cloud-owned
  -- count); SQLite cannot alter a CHECK, so the table is rebuilt.
  CREATE TABLE activities_v2 (
    id           INTEGER PRIMARY KEY,
    ts           INTEGER NOT NULL,
    group_id     TEXT NOT NULL,
    instance_id  TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('launch','terminate','adopt','set-desired')),
    cause        TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('ok','failed')),
    error        TEXT
  );
  INSERT INTO activities_v2 SELECT * FROM activities;
  DROP TABLE activities;
  ALTER TABLE activities_v2 RENAME TO activities;
  CREATE INDEX activities_by_group ON activities(group_id, id);
  `,
  `
  -- Groups and policies live in the store (docs/policies.md): the policy column holds a versioned
  -- policy document (domain/policy.ts); the first build's flat target-tracking JSON is converted.
  UPDATE groups SET policy = json_object(
    'version', 1,
    'warmupMs', COALESCE(json_extract(policy, '$.warmupMs'), 0),
    'targetTracking', json_array(json_object(
      'metric', 'cpu',
      'target', COALESCE(json_extract(policy, '$.targetCpu'), 50),
      'toleranceUp', COALESCE(json_extract(policy, '$.tolerance'), 0.1),
      'toleranceDown', COALESCE(json_extract(policy, '$.tolerance'), 0.1))),
    'behavior', json_object('scaleDown', json_object('stabilizationMs', COALESCE(json_extract(policy, '$.scaleInStabilizationMs'), 300000))))
  WHERE json_extract(policy, '$.kind') = 'target-tracking';
  -- Revision of the group's document: +1 on every change an operator makes.
  ALTER TABLE groups ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE groups ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
  -- autoscaler scale GROUP --desired N [--for 30m]
  ALTER TABLE groups ADD COLUMN override_desired INTEGER;
  ALTER TABLE groups ADD COLUMN override_until INTEGER;
  ALTER TABLE groups ADD COLUMN override_by TEXT;

  -- What the policies remember between evaluations (stabilization, rate-limit events, cooldowns,
  -- outage guard, forecast), so a restarted controller decides as the old one would have.
  CREATE TABLE policy_state (
    group_id    TEXT PRIMARY KEY REFERENCES groups(id),
    state       TEXT NOT NULL,              -- JSON PolicyState
    updated_at  INTEGER NOT NULL
  );

  -- Operator actions on a group: policy and bounds changes (old → new), pause, resume, manual
  -- capacity, dry-run; with who did it.
  CREATE TABLE group_events (
    id        INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    group_id  TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('created','applied','policy','pause','resume','scale','dry-run')),
    actor     TEXT NOT NULL,
    message   TEXT NOT NULL,
    details   TEXT NOT NULL                 -- JSON
  );
  CREATE INDEX group_events_by_group ON group_events(group_id, id);

  -- One row per group per minute, written by the controller: the history predictive scaling and
  -- the simulator's --from-db read. Sums over ready instances (demand in percent of one instance).
  CREATE TABLE group_minutes (
    group_id  TEXT NOT NULL,
    minute    INTEGER NOT NULL,
    ready     REAL NOT NULL,
    capacity  REAL NOT NULL,
    cpu       REAL NOT NULL,
    mem       REAL NOT NULL,
    samples   INTEGER NOT NULL,
    PRIMARY KEY (group_id, minute)
  ) WITHOUT ROWID;
  `,
  `
  -- Identity proofs (docs/security.md). Secrets shared by the controller and the monitor server,
  -- which open the same file: the local provider's launch key (HMAC of each instance id).
  CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
  );
  -- An EC2 instance identity document never changes for the instance's life and is readable by
  -- anything on it, so the first Register that proved it binds the agent's nonce (as Vault's AWS
  -- auth does); a later Register with the same document and another nonce is a replay.
  CREATE TABLE identity_bindings (
    instance_id    TEXT PRIMARY KEY,
    nonce_sha256   TEXT NOT NULL,
    first_seen_at  INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL
  );
  `,
  `
  -- Per-instance 1-minute rollups of raw samples (a bounded database: raw samples are kept an
  -- hour, these 14 days), folded in by the monitor server in the transaction that appends the raw
  -- samples, so a late sample lands in its own minute. Sums, not averages, and in hundredths of a
  -- percent: folding an integer sum is exact in any order (avg = sum / n / 100), and a value takes
  -- 2-3 bytes instead of 8 (a row is about 45 bytes: 14 days of one instance are about 1 MiB).
  -- Keyed group first, then time: "the last hour of group G, per instance, per minute" is one
  -- range read; retention walks the groups and deletes each one's oldest minutes.
  CREATE TABLE sample_minutes (
    group_id     TEXT NOT NULL,
    minute       INTEGER NOT NULL,          -- start of the minute of the agent's sample time
    instance_id  TEXT NOT NULL,
    n            INTEGER NOT NULL CHECK (n >= 1),
    cpu_sum      INTEGER NOT NULL,          -- hundredths of a percent, summed over the n samples
    cpu_max      INTEGER NOT NULL,          -- hundredths of a percent
    mem_sum      INTEGER NOT NULL,
    mem_max      INTEGER NOT NULL,
    PRIMARY KEY (group_id, minute, instance_id)
  ) WITHOUT ROWID;
  -- The raw samples already stored become rollups, so an upgrade keeps their history when the
  -- shorter raw retention deletes them.
  INSERT INTO sample_minutes (group_id, minute, instance_id, n, cpu_sum, cpu_max, mem_sum, mem_max)
    SELECT i.group_id, (s.ts / 60000) * 60000, s.instance_id, COUNT(*),
      SUM(CAST(ROUND(s.cpu * 100) AS INTEGER)), MAX(CAST(ROUND(s.cpu * 100) AS INTEGER)),
      SUM(CAST(ROUND(s.mem * 100) AS INTEGER)), MAX(CAST(ROUND(s.mem * 100) AS INTEGER))
    FROM samples s JOIN instances i ON i.id = s.instance_id
    GROUP BY i.group_id, (s.ts / 60000) * 60000, s.instance_id;
  `,
];
