"""The domain's exceptions.

Library code raises these and never prints; only the CLI and the console turn them into one clear line
(and the CLI into a non-zero exit status). An error may name the parameter at fault (`param`, the library's
name for it) and a next step (`hint`, a key of HINTS); each front end renders both in its own terms (a flag
and a command for the CLI, a field and a page for the console), so library messages name neither.
"""

# What to do next, by key: (the command line's words, the console's words).
HINTS: dict[str, tuple[str, str]] = {
    "login": ("run `appliance login NAME`", "sign in again"),
    "passwd": ("run `appliance passwd`", "set a new password on the sign-in page"),
    "init": ("run `appliance init`", "ask the operator to initialise the appliance"),
    "keys.init": ("run `appliance keys init`", "ask an admin to create the signing keys"),
    "keys.enroll": ("run `appliance keys enroll`, then have root pin its fingerprint (`appliance keys pin`)",
                    "enrol your personal key with `appliance keys enroll` on your terminal; root pins it"),
    "audit.checkpoint": ("run `appliance audit checkpoint`", "sign a checkpoint on the Audit page"),
    "audit.verify": ("run `appliance audit verify`", "verify the trail on the Audit page"),
    "models.list": ("see `appliance models list`", "see the Models page"),
    "runs.list": ("see `appliance runs list`", "see the Training page"),
    "artifacts.list": ("see `appliance artifacts list`", "see the Artifacts page"),
    "evals.override": ("an officer may override them with `appliance evals override RUN --reason ...`",
                       "an officer may override them on the Evaluations page"),
    "sign": ("run `appliance sign ARTIFACT`", "an engineer signs it on the Artifacts page"),
    "policies": ("see `appliance policies list`", "see the installed policies on the Audit page"),
}


class ApplianceError(Exception):
    """Base of every error a user can cause or fix; `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str = "", *, param: str | None = None, hint: str | None = None):
        super().__init__(message)
        if hint is not None and hint not in HINTS:
            raise ValueError(f"unknown hint {hint!r}")
        self.param = param
        self.hint = hint

    def render(self, param_label: str | None, front_end: int) -> str:
        """The message with the parameter's label in front and the hint after; front_end 0 = CLI, 1 = console."""
        text = str(self)
        if param_label:
            text = f"{param_label}: {text}"
        if self.hint:
            text = f"{text}; {HINTS[self.hint][front_end]}"
        return text


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
