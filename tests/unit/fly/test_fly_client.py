"""The Fly Machines client against the local fake: every operation, and every error path mapped to an
exception that says what to do."""

from __future__ import annotations

import time

import pytest
from fakes.fly_machines import DEFAULT_TOKEN, FakeFly
from fly_testing import APP, RecordedSleeps

from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.fly import (
    FlyAuthError,
    FlyBadRequest,
    FlyClient,
    FlyConflict,
    FlyError,
    FlyNotFound,
    FlyPermissionError,
    FlyPreconditionFailed,
    FlyRateLimited,
    FlyServerError,
    FlyUnavailable,
    FlyValidationError,
    FlyWaitTimeout,
    Rate,
    RateLimits,
    RetryPolicy,
)


def test_list_filters_by_metadata_state_region_and_deleted(fly: FakeFly, client: FlyClient) -> None:
    preview = fly.world.add_machine(APP, state="started", metadata={"drape_role": "preview"})
    fly.world.add_machine(APP, state="stopped", metadata={"drape_role": "preview"}, region="ams")
    fly.world.add_machine(APP, state="started", metadata={"drape_role": "backend"})
    gone = fly.world.add_machine(APP, state="destroyed", metadata={"drape_role": "preview"})

    found = client.machines.list(APP, metadata={"drape_role": "preview"}, states=["started"])
    assert [m.id for m in found] == [preview.id]
    assert found[0].app == APP and found[0].metadata == {"drape_role": "preview"}
    assert fly.world.requests[-1]["query"] == {"metadata.drape_role": "preview", "state": "started"}
    assert {m.region for m in client.machines.list(APP, region="ams")} == {"ams"}
    assert gone.id not in {m.id for m in client.machines.list(APP)}
    assert gone.id in {m.id for m in client.machines.list(APP, include_deleted=True)}
    with pytest.raises(ValueError, match="unknown machine state"):
        client.machines.list(APP, states=["running"])


def test_stop_start_and_wait_through_the_lifecycle(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="started")
    client.machines.stop(APP, added.id, signal="SIGTERM", timeout_s=30)
    assert fly.world.requests[-1]["path"].endswith("/stop")
    machine = client.machines.get(APP, added.id)
    assert machine.state in ("stopping", "stopped") and machine.instance_id == added.instance_id
    assert client.machines.wait_for(machine, "stopped", timeout_s=5).state == "stopped"

    result = client.machines.start(APP, added.id)
    assert result.previous_state == "stopped" and result.migrated is False
    client.machines.wait(APP, added.id, "started", timeout_s=5)
    client.machines.suspend(APP, added.id)
    client.machines.wait(APP, added.id, "suspended", timeout_s=5)
    client.machines.destroy(APP, added.id)  # suspended machines may be destroyed without force
    client.machines.wait(APP, added.id, "destroyed", timeout_s=5)
    with pytest.raises(FlyNotFound, match="machine not found"):
        client.machines.get(APP, added.id)


def test_stop_sends_the_documented_body(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="started")
    seen: list[object] = []
    original = fly.world.stop
    fly.world.stop = lambda app, mid, body, nonce: seen.append(body) or original(app, mid, body, nonce)  # type: ignore[method-assign]
    client.machines.stop(APP, added.id, signal="SIGTERM", timeout_s=30)
    client.machines.stop(APP, added.id)
    assert seen == [{"signal": "SIGTERM", "timeout": "30s"}, {}]
    with pytest.raises(ValueError, match="not a stop signal"):
        client.machines.stop(APP, added.id, signal="SIGBOGUS")  # type: ignore[arg-type]


