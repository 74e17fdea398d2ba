"""The control socket's mechanics, with the service and the client as one OS account (the multiuser tier runs them
as different accounts): the command runs in the service, output reaches the client's terminal, files the client
names are opened by the client, files it asks for appear only on success, its session file is kept by the
client, exit codes, Ctrl-C, and what never goes through the socket."""

import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.cli import cli
from appliance.control import wire
from appliance.control.client import Client
from appliance.control.routing import command_path, route
from tests.conftest import audit_events, pw_file

pytestmark = pytest.mark.unit


@pytest.fixture
def service(staff_home, tmp_path):
    """`appliance service` on a socket in tmp_path for the staff home; yields a function running a command through
    it as a client would (returns the exit code; output is on this process's descriptors)."""
    sock = tmp_path / "run" / "control.sock"
    log = open(tmp_path / "service.log", "w")  # noqa: SIM115
    exe = Path(sys.executable).with_name("appliance")
    proc = subprocess.Popen([str(exe), "service", "--socket", str(sock)],
                            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert proc.poll() is None, (tmp_path / "service.log").read_text()
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    session = tmp_path / "client-session.json"
    (tmp_path / "client-session.json").write_text((tmp_path / "session.json").read_text())

    def run(*args, env=None) -> int:
        """What `appliance ARGS` does with APPLIANCE_SOCKET set: the client side of the socket."""
        return Client(sock, {**os.environ, **(env or {})}, session).run([str(a) for a in args])

    run.socket, run.session, run.proc, run.log = sock, session, proc, tmp_path / "service.log"
    yield run
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()


def _events(home, action):
    return audit_events(home, action, "actor", "outcome", "os_user", "os_uid", "os_source", "details")


def test_a_command_runs_in_the_service_as_the_caller_and_its_os_account(service, staff_home, capfd):
    assert service("whoami", "--json") == 0
    who = json.loads(capfd.readouterr().out)
    assert (who["user"], who["os_uid"]) == ("erin", os.geteuid())
    assert service("models", "list") == 0
    assert "no models registered" in capfd.readouterr().out
    assert service("users", "list") == 6  # erin may not; the refusal reaches the caller's stderr
    assert "erin (engineer) may not users manage" in capfd.readouterr().err
    denial = _events(staff_home, "users.manage")[-1]
    assert denial[:5] == ("erin", "denied", pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), "peer")


def test_files_are_opened_by_the_client_and_outputs_appear_only_on_success(service, staff_home, tmp_path, capfd):
    secret = tmp_path / "policy-like.yaml"
    secret.write_text("base_model: smollm2\nmethod: sft\nmax_steps: 1\n")
    missing = tmp_path / "nope.jsonl"
    assert service("data", "lint", missing) == 2
    assert f"{missing}: No such file or directory" in capfd.readouterr().err
    assert service("data", "lint", tmp_path) == 2  # a folder where a file is wanted
    assert "is a folder, not a file" in capfd.readouterr().err
    assert service("login", "alice", "--password-file", pw_file(staff_home, "alice")) == 0
    out = tmp_path / "exports" / "audit.pem"
    assert service("keys", "export-public", "--out", out) == 2  # no such folder: nothing is written
    assert "does not exist" in capfd.readouterr().err
    out.parent.mkdir()
    assert service("keys", "export-public", "--out", out) == 0
    assert out.read_text().startswith("-----BEGIN PUBLIC KEY-----") and out.stat().st_mode & 0o777 == 0o644
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".part")]
    pack = tmp_path / "exports" / "evidence.zip"
    assert service("audit", "export", "--out", pack) == 0 and pack.stat().st_size > 0
    bad = tmp_path / "exports" / "evidence.txt"  # refused by the library after the client opened a temporary
    assert service("audit", "export", "--out", bad) == 2
    capfd.readouterr()
    assert sorted(p.name for p in out.parent.iterdir()) == ["audit.pem", "evidence.zip"]


