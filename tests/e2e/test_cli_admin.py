"""Admin CLI and admin REST API: lifecycles, output formats, errors, auth and
the role/model rules."""

from __future__ import annotations

import json
import time

import pytest
import requests

from orbit_e2e import (
    Creds,
    admin_error,
    admin_signature,
    as_list,
    orbit_bin,
    unique,
)


def names(items, field="name"):
    return [i[field] for i in items]


def assert_cli_error(res, *fragments):
    assert res.returncode != 0, f"expected failure, got rc=0 stdout={res.stdout!r}"
    lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
    assert lines, f"no error message on stderr (stdout={res.stdout!r})"
    assert lines[-1].startswith("error:") or lines[0].startswith("error:"), res.stderr
    for frag in fragments:
        assert frag.lower() in res.stderr.lower(), (frag, res.stderr)


# ---------------------------------------------------------------- tenants


def test_tenant_lifecycle_json(orbit):
    name = unique("tn")
    out = orbit.cli("tenant", "create", name)
    assert out["name"] == name
    assert out["model"] == "admin-only"  # the default

    sm = unique("tn")
    out = orbit.cli("tenant", "create", sm, "--model", "self-managed")
    assert out["name"] == sm and out["model"] == "self-managed"
    assert orbit.cli("tenant", "show", sm)["model"] == "self-managed"

    shown = orbit.cli("tenant", "show", name)
    assert shown["name"] == name and shown["model"] == "admin-only"

    listed = orbit.cli("tenant", "list")
    assert isinstance(listed, list)
    assert {name, sm} <= set(names(listed))
    for t in listed:
        assert "name" in t and "model" in t

    orbit.cli("tenant", "delete", name)
    assert name not in names(orbit.cli("tenant", "list"))
    assert_cli_error(orbit.cli("tenant", "show", name, check=False))
    orbit.cli("tenant", "delete", sm)


def test_tenant_table_output(orbit):
    name = unique("tn")
    res = orbit.cli_run("tenant", "create", name, "--model", "self-managed", output="table")
    assert res.returncode == 0, res.stderr
    res = orbit.cli_run("tenant", "list", output="table")
    assert res.returncode == 0, res.stderr
    assert name in res.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(res.stdout)  # table, not JSON
    res = orbit.cli_run("tenant", "show", name, output="table")
    assert res.returncode == 0, res.stderr
    assert name in res.stdout and "self-managed" in res.stdout
    # default output is table
    res = orbit.cli_run("tenant", "list", output=None)
    assert res.returncode == 0 and name in res.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(res.stdout)


def test_global_flags_after_subcommand_and_explicit_credentials(orbit):
    name = unique("tn")
    orbit.cli("tenant", "create", name)
    env = {k: v for k, v in orbit.cli_env(None).items() if not k.startswith("ORBIT_")}
    cmd_args = ["tenant", "list", "--output", "json", "--admin-url", orbit.admin_url,
                "--access-key", orbit.root.access_key, "--secret-key", orbit.root.secret_key]
    res = orbit.cli_run(*cmd_args, output=None, env=env)
    assert res.returncode == 0, res.stderr
    assert name in names(json.loads(res.stdout))



def test_global_flags_before_subcommand(orbit):
    """`orbit --output json --admin-url URL ... tenant show NAME`."""
    name = unique("tn")
    orbit.cli("tenant", "create", name)
    env = {k: v for k, v in orbit.cli_env(None).items() if not k.startswith("ORBIT_")}
    # between the command group and the action
    res = orbit.cli_run("tenant", "--output", "json", "--admin-url", orbit.admin_url, "show", name,
                        env=orbit.cli_env(None), output=None)
    assert res.returncode == 0, res.stderr
    assert res.json["name"] == name
    # before everything
    res = orbit.cli_run("--output", "json", "--admin-url", orbit.admin_url,
                        "--access-key", orbit.root.access_key,
                        "--secret-key", orbit.root.secret_key, "tenant", "show", name,
                        env=env, output=None)
    assert res.returncode == 0, res.stderr
    assert res.json["name"] == name


