from rest_framework.routers import SimpleRouter


class Router(SimpleRouter):
    """A router whose routes match with or without a trailing slash (bots forget it)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
