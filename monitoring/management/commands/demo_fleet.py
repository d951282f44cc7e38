"""`python manage.py demo_fleet`: run a demo fleet in the foreground.

Starts real HTTP processes instrumented with prometheus_client (stable and canary of a few
demo services, on loopback ports), registers their /metrics URLs on the services'
``metrics_urls`` so the builtin backend scrapes them, and generates traffic until SIGTERM or
Ctrl-C, then stops every child process. Instances that die are restarted.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring import backfill, haproxy_front
from monitoring.fleet import WEIGHTS_SUBDIR, Fleet, FleetService
from portal import audit
from portal.actors import Actor
from squads.models import Service

DEFAULT_SERVICES = [
    FleetService("playback-api", error_rate=0.005, latency_ms=35, canary_error_rate=0.04),
    FleetService("search-api", error_rate=0.01, latency_ms=60),
    FleetService(
        "payments-gateway", error_rate=0.002, latency_ms=120, canary_weight=0, tracks=("stable",)
    ),
    FleetService("home-feed-api", error_rate=0.02, latency_ms=80, canary_latency_ms=140),
]


class Command(BaseCommand):
    help = "Run a demo fleet of instrumented HTTP services plus traffic until SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--base-port", type=int, default=9310)
        parser.add_argument("--rps", type=float, default=4.0, help="requests/s per service")
        parser.add_argument(
            "--services", default="", help="comma-separated slugs (default: 4 demo services)"
        )

    def note(self, text: str) -> None:
        """A line of what the fleet is doing: shown unless ``-v 0`` (``make run``'s terminal
        holds the banner and warnings); the ready line and restarts are always shown."""
        if self.verbosity >= 1:
            self.stdout.write(text)

    def handle(self, *args, base_port, rps, services, verbosity=1, **opts):
        self.verbosity = verbosity
        specs = self._specs(services)
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # releases (the `local` deploy driver) set canary weights through this folder
        fleet = Fleet(specs, base_port=base_port, weights_dir=settings.VAR_DIR / WEIGHTS_SUBDIR)
        front = None
        try:
            fleet.start()
            if haproxy_front.available() and haproxy_front.FRONTED in fleet.services:
                sock = haproxy_front.socket_path(settings.VAR_DIR)
                front = haproxy_front.start(fleet, haproxy_front.FRONTED, sock)
                self.note(f"{haproxy_front.FRONTED}: behind HAProxy (admin socket {sock})")
            if settings.DEMO_BACKFILL_HOURS > 0:  # first run: charts alive from the first page
                n = backfill.backfill(fleet, rps, hours=settings.DEMO_BACKFILL_HOURS)
                if n:
                    self.note(
                        f"back-filled {settings.DEMO_BACKFILL_HOURS:g} h of metrics ({n} samples)"
                    )
            self._register(fleet, specs)
            fleet.start_traffic(rps=rps)
            self.stdout.write(
                f"demo fleet running ({len(fleet.instances)} processes, {rps:g} req/s per service)"
            )
            self._watch(fleet, stop)
        finally:
            haproxy_front.stop(front)
            fleet.stop()
            self.note("demo fleet stopped")

    def _specs(self, services: str) -> list[FleetService]:
        """The fleet to run: the wanted slugs (or the demo services) that exist in the catalog."""
        wanted = [s.strip() for s in services.split(",") if s.strip()]
        specs = [s for s in DEFAULT_SERVICES if not wanted or s.slug in wanted]
        specs += [FleetService(s) for s in wanted if s not in {x.slug for x in specs}]
        existing = set(
            Service.objects.filter(slug__in=[s.slug for s in specs]).values_list("slug", flat=True)
        )
        specs = [s for s in specs if s.slug in existing]
        if not specs:
            raise CommandError("none of the demo services exist: run `manage.py seed_demo` first")
        return specs

    def _register(self, fleet: Fleet, specs: list[FleetService]) -> None:
        """Point each service's ``metrics_urls`` at its running instances (audited if changed)."""
        actor = Actor.command()
        for spec in specs:
            urls = fleet.metrics_urls(spec.slug)
            svc = Service.objects.get(slug=spec.slug)
            if svc.metrics_urls != urls:
                svc.metrics_urls = urls
                svc.save(update_fields=["metrics_urls", "updated_at"])
                audit.record(
                    actor,
                    "service.metrics_urls",
                    svc,
                    squad=svc.owner,
                    data={"metrics_urls": urls},
                )
            self.note(f"{spec.slug}: " + ", ".join(f"{u['track']} {u['url']}" for u in urls))

    def _watch(self, fleet: Fleet, stop: threading.Event) -> None:
        """Until ``stop``: report canary weight changes and restart instances that exited."""
        shown: dict[str, object] = {}
        while not stop.wait(2.0):
            for slug, svc in fleet.services.items():
                weight = fleet.canary_weight(slug)
                if "canary" in svc.tracks and not svc.via and shown.get(slug) != weight:
                    shown[slug] = weight
                    self.note(f"{slug}: canary weight {weight} %")
            for (slug, track), inst in fleet.instances.items():
                if inst.proc.poll() is not None and not stop.is_set():
                    self.stdout.write(f"{slug}/{track} exited ({inst.proc.returncode}); restarting")
                    fleet.restart(slug, track)