def test_wait_timeout_is_a_408_that_names_the_states(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="stopped")
    started = time.monotonic()
    with pytest.raises(FlyWaitTimeout) as caught:
        client.machines.wait(APP, added.id, "started", timeout_s=1)
    assert 0.9 <= time.monotonic() - started < 5
    assert caught.value.status == 408
    assert "failed to reach desired state, started, currently stopped" in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_wait_arguments_are_checked_before_sending(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="started")
    before = len(fly.world.requests)
    with pytest.raises(ValueError, match="needs the machine's instance_id"):
        client.machines.wait(APP, added.id, "stopped")
    with pytest.raises(ValueError, match="1 to 60 s"):
        client.machines.wait(APP, added.id, "started", timeout_s=61)
    with pytest.raises(ValueError, match="cannot wait for"):
        client.machines.wait(APP, added.id, "running")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid Fly app name"):
        client.machines.get("My App", added.id)
    assert len(fly.world.requests) == before


def test_lease_guards_mutations_and_the_nonce_header_unlocks_them(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="started")
    lease = client.machines.acquire_lease(APP, added.id, ttl_s=30, description="cutover phase4")
    assert lease.owner == "ops@drape.example" and lease.description == "cutover phase4"
    assert client.machines.get_lease(APP, added.id) == lease

    with pytest.raises(FlyConflict) as caught:
        client.machines.stop(APP, added.id)
    assert caught.value.status == 409
    assert "lease currently held by ops@drape.example" in str(caught.value)
    assert "leases clear" in str(caught.value)
    with pytest.raises(FlyConflict):
        client.machines.acquire_lease(APP, added.id)

    client.machines.stop(APP, added.id, nonce=lease.nonce)
    assert fly.world.requests[-1]["nonce"] == lease.nonce
    client.machines.set_metadata(APP, added.id, "drape_phase", "4")  # metadata is not lease-guarded
    refreshed = client.machines.refresh_lease(APP, added.id, lease.nonce, ttl_s=120)
    assert refreshed.nonce == lease.nonce and refreshed.expires_at > lease.expires_at
    client.machines.release_lease(APP, added.id, lease.nonce)
    assert client.machines.get_lease(APP, added.id) is None
    with pytest.raises(FlyNotFound, match="lease not found"):
        client.machines.release_lease(APP, added.id, lease.nonce)


def test_leased_releases_even_when_the_block_fails(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="started")
    with pytest.raises(RuntimeError, match="boom"), client.machines.leased(APP, added.id, ttl_s=30) as lease:
        client.machines.cordon(APP, added.id, nonce=lease.nonce)
        raise RuntimeError("boom")
    assert fly.world.apps[APP][added.id].cordoned is True
    assert client.machines.get_lease(APP, added.id) is None
    client.machines.uncordon(APP, added.id)
    assert fly.world.apps[APP][added.id].cordoned is False


def test_metadata_read_set_delete(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, metadata={"drape_role": "preview"})
    client.machines.set_metadata(APP, added.id, "drape_phase", "3")
    assert client.machines.metadata(APP, added.id) == {"drape_role": "preview", "drape_phase": "3"}
    client.machines.delete_metadata(APP, added.id, "drape_phase")
    assert client.machines.get(APP, added.id).metadata == {"drape_role": "preview"}


def test_invalid_token_is_a_clear_401(fly: FakeFly) -> None:
    with FlyClient("not-a-token", base_url=fly.url) as wrong, pytest.raises(FlyAuthError) as caught:
        wrong.machines.list(APP)
    message = str(caught.value)
    assert caught.value.status == 401 and "token validation error" in message
    assert "DRAPE_FLY_API_TOKEN" in message and "not-a-token" not in message


def test_token_without_permissions_is_a_clear_403(fly: FakeFly) -> None:
    added = fly.world.add_machine(APP)
    with FlyClient("other-app-token", base_url=fly.url) as foreign, pytest.raises(FlyPermissionError) as caught:
        foreign.machines.list(APP)
    assert "lacks permissions" in str(caught.value)
    with FlyClient("read-only-token", base_url=fly.url) as reader:
        assert reader.machines.get(APP, added.id).id == added.id
        with pytest.raises(FlyPermissionError, match="read-only token cannot start, stop or destroy"):
            reader.machines.stop(APP, added.id)


