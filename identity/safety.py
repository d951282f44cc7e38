"""Safe defaults: with ``BACKLINE_PRODUCTION=true`` Backline does not start while a demo
password still works for any account (``make run``'s banner prints them).

Checked: every demo sign-in of ``seed_demo`` against its password, and every other account that
has a password and is an org admin or staff against each demo password (PBKDF2 is slow by
design, so not every account of a large installation)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db.models import Q

from squads.demo import LOGINS

DEMO_PASSWORDS = sorted({password for password, _, _ in LOGINS.values()})


def demo_password_users() -> list[str]:
    """Usernames whose password is still a demo password."""
    User = get_user_model()
    found = []
    for user in User.objects.filter(username__in=list(LOGINS)).order_by("username"):
        if user.has_usable_password() and user.check_password(LOGINS[user.username][0]):
            found.append(user.username)
    privileged = (
        User.objects.exclude(username__in=list(LOGINS))
        .filter(Q(is_superuser=True) | Q(is_staff=True), is_active=True)
        .exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)
    )
    for user in privileged.order_by("username"):
        if any(user.check_password(p) for p in DEMO_PASSWORDS):
            found.append(user.username)
    return found


def production_problems() -> list[str]:
    users = demo_password_users()
    if not users:
        return []
    return [
        "BACKLINE_PRODUCTION is true but these accounts still have a demo password: "
        f"{', '.join(users)}. Change their passwords (manage.py changepassword NAME) or "
        "remove them before starting."
    ]
