import yaml
from django.core.management import call_command


def test_openapi_schema_generates_without_warnings_and_lists_the_catalog(tmp_path, db):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    for p in [
        "/api/v1/services/",
        "/api/v1/services/{slug}/",
        "/api/v1/squads/{slug}/",
        "/api/v1/tribes/",
        "/api/v1/people/",
    ]:
        assert p in paths, p
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_swagger_ui_and_schema_are_served(client, alice):
    client.force_login(alice)
    assert client.get("/api/docs/").status_code == 200
    resp = client.get("/api/schema/")
    assert resp.status_code == 200
    assert b"openapi" in resp.content
