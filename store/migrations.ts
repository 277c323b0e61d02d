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
];