def test_cli_env_fallbacks(orbit):
    """ORBIT_ADMIN_URL and the ORBIT_ROOT_* fallback for credentials."""
    name = unique("tn")
    orbit.cli("tenant", "create", name)
    base = {k: v for k, v in orbit.cli_env(None).items() if not k.startswith("ORBIT_")}
    env = dict(base, ORBIT_ADMIN_URL=orbit.admin_url,
               ORBIT_ROOT_ACCESS_KEY=orbit.root.access_key,
               ORBIT_ROOT_SECRET_KEY=orbit.root.secret_key)
    res = orbit.cli_run("tenant", "list", env=env)
    assert res.returncode == 0, res.stderr
    assert name in names(res.json)

    # ORBIT_ACCESS_KEY wins over ORBIT_ROOT_ACCESS_KEY
    env_bad = dict(env, ORBIT_ACCESS_KEY=orbit.root.access_key, ORBIT_SECRET_KEY="wrong-secret")
    assert_cli_error(orbit.cli_run("tenant", "list", env=env_bad))


def test_tenant_errors(orbit):
    name = unique("tn")
    orbit.cli("tenant", "create", name)
    assert_cli_error(orbit.cli("tenant", "create", name, check=False))
    assert_cli_error(orbit.cli("tenant", "show", unique("nx"), check=False))
    assert_cli_error(orbit.cli("tenant", "delete", unique("nx"), check=False))
    assert_cli_error(orbit.cli("tenant", "create", unique("tn"), "--model", "anarchy", check=False))
    # the failed creations left nothing behind
    assert names(orbit.cli("tenant", "list")).count(name) == 1


def test_bad_credentials_are_refused(orbit):
    bad_secret = Creds(None, None, orbit.root.access_key, "not-the-secret")
    assert_cli_error(orbit.cli("tenant", "list", creds=bad_secret, check=False))
    unknown = Creds(None, None, "AKNOTAKEY0000000000", "whatever")
    assert_cli_error(orbit.cli("tenant", "list", creds=unknown, check=False))
    assert_cli_error(orbit.cli("tenant", "create", unique("tn"), creds=unknown, check=False))


