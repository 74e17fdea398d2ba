"""The audit trail on SQLite and PostgreSQL: appends, the corruption battery, concurrency, crashes."""

import base64
import json
import signal
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, insert, literal, select, update

from appliance.audit import merkle
from appliance.audit.events import Event
from appliance.audit.log import (
    Checkpoint,
    _sign_checkpoint,
    checkpoint_now,
    perfect_lookup,
    record,
    record_many,
)
from appliance.audit.verify import Trust, verify_log
from appliance.config import load_settings
from appliance.context import Actor, Context
from appliance.db import connect, migrate, session_scope
from appliance.db.tables import audit_checkpoint, audit_event, audit_node, signing_key
from appliance.errors import PermissionDenied
from appliance.keys import crypto, store
from tests.conftest import installed_policies

pytestmark = pytest.mark.unit

ERIN = Actor("erin", "engineer", "session")


@pytest.fixture
def ctx(database_url, tmp_path, monkeypatch):
    folder = installed_policies(tmp_path / "policies", {"audit": {"every_events: 1000": "every_events: 4"}})
    monkeypatch.setenv("APPLIANCE_POLICIES", str(folder))
    settings = load_settings()
    engine = connect(settings, create=True)
    migrate(engine)
    system = Context(settings, engine)
    store.init_keys(system)
    return system.acting_as(ERIN)


def verify(ctx, exported=None, **kwargs):
    """`audit verify` as the officer runs it: the pinned keys, the anchors and the cadence of this install."""
    return verify_log(ctx.engine, Trust.of(ctx.settings), exported, **kwargs)


def append(ctx, n, start=0):
    """n state changes, one transaction each."""
    seqs = []
    for i in range(start, start + n):
        with session_scope(ctx.engine) as s:
            seqs.append(record(ctx, s, Event("test.append", "test", f"item-{i}", details={"i": i})))
    return seqs


def test_a_batch_is_one_transaction_with_consecutive_numbers(ctx):
    with session_scope(ctx.engine) as s:
        seqs = record_many(ctx, s, [Event("test.batch", "test", str(i)) for i in range(50)])
    assert seqs == list(range(3, 53))
    assert verify(ctx).ok


def tamper(engine, *statements):
    """Someone with file access: triggers dropped or disabled, rows rewritten."""
    with engine.begin() as conn:  # the triggers: DDL, driver level
        if conn.dialect.name == "sqlite":
            for table in ("audit_event", "audit_checkpoint", "audit_node"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER USER")
            conn.exec_driver_sql("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER")
            conn.exec_driver_sql("ALTER TABLE audit_node DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)


E = audit_event.c


def leaf_of(engine, seq):
    from appliance.audit.events import LEAF, canonical

    with engine.connect() as conn:
        row = conn.execute(select(*LEAF).where(E.seq == seq)).one()
    return merkle.leaf_hash(canonical(tuple(row))).hex()


def max_seq(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.max(E.seq))).scalar()


def count_events(engine, action: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(E.action == action)).scalar()


def test_events_are_appended_in_sequence_and_verify(ctx):
    assert append(ctx, 3) == [3, 4, 5]  # 1 and 2 are the creation of the two keys
    report = verify(ctx)
    assert report.ok, report.problems
    assert report.events == 5
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(E.action, E.actor, E.object_id).order_by(E.seq)).all()
    assert [tuple(r) for r in rows[2:]] == [("test.append", "erin", f"item-{i}") for i in range(3)]
    assert [r[0] for r in rows[:2]] == ["key.create", "key.create"]


def test_checkpoints_are_signed_every_n_events(ctx):
    append(ctx, 10)
    with ctx.engine.connect() as conn:
        sizes = list(conn.execute(select(audit_checkpoint.c.tree_size).order_by(audit_checkpoint.c.tree_size))
                     .scalars())
    assert sizes == [2, 4, 8, 12]  # the first as soon as the audit key exists (event 2), then every 4
    assert verify(ctx).checkpoints_checked == 2 * len(sizes)  # each stored, and each anchored outside


