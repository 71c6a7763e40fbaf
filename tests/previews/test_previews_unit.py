"""Pure builders behind the lab git server, the generated projects and the handover: exact outputs."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from preview_support import handover_tar

from drape_fleet.lab import gitserver, projects
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings


def test_repos_conf_guards_each_repository_and_404s_the_rest() -> None:
    conf = gitserver.repos_conf(["shop", "blog"], public=["blog"])
    assert conf.splitlines() == [
        "# Written by drape_fleet.lab.gitserver: one <Location> per repository.",
        "RewriteEngine on",
        'RewriteCond "%{REQUEST_URI}" "!^/git/(blog|shop)\\.git/"',
        'RewriteRule "^/git/" "-" [R=404,L]',
        "<Location /git/blog.git/>",
        "    Require all granted",
        "</Location>",
        "<Location /git/shop.git/>",
        "    AuthType Basic",
        '    AuthName "drape lab git: shop"',
        "    AuthBasicProvider dbd",
        "    AuthDBDUserPWQuery \"SELECT hash FROM tokens WHERE username = %s AND repo = 'shop' "
        "AND expires > unixepoch()\"",
        "    Require valid-user",
        "</Location>",
    ]


def test_no_repository_means_every_path_is_a_404() -> None:
    assert 'RewriteCond "%{REQUEST_URI}" "!^/git/((?!))\\.git/"' in gitserver.repos_conf([])


@pytest.mark.parametrize("name", ["Shop", "a'b", "../x", "", "x" * 64])
def test_repository_names_that_could_escape_are_refused(name: str) -> None:
    with pytest.raises(LabError, match="is not a repository name"):
        gitserver.repos_conf([name])


def test_password_hash_is_apache_sha_and_the_token_repr_hides_the_secret() -> None:
    assert gitserver.password_hash("secret") == "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="
    token = gitserver.GitToken(username="preview-1", secret="s3cr3t", repo="shop", expires=1)
    assert "s3cr3t" not in repr(token)
    assert token.repo_token() == "preview-1:s3cr3t"


def test_server_address_and_url_follow_the_lab_subnet() -> None:
    settings = LabSettings(prefix="wtf", public_subnet="172.29.61.0/24", private_subnet="172.29.62.0/24")
    assert str(gitserver.address(settings)) == "172.29.61.5"
    assert gitserver.repo_url(settings, "shop") == "https://172.29.61.5/git/shop.git"
    spec = gitserver.container_spec(settings, "sha256:abc")
    assert spec["HostConfig"]["Binds"][0].endswith("/repos:/srv/git:ro")  # the server cannot change a repository
    # The lab's own label too, so lab.down removes it with the networks it is attached to.
    assert spec["Labels"][gitserver.GIT_LABEL] == "wtf" and spec["Labels"]["drape.lab"] == "wtf"


def test_handover_archive_is_owned_by_the_preview_and_private() -> None:
    with tarfile.open(fileobj=io.BytesIO(handover_tar("u:p", b"CA"))) as tar:
        members = {m.name: (m.uid, m.gid, oct(m.mode), m.isdir()) for m in tar.getmembers()}
    assert members == {"drape/repo-token": (1000, 1000, "0o400", False),
                       "drape/git-ca.pem": (1000, 1000, "0o444", False)}


def test_generation_is_keyed_by_generator_versions() -> None:
    one = projects.cache_key({"create-vite": "9.3.0", "create-next-app": "16.4.3"})
    other = projects.cache_key({"create-vite": "9.3.1", "create-next-app": "16.4.3"})
    assert one.startswith("create-vite@9.3.0-create-next-app@16.4.3-") and one != other
    script = projects.generate_script({"create-vite": "9.3.0", "create-next-app": "16.4.3"})
    assert "create-vite@9.3.0 -- vite-react --template react-ts --no-interactive" in script
    assert "create-next-app@16.4.3 -- next-app" in script and "--use-pnpm" in script
    assert f"pnpm@{projects.PNPM_VERSION}" in script


HELPER = Path(__file__).parents[2] / "images" / "preview" / "common" / "git-credential.sh"


@pytest.mark.parametrize(("token", "action", "printed"), [
    ("preview-7:s3:cr3t", "get", "username=preview-7\npassword=s3:cr3t\n"),  # the user is before the first ':'
    ("ghs_abc123", "get", "username=x-access-token\npassword=ghs_abc123\n"),  # GitHub's convention
    ("ghs_abc123", "store", ""),  # git stores nothing through this helper
    ("ghs_abc123", "erase", ""),
    (None, "get", ""),  # no token handed over: git asks nobody else and gets a 401
])
def test_the_credential_helper_prints_the_handed_over_token_on_get_only(tmp_path: Path, token: str | None,
                                                                        action: str, printed: str) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    if token is not None:
        (tmp_path / "repo-token").write_text(token)
        env["DRAPE_REPO_TOKEN_FILE"] = str(tmp_path / "repo-token")
    done = subprocess.run(["sh", str(HELPER), action], input="protocol=https\nhost=git.example\n\n", env=env,
                          capture_output=True, text=True, check=True)
    assert done.stdout == printed