def test_unreachable_admin_url_is_an_error(orbit):
    env = orbit.cli_env(None)
    env["ORBIT_ADMIN_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    res = orbit.cli_run("tenant", "list", env=env)
    assert_cli_error(res)


def test_tenant_delete_refused_with_buckets_unless_force(orbit):
    tenant = orbit.new_tenant()
    orbit.cli("bucket", "create", "--tenant", tenant, "keepme")
    res = orbit.cli("tenant", "delete", tenant, check=False)
    assert_cli_error(res)
    assert orbit.cli("tenant", "show", tenant)["name"] == tenant
    orbit.cli("tenant", "delete", tenant, "--force")
    assert tenant not in names(orbit.cli("tenant", "list"))
    assert_cli_error(orbit.cli("bucket", "list", "--tenant", tenant, check=False))


def test_tenant_force_delete_revokes_keys(orbit):
    creds = orbit.new_tenant_with_key()
    s3 = orbit.s3(creds)
    s3.create_bucket(Bucket="doomed")
    s3.put_object(Bucket="doomed", Key="k", Body=b"x")
    orbit.cli("tenant", "delete", creds.tenant, "--force")
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as ei:
        s3.list_buckets()
    assert ei.value.response["Error"]["Code"] == "InvalidAccessKeyId"


# ------------------------------------------------------------ users, keys


def test_user_lifecycle(orbit):
    tenant = orbit.new_tenant()
    for role in ("tenant-admin", "read-write", "read-only"):
        out = orbit.cli("user", "create", "--tenant", tenant, f"user-{role}", "--role", role)
        assert out["name"] == f"user-{role}" and out["role"] == role
    users = orbit.cli("user", "list", "--tenant", tenant)
    assert isinstance(users, list)
    assert {(u["name"], u["role"]) for u in users} >= {
        ("user-tenant-admin", "tenant-admin"), ("user-read-write", "read-write"),
        ("user-read-only", "read-only")}
    res = orbit.cli_run("user", "list", "--tenant", tenant, output="table")
    assert res.returncode == 0 and "user-read-only" in res.stdout and "read-only" in res.stdout

    orbit.cli("user", "delete", "--tenant", tenant, "user-read-only")
    assert "user-read-only" not in names(orbit.cli("user", "list", "--tenant", tenant))

    # errors
    assert_cli_error(orbit.cli("user", "create", "--tenant", tenant, "user-read-write",
                               "--role", "read-write", check=False))
    assert_cli_error(orbit.cli("user", "create", "--tenant", tenant, "x1", "--role", "superuser",
                               check=False))
    assert_cli_error(orbit.cli("user", "create", "--tenant", unique("nx"), "x2", "--role",
                               "read-write", check=False))
    assert_cli_error(orbit.cli("user", "delete", "--tenant", tenant, "nobody", check=False))
    assert_cli_error(orbit.cli("user", "list", "--tenant", unique("nx"), check=False))


def test_users_are_per_tenant(orbit):
    a, b = orbit.new_tenant(), orbit.new_tenant()
    orbit.cli("user", "create", "--tenant", a, "alice", "--role", "read-write")
    orbit.cli("user", "create", "--tenant", b, "alice", "--role", "read-only")
    assert [(u["name"], u["role"]) for u in orbit.cli("user", "list", "--tenant", a)] == [
        ("alice", "read-write")]
    assert [(u["name"], u["role"]) for u in orbit.cli("user", "list", "--tenant", b)] == [
        ("alice", "read-only")]


def test_key_lifecycle(orbit):
    tenant = orbit.new_tenant()
    user = orbit.new_user(tenant)
    out = orbit.cli("key", "create", "--tenant", tenant, "--user", user)
    assert out["tenant"] == tenant and out["user"] == user
    ak, sk = out["access_key_id"], out["secret_access_key"]
    assert ak and sk and ak != sk

    keys = orbit.cli("key", "list", "--tenant", tenant)
    assert isinstance(keys, list)
    mine = [k for k in keys if k["access_key_id"] == ak]
    assert len(mine) == 1 and mine[0]["user"] == user
    # secrets never listed, in any format
    assert sk not in json.dumps(keys)
    table = orbit.cli_run("key", "list", "--tenant", tenant, output="table")
    assert table.returncode == 0 and ak in table.stdout and sk not in table.stdout

    creds = Creds(tenant, user, ak, sk)
    orbit.s3(creds).list_buckets()  # the key works for S3

    orbit.cli("key", "delete", "--tenant", tenant, ak)
    assert ak not in [k["access_key_id"] for k in orbit.cli("key", "list", "--tenant", tenant)]
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as ei:
        orbit.s3(creds).list_buckets()
    assert ei.value.response["Error"]["Code"] == "InvalidAccessKeyId"

    assert_cli_error(orbit.cli("key", "delete", "--tenant", tenant, ak, check=False))
    assert_cli_error(orbit.cli("key", "create", "--tenant", tenant, "--user", "nobody",
                               check=False))


def test_key_of_other_tenant_cannot_be_deleted_through_wrong_tenant(orbit):
    a = orbit.new_tenant_with_key()
    b_tenant = orbit.new_tenant()
    assert_cli_error(orbit.cli("key", "delete", "--tenant", b_tenant, a.access_key, check=False))
    orbit.s3(a).list_buckets()  # still valid


def test_user_delete_revokes_keys(orbit):
    creds = orbit.new_tenant_with_key()
    orbit.s3(creds).list_buckets()
    orbit.cli("user", "delete", "--tenant", creds.tenant, creds.user)
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as ei:
        orbit.s3(creds).list_buckets()
    assert ei.value.response["Error"]["Code"] == "InvalidAccessKeyId"


# ---------------------------------------------------------------- buckets


def test_bucket_lifecycle(orbit):
    creds = orbit.new_tenant_with_key()
    tenant = creds.tenant
    out = orbit.cli("bucket", "create", "--tenant", tenant, "models")
    assert out["name"] == "models"
    orbit.cli("bucket", "create", "--tenant", tenant, "datasets")
    assert {"models", "datasets"} == set(names(orbit.cli("bucket", "list", "--tenant", tenant)))
    table = orbit.cli_run("bucket", "list", "--tenant", tenant, output="table")
    assert table.returncode == 0 and "models" in table.stdout

    # visible to the tenant over S3
    s3 = orbit.s3(creds)
    assert {"models", "datasets"} == {b["Name"] for b in s3.list_buckets()["Buckets"]}
    s3.put_object(Bucket="models", Key="w.bin", Body=b"weights")

    assert_cli_error(orbit.cli("bucket", "create", "--tenant", tenant, "models", check=False))
    assert_cli_error(orbit.cli("bucket", "create", "--tenant", tenant, "Bad_Name", check=False))
    assert_cli_error(orbit.cli("bucket", "create", "--tenant", unique("nx"), "x-bucket",
                               check=False))
    # non-empty bucket: refused unless --force
    assert_cli_error(orbit.cli("bucket", "delete", "--tenant", tenant, "models", check=False))
    assert s3.get_object(Bucket="models", Key="w.bin")["Body"].read() == b"weights"
    orbit.cli("bucket", "delete", "--tenant", tenant, "models", "--force")
    orbit.cli("bucket", "delete", "--tenant", tenant, "datasets")
    assert orbit.cli("bucket", "list", "--tenant", tenant) == []
    assert s3.list_buckets()["Buckets"] == []
    assert_cli_error(orbit.cli("bucket", "delete", "--tenant", tenant, "models", check=False))


def test_bucket_names_are_per_tenant_in_cli(orbit):
    a, b = orbit.new_tenant(), orbit.new_tenant()
    orbit.cli("bucket", "create", "--tenant", a, "shared-name")
    orbit.cli("bucket", "create", "--tenant", b, "shared-name")
    orbit.cli("bucket", "delete", "--tenant", a, "shared-name")
    assert names(orbit.cli("bucket", "list", "--tenant", b)) == ["shared-name"]
    assert names(orbit.cli("bucket", "list", "--tenant", a)) == []


# ---------------------------------------------------------------- openapi


def test_openapi_document(orbit):
    r = requests.get(f"{orbit.admin_url}/admin/v1/openapi.json", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    assert str(doc.get("openapi", "")).startswith("3."), doc.get("openapi")
    assert "/admin/v1/tenants" in doc["paths"]
    for p in ("/admin/v1/tenants/{tenant}", "/admin/v1/tenants/{tenant}/users",
              "/admin/v1/tenants/{tenant}/buckets"):
        assert p in doc["paths"], (p, sorted(doc["paths"]))


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"model": "admin-only"}', b""],
                         ids=["syntax", "array", "missing-name", "empty"])
