"""`python -m circlebot` is the `circlebot` command."""

import sys

from circlebot.cli import main

sys.exit(main())