def test_macaroon_tokens_are_sent_as_they_are(fly: FakeFly) -> None:
    with FlyClient("FlyV1 fm2_macaroon", base_url=fly.url) as deploy:
        assert deploy.machines.list(APP) == []


def test_unknown_app_and_machine_are_404s(fly: FakeFly, client: FlyClient) -> None:
    with pytest.raises(FlyNotFound, match="app not found"):
        client.machines.list("no-such-app")
    with pytest.raises(FlyNotFound, match=r"machine not found.*fly machines list"):
        client.machines.get(APP, "0123456789abcd")


@pytest.mark.parametrize(("state", "operation", "message"), [
    ("started", lambda c, m: c.machines.destroy(APP, m), "not currently stopped or suspended"),
    ("created", lambda c, m: c.machines.start(APP, m), "unable to start machine from current state: 'created'"),
    ("stopped", lambda c, m: c.machines.suspend(APP, m), "unable to suspend machine from current state"),
    ("replacing", lambda c, m: c.machines.start(APP, m), "machine getting replaced, refusing to start"),
])
def test_operations_the_state_does_not_allow_are_412(fly: FakeFly, client: FlyClient, state: str,
                                                     operation: object, message: str) -> None:
    added = fly.world.add_machine(APP, state=state)
    fly.world.apps[APP][added.id].settles_at = None  # hold transient states still for the test
    with pytest.raises(FlyPreconditionFailed) as caught:
        operation(client, added.id)  # type: ignore[operator]
    assert caught.value.status == 412 and message in str(caught.value)
    assert "let it settle" in str(caught.value)


def test_destroy_with_force_takes_a_running_machine(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP, state="started")
    client.machines.destroy(APP, added.id, force=True)
    assert fly.world.requests[-1]["query"] == {"force": "true"}
    client.machines.wait(APP, added.id, "destroyed", timeout_s=5)


def test_400_and_422_are_validation_errors(fly: FakeFly, client: FlyClient) -> None:
    added = fly.world.add_machine(APP)
    fly.world.inject(422, {"error": "invalid metadata key"}, path_contains="/metadata/")
    with pytest.raises(FlyValidationError, match="invalid metadata key"):
        client.machines.set_metadata(APP, added.id, "drape_role", "x")
    fly.world.inject(400, {"error": "invalid ttl"}, path_contains="/lease")
    with pytest.raises(FlyBadRequest, match="correct the value"):
        client.machines.acquire_lease(APP, added.id)


def test_429_waits_retry_after_then_succeeds_even_for_a_stop(fly: FakeFly, client: FlyClient,
                                                            sleeps: RecordedSleeps) -> None:
    added = fly.world.add_machine(APP, state="started")
    fly.world.inject(429, {"error": "rate limit exceeded"}, headers={"Retry-After": "7"}, path_contains="/stop")
    client.machines.stop(APP, added.id)
    assert sleeps == [7.0]
    assert [r["path"].rsplit("/", 1)[-1] for r in fly.world.requests[-2:]] == ["stop", "stop"]


def test_429_that_persists_becomes_a_rate_limit_error(fly: FakeFly, client: FlyClient,
                                                     sleeps: RecordedSleeps) -> None:
    fly.world.inject(429, {"error": "rate limit exceeded"}, times=10)
    with pytest.raises(FlyRateLimited) as caught:
        client.machines.list(APP)
    assert len(fly.world.requests) == 4 and len(sleeps) == 3  # 4 tries, backoff between them
    assert "after 4 tries" in str(caught.value) and "1 request/s per action" in str(caught.value)