def test_audit_tables_refuse_update_and_delete(ctx):
    import sqlalchemy

    append(ctx, 2)
    for statement in (update(audit_event).where(E.seq == 1).values(reason="x"), delete(audit_event).where(E.seq == 1),
                      delete(audit_checkpoint), update(audit_node).values(hash="x")):
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
            with ctx.engine.begin() as conn:
                conn.execute(statement)


def test_a_modified_event_is_named(ctx):
    append(ctx, 9)
    tamper(ctx.engine, update(audit_event).where(E.seq == 5).values(actor="mallory"))
    report = verify(ctx)
    assert not report.ok and report.first_bad_seq == 5
    assert "event 5 was modified" in report.problems[0]


def test_a_modified_event_with_its_hash_rewritten_is_caught_by_checkpoints(ctx):
    append(ctx, 9)
    tamper(ctx.engine, update(audit_event).where(E.seq == 6).values(actor="mallory"))
    tamper(ctx.engine, update(audit_event).where(E.seq == 6).values(leaf_hash=leaf_of(ctx.engine, 6)))
    report = verify(ctx)
    assert not report.ok
    assert any("history up to event 8 was rewritten" in p for p in report.problems), report.problems
    assert report.first_bad_seq == 5  # just after the checkpoint at size 4, the last one still matching


def test_a_deleted_event_is_named(ctx):
    append(ctx, 9)
    tamper(ctx.engine, delete(audit_event).where(E.seq == 7))
    report = verify(ctx)
    assert report.first_bad_seq == 7 and "event 7 is missing" in report.problems[0]


def test_an_inserted_event_is_named(ctx):
    append(ctx, 9)
    last = max_seq(ctx.engine)
    forged = {"seq": literal(5), "event_id": literal("forged"), "actor": literal("mallory")}  # a copy of event 4
    shift = [update(audit_event).where(E.seq == s).values(seq=s + 1, event_id=func.substr(E.event_id, 2) + "x")
             for s in range(last, 4, -1)]
    tamper(ctx.engine, *shift,
           insert(audit_event).from_select([c.name for c in audit_event.c],
                                           select(*[forged.get(c.name, c) for c in audit_event.c]).where(E.seq == 4)))
    report = verify(ctx)
    assert report.first_bad_seq == 5 and "event 5 was modified" in report.problems[0]


def test_swapped_events_are_named(ctx):
    append(ctx, 9)
    cols = (E.actor, E.action, E.object_type, E.object_id, E.details, E.ts, E.correlation_id)
    with ctx.engine.connect() as conn:
        a = conn.execute(select(*cols).where(E.seq == 3)).one()._mapping
        b = conn.execute(select(*cols).where(E.seq == 4)).one()._mapping
    assert a != b
    tamper(ctx.engine, update(audit_event).where(E.seq == 4).values(dict(a)),
           update(audit_event).where(E.seq == 3).values(dict(b)))
    report = verify(ctx)
    assert report.first_bad_seq == 3


def _cut_tail(engine, keep: int) -> None:
    """The insider's truncation: the newest events, the tree nodes that cover them and the checkpoints above."""
    node = audit_node.c
    tamper(engine, delete(audit_event).where(E.seq > keep),
           delete(audit_node).where((node.idx + 1) * literal(1).op("<<")(node.level) > keep),
           delete(audit_checkpoint).where(audit_checkpoint.c.tree_size > keep))


def test_tail_truncation_with_its_nodes_and_checkpoints_is_named_by_the_anchors(ctx):
    append(ctx, 9)
    exported = checkpoint_now(ctx)
    size = exported.tree_size
    _cut_tail(ctx.engine, size - 2)
    report = verify(ctx)  # the database alone is consistent: the anchor file outside it is not
    assert not report.ok and report.first_bad_seq == size - 1
    lacking = [p for p in report.problems if "the database lacks the checkpoint" in p]
    assert lacking and not any("signer killed" in p for p in lacking)  # its events went too: no crash looks so
    assert any(p.startswith(f"log truncated: events {size - 1}..{size} are missing; the anchor at "
                            f"{ctx.settings.anchor_path} line") for p in report.problems), report.problems
    report = verify(ctx, [exported])
    assert f"log truncated: events {size - 1}..{size} are missing; exported checkpoint (signed {exported.ts}) " \
           f"covers {size} events, the log has {size - 2}" in report.problems


