"""`python -m services.store`: services/store/command.py."""

from .command import main

raise SystemExit(main())
