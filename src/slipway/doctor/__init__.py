"""`slipway doctor`: check the host and the home, and say how to fix what is wrong."""

from slipway.doctor.checks import CHECKS, Finding, run_checks
from slipway.doctor.facts import Facts, gather

__all__ = ["CHECKS", "Facts", "Finding", "gather", "run_checks"]