def test_an_emptied_checkpoint_table_is_named(ctx):
    append(ctx, 9)
    tamper(ctx.engine, delete(audit_checkpoint))
    report = verify(ctx)
    assert any("the database lacks the checkpoint anchored at" in p and "stored checkpoints were deleted" in p
               for p in report.problems), report.problems


def test_an_anchor_whose_signer_stopped_before_storing_it_is_noted_once_a_later_checkpoint_covers_it(ctx):
    """The signer anchors a checkpoint before storing its row; killed in between, the anchor has no row. Until a
    later checkpoint is stored that cannot be told from a deletion (refused); after it, it is an auditor's note."""
    append(ctx, 9)
    with ctx.engine.connect() as conn:
        newest = conn.execute(select(func.max(audit_checkpoint.c.tree_size))).scalar()
    # the row that never came
    tamper(ctx.engine, delete(audit_checkpoint).where(audit_checkpoint.c.tree_size == newest))
    assert any("stored checkpoints were deleted (a signer killed between anchoring and storing" in p
               for p in verify(ctx).problems)
    append(ctx, 3, start=50)  # the log goes on; a later checkpoint is signed and stored
    report = verify(ctx)
    assert report.ok, report.problems
    assert any(f"(size {newest}) was never stored" in n for n in report.notes), report.notes


def test_an_edited_or_removed_anchor_file_is_named(ctx):
    append(ctx, 9)
    path = ctx.settings.anchor_path
    lines = path.read_text().splitlines()
    at = [i for i, line in enumerate(lines) if '"tree_size"' in line][1]  # the second checkpoint's line
    forged = json.loads(lines[at])
    forged["root"] = "00" * 32
    path.write_text("\n".join([*lines[:at], json.dumps(forged), *lines[at + 1:]]) + "\n")
    report = verify(ctx)
    assert any(f"the anchor at {path} line {at + 1} at size {forged['tree_size']}: signature does not verify" in p
               for p in report.problems), report.problems
    path.write_text("not json\n")
    assert any(f"{path} line 1: not a JSON checkpoint" in p for p in verify(ctx).problems)
    path.unlink()
    assert any(f"the anchor file {path} is missing" in p for p in verify(ctx).problems)


def test_a_key_inserted_into_the_database_is_not_trusted(ctx):
    """Someone with the database adds an audit key of their own and re-signs the history they rewrote."""
    append(ctx, 5)
    foreign = ec.generate_private_key(ec.SECP256R1())
    pem = foreign.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_id = crypto.key_id_of(foreign.public_key())
    size = max_seq(ctx.engine)
    with ctx.engine.connect() as conn:
        root = merkle.subtree_hash(0, size, perfect_lookup(conn))
    body = Checkpoint(size, root.hex(), "2026-12-01T00:00:00+00:00", key_id, "")
    signature = base64.b64encode(foreign.sign(body.body(), ec.ECDSA(hashes.SHA256()))).decode()
    tamper(ctx.engine, update(signing_key).where(signing_key.c.purpose == "audit").values(status="retired"),
           insert(signing_key).values(key_id=key_id, purpose="audit", status="active", public_pem=pem, private_file="x",
                                      created_at="2026-12-01T00:00:00+00:00"),
           delete(audit_checkpoint).where(audit_checkpoint.c.tree_size == size),
           insert(audit_checkpoint).values(tree_size=size, root=root.hex(), ts=body.ts, key_id=key_id,
                                           signature=signature))
    report = verify(ctx)
    assert any(f"stored checkpoint at size {size}: signed by key {key_id[:16]}, found only in the database (not in "
               f"{ctx.settings.pinned_keys_path})" in p for p in report.problems), report.problems


def test_without_pinned_keys_nothing_verifies(ctx):
    append(ctx, 3)
    ctx.settings.pinned_keys_path.unlink()
    report = verify(ctx)
    assert not report.ok
    assert report.problems[0].startswith(f"no pinned audit keys: {ctx.settings.pinned_keys_path} does not exist")


def drop_leaf_lines(ctx, first: int) -> None:
    """The anchor file without the leaf lines of events from `first` on: as a process that died between its
    commit and its anchor leaves it, or as rows written straight into the database look."""
    path = ctx.settings.anchor_path
    kept = [line for line in path.read_text().splitlines()
            if '"leaves"' not in line or json.loads(line)["from"] < first]
    path.write_text("\n".join(kept) + "\n")


