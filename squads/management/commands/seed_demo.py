"""`python manage.py seed_demo`: load the demo music-streaming organisation (idempotent).

Writes the catalog from ``squads/demo/`` through the ORM, then calls ``seed(stdout)`` of
the optional per-app demo modules (``pipelines.demo``, ``monitoring.demo``, ``infra.demo``).
Running it again changes nothing: rows are looked up by slug and only saved when a field
differs.
"""

import importlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal.registry import registry
from squads import demo as data
from squads import models


class Counter:
    def __init__(self):
        self.created = 0
        self.updated = 0

    def __str__(self):
        return f"{self.created} created, {self.updated} updated"


def upsert(counter, model, lookup, values, create_only=None):
    """Get the row matching ``lookup``, create it with ``values`` (and ``create_only``), or save
    only changed fields of ``values``. ``create_only`` fields are left alone on existing rows:
    other demo modules own them afterwards (e.g. pipelines.demo points repository_url at a
    local git repository)."""
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        obj = model.objects.create(**lookup, **values, **(create_only or {}))
        counter.created += 1
        return obj
    changed = [k for k, v in values.items() if getattr(obj, k) != v]
    if changed:
        for k in changed:
            setattr(obj, k, values[k])
        obj.save(update_fields=changed)
        counter.updated += 1
    return obj


def set_m2m(counter, manager, wanted):
    wanted_ids = {o.pk for o in wanted}
    current = set(manager.values_list("pk", flat=True))
    if current != wanted_ids:
        manager.set(list(wanted))
        counter.updated += 1


def slack(slug):
    return f"#squad-{slug}"


def upsert_all(counter, model, rows, values):
    """slug → row for each data row (its slug first); ``values(*rest)`` gives its fields."""
    return {row[0]: upsert(counter, model, {"slug": row[0]}, values(*row[1:])) for row in rows}


def _squad_values(slug, name, tribe, mission):
    return {
        "name": name,
        "mission": mission,
        "tribe": tribe,
        "chat_channel": slack(slug),
        "oncall_contact": f"pagerduty:{slug}-primary",
        "email": f"{slug}@example.com",
        "links": [
            {"url": f"{data.CHAT}/squad-{slug}", "title": f"{slack(slug)} on chat"},
            {"url": f"https://wiki.example.com/squads/{slug}", "title": "Squad wiki"},
        ],
    }


def _seed_groups(c):
    """Tribes, domains and squads: slug → row of each."""
    tribes = upsert_all(
        c, models.Tribe, data.TRIBES, lambda name, desc: {"name": name, "description": desc}
    )
    domains = upsert_all(
        c,
        models.Domain,
        data.DOMAINS,
        lambda name, tribe, desc: {"name": name, "description": desc, "owner_tribe": tribes[tribe]},
    )
    squads = {
        slug: upsert(
            c, models.Squad, {"slug": slug}, _squad_values(slug, name, tribes[tribe], mission)
        )
        for slug, name, tribe, mission in data.SQUADS
    }
    return domains, squads


def _seed_people(c, squads):
    people = {}
    for slug, name, memberships in data.PEOPLE:
        people[slug] = upsert(
            c, models.Person, {"slug": slug}, {"name": name, "email": f"{slug}@example.com"}
        )
        for squad, role in memberships:
            upsert(
                c,
                models.Membership,
                {"person": people[slug], "squad": squads[squad]},
                {"role": role},
            )
    return people


def _seed_login(c, username, password, person, is_admin):
    """The demo sign-in ``username``, linked to ``person``."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, email=person.email)
        user.set_password(password)
        user.is_staff = user.is_superuser = is_admin
        first, _, last = person.name.partition(" ")
        user.first_name, user.last_name = first, last
        user.save()
        c.created += 1
    elif is_admin and not (user.is_staff and user.is_superuser and user.is_active):
        user.is_staff = user.is_superuser = user.is_active = True
        user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        c.updated += 1
    if person.user_id != user.pk:
        # The user may already be linked to another person (e.g. an imported one).
        models.Person.objects.filter(user=user).exclude(pk=person.pk).update(user=None)
        person.user = user
        person.save(update_fields=["user"])
        c.updated += 1


def _seed_systems(c, squads, domains):
    def values(name, owner, domain, desc):
        return {
            "name": name,
            "description": desc,
            "owner": squads[owner],
            "owner_tribe": squads[owner].tribe,
            "domain": domains[domain],
        }

    return upsert_all(c, models.System, data.SYSTEMS, values)


def _owned(squads, systems, name, type_, owner, system, desc):
    """The fields of an API or a resource."""
    return {
        "name": name,
        "type": type_,
        "description": desc,
        "owner": squads[owner],
        "system": systems[system],
    }


def _service_extras(slug, owner, type_, has_runbook, has_oncall):
    """A demo service's runbook, on-call, links and annotations."""
    links = [
        {"url": f"{data.DASHBOARDS}/{slug}", "title": "Grafana dashboard", "icon": "dashboard"}
    ]
    if type_ == "website":
        links.append({"url": f"https://{slug}.example.com/", "title": "Production site"})
    annotations = {"backstage.io/source-location": f"url:{data.GIT}/{owner}/{slug}"}
    if has_oncall:
        annotations["pagerduty.com/service-id"] = f"P{slug.replace('-', '').upper()[:7]}"
    annotations.update(data.services_platform.ANNOTATIONS.get(slug, {}))
    return {
        "runbook_url": f"{data.RUNBOOKS}/{owner}/{slug}" if has_runbook else "",
        "oncall": f"pagerduty:{owner}-primary" if has_oncall else "",
        "links": links,
        "annotations": annotations,
    }


