"""A local HTTP server speaking the Kubernetes REST protocol for the objects Backline uses.

No API server can run on this machine, so the Kubernetes and Argo Rollouts driver tests talk to
this one through the official ``kubernetes`` client (a kubeconfig pointing here). It implements
what those calls rely on, as the API server documents it:

- POST (create), GET / PUT / PATCH of namespaced objects under ``/apis/<group>/<version>/namespaces/<ns>/
  <plural>/<name>`` and ``/api/v1/...``; lists; the ``status`` and ``scale`` subresources;
- patch types ``application/merge-patch+json`` (RFC 7386), ``application/json-patch+json``
  (RFC 6902, with ``test``) and ``application/strategic-merge-patch+json`` (lists of named
  objects such as ``containers`` merged by ``name``, ordered by ``$setElementOrder/<list>``);
- optimistic concurrency: a write carrying a stale ``metadata.resourceVersion`` answers
  ``409 Conflict`` with a ``Status`` object; every write bumps ``resourceVersion``, a spec
  change bumps ``metadata.generation``; bearer-token authentication (401 without it).

A tiny "controller" plays the kubelet for Deployments: after each write, status follows spec
(``observedGeneration``, ready replicas), unless the Deployment is marked stuck, when its
``Progressing`` condition turns ``False`` with ``ProgressDeadlineExceeded``.
Every request is recorded (method, path, content type, JSON body) for the tests to compare with
what ``kubectl`` sends. Set ``KUBECONFIG`` to run the same tests against a real cluster.
"""

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TOKEN = "backline-test-token"
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|scale))?$"
)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


ORDER = "$setElementOrder/"


