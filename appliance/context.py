"""Who is acting, where, and under which correlation id: passed to every state-changing function.

Who is two things: the appliance account (`Actor`) and the operating-system account behind the request
(`OsIdentity`): the kernel's peer credentials for a person on the control socket, this process's own account
otherwise. Every audit event records both.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import uuid
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from appliance.config import Settings


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    auth: str  # password, session, token, console, system, local
    must_change_password: bool = False  # may do nothing but change it (identity/roles.require)


SYSTEM = Actor("system", "system", "local")

PEER = "peer"  # the uid came from the kernel (SO_PEERCRED) for a caller on the control socket
PROCESS = "process"  # the uid is this process's own: the home's owner running the command in-process


def os_user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


@dataclass(frozen=True)
class OsIdentity:
    name: str
    uid: int
    source: str  # PEER or PROCESS

    @classmethod
    def of_process(cls) -> OsIdentity:
        uid = os.geteuid()
        return cls(os_user_name(uid), uid, PROCESS)

    @classmethod
    def of_peer(cls, uid: int) -> OsIdentity:
        return cls(os_user_name(uid), uid, PEER)

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid}{', from the kernel' if self.source == PEER else ''})"


@dataclass(frozen=True)
class Context:
    settings: Settings
    engine: Engine
    actor: Actor = SYSTEM
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    os: OsIdentity = field(default_factory=OsIdentity.of_process)
    signs_checkpoints: bool = True  # False in the gateway and the console: the signer processes sign
    personal: object | None = None  # keys.personal.PersonalKeys: the person's own key, reached in their process

    def acting_as(self, actor: Actor) -> Context:
        return dataclasses.replace(self, actor=actor)

    def not_signing(self) -> Context:
        """This context never signs audit checkpoints (a network-facing process)."""
        return dataclasses.replace(self, signs_checkpoints=False)
