"""The ops side of the service: the token store (private, outside the repository, rotation), the digests the
hosts get (never a token), and the bundle's reproducible tar (an unchanged bundle is no upload)."""

from __future__ import annotations

import datetime as dt
import tarfile
import tomllib
from pathlib import Path

import pytest

from drape_fleet.config import ConfigError
from drape_fleet.config.service import load_token_digests
from drape_fleet.service.auth import token_digest
from drape_fleet.service_deploy import bundle, tokens
from drape_fleet.service_deploy.tokens import (
    LAB_CALLERS,
    add_token,
    digests_text,
    ensure_lab_tokens,
    load_store,
    revoke,
)

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


def test_tokens_are_added_rotated_and_revoked_and_the_hosts_get_digests_only(tmp_path: Path) -> None:
    store = tmp_path / "ops" / "service-tokens.toml"
    first = add_token(store, "backend", ["previews"], now=T0)
    second = add_token(store, "backend", ["previews"], now=T0 + dt.timedelta(days=1))
    add_token(store, "monitoring", ["metrics"], now=T0)
    assert store.stat().st_mode & 0o777 == 0o600 and store.parent.stat().st_mode & 0o777 == 0o700
    text = digests_text(load_store(store))
    assert first.token not in text and second.token not in text and token_digest(second.token) in text
    hosts_file = tmp_path / "tokens.toml"
    hosts_file.write_text(text)
    assert [t.caller for t in load_token_digests(hosts_file).tokens] == ["backend", "backend", "monitoring"]

    dropped = revoke(store, "backend", keep_newest=True)
    assert [t.token for t in dropped] == [first.token]
    assert [t.token for t in load_store(store).tokens if t.caller == "backend"] == [second.token]
    revoke(store, "backend", keep_newest=False)
    with pytest.raises(ValueError, match="would revoke every token"):
        revoke(store, "monitoring", keep_newest=False)
    with pytest.raises(ValueError, match=r"unknown scope.*use previews, fleet, metrics"):
        add_token(store, "x1", ["admin"])


def test_a_store_others_can_read_or_inside_the_repository_is_refused(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "service-tokens.toml"
    add_token(store, "backend", ["previews"])
    store.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 644\).*chmod 600"):
        load_store(store)
    monkeypatch.setattr(tokens, "project_root", lambda: tmp_path)  # a checkout here: the store is inside it
    store.chmod(0o600)
    with pytest.raises(ConfigError, match="inside the repository"):
        load_store(store)
    assert load_store(store, allow_in_repo=True).newest("backend") is not None  # the lab's, git-ignored


def test_the_lab_gets_its_callers_once(tmp_path: Path) -> None:
    store = tmp_path / "service-tokens.toml"
    made = ensure_lab_tokens(store)
    again = ensure_lab_tokens(store)
    assert {t.caller for t in made.tokens} == set(LAB_CALLERS)
    assert [t.token for t in again.tokens] == [t.token for t in made.tokens]
    bench = again.newest("bench")
    assert bench is not None and bench.limits is not None and bench.limits.rate_per_s == 100_000
    assert tomllib.loads(store.read_text())["tokens"]