def test_admin_api_invalid_json_body_is_a_json_400(orbit, body):
    r = orbit.admin("POST", "/admin/v1/tenants", body=body,
                    headers={"Content-Type": "application/json"})
    status, code, _ = admin_error(r)
    assert (status, code) == (400, "InvalidArgument"), (status, code)


def test_admin_api_unknown_route_is_a_json_error(orbit):
    r = orbit.admin("GET", "/admin/v1/no-such-thing")
    status, code, _ = admin_error(r)
    assert status == 404, (status, code)


def test_health_needs_no_auth(orbit):
    assert requests.get(f"{orbit.admin_url}/health", timeout=10).status_code == 200


# ---------------------------------------------------- admin API: auth


def test_admin_api_signed_requests_work(orbit):
    name = unique("tn")
    r = orbit.admin("POST", "/admin/v1/tenants", body={"name": name, "model": "self-managed"})
    assert r.status_code in (200, 201), r.text
    r = orbit.admin("GET", "/admin/v1/tenants")
    assert r.status_code == 200, r.text
    assert name in names(as_list(r.json(), "tenants"))
    r = orbit.admin("GET", f"/admin/v1/tenants/{name}")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name and r.json()["model"] == "self-managed"
    # visible through the CLI too: one API behind both
    assert orbit.cli("tenant", "show", name)["model"] == "self-managed"
    r = orbit.admin("GET", f"/admin/v1/tenants/{unique('nx')}")
    assert admin_error(r)[:2] == (404, "NotFound")
    r = orbit.admin("POST", "/admin/v1/tenants", body={"name": name, "model": "self-managed"})
    assert admin_error(r)[0] == 409
    r = orbit.admin("POST", "/admin/v1/tenants", body={"name": "Not_Valid", "model": "admin-only"})
    assert admin_error(r)[:2] == (400, "InvalidArgument")
    r = orbit.admin("POST", "/admin/v1/tenants", body={"name": unique("tn"), "model": "anarchy"})
    assert admin_error(r)[0] == 400
    r = orbit.admin("DELETE", f"/admin/v1/tenants/{name}")
    assert r.status_code in (200, 204), r.text
    assert admin_error(orbit.admin("GET", f"/admin/v1/tenants/{name}"))[0] == 404


@pytest.mark.parametrize("case", ["no-header", "bad-signature", "wrong-secret", "unknown-key",
                                  "stale-timestamp", "future-timestamp", "garbage-header",
                                  "body-tampered"])
