"""Replayable failure scenarios (data files) and their runner, with a pass/fail report."""