def test_the_bundle_tar_is_the_same_bytes_for_the_same_wheels(tmp_path: Path) -> None:
    wheels = []
    for name, data in (("b-1.0-py3-none-any.whl", b"bb"), ("a-1.0-py3-none-any.whl", b"a")):
        path = tmp_path / name
        path.write_bytes(data)
        wheels.append(path)
    bundle._reproducible_tar(wheels, tmp_path / "one.tar")
    (tmp_path / "a-1.0-py3-none-any.whl").touch()  # a newer mtime, another order: the same bytes
    bundle._reproducible_tar(list(reversed(wheels)), tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"changed")
    bundle._reproducible_tar(wheels, tmp_path / "three.tar")
    assert (tmp_path / "three.tar").read_bytes() != (tmp_path / "one.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in tar.getmembers())


def test_the_bundle_asks_for_the_service_extra_and_knows_each_distribution() -> None:
    names = [r.split("<")[0].split(">")[0].split("=")[0] for r in bundle.requirements()]
    assert {"docker", "pydantic", "fastapi", "uvicorn", "prometheus-client"} <= set(names)
    assert not {"pyinfra", "invoke", "jinja2"} & set(names)
    with pytest.raises(bundle.BundleError, match="no Python version known for rocky-9"):
        bundle.ensure_bundle("rocky-9")
    assert bundle.bundle_digest("3.11") != bundle.bundle_digest("3.12")


def test_prometheus_scrapes_the_service_with_a_metrics_only_token_and_the_ingress_ca(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from drape_fleet.config import load_fleet
    from drape_fleet.config.secrets import Secrets
    from drape_fleet.config.service import ServiceSettings
    from drape_fleet.monitoring import server
    from drape_fleet.monitoring.plan import MonitoringRefused, monitoring_plan
    from drape_fleet.monitoring.receivers import monitoring_secrets, with_runtime_scrape
    from drape_fleet.paths import project_root
    from drape_fleet.service_deploy import scrape
    from tests.monitoring.conftest import FAKE_SECRETS

    production = load_fleet(project_root() / "config" / "production.toml")
    fleet = production.model_copy(update={"service": ServiceSettings()})
    store, ca = tmp_path / "ops" / "service-tokens.toml", tmp_path / "pki" / "ingress" / "trust.pem"
    monkeypatch.setattr(scrape, "store_path", lambda _environment: store)
    monkeypatch.setattr(scrape, "ingress_ca", lambda _environment: ca)
    plan = monitoring_plan(fleet)
    found = monitoring_secrets(plan.settings, Secrets(monitoring={k: SecretStr(v) for k, v in FAKE_SECRETS.items()}))
    fix = "invoke service.token --caller monitoring --scopes metrics --env production"

    with pytest.raises(MonitoringRefused, match=f"no token of the caller 'monitoring'.*Fix: `{fix}`"):
        with_runtime_scrape(fleet, found)
    add_token(store, "monitoring", ["metrics", "previews"], now=T0)
    with pytest.raises(MonitoringRefused, match=r"scopes metrics, previews.*metrics and nothing else.*revoke"):
        with_runtime_scrape(fleet, found)
    token = add_token(store, "monitoring", ["metrics"], now=T0 + dt.timedelta(days=1))
    with pytest.raises(MonitoringRefused, match=r"no ingress CA at .*trust.pem.*invoke service.pki"):
        with_runtime_scrape(fleet, found)
    ca.parent.mkdir(parents=True)
    ca.write_text("-----BEGIN CERTIFICATE-----\nthe ingress CA\n-----END CERTIFICATE-----\n")

    secrets, trust = with_runtime_scrape(fleet, found)
    job = plan.job("drape-runtime")
    assert [(t.host, t.address) for t in job.targets] == [(h.name, f"{h.private_address}:443") for h in fleet.hosts]
    files = {f.path: f for f in server.server_files(plan, secrets, trust)}
    assert files["secrets/drape-runtime.token"].text == token.token + "\n"
    assert files["secrets/drape-runtime.token"].secret and not files["drape-runtime-ca.pem"].secret
    assert files["drape-runtime-ca.pem"].text == ca.read_text()
    config = files["prometheus.yml"].text
    job_text = config[config.index("- job_name: drape-runtime"):config.index("- job_name: prometheus")]
    assert job_text.splitlines()[:8] == [
        "- job_name: drape-runtime", "    honor_labels: true", "    scheme: https", "    authorization:",
        "      credentials_file: /etc/prometheus/drape/secrets/drape-runtime.token", "    tls_config:",
        "      ca_file: /etc/prometheus/drape/drape-runtime-ca.pem", "    static_configs:"]
    assert 'up{job=~"drape-runtime"} == 0' in files["rules/drape-alerts.yml"].text
    assert not any(token.token in f.text for f in files.values() if not f.secret)
    assert monitoring_plan(production).service_jobs == () and "drape-runtime" not in server.prometheus_config(
        monitoring_plan(production)), "a fleet without [service] gets no such job"
