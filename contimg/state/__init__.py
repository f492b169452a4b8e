"""The SQLite state layer: every SQL statement of the project lives in this package."""

from contimg.state.db import Database, StateError, migrate_to_latest, schema_version
from contimg.state.jobs import Job, LeaseLost, NextJob

__all__ = ["Database", "StateError", "Job", "LeaseLost", "NextJob", "migrate_to_latest",
           "schema_version"]
