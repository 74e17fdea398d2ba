"""A personal signing key on a PKCS#11 token: a smart card or USB key (through OpenSC's module), an HSM, or SoftHSM.

Chosen by the person's own environment: APPLIANCE_PERSONAL_PKCS11 names the token's PKCS#11 module (for instance
/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so), APPLIANCE_PERSONAL_TOKEN the token's label where more than one is
present. The key pair is generated on the token (ECDSA P-256, sensitive, never extractable) under the label
`appliance USER` and used only through the token: the private key never exists outside it, not even in the
person's process. The token's user PIN comes from APPLIANCE_PERSONAL_PIN_FILE or is asked on the terminal; never a
command line. python-pkcs11 speaks PKCS#11 (the module is loaded into the person's own process only).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from appliance.errors import InputError, IntegrityError, NotFound


def _library():
    try:
        import pkcs11
    except ImportError:
        raise InputError("APPLIANCE_PERSONAL_PKCS11 is set, but python-pkcs11 is not installed") from None
    return pkcs11


class TokenKey:
    """The person's key pair on a PKCS#11 token."""

    def __init__(self, module: str, token_label: str | None, pin: Callable[[str], str]):
        self.module, self.token_label, self._pin = module, token_label, pin

    def _token(self):
        pkcs11 = _library()
        try:
            lib = pkcs11.lib(self.module)
        except (RuntimeError, OSError) as exc:
            raise InputError(f"APPLIANCE_PERSONAL_PKCS11={self.module}: not a PKCS#11 module this process can "
                             f"load ({exc})") from None
        present = [t for t in lib.get_tokens() if t.label]
        tokens = [t for t in present if t.label == self.token_label] if self.token_label else present
        if len(tokens) != 1:
            named = ", ".join(repr(t.label) for t in present) or "none"
            raise InputError(f"{self.module}: {'no token' if not tokens else 'more than one token'} "
                             f"{'labelled ' + repr(self.token_label) if self.token_label else 'present'} (tokens: "
                             f"{named}); set APPLIANCE_PERSONAL_TOKEN to its label")
        return tokens[0]

    def _open(self, rw: bool = False):
        pkcs11 = _library()
        token = self._token()
        try:
            return token, token.open(user_pin=self._pin(token.label), rw=rw)
        except pkcs11.PinIncorrect:
            raise IntegrityError(f"token {token.label!r}: wrong PIN (the token counts wrong tries and locks "
                                 "itself)") from None
        except pkcs11.PinLocked:
            raise IntegrityError(f"token {token.label!r}: its PIN is locked; its security officer unlocks it") \
                from None

    @staticmethod
    def label(user: str) -> str:
        return f"appliance {user}"

    def enroll(self, user: str, proof_of: Callable[[bytes], bytes]) -> tuple[bytes, bool, str]:
        """(the DER public key of `user`'s key pair on the token, made there now if absent; whether it was made
        now; its signature of proof_of(that DER key)), in one session with the token (one PIN)."""
        pkcs11 = _library()
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

        _, session = self._open(rw=True)
        with session:
            made = False
            try:
                public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=self.label(user))
                private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=self.label(user))
            except pkcs11.NoSuchKey:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
                public, private = params.generate_keypair(
                    store=True, label=self.label(user),
                    private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True})
                made = True
            der = encode_ec_public_key(public)
            return der, made, _signed(private, proof_of(der))

    def sign(self, user: str, data: bytes) -> tuple[bytes, str]:
        """(the DER public key, a base64 DER ECDSA-SHA256 signature of `data`), both from one session with the
        token (one PIN): SHA-256 here, ECDSA on the token."""
        pkcs11 = _library()
        from pkcs11 import ObjectClass
        from pkcs11.util.ec import encode_ec_public_key

        token, session = self._open()
        with session:
            try:
                key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=self.label(user))
                public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=self.label(user))
            except pkcs11.NoSuchKey:
                raise NotFound(f"token {token.label!r} holds no key labelled {self.label(user)!r}",
                               hint="keys.enroll") from None
            return encode_ec_public_key(public), _signed(key, data)


def _signed(private, data: bytes) -> str:
    """A base64 DER ECDSA-SHA256 signature of `data`: SHA-256 here, ECDSA on the token."""
    from pkcs11 import Mechanism
    from pkcs11.util.ec import encode_ecdsa_signature

    raw = private.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
    return base64.b64encode(encode_ecdsa_signature(raw)).decode()
