#!/usr/bin/env python3
"""Hearth's single entry point: `python run.py --help`."""

import sys

from supervisor.cli import main

if __name__ == "__main__":
    sys.exit(main())
