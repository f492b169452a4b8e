"""Schema of the state database as forward-only migrations.

``MIGRATIONS[k]`` takes a database from ``user_version`` k to k+1.  Never edit a
released migration: append a new one.  Times called ``*_mjd`` are observation
times taken from the data; times called ``*_at`` are wall-clock Unix seconds
used only for leases, backoff, waiting and bookkeeping.
"""

JOBS_V1 = [
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        step TEXT NOT NULL,
        subject TEXT NOT NULL,
        obs_mjd REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'running', 'done', 'failed', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 5,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires_at REAL,
        fence INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (step, subject)
    )
    """,
    "CREATE INDEX jobs_claim ON jobs (step, state, obs_mjd)",
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        step TEXT,
        subject TEXT,
        message TEXT NOT NULL,
        data TEXT
    )
    """,
    # The event log is append-only: the database itself refuses edits.
    """
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END
    """,
    """
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END
    """,
]

INGEST_V2 = [
    """
    CREATE TABLE observations (
        id TEXT PRIMARY KEY,
        obs_mjd REAL NOT NULL,
        start_mjd REAL,
        end_mjd REAL,
        dec_deg REAL,
        nsubbands INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'collecting'
            CHECK (state IN ('collecting', 'queued', 'incomplete')),
        reason TEXT,
        first_seen_at REAL NOT NULL,
        last_seen_at REAL NOT NULL
    )
    """,
    "CREATE INDEX observations_time ON observations (obs_mjd)",
    """
    CREATE TABLE subband_files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        subband INTEGER,
        name_mjd REAL,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('registered', 'quarantined', 'duplicate')),
        error TEXT,
        observation_id TEXT REFERENCES observations (id),
        start_mjd REAL,
        dec_deg REAL,
        nchan INTEGER,
        fingerprint TEXT,
        registered_at REAL NOT NULL
    )
    """,
    "CREATE INDEX subband_files_obs ON subband_files (observation_id, subband)",
]

MS_V3 = [
    """
    CREATE TABLE measurement_sets (
        observation_id TEXT PRIMARY KEY REFERENCES observations (id),
        path TEXT NOT NULL UNIQUE,
        start_mjd REAL NOT NULL,
        end_mjd REAL NOT NULL,
        mid_mjd REAL NOT NULL,
        dec_deg REAL NOT NULL,
        phase_ra_deg REAL NOT NULL,
        phase_dec_deg REAL NOT NULL,
        subbands TEXT NOT NULL,
        nchan INTEGER NOT NULL,
        size_bytes INTEGER,
        created_at REAL NOT NULL
    )
    """,
]

CALIBRATION_V4 = [
    # K1: the calibrator decision per observation (calibrator NULL = none transits in it).
    """
    CREATE TABLE calibrator_choices (
        observation_id TEXT PRIMARY KEY REFERENCES observations (id),
        calibrator TEXT,
        ra_deg REAL, dec_deg REAL, flux_jy REAL, spectral_index REAL,
        transit_mjd REAL, beam_weighted_jy REAL,
        decided_at REAL NOT NULL
    )
    """,
    # K3: every solution table with its validity window in observation time.
    """
    CREATE TABLE caltables (
        id INTEGER PRIMARY KEY,
        set_name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('bandpass', 'gain')),
        path TEXT NOT NULL UNIQUE,
        valid_start_mjd REAL NOT NULL,
        valid_end_mjd REAL NOT NULL,
        transit_mjd REAL NOT NULL,
        source_observation TEXT NOT NULL,
        calibrator TEXT NOT NULL,
        refant TEXT NOT NULL,
        params TEXT NOT NULL,
        quality TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        UNIQUE (set_name, kind)
    )
    """,
    "CREATE INDEX caltables_window ON caltables (kind, active, valid_start_mjd, valid_end_mjd)",
    # K4: which tables were applied to which MS.
    """
    CREATE TABLE applications (
        observation_id TEXT PRIMARY KEY REFERENCES observations (id),
        bandpass_id INTEGER NOT NULL REFERENCES caltables (id),
        gain_id INTEGER NOT NULL REFERENCES caltables (id),
        figures TEXT,
        applied_at REAL NOT NULL
    )
    """,
]

