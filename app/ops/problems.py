"""Problems the CLI reports as one line and an exit code, never as a traceback or a secret."""

import os
import re

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.config import SECRET_SETTINGS, env_name


class CliError(Exception):
    """Something the operator can fix; printed as `herald: <message>`."""

    exit_code = 1


class ConfigError(CliError):
    """A setting that cannot work: names the setting and says what is wrong."""

    exit_code = os.EX_CONFIG


def redact(url: str) -> str | None:
    """`url` with its password shown as ***; None when it is too malformed to tell where
    the password is (then it must not be printed at all)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None if "@" in url else url
    location, qsep, query = rest.partition("?")
    # The last '@' ends the user info: an unescaped '@' inside a password stays hidden.
    at = location.rfind("@")
    if at >= 0:
        userinfo, host = location[:at], location[at + 1 :]
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        location = f"{userinfo}@{host}"
    if qsep:
        query = re.sub(r"(?i)(^|&)(password|sslpassword)=[^&]*", r"\1\2=***", query)
    return f"{scheme}{sep}{location}{qsep}{query}"


def scrub(text: str, *secrets: str | None) -> str:
    """Remove any of `secrets` from a message that came from a library."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


_FRIENDLY = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be one of {expected}",
    "missing": "is required",
    "string_too_short": "must be at least {min_length} characters",
}


def settings_problem(exc: ValidationError) -> ConfigError:
    """One line per bad HERALD_ setting, naming it and what is wrong with it."""
    return ConfigError("\n".join(_line(error) for error in exc.errors()))


def _line(error: ErrorDetails) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    name = env_name(field) if field else "settings"
    template = _FRIENDLY.get(error["type"])
    context = error.get("ctx") or {}
    if template is not None:
        try:
            message = template.format(**context)
        except (KeyError, IndexError):
            message = error["msg"]
    else:
        message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str):
        shown: str | None = value
        if field == "database_url":
            shown = redact(value)
        elif field in SECRET_SETTINGS:
            shown = None
        if shown is not None:
            message += f" (got {shown!r})"
    return f"{name}: {message}"