def test_5xx_is_retried_for_reads_only(fly: FakeFly, client: FlyClient, sleeps: RecordedSleeps) -> None:
    added = fly.world.add_machine(APP, state="started")
    fly.world.inject(503, {"error": "upstream unavailable"}, method="GET")
    assert client.machines.get(APP, added.id).id == added.id
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.5

    fly.world.inject(502, b"<html>bad gateway</html>", method="POST")
    with pytest.raises(FlyServerError) as caught:
        client.machines.stop(APP, added.id)
    assert len([r for r in fly.world.requests if r["path"].endswith("/stop")]) == 1  # never repeated blindly
    assert "may or may not have happened" in str(caught.value) and "bad gateway" in str(caught.value)


def test_unreachable_api_is_retried_for_reads_and_reported(sleeps: RecordedSleeps) -> None:
    with FakeFly() as fake:
        url = fake.url
    with FlyClient(DEFAULT_TOKEN, base_url=url, sleep=sleeps, connect_timeout_s=1) as client:
        with pytest.raises(FlyUnavailable, match="ConnectionError reaching"):
            client.machines.list(APP)
        assert len(sleeps) == 3
        with pytest.raises(FlyUnavailable, match="may or may not have happened"):
            client.machines.stop(APP, "0123456789abcd")
        assert len(sleeps) == 3


def test_an_answer_that_is_not_json_says_to_check_the_base_url(fly: FakeFly, client: FlyClient) -> None:
    fly.world.inject(200, b"<html>welcome</html>")
    with pytest.raises(FlyError, match=r"not JSON.*base URL points at the Machines API"):
        client.machines.list(APP)


def test_client_rate_limit_keeps_within_the_documented_limits() -> None:
    """Five stops of one machine in a row at the documented limits: the client spaces them (burst 3, then
    1/s) and the fake, which enforces the same limits, never has to answer 429."""
    with FakeFly() as fake:
        added = fake.world.add_machine(APP, state="stopped")
        started = time.monotonic()
        with FlyClient(DEFAULT_TOKEN, base_url=fake.url, retry=RetryPolicy(attempts=1)) as client:
            for _ in range(5):
                client.machines.stop(APP, added.id)
        assert 2.0 <= time.monotonic() - started < 4  # 3 at once, then one every 1/0.9 s


def test_without_client_limits_the_fake_answers_429_and_the_retry_honours_it() -> None:
    with FakeFly() as fake:
        added = fake.world.add_machine(APP, state="stopped")
        unlimited = RateLimits(default=Rate(1000.0, 1000), per_action={})
        with FlyClient(DEFAULT_TOKEN, base_url=fake.url, limits=unlimited) as client:
            started = time.monotonic()
            for _ in range(4):
                client.machines.stop(APP, added.id)
            waited = time.monotonic() - started
        stops = [r for r in fake.world.requests if r["path"].endswith("/stop")]
    assert len(stops) == 5  # the fourth was refused once (429), then sent again after its Retry-After
    assert waited >= 0.9


def test_token_stays_out_of_reprs_and_plain_http_is_refused_off_loopback() -> None:
    client = FlyClient("secret-token-value", base_url="http://127.0.0.1:9/v1")
    assert "secret-token-value" not in repr(client._http)
    with pytest.raises(ValueError, match="only travel over https"):
        FlyClient("t", base_url="http://api.machines.dev/v1")
    with pytest.raises(ValueError, match="token is empty"):
        FlyClient(" ")
    assert FlyClient("t").base_url == "https://api.machines.dev/v1"


def test_from_secrets_names_the_missing_token(tmp_path: object) -> None:
    secrets = load_secrets({"DRAPE_SECRETS_FILE": "/nonexistent/secrets.toml"})
    with pytest.raises(ConfigError, match="DRAPE_FLY_API_TOKEN"):
        FlyClient.from_secrets(secrets)
    token = load_secrets({"DRAPE_SECRETS_FILE": "/nonexistent", "DRAPE_FLY_API_TOKEN": "t0k"})
    assert FlyClient.from_secrets(token).base_url.startswith("https://")