def test_admin_api_auth_failures(orbit, case):
    path = "/admin/v1/tenants"
    if case == "no-header":
        r = orbit.admin("GET", path, auth=False)
    elif case == "bad-signature":
        r = orbit.admin("GET", path, signature="0" * 64)
    elif case == "wrong-secret":
        r = orbit.admin("GET", path, secret_for_signing="not-the-secret")
    elif case == "unknown-key":
        r = orbit.admin("GET", path, creds=Creds(None, None, "AKNOSUCHKEY", "x"))
    elif case == "stale-timestamp":
        r = orbit.admin("GET", path, timestamp=int(time.time()) - 1000)
    elif case == "future-timestamp":
        r = orbit.admin("GET", path, timestamp=int(time.time()) + 1000)
    elif case == "garbage-header":
        r = orbit.admin("GET", path, auth=False, headers={"Authorization": "Bearer nonsense"})
    elif case == "body-tampered":
        # signature over one body, another body sent
        ts = str(int(time.time()))
        sig = admin_signature(orbit.root.secret_key, "POST", path, ts,
                              json.dumps({"name": "aaa-signed"}).encode())
        r = requests.post(orbit.admin_url + path, data=json.dumps({"name": unique("tn")}),
                          headers={"Content-Type": "application/json",
                                   "Authorization": f"ORBIT-HMAC-SHA256 Credential="
                                   f"{orbit.root.access_key}, Timestamp={ts}, Signature={sig}"},
                          timeout=10)
    status, code, msg = admin_error(r)
    assert status == 401, (case, status, code, msg)


def test_admin_api_timestamp_within_window_accepted(orbit):
    r = orbit.admin("GET", "/admin/v1/tenants", timestamp=int(time.time()) - 120)
    assert r.status_code == 200, r.text


def test_admin_api_signature_covers_path(orbit):
    ts = str(int(time.time()))
    sig = admin_signature(orbit.root.secret_key, "GET", "/admin/v1/tenants", ts, b"")
    r = requests.get(orbit.admin_url + f"/admin/v1/tenants/{unique('x')}", timeout=10,
                     headers={"Authorization": f"ORBIT-HMAC-SHA256 Credential="
                              f"{orbit.root.access_key}, Timestamp={ts}, Signature={sig}"})
    assert r.status_code == 401, r.text


# ----------------------------------------------- admin API: roles, models


def test_self_managed_tenant_admin_manages_own_users_and_keys(orbit):
    tenant = orbit.new_tenant(model="self-managed")
    admin = orbit.new_key(tenant, orbit.new_user(tenant, role="tenant-admin"))

    out = orbit.cli("user", "create", "--tenant", tenant, "worker", "--role", "read-write",
                    creds=admin)
    assert out["name"] == "worker"
    assert "worker" in names(orbit.cli("user", "list", "--tenant", tenant, creds=admin))
    key = orbit.new_key(tenant, "worker", creds=admin)
    assert key.access_key in [k["access_key_id"]
                              for k in orbit.cli("key", "list", "--tenant", tenant, creds=admin)]
    orbit.s3(key).list_buckets()
    orbit.cli("key", "delete", "--tenant", tenant, key.access_key, creds=admin)
    orbit.cli("user", "delete", "--tenant", tenant, "worker", creds=admin)
    assert "worker" not in names(orbit.cli("user", "list", "--tenant", tenant))

    # its own tenant only, and never tenant management
    other = orbit.new_tenant(model="self-managed")
    assert_cli_error(orbit.cli("user", "create", "--tenant", other, "intruder", "--role",
                               "read-write", creds=admin, check=False))
    assert_cli_error(orbit.cli("user", "list", "--tenant", other, creds=admin, check=False))
    assert_cli_error(orbit.cli("tenant", "create", unique("tn"), creds=admin, check=False))
    assert_cli_error(orbit.cli("tenant", "delete", other, creds=admin, check=False))
    assert_cli_error(orbit.cli("tenant", "delete", tenant, creds=admin, check=False))
    assert orbit.cli("user", "list", "--tenant", other) == []

    # the same through the API, with exact statuses
    r = orbit.admin("POST", "/admin/v1/tenants", creds=admin,
                    body={"name": unique("tn"), "model": "admin-only"})
    assert admin_error(r)[:2] == (403, "AccessDenied")
    r = orbit.admin("DELETE", f"/admin/v1/tenants/{tenant}", creds=admin)
    assert admin_error(r)[:2] == (403, "AccessDenied")
    r = orbit.admin("GET", f"/admin/v1/tenants/{tenant}/users", creds=admin)
    assert r.status_code == 200, r.text
    r = orbit.admin("GET", f"/admin/v1/tenants/{other}/users", creds=admin)
    assert admin_error(r)[:2] == (403, "AccessDenied")


