"""What the catalog contributes to the base layer: the home page's counts and the viewer's
squads, and the membership lookup actors use (registered in ``SquadsConfig.ready()``)."""

from django.db.models import Count

from squads.models import Membership, Service, Squad, Tribe


def home_context(request) -> dict:
    counts = {
        "tribes": Tribe.objects.count(),
        "squads": Squad.objects.count(),
        "services": Service.objects.count(),
    }
    lifecycle = dict(
        Service.objects.values_list("lifecycle")
        .annotate(n=Count("id"))
        .values_list("lifecycle", "n")
    )
    my_squads = list(
        Squad.objects.filter(memberships__person__user_id=request.user.pk)
        .order_by("name")
        .distinct()
    )
    return {"my_squads": my_squads, "counts": counts, "lifecycle": lifecycle}


def member_squads(user_id: int) -> list[int]:
    """Ids of the squads the user is a member of (one query)."""
    return list(
        Membership.objects.filter(person__user_id=user_id).values_list("squad_id", flat=True)
    )
