"""portal.github against a local server speaking GitHub's REST protocol (tests/github/fakegithub)."""

import subprocess

import pytest
from django.core.cache import cache

from portal import github
from portal.gitsource import git_env


@pytest.fixture(autouse=True)
def _clear_etags():
    cache.clear()


def test_app_jwt_is_exchanged_for_an_installation_token_kept_until_near_expiry(fake_github):
    client = github.GitHub()
    token = client.token()
    assert token.startswith("ghs_") and token in fake_github.tokens
    assert github.GitHub().token() == token  # kept: no second mint
    assert fake_github.requests_to(r"POST /app/installations/77/access_tokens", 201) == 1
    # near expiry: minted again
    key = next(iter(github._TOKENS))
    github._TOKENS[key].expires_at = __import__("time").time() + 60
    assert github.GitHub().token() != token
    assert fake_github.requests_to(r"POST /app/installations/77/access_tokens", 201) == 2


def test_a_wrong_private_key_is_refused_by_the_server(fake_github, settings, tmp_path):
    from tests.github.fakegithub import make_key

    other = tmp_path / "other.pem"
    make_key(other)
    settings.GITHUB_APP_PRIVATE_KEY = str(other)
    with pytest.raises(github.GitHubError, match="401.*could not be decoded"):
        github.GitHub().token()
    settings.GITHUB_APP_PRIVATE_KEY = str(tmp_path / "missing.pem")
    with pytest.raises(github.GitHubError, match="GITHUB_APP_PRIVATE_KEY: cannot read"):
        github.GitHub().token()


def test_pagination_follows_link_headers_and_etags_make_pages_free(fake_github):
    for i in range(250):
        fake_github.repos[f"acme/r{i:03d}"] = {
            "id": i,
            "full_name": f"acme/r{i:03d}",
            "private": True,
            "default_branch": "main",
        }
    client = github.GitHub()
    names = [r["full_name"] for r in client.installation_repositories()]
    assert len(names) == 250 and len(set(names)) == 250
    assert fake_github.requests_to(r"GET /installation/repositories", 200) == 3
    again = github.GitHub()
    assert len(list(again.installation_repositories())) == 250
    assert fake_github.requests_to(r"GET /installation/repositories", 304) == 3
    assert again.not_modified == 3


def test_contents_with_etag_304_and_missing_file(fake_github):
    fake_github.add_repo("acme/api", {"catalog-info.yaml": "kind: Component\n"})
    client = github.GitHub()
    text, first = client.file_text("acme/api", "catalog-info.yaml")
    assert text == "kind: Component\n" and not first.cached
    text, second = client.file_text("acme/api", "catalog-info.yaml")
    assert text == "kind: Component\n" and second.cached
    assert fake_github.requests_to(r"contents/catalog-info.yaml", 304) == 1
    assert client.file_text("acme/api", "nope.yaml")[0] is None


def test_secondary_rate_limit_waits_for_retry_after(fake_github):
    fake_github.add_repo("acme/api", {"a.txt": "x"})
    fake_github.secondary_limit = 1
    text, _ = github.GitHub().file_text("acme/api", "a.txt")
    assert text == "x"
    assert fake_github.requests_to(r"contents/a.txt", 403) == 1


def test_rate_limit_beyond_the_wait_fails_with_a_clear_error(fake_github):
    fake_github.add_repo("acme/api", {"a.txt": "x"})
    fake_github.secondary_limit = 120
    with pytest.raises(github.RateLimited, match=r"rate limit reached .*try again in 120 s"):
        github.GitHub().file_text("acme/api", "a.txt")
    fake_github.primary_exhausted = True
    with pytest.raises(github.RateLimited, match="API rate limit exceeded"):
        github.GitHub().file_text("acme/api", "a.txt")


def test_forbidden_is_a_clear_error(fake_github):
    fake_github.add_repo("acme/api", {"a.txt": "x"})
    fake_github.forbidden_repos.add("acme/api")
    with pytest.raises(github.GitHubError, match="403 .*Resource not accessible by integration"):
        github.GitHub().file_text("acme/api", "a.txt")


def test_private_repository_cloned_with_the_token_in_git_config_env(fake_github, tmp_path):
    fake_github.add_repo("acme/secret", {"README": "hidden"})
    url = fake_github.clone_url("acme/secret")
    bare = subprocess.run(
        ["git", "clone", "-q", url, str(tmp_path / "no")], env=git_env(), capture_output=True
    )
    assert bare.returncode != 0  # no token: refused
    token = github.GitHub().token()
    env = github.clone_env(url, token)
    assert token not in url and token not in " ".join(env)
    proc = subprocess.run(
        ["git", "clone", "-q", url, str(tmp_path / "yes")],
        env={**git_env(), **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "yes" / "README").read_text() == "hidden"
    assert github.clone_env("https://gitlab.example.com/a/b.git", token) == {}
