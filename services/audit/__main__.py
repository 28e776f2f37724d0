"""`python -m services.audit`: services/audit/command.py."""

from .command import main

raise SystemExit(main())
