"""python -m musehub"""

from musehub.cli import main

raise SystemExit(main())