def test_self_managed_tenant_admin_cannot_escalate_to_operator(orbit):
    tenant = orbit.new_tenant(model="self-managed")
    admin = orbit.new_key(tenant, orbit.new_user(tenant, role="tenant-admin"))
    res = orbit.cli("tenant", "list", creds=admin, check=False)
    if res.returncode == 0:
        # if allowed at all, it must show only its own tenant
        assert names(res.json) == [tenant], res.stdout
    else:
        assert_cli_error(res)
    # a role that does not exist is refused
    assert_cli_error(orbit.cli("user", "create", "--tenant", tenant, "x", "--role", "operator",
                               creds=admin, check=False))


def test_admin_only_tenant_admin_cannot_manage_users_or_keys(orbit):
    tenant = orbit.new_tenant(model="admin-only")
    admin = orbit.new_key(tenant, orbit.new_user(tenant, role="tenant-admin"))
    victim = orbit.new_user(tenant, role="read-write")
    victim_key = orbit.new_key(tenant, victim)

    res = orbit.cli("user", "create", "--tenant", tenant, "w2", "--role", "read-write",
                    creds=admin, check=False)
    assert_cli_error(res)
    assert_cli_error(orbit.cli("key", "create", "--tenant", tenant, "--user", victim,
                               creds=admin, check=False))
    assert_cli_error(orbit.cli("key", "delete", "--tenant", tenant, victim_key.access_key,
                               creds=admin, check=False))
    assert_cli_error(orbit.cli("user", "delete", "--tenant", tenant, victim, creds=admin,
                               check=False))
    assert "w2" not in names(orbit.cli("user", "list", "--tenant", tenant))
    orbit.s3(victim_key).list_buckets()

    r = orbit.admin("POST", f"/admin/v1/tenants/{tenant}/users", creds=admin,
                    body={"name": "w3", "role": "read-write"})
    assert admin_error(r)[:2] == (403, "AccessDenied")
    r = orbit.admin("POST", f"/admin/v1/tenants/{tenant}/users/{victim}/keys", creds=admin,
                    body={})
    assert admin_error(r)[:2] == (403, "AccessDenied")
    r = orbit.admin("DELETE", f"/admin/v1/tenants/{tenant}/users/{victim}", creds=admin)
    assert admin_error(r)[:2] == (403, "AccessDenied")
    assert victim in names(orbit.cli("user", "list", "--tenant", tenant))


@pytest.mark.parametrize("role", ["read-write", "read-only"])
def test_plain_users_cannot_use_admin_api_for_management(orbit, role):
    creds = orbit.new_tenant_with_key(role=role, model="self-managed")
    assert_cli_error(orbit.cli("user", "create", "--tenant", creds.tenant, "x", "--role",
                               "tenant-admin", creds=creds, check=False))
    assert_cli_error(orbit.cli("tenant", "create", unique("tn"), creds=creds, check=False))
    r = orbit.admin("POST", f"/admin/v1/tenants/{creds.tenant}/users", creds=creds,
                    body={"name": "x", "role": "tenant-admin"})
    assert admin_error(r)[:2] == (403, "AccessDenied")


def test_operator_credentials_generated_when_not_given(orbit_factory):
    server = orbit_factory(root_creds=None)
    cred_file = server.data_dir / "root-credentials.json"
    assert cred_file.exists()
    data = json.loads(cred_file.read_text())
    assert data["access_key_id"] and data["secret_access_key"]
    first = server.root
    name = unique("tn")
    server.cli("tenant", "create", name)
    assert server.log_path.read_text(errors="replace").count(first.secret_key) <= 1
    # stable across restarts, and the data is still there
    server.restart()
    assert server.root == first
    assert server.log_path.read_text(errors="replace").count(first.secret_key) == 1, \
        "the generated secret must be printed once, at first start only"
    assert name in names(server.cli("tenant", "list"))


def test_cli_help_and_unknown_subcommand():
    import subprocess
    res = subprocess.run([orbit_bin(), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    for word in ("serve", "tenant", "user", "key", "bucket"):
        assert word in res.stdout, word
    res = subprocess.run([orbit_bin(), "frobnicate"], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
