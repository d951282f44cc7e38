"""The organisation's pages: squads, tribes, systems and APIs."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, render

from portal.actors import Actor
from squads import scorecards
from squads.models import Api, Membership, Person, Service, Squad, System, Tribe
from squads.views.service import panel_templates


@login_required
def squad_list(request):
    tribes = (
        Tribe.objects.prefetch_related(
            Prefetch(
                "squads",
                queryset=Squad.objects.annotate(
                    n_services=Count("services", distinct=True),
                    n_members=Count("memberships", distinct=True),
                ),
            )
        )
        .filter(squads__isnull=False)
        .distinct()
    )
    loose = Squad.objects.filter(tribe__isnull=True).annotate(
        n_services=Count("services", distinct=True), n_members=Count("memberships", distinct=True)
    )
    return render(request, "squads/squad_list.html", {"tribes": tribes, "loose": loose})


squad_list.nav_section = "squads"


def _squad_context(request, squad):
    members = list(
        Membership.objects.filter(squad=squad)
        .select_related("person")
        .order_by("role", "person__name")
    )
    svc = list(
        Service.objects.filter(owner=squad)
        .select_related("system")
        .prefetch_related("tags")
        .order_by("name")
    )
    cards = scorecards.evaluate(svc)
    actor = Actor.from_request(request)
    return {
        "squad": squad,
        "members": members,
        "leads": [m for m in members if m.role == Membership.Role.LEAD],
        "rows": [{"service": s, "scorecard": cards[s.pk]} for s in svc],
        "rollup": scorecards.rollup(cards.values()),
        "can_write": actor.can("catalog:write", squad),
        "panels": panel_templates("squad"),
    }


@login_required
def squad_detail(request, slug):
    squad = get_object_or_404(Squad.objects.select_related("tribe"), slug=slug)
    return render(request, "squads/squad_detail.html", _squad_context(request, squad))


squad_detail.nav_section = "squads"


@login_required
def my_squads(request):
    person = Person.objects.filter(user=request.user).first()
    squads = []
    if person:
        squads = [
            {**_squad_context(request, m.squad), "role": m.get_role_display()}
            for m in Membership.objects.filter(person=person).select_related(
                "squad", "squad__tribe"
            )
        ]
    return render(request, "squads/my_squads.html", {"person": person, "my": squads})


my_squads.nav_section = "squads"


@login_required
def tribe_detail(request, slug):
    tribe = get_object_or_404(Tribe.objects.select_related("parent"), slug=slug)
    squads = tribe.squads.annotate(
        n_services=Count("services", distinct=True), n_members=Count("memberships", distinct=True)
    )
    return render(
        request,
        "squads/tribe_detail.html",
        {"tribe": tribe, "squads": squads, "children": tribe.children.all()},
    )


tribe_detail.nav_section = "squads"


@login_required
def system_detail(request, slug):
    system = get_object_or_404(System.objects.select_related("owner", "domain"), slug=slug)
    svc = system.services.select_related("owner").order_by("name")
    return render(
        request,
        "squads/system_detail.html",
        {
            "system": system,
            "services": svc,
            "apis": system.apis.select_related("owner"),
            "resources": system.resources.all(),
        },
    )


system_detail.nav_section = "catalog"


@login_required
def api_detail(request, slug):
    api = get_object_or_404(Api.objects.select_related("owner", "system"), slug=slug)
    return render(
        request,
        "squads/api_detail.html",
        {
            "api": api,
            "providers": api.providers.select_related("owner"),
            "consumers": api.consumers.select_related("owner"),
        },
    )


api_detail.nav_section = "catalog"
