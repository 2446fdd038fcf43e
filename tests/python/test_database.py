"""fusecheck.Database against the CLI's `fusecheck db` (the oracle): the same records, the same
validation, and the load-time decision reading what was stored."""

import json

import pytest

import fusecheck
from conftest import hf_checkpoint, run_cli

EXTREME = ("qwen3-tiny-extreme", "bf16")


def cli_records(db, *args):
    r = run_cli("db", *args, "--json", "--db", db)
    assert r.returncode == 0, r.stderr
    return [{k: v for k, v in rec.items() if k not in ("current", "verdict_from")}
            for rec in json.loads(r.stdout)["records"]]


def test_add_lookup_list_are_the_cli_records(tmp_path):
    db = str(tmp_path / "a.db")
    path = hf_checkpoint(*EXTREME)
    d = fusecheck.Database(db)
    rec = d.add(path, "fused-int8kv", probe=True, name="test/extreme")
    assert rec["model"]["name"] == "test/extreme" and rec["probe"]["kernels"] == "fused-int8kv"
    assert d.lookup(path, "fused-int8kv") == cli_records(db, "lookup", path, "--kernels", "fused-int8kv")
    assert d.lookup("test/extreme") == cli_records(db, "lookup", "test/extreme")
    assert d.list() == cli_records(db, "list")
    # The load-time decision reads the stored measurement, and says so.
    dec = fusecheck.decide_kernels(path, "fused-int8kv", db=db)
    assert dec.source == "probe" and dec.measured_verdict == rec["probe"]["verdict"]


def test_export_import_marks_the_source_and_rejects_bad_lines(tmp_path):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    path = hf_checkpoint(*EXTREME)
    fusecheck.Database(a).add(path, "fused-int8kv", probe=True)
    out = tmp_path / "x.jsonl"
    assert fusecheck.Database(a).export(out) == 1
    lines = out.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + '{"schema": "fusecheck.db/1"}' + "\n")
    rep = fusecheck.Database(b).import_file(bad)
    assert rep["added"] == 1 and len(rep["rejected"]) == 1 and ":2:" in rep["rejected"][0]
    got = fusecheck.Database(b).list()
    assert len(got) == 1 and got[0]["source"].startswith("imported from")
    assert got == cli_records(b, "list")
    assert fusecheck.decide_kernels(path, "fused-int8kv", db=b).source == "database"


def test_damaged_database_is_a_check_error(tmp_path):
    db = tmp_path / "d.db"
    db.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(fusecheck.CheckError) as e:
        fusecheck.Database(db).list()
    cli = run_cli("db", "list", "--db", str(db))
    assert cli.returncode != 0 and str(e.value) in cli.stderr


def test_export_carries_stored_plans_like_the_cli(tmp_path):
    """A plan stored by `fusecheck plan --db` travels in the Python export exactly as in
    `fusecheck db export` (the oracle): the same lines, plan lines included."""
    db = str(tmp_path / "a.db")
    path = hf_checkpoint(*EXTREME)
    fusecheck.Database(db).add(path, "fused-int8kv", probe=True)
    plan = run_cli("plan", path, "--kernels", "fused-int8kv", "-q", "--out",
                   str(tmp_path / "plan.json"), "--db", db)
    assert plan.returncode == 0, plan.stderr
    ours, theirs = tmp_path / "py.jsonl", tmp_path / "cli.jsonl"
    assert fusecheck.Database(db).export(ours) == 1
    cli = run_cli("db", "export", str(theirs), "--db", db)
    assert cli.returncode == 0, cli.stderr
    lines = ours.read_text().splitlines()
    assert lines == theirs.read_text().splitlines()
    assert sum('"fusecheck.db-plan/1"' in l for l in lines) == 1