def test_events_never_anchored_are_tolerated_within_the_cadence_only(ctx):
    from datetime import UTC, datetime, timedelta

    gateway = ctx.not_signing()  # appends, never signs: as the gateway does
    first = max_seq(ctx.engine) + 1
    for i in range(3):
        with session_scope(ctx.engine) as s:
            record(gateway, s, Event("test.unsigned", "test", str(i)))
    assert verify(ctx).ok and verify(ctx).unanchored == 0  # each leaf anchored as it was committed
    drop_leaf_lines(ctx, first)
    report = verify(ctx)
    assert report.ok and report.unanchored == 3, report.problems
    assert f"3 events from event {first} on are not yet anchored" in report.notes[0]
    later = datetime.now(UTC) + timedelta(seconds=300 + 60 + 5)
    report = verify(ctx, now=later)
    assert not report.ok and report.first_bad_seq == first
    assert f"unanchored events: 3 from event {first} on are covered neither by their anchored leaf" \
        in report.problems[0]
    with pytest.raises(PermissionDenied, match="does not sign audit checkpoints"):
        checkpoint_now(gateway)
    checkpoint_now(ctx)  # the signer anchors it
    assert verify(ctx, now=later).ok


def test_the_newest_events_deleted_a_minute_after_they_were_written_are_named(ctx):
    """Every event leaves the database as it commits: no tail is young enough to be cut unnoticed."""
    from datetime import UTC, datetime, timedelta

    gateway = ctx.not_signing()  # no checkpoint covers what it writes
    append(ctx, 1)
    checkpoint_now(ctx)
    size = max_seq(ctx.engine)
    for i in range(4):
        with session_scope(ctx.engine) as s:
            record(gateway, s, Event("test.recent", "test", str(i)))
    _cut_tail(ctx.engine, size)  # the four newest, their nodes; no checkpoint covers them
    report = verify(ctx, now=datetime.now(UTC) + timedelta(seconds=60))
    assert not report.ok and report.first_bad_seq == size + 1
    truncated = f"log truncated: events {size + 1}..{size + 4} were deleted; their leaves were anchored as they " \
        f"were committed ({ctx.settings.anchor_path} line"
    assert any(p.startswith(truncated) for p in report.problems), report.problems
    with session_scope(ctx.engine) as s:  # the log goes on over the gap: the same numbers, other events
        record(gateway, s, Event("test.refill", "test", "x"))
    report = verify(ctx)
    assert any(f"event {size + 1} differs from its leaf anchored at {ctx.settings.anchor_path} line" in p
               for p in report.problems), report.problems


def test_a_checkpoint_forged_with_a_foreign_key_is_refused(ctx):
    append(ctx, 5)
    real = checkpoint_now(ctx)
    foreign = ec.generate_private_key(ec.SECP256R1())
    forged = Checkpoint(real.tree_size, real.root, real.ts, crypto.key_id_of(foreign.public_key()), "")
    signature = base64.b64encode(foreign.sign(forged.body(), ec.ECDSA(hashes.SHA256()))).decode()
    forged = Checkpoint(forged.tree_size, forged.root, forged.ts, forged.key_id, signature)
    report = verify(ctx, forged)
    assert any("exported checkpoint" in p and "signed by unknown key" in p for p in report.problems)
    claimed = Checkpoint(real.tree_size, real.root, real.ts, real.key_id, signature)  # real key id, wrong signature
    assert any("signature does not verify" in p for p in verify(ctx, claimed).problems)


