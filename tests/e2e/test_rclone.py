"""rclone, a third real client, against a live Orbit: sync a directory tree up
and down, list, read a file, check, and delete. rclone is installed by
scripts/test.sh (Debian's package)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess

from orbit_e2e import MiB, unique

RCLONE = shutil.which("rclone")


def rclone(orbit, creds, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    # rclone refuses an AWS_CA_BUNDLE it cannot use; plain http needs none.
    env.update({
        "RCLONE_CONFIG_ORBIT_TYPE": "s3",
        "RCLONE_CONFIG_ORBIT_PROVIDER": "Other",
        "RCLONE_CONFIG_ORBIT_ENDPOINT": orbit.s3_endpoint,
        "RCLONE_CONFIG_ORBIT_ACCESS_KEY_ID": creds.access_key,
        "RCLONE_CONFIG_ORBIT_SECRET_ACCESS_KEY": creds.secret_key,
        "RCLONE_CONFIG_ORBIT_REGION": "us-east-1",
        "RCLONE_CONFIG_ORBIT_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG": os.devnull,
    })
    assert RCLONE, "rclone must be installed (scripts/test.sh installs it)"
    p = subprocess.run([RCLONE, *args], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"rclone {' '.join(args)} exited {p.returncode}\n{p.stderr[-2000:]}"
    return p


def make_tree(root, files: dict[str, int]) -> None:
    for rel, size in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def test_rclone_sync_round_trip(orbit, rw, tmp_path):
    bucket = unique("rc")
    src, back = tmp_path / "src", tmp_path / "back"
    make_tree(src, {"dir/b.bin": 300_000, "dir/sub/c.bin": 12 * MiB + 7, "empty": 0, "with space/ü.txt": 42})
    (src / "a.txt").write_text("hello from rclone\n")
    rclone(orbit, rw, "mkdir", f"orbit:{bucket}")
    rclone(orbit, rw, "sync", str(src), f"orbit:{bucket}/data", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    listed = rclone(orbit, rw, "lsf", "-R", "--files-only", f"orbit:{bucket}/data").stdout.splitlines()
    assert sorted(listed) == sorted(["a.txt", "dir/b.bin", "dir/sub/c.bin", "empty", "with space/ü.txt"]), listed
    assert rclone(orbit, rw, "cat", f"orbit:{bucket}/data/a.txt").stdout == "hello from rclone\n"
    # rclone compares sizes and MD5s (for multipart objects only sizes) with the local tree.
    rclone(orbit, rw, "check", str(src), f"orbit:{bucket}/data")
    rclone(orbit, rw, "sync", f"orbit:{bucket}/data", str(back))
    cmp = filecmp.dircmp(src, back)
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for rel in ["dir/b.bin", "dir/sub/c.bin", "with space/ü.txt"]:
        assert (src / rel).read_bytes() == (back / rel).read_bytes(), rel
    # Deletions propagate, and purge empties the bucket so it can be removed.
    (src / "a.txt").unlink()
    rclone(orbit, rw, "sync", str(src), f"orbit:{bucket}/data")
    assert "a.txt" not in rclone(orbit, rw, "lsf", f"orbit:{bucket}/data").stdout.splitlines()
    rclone(orbit, rw, "purge", f"orbit:{bucket}")
    assert bucket not in rclone(orbit, rw, "lsd", "orbit:").stdout


def test_rclone_cannot_reach_another_tenants_bucket(orbit, rw, tmp_path):
    owner = orbit.new_tenant_with_key()
    bucket = unique("rcp")
    orbit.s3(owner).create_bucket(Bucket=bucket)
    orbit.s3(owner).put_object(Bucket=bucket, Key="secret", Body=b"s")
    assert bucket not in rclone(orbit, rw, "lsd", "orbit:").stdout
    p = rclone(orbit, rw, "cat", f"orbit:{bucket}/secret", check=False)
    assert p.returncode != 0 and p.stdout == ""