def test_login_and_logout_keep_the_session_in_the_clients_file(service, staff_home, tmp_path, capfd):
    service.session.unlink()
    assert service("whoami") == 6 and "not logged in" in capfd.readouterr().err
    assert service("login", "oscar", "--password-file", pw_file(staff_home, "oscar")) == 0
    stored = json.loads(service.session.read_text())
    assert stored["user"] == "oscar" and service.session.stat().st_mode & 0o777 == 0o600
    assert service("whoami") == 0 and "oscar (officer, session)" in capfd.readouterr().out
    assert service("logout") == 0 and not service.session.exists()


def test_a_control_token_works_and_a_gateway_token_does_not(service, staff_home, capfd):
    assert service("tokens", "create", "--scope", "control", "--json") == 0
    control = json.loads(capfd.readouterr().out)["token"]
    assert service("tokens", "create", "--json") == 0
    gateway = json.loads(capfd.readouterr().out)["token"]
    service.session.unlink()
    assert service("whoami", env={"APPLIANCE_TOKEN": control}) == 0
    assert "erin (engineer, token)" in capfd.readouterr().out
    assert service("whoami", env={"APPLIANCE_TOKEN": gateway}) == 6
    assert "for the gateway (queries only), not for the command line" in capfd.readouterr().err


def test_the_service_account_commands_never_run_through_the_socket(service, capfd):
    for args in (("worker", "--once"), ("serve",), ("init",), ("eval", "--scheduled"), ("service",)):
        assert service(*args) == 2, args
        assert "runs as the appliance's service account" in capfd.readouterr().err


def test_chat_reads_its_prompt_from_the_clients_stdin_or_file(service, staff_home, tmp_path, capfd):
    """The prompt is read before the model is looked up: exit 3 (no such model) shows it arrived; an empty
    one is refused (exit 2) instead."""

    def with_stdin(data: bytes, *args) -> int:
        read, write = os.pipe()
        os.write(write, data)
        os.close(write)
        saved = os.dup(0)
        os.dup2(read, 0)
        try:
            return service(*args)
        finally:
            os.dup2(saved, 0)
            os.close(saved)
            os.close(read)

    assert with_stdin(b"", "chat", "nosuch", "-") == 2
    assert "the prompt from standard input is empty" in capfd.readouterr().err
    assert with_stdin(b"hello\n", "chat", "nosuch", "-") == 3
    assert "no model named 'nosuch'" in capfd.readouterr().err
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("hello\n")
    assert service("chat", "nosuch", "--prompt-file", prompt) == 3
    assert "no model named 'nosuch'" in capfd.readouterr().err
    assert service("chat", "nosuch", "--prompt-file", tmp_path / "missing.txt") == 2
    assert "missing.txt: No such file or directory" in capfd.readouterr().err