def test_history_resigned_with_the_real_key_is_caught_by_the_exported_checkpoint(ctx):
    append(ctx, 9)
    exported = checkpoint_now(ctx)
    # The insider rewrites event 2, recomputes every hash, drops the old checkpoints and re-signs.
    tamper(ctx.engine, update(audit_event).where(E.seq == 2).values(reason="nothing happened"))
    with ctx.engine.connect() as conn:
        seqs = list(conn.execute(select(E.seq).order_by(E.seq)).scalars())
    tamper(ctx.engine, *[update(audit_event).where(E.seq == s).values(leaf_hash=leaf_of(ctx.engine, s)) for s in seqs],
           delete(audit_checkpoint))
    leaves = [bytes.fromhex(leaf_of(ctx.engine, s)) for s in seqs]
    with ctx.engine.begin() as conn:
        _sign_checkpoint(ctx, conn, len(leaves), merkle.root_of(leaves))
    # Self-consistent and signed with the real key, but the anchors written before the rewrite disagree ...
    assert any("does not match the events" in p and "the anchor at" in p for p in verify(ctx).problems)
    report = verify(ctx, exported)  # ... as does the officer's own copy
    assert not report.ok
    assert any(f"exported checkpoint at size {exported.tree_size} does not match" in p for p in report.problems)


def test_inclusion_proof_from_the_stored_tree(ctx):
    append(ctx, 20)
    with ctx.engine.connect() as conn:
        size = conn.execute(select(func.max(E.seq))).scalar()
        perfect = perfect_lookup(conn)
        root = merkle.subtree_hash(0, size, perfect)
        for seq in (1, 7, size):
            path = merkle.inclusion_path(seq - 1, size, perfect)
            assert merkle.verify_inclusion(perfect(0, seq - 1), seq - 1, size, path, root)
    assert root.hex() == verify(ctx).root


_WRITER = """
import sys
from appliance.audit.events import Event
from appliance.context import Actor
from appliance.audit.log import record
from appliance.config import load_settings
from appliance.context import Context
from appliance.db import connect, session_scope
settings = load_settings()
engine = connect(settings)
ctx = Context(settings, engine, Actor("writer", "engineer", "token"))
count = int(sys.argv[1])
i = 0
while count < 0 or i < count:
    with session_scope(engine) as s:
        record(ctx, s, Event("test.concurrent", "test", f"{sys.argv[2]}-{i}"))
    i += 1
"""


def test_concurrent_appenders_leave_no_gap_and_no_duplicate(ctx):
    before = verify(ctx).events
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, "60", f"w{w}"], stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    for p in procs:
        assert p.wait(timeout=180) == 0, p.stderr.read()
    report = verify(ctx)
    assert report.ok, report.problems
    assert report.events == before + 240
    with ctx.engine.connect() as conn:
        ids = set(conn.execute(select(E.object_id).where(E.action == "test.concurrent")).scalars())
    assert len(ids) == 240


def test_a_crash_in_the_middle_of_appending_leaves_a_verifiable_log(ctx):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, "-1", "crash"], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if count_events(ctx.engine, "test.concurrent") > 30:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    append(ctx, 3, start=100)  # the log goes on after the crash
    checkpoint_now(ctx)  # the signer's next turn: if the kill fell between anchoring and storing, this tells it apart
    report = verify(ctx)
    assert report.ok, report.problems
    assert report.events > 30


def test_failed_action_writes_no_event(ctx):
    with pytest.raises(RuntimeError):
        with session_scope(ctx.engine) as s:
            record(ctx, s, Event("test.rolled_back", "test", "x"))
            raise RuntimeError("the action failed after its event was written")
    assert count_events(ctx.engine, "test.rolled_back") == 0
    append(ctx, 1)
    assert verify(ctx).ok


def test_details_never_carry_secrets():
    with pytest.raises(ValueError, match="must not carry secrets"):
        Event("user.create", "user", "x", details={"password": "hunter2"})
    with pytest.raises(ValueError):
        Event("x", "y", "z", details={"nested": [{"api_token": "t"}]})
    assert Event("token.create", "token", "x", details={"token_id": "abc"}).details == {"token_id": "abc"}


def test_checkpoint_json_round_trips(ctx, tmp_path):
    from appliance.audit.verify import read_checkpoint_file

    append(ctx, 2)
    cp = checkpoint_now(ctx)
    path = tmp_path / "cp.json"
    path.write_text(json.dumps(cp.as_dict()))
    assert read_checkpoint_file(path).checkpoints == [cp]
    assert verify(ctx, [cp]).ok
    kept = read_checkpoint_file(ctx.settings.anchor_path)  # the anchor file reads the same way, leaves and all
    assert kept.checkpoints[-1] == cp and kept.leaves[-1].last == max_seq(ctx.engine)
    assert verify(ctx, kept).ok
