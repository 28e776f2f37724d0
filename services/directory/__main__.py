"""`python -m services.directory import FILE | refresh | purge`, on a server with the console's settings.

- `import FILE`: the company's organization ids (a CSV: a column named like organizationId / organization_id /
  id, else the first) are queued as a job the workers read into the directory, at the API key's rate, as a bulk
  lookup is (durable, resumable, audited as "import organizations" by "command line (USER)");
- `refresh`: every organization the directory holds is queued for re-reading the same way (audited as "refresh
  directory");
- `purge [--days N]`: organizations not read for N days (default 400) are removed (audited).

An entry point, not a module anything imports: it composes the store, the jobs and the audit log itself.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from ..audit import AuditLog, AuditUnavailable
from ..bulk import import_file_ids
from ..config import ConfigError, load_config
from ..console import audit_keys
from ..inputs import InputRefused
from ..jobs import job_store
from ..jobs.store import IMPORT, MAX_IDS_PER_IMPORT
from ..store import StoreError, open_store
from . import Directory, queue_refresh
from .store import KEEP_UNREAD


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.directory", description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    imported = actions.add_parser("import", help="read the organization ids of a CSV into the directory")
    imported.add_argument("file", type=Path)
    actions.add_parser("refresh", help="re-read every organization the directory holds")
    purge = actions.add_parser("purge", help="remove organizations not read for --days days")
    purge.add_argument("--days", type=int, default=KEEP_UNREAD.days)
    options = parser.parse_args(argv)
    who = f"command line ({getpass.getuser()})"
    try:
        config = load_config()
        store = open_store(config.audit_database_url)
    except (ConfigError, StoreError) as problem:
        print(f"The directory command would not start: {problem}", file=sys.stderr)
        return 2
    audit = AuditLog(store, environment=config.environment, keys=audit_keys(config))
    directory, jobs = Directory(store), job_store(store, config)
    try:
        if options.action == "purge":
            removed = directory.purge(timedelta(days=options.days))
            _record(audit, who, "purge directory", {"notReadForDays": options.days, "removed": removed})
            print(f"Removed {removed:,} organizations not read for {options.days} days.")
            return 0
        if options.action == "import":
            parsed = import_file_ids(options.file.read_bytes(), MAX_IDS_PER_IMPORT)
            ids, kind, action = parsed.valid, IMPORT, "import organizations"
            skipped = parsed.invalid_count + len(parsed.duplicates) + parsed.over_limit
        else:
            queued = queue_refresh(directory, jobs, audit, who, "admin")
            if not queued:
                print("Nothing to read: the directory is empty.", file=sys.stderr)
                return 1
            print(f"Queued {directory.size(max_age=0):,} organizations for the job workers "
                  f"({', '.join(job[:8] for job in queued)}).")
            return 0
        if not ids:
            print("Nothing to read: no organization ids.", file=sys.stderr)
            return 1
        queued = []
        for start in range(0, len(ids), MAX_IDS_PER_IMPORT):  # a job at most MAX_IDS_PER_IMPORT long
            chunk = ids[start:start + MAX_IDS_PER_IMPORT]
            job_id = jobs.create(who, "admin", chunk, kind=kind)
            _record(audit, who, action, {"job": job_id, "organizations": len(chunk)})
            queued.append(job_id)
    except (InputRefused, OSError) as problem:
        print(getattr(problem, "message", None) or f"The file can't be read: {problem}.", file=sys.stderr)
        return 1
    except AuditUnavailable as problem:
        print(problem.user_message, file=sys.stderr)
        return 2
    finally:
        store.dispose()
    print(f"Queued {len(ids):,} organizations for the job workers ({', '.join(job[:8] for job in queued)})"
          + (f"; skipped {skipped:,} line{'s' if skipped != 1 else ''} (not ids, repeated, or past the limit)."
             if skipped else "."))
    return 0


def _record(audit: AuditLog, who: str, action: str, parameters: dict[str, object]) -> None:
    audit.record(user=who, role="admin", action=action, organization_id=None, outcome="succeeded",
                 parameters=parameters, required=True)


if __name__ == "__main__":
    raise SystemExit(main())
