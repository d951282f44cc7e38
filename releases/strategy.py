"""Canary strategies: ordered steps, validated, with the default and its overrides.

A step is one of::

    {"set_weight": 25}                       # canary gets 25 % of the traffic
    {"pause": {}}                            # wait until someone promotes
    {"pause": {"duration": 60}}              # wait 60 s, then go on by itself
    {"analysis": {"template": "golden-signals"}}   # optional per-metric overrides:
    {"analysis": {"template": "golden-signals", "interval": 10, "count": 2}}

Resolution order: steps given when the release is created, the service's override for the
environment, the service's override for any environment, the environment's strategy, then
``default_steps()`` (10 → 25 → 50 → 100 with analysis at each weight and a pause for a
promote after each analysis below 100 %).
"""

from django.core.exceptions import ValidationError

from releases.models import StrategyOverride

DEFAULT_WEIGHTS = (10, 25, 50, 100)
DEFAULT_TEMPLATE = "golden-signals"
ANALYSIS_OVERRIDES = {
    "interval",
    "count",
    "window",
    "min_requests",
    "failure_limit",
    "inconclusive_limit",
    "consecutive_error_limit",
}


def default_steps(template=DEFAULT_TEMPLATE):
    steps = []
    for w in DEFAULT_WEIGHTS:
        steps.append({"set_weight": w})
        steps.append({"analysis": {"template": template}})
        if w < 100:
            steps.append({"pause": {}})
    return steps


def _num(value, what, lo=0.0, hi=None):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number (got {value!r})")
    if value < lo or (hi is not None and value > hi):
        raise ValidationError(
            f"{what} must be between {lo:g} and {hi:g}" if hi else f"{what} must be ≥ {lo:g}"
        )
    return value


def validate(steps) -> list:
    """A clean copy of ``steps`` or ValidationError naming the step at fault."""
    if not isinstance(steps, list) or not steps:
        raise ValidationError("a strategy is a non-empty list of steps")
    if len(steps) > 100:
        raise ValidationError("a strategy has at most 100 steps")
    out = []
    for i, step in enumerate(steps, 1):
        where = f"step {i}"
        if isinstance(step, str) and step == "pause":
            step = {"pause": {}}
        if not isinstance(step, dict) or len(step) != 1:
            raise ValidationError(
                f"{where}: a step is one of {{set_weight: N}}, {{pause: {{}}}}, {{analysis: {{}}}}"
            )
        ((kind, arg),) = step.items()
        if kind == "set_weight":
            w = _num(arg, f"{where}: set_weight", 0, 100)
            if int(w) != w:
                raise ValidationError(f"{where}: set_weight must be a whole percentage")
            out.append({"set_weight": int(w)})
        elif kind == "pause":
            arg = arg or {}
            if isinstance(arg, int | float) and not isinstance(arg, bool):
                arg = {"duration": arg}
            if not isinstance(arg, dict) or set(arg) - {"duration"}:
                raise ValidationError(f"{where}: pause takes {{duration: seconds}} or nothing")
            if arg.get("duration") is not None:
                out.append(
                    {
                        "pause": {
                            "duration": float(
                                _num(arg["duration"], f"{where}: duration", 0, 7 * 86400)
                            )
                        }
                    }
                )
            else:
                out.append({"pause": {}})
        elif kind == "analysis":
            arg = arg or {}
            if isinstance(arg, str):
                arg = {"template": arg}
            if not isinstance(arg, dict):
                raise ValidationError(f"{where}: analysis takes {{template: name, ...}}")
            unknown = set(arg) - ANALYSIS_OVERRIDES - {"template"}
            if unknown:
                raise ValidationError(
                    f"{where}: unknown analysis field(s) {', '.join(sorted(unknown))}"
                )
            clean = {"template": str(arg.get("template") or DEFAULT_TEMPLATE)}
            for key in ANALYSIS_OVERRIDES & set(arg):
                clean[key] = _num(arg[key], f"{where}: {key}", 0)
            out.append({"analysis": clean})
        else:
            raise ValidationError(f"{where}: unknown step {kind!r} (set_weight, pause, analysis)")
    return out


def resolve(service, environment, requested=None) -> tuple[list, str]:
    """(steps, source) for a new release."""
    if requested:
        return validate(requested), "request"
    overrides = {
        o.environment_id: o.steps
        for o in StrategyOverride.objects.filter(service=service).filter(
            environment__in=[environment]
        )
        | StrategyOverride.objects.filter(service=service, environment__isnull=True)
    }
    if environment.pk in overrides:
        return validate(overrides[environment.pk]), "service+environment"
    if None in overrides:
        return validate(overrides[None]), "service"
    if environment.strategy:
        return validate(environment.strategy), "environment"
    return default_steps(), "default"


def describe(step) -> str:
    ((kind, arg),) = step.items()
    if kind == "set_weight":
        return f"set weight {arg} %"
    if kind == "pause":
        d = (arg or {}).get("duration")
        return f"pause {d:g} s" if d else "pause until promoted"
    return f"analysis ({arg.get('template')})"
