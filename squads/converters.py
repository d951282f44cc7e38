"""URL converter for catalog slugs: Backstage names may contain dots (``my.service``)."""


class EntitySlugConverter:
    regex = r"[-a-zA-Z0-9_.]+"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value