def _seed_services(c, squads, systems):
    tag_names = sorted({t for row in data.SERVICES for t in row[9]})
    tags = {name: upsert(c, models.Tag, {"name": name}, {}) for name in tag_names}
    services = {}
    for row in data.SERVICES:
        slug, name, owner, system, type_, lifecycle, tier, has_runbook, has_oncall = row[:9]
        tag_list, desc = row[9:]
        services[slug] = upsert(
            c,
            models.Service,
            {"slug": slug},
            {
                "name": name,
                "description": desc,
                "owner": squads[owner],
                "system": systems[system],
                "type": type_,
                "lifecycle": lifecycle,
                "tier": tier,
                **_service_extras(slug, owner, type_, has_runbook, has_oncall),
            },
            create_only={"repository_url": f"{data.GIT}/{owner}/{slug}"},
        )
        set_m2m(c, services[slug].tags, [tags[t] for t in tag_list])
    return services


def _seed_apis(c, squads, systems, services):
    def values(name, type_, owner, system, _provider, desc):
        return {
            **_owned(squads, systems, name, type_, owner, system, desc),
            "lifecycle": "production",
        }

    apis = upsert_all(c, models.Api, data.APIS, values)
    provided = {}
    for slug, *_rest, provider, _desc in data.APIS:
        provided.setdefault(provider, []).append(apis[slug])
    for slug, svc in services.items():
        set_m2m(c, svc.provides_apis, provided.get(slug, []))
        set_m2m(c, svc.consumes_apis, [apis[a] for a in data.CONSUMES.get(slug, [])])


def _seed_resources(c, squads, systems):
    def values(name, type_, owner, system, desc):
        return _owned(squads, systems, name, type_, owner, system, desc)

    return upsert_all(c, models.Resource, data.RESOURCES, values)


def _seed_dependencies(c, services, resources):
    for field, table, targets_of in (
        ("target_service", services, data.DEPENDS_ON),
        ("target_resource", resources, data.USES),
    ):
        for source, targets in targets_of.items():
            for target in targets:
                upsert(c, models.Dependency, {"source": services[source], field: table[target]}, {})


def seed_catalog(stdout=None):
    c = Counter()
    domains, squads = _seed_groups(c)
    people = _seed_people(c, squads)
    for username, (password, person_slug, is_admin) in data.LOGINS.items():
        _seed_login(c, username, password, people[person_slug], is_admin)
    systems = _seed_systems(c, squads, domains)
    services = _seed_services(c, squads, systems)
    _seed_apis(c, squads, systems, services)
    resources = _seed_resources(c, squads, systems)
    _seed_dependencies(c, services, resources)
    return c


def run_optional_seeds(stdout):
    """The demo data of every app that registered some (``portal.registry.demo_seed``)."""
    for _order, name in registry.demo_seeds:
        stdout.write(f"seeding {name}")
        importlib.import_module(name).seed(stdout)


class Command(BaseCommand):
    help = "Load the demo organisation (tribes, squads, people, services, ...). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--catalog-only",
            action="store_true",
            help="Only the catalog; skip pipelines/monitoring/infra demo data.",
        )

    def handle(self, *args, catalog_only=False, **options):
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo does not run with BACKLINE_PRODUCTION=true: it sets well-known demo "
                "passwords (admin / backline-admin ...)."
            )
        with transaction.atomic():
            counter = seed_catalog(self.stdout)
        self.stdout.write(
            f"demo catalog: {len(data.TRIBES)} tribes, {len(data.SQUADS)} squads, "
            f"{len(data.PEOPLE)} people, {len(data.SERVICES)} services ({counter})"
        )
        if not catalog_only:
            run_optional_seeds(self.stdout)
        self.stdout.write(self.style.SUCCESS("demo data ready"))