def test_ctrl_c_reaches_the_command(service, staff_home, tmp_path, capfd):
    # A long command (a lint over many records); the client gets SIGINT while it runs and forwards it.
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"text": f"record {i} " + "x" * 200}) + "\n" for i in range(300_000)))
    timer = threading.Timer(4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    code = service("data", "lint", big)
    timer.join()
    assert code == 130 and "aborted" in capfd.readouterr().err  # as in-process: click turns Ctrl-C into an abort
    assert time.monotonic() - started < 30


def test_routing_follows_who_owns_the_home(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    other = tmp_path / "other"  # a home another account owns
    other.mkdir()
    if os.geteuid() == 0:
        os.chown(other, 65534, 65534)
    else:
        other = Path("/")
    assert route(["models", "list"], {"APPLIANCE_HOME": str(mine)}, cli) is None  # my own home: in-process
    assert route(["models", "list"], {"APPLIANCE_HOME": str(mine), "APPLIANCE_SOCKET": "/s"}, cli) == Path("/s")
    theirs = {"APPLIANCE_HOME": str(other)}
    assert str(route(["models", "list"], theirs, cli)) == "/run/appliance/control.sock"
    assert route(["models", "list"], {**theirs, "APPLIANCE_SOCKET": "/s"}, cli) == Path("/s")
    assert route(["version"], theirs, cli) is None  # needs no home
    assert route(["bundle", "verify", "x"], theirs, cli) is None
    assert route(["models", "list", "--help"], theirs, cli) is None
    assert route(["init"], {"APPLIANCE_HOME": str(tmp_path / "new")}, cli) is None
    assert command_path(["--json", "data", "ingest", "x.jsonl", "--name", "n"], cli) == ("data", "ingest")


def test_a_stranger_on_the_socket_is_refused_cleanly(service):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(str(service.socket))
    wire.send(sock, {"hello": 99, "argv": ["whoami"]})
    message, _ = wire.recv(sock)
    assert message == {"op": "exit", "code": 2}
    sock.close()
    assert service.proc.poll() is None  # the service goes on


def test_the_callers_environment_chooses_nothing_in_the_service(service, staff_home, tmp_path, capfd):
    weak = tmp_path / "weak-policies"
    weak.mkdir()
    (weak / "pii.yaml").write_text("entities: {EMAIL_ADDRESS: {operator: replace}}\n")
    assert service("policies", "list", "--json") == 0
    installed = {e["policy"]: e["digest"] for e in json.loads(capfd.readouterr().out)}
    hostile = {"APPLIANCE_POLICIES": str(weak), "APPLIANCE_HOME": str(tmp_path), "APPLIANCE_DATABASE_URL":
               f"sqlite:///{tmp_path}/other.db", "APPLIANCE_KEY_PASSPHRASE": "chosen by the caller, 42"}
    assert service("policies", "list", "--json", env=hostile) == 0
    assert {e["policy"]: e["digest"] for e in json.loads(capfd.readouterr().out)} == installed
    assert not (tmp_path / "other.db").exists()


def test_a_folder_with_a_link_leaving_it_is_refused_whole(service, staff_home, tmp_path, capfd):
    from tests.helpers import write_hf_folder

    assert service("login", "alice", "--password-file", pw_file(staff_home, "alice")) == 0
    model = write_hf_folder(tmp_path / "tiny")
    (model / "extra.json").symlink_to("/etc/passwd")
    assert service("models", "import", model, "--name", "tiny") == 2
    assert "link 'extra.json' points outside the folder" in capfd.readouterr().err
    (model / "extra.json").unlink()
    assert service("models", "import", model, "--name", "tiny", "--json") == 0
    imported = json.loads(capfd.readouterr().out)
    assert imported["origin"].endswith(f":{model}") and not list((staff_home / "tmp").glob("upload-*"))


class CraftedClient(Client):
    """A person's own client, written to attack the service: its folder uploads are a tar stream of its making."""

    def __init__(self, *args, members):
        super().__init__(*args)
        self.members, self.asked = members, 0

    def _open_tree(self, path):
        import io

        self.asked += 1
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for info, data in self.members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        read_end, write_end = os.pipe2(os.O_CLOEXEC)

        def feed():
            with os.fdopen(write_end, "wb") as out:
                out.write(buf.getvalue())

        threading.Thread(target=feed, daemon=True).start()
        return {"kind": "dir"}, [read_end]


def _member(name, kind=None, data=b"", link=""):
    import tarfile

    info = tarfile.TarInfo(name)
    info.type = kind or tarfile.REGTYPE
    info.size = len(data) if data is not None else 0
    info.linkname = link
    return info, data


@pytest.mark.parametrize("members, said", [
    # a link first, then a file "through" it: a check that depends on the order of members resolves outside
    ([_member("weights", __import__("tarfile").SYMTYPE, None, "/etc"), _member("weights/passwd", data=b"x")],
     "'weights' is a link; links are not accepted in an upload"),
    ([_member("config.json", __import__("tarfile").LNKTYPE, None, "/etc/shadow")],
     "'config.json' is a link; links are not accepted in an upload"),
    ([_member("model.safetensors", __import__("tarfile").GNUTYPE_SPARSE, b"0123456789")],
     "'model.safetensors' is a sparse file; send it whole"),
    ([_member("fifo", __import__("tarfile").FIFOTYPE, None)], "'fifo' is not a file or a folder"),
])
def test_a_crafted_upload_is_refused_whole_and_leaves_nothing(service, staff_home, tmp_path, capfd, members, said):
    assert service("login", "erin", "--password-file", pw_file(staff_home, "erin")) == 0
    capfd.readouterr()
    client = CraftedClient(service.socket, dict(os.environ), service.session, members=members)
    assert client.run(["models", "import", str(tmp_path), "--name", "crafted"]) == 2
    assert said in capfd.readouterr().err
    assert not list((staff_home / "tmp").glob("upload-*")) and not (staff_home / "models" / "crafted").exists()


def test_an_upload_that_would_fill_the_disk_is_refused_before_it_is_written(service, staff_home, tmp_path, capfd):
    import tarfile

    huge = tarfile.TarInfo("model.safetensors")
    huge.size = 1 << 50  # what the header claims; nothing after it
    assert service("login", "erin", "--password-file", pw_file(staff_home, "erin")) == 0
    capfd.readouterr()
    client = CraftedClient(service.socket, dict(os.environ), service.session, members=[(huge, None)])
    assert client.run(["models", "import", str(tmp_path), "--name", "huge"]) == 2
    assert "would leave less than 2 GiB free on the appliance's disk" in capfd.readouterr().err


class PipeClient(Client):
    """A person's own client that answers a request for a file with a pipe it never closes."""

    def _open_file(self, path):
        read_end, self._held = os.pipe2(os.O_CLOEXEC)
        return read_end


def test_a_descriptor_that_is_not_a_file_and_a_password_file_of_any_size_are_refused(service, staff_home, tmp_path,
                                                                                       capfd):
    password = tmp_path / "password"
    client = PipeClient(service.socket, dict(os.environ), service.session)
    assert client.run(["login", "erin", "--password-file", str(password)]) == 2
    assert f"{password}: not a regular file" in capfd.readouterr().err
    password.write_bytes(b"x" * (64 << 20))  # 64 MiB: read no further than a password file can be
    assert service("login", "erin", "--password-file", password) == 2
    assert f"{password}: over 4096 bytes: not a password file" in capfd.readouterr().err


def test_one_os_account_cannot_take_every_slot_and_a_silent_connection_goes_soon(service, staff_home, capfd):
    import socket

    from appliance.control.request import HELLO_TIMEOUT
    from appliance.control.server import MAX_PER_ACCOUNT

    silent = []
    for _ in range(MAX_PER_ACCOUNT):  # connect and say nothing: each holds a child until the hello deadline
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(str(service.socket))
        silent.append(sock)
    time.sleep(0.5)
    assert service("whoami") == 7
    assert f"your OS account already runs {MAX_PER_ACCOUNT} commands here; try again shortly" in capfd.readouterr().err
    time.sleep(HELLO_TIMEOUT + 1.5)  # the silent ones are dropped at the deadline
    assert service("whoami") == 0
    for sock in silent:
        sock.close()


def test_permission_is_checked_before_anything_of_the_callers_is_copied_in(service, staff_home, tmp_path, capfd):
    assert service("login", "ursula", "--password-file", pw_file(staff_home, "ursula")) == 0
    capfd.readouterr()
    client = CraftedClient(service.socket, dict(os.environ), service.session,
                           members=[_member("model.sig", data=b"x" * 1024)])
    assert client.run(["verify", str(tmp_path / "copies" / "triage")]) == 6
    assert "ursula (user) may not read" in capfd.readouterr().err and client.asked == 0
