"""A person's own signing key, held and used only in their own `appliance` process.

An officer signs their approvals, rejections, revocations and gate overrides with it, an engineer their
packaging and signing: a decision counts only when its maker's own secret made it, never because a row says so.
The key is an ECDSA P-256 key in the person's home (APPLIANCE_PERSONAL_KEYS, default
~/.local/share/appliance/keys/USER.key.pem, 0600 in a 0700 folder; KEY_FORMAT), encrypted under a passphrase of
their own (APPLIANCE_PERSONAL_PASSPHRASE_FILE in their environment, or asked on their terminal; never on a command
line and never sent to the appliance service), or on their PKCS#11 token where their environment names one
(APPLIANCE_PERSONAL_PKCS11, `token.py`: made on the token, never extractable, used with its PIN). Through the
control socket the service asks the person's client to sign
(`control/client.py`); the client signs only a statement of the decision the person's own command line asked for,
and says what it signs.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.errors import InputError, IntegrityError, NotFound, PermissionDenied
from appliance.keys.crypto import MIN_PASSPHRASE, key_id_of, pem_of

ENROL_HEADER = "appliance personal key enrolment v1"
# The key file: the PKCS#8 key (PBES2, AES-256) under a password stretched from the person's passphrase by scrypt,
# since PKCS#8's own PBKDF2 (2,048 rounds) is cheap to guess against; with the scrypt parameters beside it.
KEY_FORMAT = "appliance personal key v1"
SCRYPT_N = 1 << 15  # about 32 MiB and a tenth of a second a try
# The command words whose decisions a person's key signs, by the decision a statement names.
COMMANDS = {"approve": ("approve",), "reject": ("reject",), "revoke": ("revoke",), "override": ("evals", "override"),
            "package": ("package",), "sign": ("sign",)}


class PersonalKeys(Protocol):
    """The person's key, wherever their process is: `enroll` makes it, `sign` signs one statement."""

    def enroll(self, user: str) -> dict: ...

    def sign(self, user: str, payload: bytes) -> dict: ...


def enrolment_text(user: str, key_id: str) -> bytes:
    return f"{ENROL_HEADER}\n{user}\n{key_id}\n".encode()


def keys_dir(env: Mapping[str, str]) -> Path:
    explicit = env.get("APPLIANCE_PERSONAL_KEYS")
    if explicit:
        return Path(explicit)
    data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "appliance" / "keys"


def _stretched(passphrase: bytes, salt: bytes, n: int = SCRYPT_N, r: int = 8, p: int = 1) -> bytes:
    import hashlib

    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=128 << 20, dklen=32).hex().encode()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def asked_for(statement: dict, argv: list[str]) -> str | None:
    """None when `argv` (the person's own command line) asks for exactly the decision this statement states;
    otherwise what differs. A service that asks for something else gets nothing signed."""
    predicate, subjects = statement.get("predicate") or {}, statement.get("subject") or [{}]
    decision, subject = predicate.get("decision"), subjects[0].get("name")
    words = [a for a in argv if not a.startswith("-")]
    wanted = COMMANDS.get(decision)
    if wanted is None or tuple(words[:len(wanted)]) != wanted:
        return f"it states {decision!r}, your command is `{shlex.join(argv[:3])}`"
    named = [Path(w.rstrip("/")).name for w in words[len(wanted):]] + _values(argv, "--name")
    if subject not in named:
        return f"it is about {subject!r}, which your command does not name"
    reasons = _values(argv, "--reason")
    if reasons and predicate.get("reason") != reasons[-1].strip():
        return "its reason is not the one you gave"
    return None


def _values(argv: list[str], option: str) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif arg.startswith(option + "="):
            out.append(arg.split("=", 1)[1])
    return out


