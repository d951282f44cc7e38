"""The profile fields Groups and Users share (``spec.profile``)."""

from ..validate import _email, _text, _url


def profile_of(ctx, e):
    """``spec.profile`` as a mapping (an error, and an empty one, when it is something else)."""
    profile = e.spec.get("profile") or {}
    if not isinstance(profile, dict):
        ctx.error(e.doc, e, "spec.profile", "must be a mapping")
        profile = {}
    return profile


def display_name(ctx, e, profile, fallback):
    """``spec.profile.displayName``, else ``metadata.title``, else ``fallback``."""
    return (
        _text(ctx, e, profile, "displayName", "spec.profile.displayName", clip=200)
        or _text(ctx, e, e.metadata, "title", "metadata.title", clip=200)
        or fallback[:200]
    )


def email_and_picture(ctx, e, profile):
    email = _email(
        ctx, e, _text(ctx, e, profile, "email", "spec.profile.email"), "spec.profile.email"
    )
    picture = _url(
        ctx,
        e,
        _text(ctx, e, profile, "picture", "spec.profile.picture"),
        "spec.profile.picture",
    )
    return email, picture
