"""What every service's settings share: a readable account of what is wrong with them."""

from __future__ import annotations

from pydantic import ValidationError


def settings_errors(exc: ValidationError) -> str:
    """What is wrong with the settings, one line per setting, without the values given (an
    environment variable may hold a credential)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors(include_input=False, include_url=False)
    )