def strategic_patch(target, patch):
    """Strategic merge for what Backline sends: dicts merge, lists of named dicts merge by name;
    the directive ``$setElementOrder/<list>`` (names by the merge key) orders the merged list,
    and one naming an element that neither side has is refused, as the API server does."""
    if isinstance(patch, dict) and isinstance(target, dict):
        out = dict(target)
        for key, value in patch.items():
            if key.startswith(ORDER):
                continue
            if key.startswith("$"):
                raise ValueError(f"unknown strategic merge directive {key!r}")
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_patch(target.get(key), value)
        for key, order in patch.items():
            if key.startswith(ORDER):
                out[key[len(ORDER) :]] = _ordered(out.get(key[len(ORDER) :]) or [], order)
        return out
    if (
        isinstance(patch, list)
        and isinstance(target, list)
        and all(isinstance(x, dict) and "name" in x for x in patch + target)
    ):
        out = [copy.deepcopy(x) for x in target]
        for item in patch:
            for i, existing in enumerate(out):
                if existing["name"] == item["name"]:
                    out[i] = strategic_patch(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _ordered(items: list, order: list) -> list:
    names = [o["name"] for o in order]
    by_name = {i["name"]: i for i in items}
    if missing := [n for n in names if n not in by_name]:
        raise ValueError(f"$setElementOrder names no element {missing}")
    rest = [i for i in items if i["name"] not in names]
    return [by_name[n] for n in names] + rest


def _pointer(path):
    return (
        [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]
        if path
        else []
    )


def json_patch(doc, ops):
    """RFC 6902 (add, remove, replace, test)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "test":
                if parent[index] != op["value"]:
                    raise ValueError(f"test failed at {op['path']}")
            elif op["op"] == "add":
                parent.insert(index, op["value"])
            elif op["op"] == "replace":
                parent[index] = op["value"]
            elif op["op"] == "remove":
                del parent[index]
        else:
            if op["op"] == "test":
                if parent.get(last) != op["value"]:
                    raise ValueError(f"test failed at {op['path']}")
            elif op["op"] in ("add", "replace"):
                if op["op"] == "replace" and last not in parent:
                    raise KeyError(op["path"])
                parent[last] = op["value"]
            elif op["op"] == "remove":
                del parent[last]
    return doc


class FakeKubernetes:
    def __init__(self):
        self.objects: dict[tuple, dict] = {}
        self.requests: list[dict] = []
        self.stuck: set[str] = set()
        self.interfere: dict[str, int] = {}  # name → writes a "concurrent writer" makes first
        self.fail: dict[str, int] = {}  # name → status code to answer (e.g. 500, 403)
        self.no_status: set[str] = set()  # plurals served without a status subresource
        self.version = 100
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, status(401, "Unauthorized", "Unauthorized"))
                body = json.loads(raw) if raw else None
                path, _, query = self.path.partition("?")
                selector = parse_qs(query).get("labelSelector", [""])[0]
                content_type = (self.headers.get("Content-Type") or "").split(";")[0]
                api.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "content_type": content_type,
                        "body": body,
                    }
                )
                code, answer = api.handle(self.command, path, content_type, body, selector)
                return self._answer(code, answer)

            do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path) -> str:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "backline", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "backline"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return str(path)

    # --- objects --------------------------------------------------------------------------------
    def put(self, api_path: str, ns: str, plural: str, obj: dict) -> dict:
        """Create an object (``api_path`` like ``apis/apps/v1`` or ``api/v1``)."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("namespace", ns)
            meta["generation"] = 1
            self.version += 1
            meta["resourceVersion"] = str(self.version)
            self.objects[(api_path, ns, plural, meta["name"])] = obj
            self._reconcile(plural, obj)
            return copy.deepcopy(obj)

    def get(self, api_path, ns, plural, name) -> dict:
        return copy.deepcopy(self.objects[(api_path, ns, plural, name)])

    def writes(self, since=0) -> list[dict]:
        return [r for r in self.requests[since:] if r["method"] != "GET"]

    def _reconcile(self, plural, obj):
        if plural != "deployments":
            return
        replicas = int(obj.get("spec", {}).get("replicas") or 0)
        name = obj["metadata"]["name"]
        progressing = (
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{name}-7d9f" has timed out progressing.',
            }
            if name in self.stuck
            else {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{name}-7d9f" has successfully progressed.',
            }
        )
        ready = 0 if name in self.stuck else replicas
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready == replicas else "False",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                },
                progressing,
            ],
        }

    def handle(self, method, path, content_type, body, selector=""):
        m = _PATH.match(path)
        if not m:
            return 404, status(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        api_path = "api/v1" if m["core"] else f"apis/{m['group']}/{m['version']}"
        ns, plural, name, sub = m["ns"], m["plural"], m["name"], m["sub"]
        with self.lock:
            if sub == "status" and plural in self.no_status:
                return 404, status(
                    404, "NotFound", f"the server could not find the requested resource ({path})"
                )
            if name and name in self.fail:
                code = self.fail[name]
                return code, status(code, "InternalError", f"simulated failure for {name}")
            if name is None and method == "POST":  # create
                obj = copy.deepcopy(body)
                meta = obj.setdefault("metadata", {})
                key = (api_path, ns, plural, meta.get("name"))
                if key in self.objects:
                    return 409, status(
                        409, "AlreadyExists", f'{plural} "{meta.get("name")}" already exists'
                    )
                meta.update(namespace=ns, generation=1)
                self.version += 1
                meta["resourceVersion"] = str(self.version)
                self._reconcile(plural, obj)
                self.objects[key] = obj
                return 201, copy.deepcopy(obj)
            if name is None:
                wanted = dict(kv.split("=", 1) for kv in selector.split(",") if "=" in kv)
                items = [
                    copy.deepcopy(o)
                    for (a, n, p, _), o in sorted(self.objects.items())
                    if (a, n, p) == (api_path, ns, plural)
                    and all(
                        (o["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items()
                    )
                ]
                return 200, {
                    "kind": "List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": items,
                }
            key = (api_path, ns, plural, name)
            if key not in self.objects:
                return 404, status(404, "NotFound", f'{plural} "{name}" not found')
            obj = self.objects[key]
            if method == "GET":
                return 200, scale_of(obj) if sub == "scale" else copy.deepcopy(obj)
            if self.interfere.get(name):
                self.interfere[name] -= 1
                self.version += 1
                obj["metadata"]["resourceVersion"] = str(self.version)  # someone else wrote
            try:
                new = self._write(obj, method, sub, content_type, body)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return 422, status(422, "Invalid", f"{plural} {name!r} is invalid: {exc}")
            sent_rv = (new.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != obj["metadata"]["resourceVersion"]:
                return 409, status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            if new.get("spec") != obj.get("spec"):
                new["metadata"]["generation"] = obj["metadata"]["generation"] + 1
            else:
                new["metadata"]["generation"] = obj["metadata"]["generation"]
            self.version += 1
            new["metadata"]["resourceVersion"] = str(self.version)
            new["metadata"]["name"], new["metadata"]["namespace"] = name, ns
            self._reconcile(plural, new)
            self.objects[key] = new
            return 200, scale_of(new) if sub == "scale" else copy.deepcopy(new)

    def _write(self, obj, method, sub, content_type, body):
        if sub == "scale":
            if method == "PATCH":
                body = (
                    merge_patch(scale_of(obj), body)
                    if content_type != "application/json-patch+json"
                    else json_patch(scale_of(obj), body)
                )
            replicas = int(body["spec"]["replicas"])
            new = copy.deepcopy(obj)
            new["spec"]["replicas"] = replicas
            new["metadata"].pop("resourceVersion", None)
            if (body.get("metadata") or {}).get("resourceVersion"):
                new["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
            return new
        if method == "PUT":
            new = copy.deepcopy(body)
        elif content_type == "application/json-patch+json":
            new = json_patch(obj, body)
            new["metadata"]["resourceVersion"] = None
        elif content_type == "application/strategic-merge-patch+json":
            new = strategic_patch(obj, body)
            new["metadata"].pop("resourceVersion", None)
            if (body.get("metadata") or {}).get("resourceVersion"):
                new["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
        elif content_type == "application/merge-patch+json":
            new = merge_patch(obj, body)
            if not (body.get("metadata") or {}).get("resourceVersion"):
                new["metadata"].pop("resourceVersion", None)
        else:
            raise ValueError(f"unsupported patch type {content_type!r}")
        new.setdefault("metadata", {})
        if sub == "status":  # the status subresource changes status only
            kept = copy.deepcopy(obj)
            kept["status"] = new.get("status")
            kept["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion")
            return kept
        if "status" in obj and method != "PUT":
            new["status"] = copy.deepcopy(new.get("status", obj["status"]))
        elif method == "PUT":
            new["status"] = copy.deepcopy(
                obj.get("status")
            )  # status is ignored on the main resource
        if new["metadata"].get("resourceVersion") is None:
            new["metadata"].pop("resourceVersion", None)
        return new


def scale_of(obj):
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "resourceVersion": meta["resourceVersion"],
        },
        "spec": {"replicas": int(obj.get("spec", {}).get("replicas") or 0)},
        "status": {"replicas": int((obj.get("status") or {}).get("replicas") or 0)},
    }


def status(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def deployment(name, image, replicas, container="app"):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": container, "image": image}]},
            },
        },
    }


def http_route(name, stable, canary, stable_weight=100, canary_weight=0):
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": stable, "port": 80, "weight": stable_weight},
                        {"name": canary, "port": 80, "weight": canary_weight},
                    ],
                }
            ],
        },
    }


def pod(name, app, image, ready=True, restarts=0):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "image": image,
                    "imageID": "",
                    "ready": ready,
                    "restartCount": restarts,
                    "started": True,
                }
            ],
        },
    }
