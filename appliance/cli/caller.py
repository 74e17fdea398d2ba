"""Who is on the other end of a command, and how to reach what is theirs: their OS account, the token they
present, where their session is kept, and the files they name. In-process all of it is this process's own;
through the control socket (`control/request.py`) it is the person's, reached through their client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.config import Settings
from appliance.context import OsIdentity
from appliance.identity.session_file import FileSessionStore, SessionStore, session_path
from appliance.userfiles import InputFile, InputTree, LocalFile, LocalOutput, LocalTree, OutputFile


class Files(Protocol):
    def input_file(self, name: str) -> InputFile: ...

    def input_tree(self, name: str) -> InputTree: ...

    def output_file(self, name: str, **kw) -> OutputFile: ...


class LocalFiles:
    """Paths as typed, relative to this process's working directory."""

    def input_file(self, name: str) -> InputFile:
        return LocalFile(Path(name), name)

    def input_tree(self, name: str) -> InputTree:
        return LocalTree(Path(name), name)

    def output_file(self, name: str, **kw) -> OutputFile:
        return LocalOutput(Path(name), name, **kw)


@dataclass
class Caller:
    os: OsIdentity
    token: str | None
    store: SessionStore
    files: Files
    remote: bool = False
    keys: object | None = None  # keys.personal.PersonalKeys: the person's own signing key, in their process


def local_caller(settings: Settings, argv: list[str]) -> Caller:
    from appliance.keys.personal import LocalPersonalKeys

    return Caller(OsIdentity.of_process(), settings.env.get("APPLIANCE_TOKEN") or None,
                  FileSessionStore(session_path(settings.env, str(settings.home))), LocalFiles(),
                  keys=LocalPersonalKeys(settings.env, argv))