PRODUCTS_V5 = [
    """
    CREATE TABLE images (
        observation_id TEXT PRIMARY KEY REFERENCES observations (id),
        dir TEXT NOT NULL,
        files TEXT NOT NULL,
        beam_major_arcsec REAL, beam_minor_arcsec REAL, beam_pa_deg REAL,
        noise_jy REAL, peak_jy REAL, dynamic_range REAL,
        freq_hz REAL, cell_arcsec REAL, dec_deg REAL NOT NULL,
        start_mjd REAL NOT NULL, end_mjd REAL NOT NULL, mid_mjd REAL NOT NULL,
        figures TEXT,
        created_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE mosaics (
        id TEXT PRIMARY KEY,
        mode TEXT NOT NULL CHECK (mode IN ('tiles', 'sliding')),
        dec_deg REAL NOT NULL,
        start_mjd REAL NOT NULL,
        end_mjd REAL NOT NULL,
        nmembers INTEGER NOT NULL,
        overlap INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'formed' CHECK (state IN ('formed', 'done')),
        warning TEXT,
        validation_status TEXT,
        validation TEXT,
        qa_status TEXT,
        qa TEXT,
        dir TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    )
    """,
    """
    CREATE TABLE mosaic_members (
        mosaic_id TEXT NOT NULL REFERENCES mosaics (id),
        observation_id TEXT NOT NULL REFERENCES observations (id),
        position INTEGER NOT NULL,
        exclusive INTEGER NOT NULL,
        PRIMARY KEY (mosaic_id, observation_id)
    )
    """,
    # G1: outside sliding mode an observation belongs to one mosaic at most.
    "CREATE UNIQUE INDEX mosaic_members_exclusive ON mosaic_members (observation_id) WHERE exclusive = 1",
    # P1-P6: the product registry publishing works from; id = mosaic id (G5).
    """
    CREATE TABLE products (
        id TEXT PRIMARY KEY,
        mosaic_id TEXT NOT NULL UNIQUE REFERENCES mosaics (id),
        state TEXT NOT NULL DEFAULT 'staged'
            CHECK (state IN ('staged', 'held', 'publishing', 'published', 'failed')),
        staged_dir TEXT NOT NULL,
        published_dir TEXT,
        files TEXT NOT NULL,
        checksums TEXT NOT NULL,
        qa_status TEXT NOT NULL,
        validation_status TEXT NOT NULL,
        reason TEXT,
        lease_owner TEXT,
        lease_expires_at REAL,
        created_at REAL NOT NULL,
        published_at REAL
    )
    """,
]

# Retention: a Measurement Set removed by `contimg prune` keeps its row (history, and
# the reason a later step cannot find it); convert clears the mark when it rebuilds.
PRUNE_V6 = [
    "ALTER TABLE measurement_sets ADD COLUMN pruned_at REAL",
    # watch asks "every mosaic of this observation published?" at every scan, for months
    "CREATE INDEX mosaic_members_observation ON mosaic_members (observation_id)",
]

# Item 13: samples convert flagged because they were NaN, infinite or absurd (per
# subband as JSON), so status can say how much of an MS was unusable and why.
FLAGS_V7 = [
    "ALTER TABLE measurement_sets ADD COLUMN flagged_samples INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE measurement_sets ADD COLUMN flag_detail TEXT",
]

# Issue 13: RFI flag statistics per observation (engine, fractions, bad antennas) and
# the provenance of each application (tables, their selection rule, flags, sky model),
# so image and mosaic headers can name them and status can warn.
CALPROV_V8 = [
    """
    CREATE TABLE rfi_flags (
        observation_id TEXT PRIMARY KEY REFERENCES observations (id),
        engine TEXT NOT NULL,
        flagged_before REAL NOT NULL,
        flagged_after REAL NOT NULL,
        figures TEXT NOT NULL,
        flagged_at REAL NOT NULL
    )
    """,
    "ALTER TABLE applications ADD COLUMN provenance TEXT",
]

# Issue 16: `contimg reprocess` writes new versions of an observation's image beside the
# old ones; every version is listed here, and ``images`` holds the current one.
VERSIONS_V9 = [
    """
    CREATE TABLE image_versions (
        observation_id TEXT NOT NULL REFERENCES observations (id),
        version INTEGER NOT NULL,
        dir TEXT NOT NULL,
        files TEXT NOT NULL,
        figures TEXT,
        options TEXT,
        note TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (observation_id, version)
    )
    """,
    "ALTER TABLE images ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
    # images made before: their version 1
    "INSERT INTO image_versions (observation_id, version, dir, files, figures, options, note,"
    " created_at) SELECT observation_id, 1, dir, files, figures, NULL, 'pipeline', created_at"
    " FROM images",
]

MIGRATIONS: list[list[str]] = [JOBS_V1, INGEST_V2, MS_V3, CALIBRATION_V4, PRODUCTS_V5, PRUNE_V6,
                               FLAGS_V7, CALPROV_V8, VERSIONS_V9]
