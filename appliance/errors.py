"""The domain's exceptions.

Library code raises these and never prints; only the CLI (and later the console) turns them into one
clear line and a non-zero exit status.
"""


class ApplianceError(Exception):
    """Base of every error a user can cause or fix; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(ApplianceError):
    """A settings file, environment variable or policy file is invalid."""

    exit_code = 2


class InputError(ApplianceError):
    """A file, directory or argument given by the user cannot be used."""

    exit_code = 2


class NotFound(ApplianceError):
    """A named object (model, dataset, run, artifact) does not exist."""

    exit_code = 3


class AlreadyExists(ApplianceError):
    """A name is taken."""

    exit_code = 3


class IntegrityError(ApplianceError):
    """Stored content no longer matches its recorded digest, or a signature does not verify."""

    exit_code = 4


class PolicyViolation(ApplianceError):
    """An action is refused by policy."""

    exit_code = 5


class PermissionDenied(ApplianceError):
    """The acting user may not do this."""

    exit_code = 6


class StorageError(ApplianceError):
    """APPLIANCE_HOME or the database cannot be written or read."""

    exit_code = 7