class LocalPersonalKeys:
    """The key in this process's own account: in-process use, and the client side of the control socket."""

    def __init__(self, env: Mapping[str, str], argv: list[str]):
        self.env, self.argv = env, list(argv)

    def _paths(self, user: str) -> tuple[Path, Path]:
        folder = keys_dir(self.env)
        return folder / f"{user}.key.pem", folder / f"{user}.pub.pem"

    def _secret(self, variable: str, prompt: str, what: str, least: int, confirm: bool = False) -> str:
        path = self.env.get(variable)
        if path:
            try:
                with open(path, "rb") as fh:
                    value = fh.read(4097).decode("utf-8").splitlines()[0] if os.fstat(fh.fileno()).st_size else ""
            except (OSError, UnicodeDecodeError, IndexError) as exc:
                raise InputError(f"{path}: cannot read your {what}: "
                                 f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
            source = path
        else:
            if not os.isatty(0) and not os.path.exists("/dev/tty"):
                raise InputError(f"no {what}: set {variable}, or run interactively")
            value = getpass.getpass(prompt)
            if confirm and getpass.getpass("Again: ") != value:
                raise InputError(f"the two {what}s differ")
            source = f"your {what}"
        if len(value) < least:
            raise InputError(f"{source}: a {what} has at least {least} characters")
        return value

    def _passphrase(self, confirm: bool) -> bytes:
        return self._secret("APPLIANCE_PERSONAL_PASSPHRASE_FILE", "Passphrase of your personal signing key: ",
                            "personal key passphrase", MIN_PASSPHRASE, confirm).encode("utf-8")

    def _token(self):
        """The person's PKCS#11 token (`token.py`), where their environment names one; None for the key file."""
        module = self.env.get("APPLIANCE_PERSONAL_PKCS11")
        if not module:
            return None
        from appliance.keys.token import TokenKey

        return TokenKey(module, self.env.get("APPLIANCE_PERSONAL_TOKEN"),
                        lambda label: self._secret("APPLIANCE_PERSONAL_PIN_FILE", f"PIN of token {label!r}: ",
                                                   "token PIN", 4))

    def _enroll_on(self, token, user: str) -> dict:
        der, made, proof = token.enroll(user, lambda der: enrolment_text(
            user, key_id_of(serialization.load_der_public_key(der))))
        public = serialization.load_der_public_key(der)
        _say(f"your personal signing key {key_id_of(public)} {'was made on' if made else 'is already on'} your "
             f"PKCS#11 token (label {token.label(user)!r}; it never leaves the token)")
        return {"public_pem": pem_of(public), "proof": proof}

    def enroll(self, user: str) -> dict:
        """A new key, or the one already held (an enrolment that did not land is made again with the same key:
        nothing half-done stays behind); its public key and its signature of its own enrolment. On the person's
        PKCS#11 token where their environment names one (APPLIANCE_PERSONAL_PKCS11), else in their key file."""
        token = self._token()
        if token is not None:
            return self._enroll_on(token, user)
        private_path, public_path = self._paths(user)
        if private_path.exists():
            key = self._load(user)
            _say(f"your personal signing key {key_id_of(key.public_key())} is already in {private_path}")
            return {"public_pem": pem_of(key.public_key()),
                    "proof": _sign(key, enrolment_text(user, key_id_of(key.public_key())))}
        passphrase = self._passphrase(confirm=True)
        key = ec.generate_private_key(ec.SECP256R1())
        public_pem = pem_of(key.public_key())
        key_id = key_id_of(key.public_key())
        private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(private_path.parent, 0o700)
        salt = os.urandom(16)
        encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(_stretched(passphrase, salt)))
        record = {"format": KEY_FORMAT, "kdf": "scrypt", "n": SCRYPT_N, "r": 8, "p": 1, "salt": salt.hex(),
                  "key_id": key_id, "pkcs8": encrypted.decode()}
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(record, indent=1).encode())
            fh.flush()
            os.fsync(fh.fileno())
        public_path.write_text(public_pem)
        os.chmod(public_path, 0o644)
        _say(f"your personal signing key {key_id} is in {private_path} (encrypted; keep its passphrase to yourself)")
        return {"public_pem": public_pem, "proof": _sign(key, enrolment_text(user, key_id))}

    def _load(self, user: str) -> ec.EllipticCurvePrivateKey:
        private_path, _ = self._paths(user)
        try:
            data = private_path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"you hold no personal signing key for {user} ({private_path})", hint="keys.enroll") \
                from None
        except OSError as exc:
            raise InputError(f"{private_path}: cannot read your personal key: {exc.strerror}") from None
        try:
            record = json.loads(data)
            if record.get("format") != KEY_FORMAT or record.get("kdf") != "scrypt":
                raise ValueError("format")
            stretched = _stretched(self._passphrase(confirm=False), bytes.fromhex(record["salt"]), int(record["n"]),
                                   int(record["r"]), int(record["p"]))
            return serialization.load_pem_private_key(record["pkcs8"].encode(), password=stretched)
        except (ValueError, TypeError, KeyError):
            raise IntegrityError(f"{private_path}: cannot decrypt your personal key: wrong passphrase or damaged "
                                 "file") from None

    def sign(self, user: str, payload: bytes) -> dict:
        try:
            statement = json.loads(payload)
        except ValueError:
            raise PermissionDenied("refused to sign: not a decision statement") from None
        differs = asked_for(statement, self.argv)
        if not differs and (statement.get("predicate") or {}).get("signer") != user:
            differs = f"it names another signer than {user}"
        if differs:
            raise PermissionDenied(f"refused to sign what the appliance service asked: {differs}")
        subject = statement["subject"][0]
        said = f"{statement['predicate']['decision']} {subject['name']} (sha256 {subject['digest']['sha256'][:16]}...)"
        token = self._token()
        if token is not None:
            der, sig = token.sign(user, payload_to_sign(payload))
            key_id = key_id_of(serialization.load_der_public_key(der))
            _say(f"signed on your token with your personal key {key_id[:16]}: {said}")
            return {"key_id": key_id, "sig": sig}
        key = self._load(user)
        key_id = key_id_of(key.public_key())
        _say(f"signing with your personal key {key_id[:16]}: {said}")
        return {"key_id": key_id, "sig": _sign(key, payload_to_sign(payload))}


def payload_to_sign(payload: bytes, payload_type: str = "application/vnd.in-toto+json") -> bytes:
    """DSSE's pre-authentication encoding of a payload: what an envelope's signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
