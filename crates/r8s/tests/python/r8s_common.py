"""Shared helpers for the Kubernetes Python client scripts run by tests/python_client.rs.

Each script takes the kubeconfig path as its only argument and prints one line per step.
A failed expectation is printed as a `FAIL:` line and the script goes on, so one run lists
every difference from upstream; `finish()` then exits 1. An unexpected exception (e.g. a
response the client cannot deserialize) stops the script with a traceback.
"""

import json
import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def load():
    """Load the kubeconfig given on the command line (as users do) and return it."""
    if len(sys.argv) != 2:
        sys.exit("usage: %s KUBECONFIG" % sys.argv[0])
    path = sys.argv[1]
    config.load_kube_config(config_file=path)
    return path


FAILURES = []
_reported = [0]


def step(msg):
    """Log progress so a failure shows how far the script got: `ok` when the checks since
    the previous step all held, `FAILED` otherwise."""
    verdict = "ok" if len(FAILURES) == _reported[0] else "FAILED"
    _reported[0] = len(FAILURES)
    print("%s: %s" % (verdict, msg), flush=True)


def check(cond, msg, *detail):
    """Record (and print) a failed expectation with the offending values; return cond."""
    if not cond:
        text = msg + "".join(" | %r" % (d,) for d in detail)
        FAILURES.append(text)
        print("FAIL:", text, flush=True)
    return cond


def finish(name):
    """Exit 1 if any expectation failed."""
    if FAILURES:
        print("%s: %d failed expectation(s):" % (name, len(FAILURES)))
        for f in FAILURES:
            print("  -", f)
        sys.exit(1)
    print("%s: all checks passed" % name)


def eq(got, want, what):
    check(got == want, "%s: want %r, got %r" % (what, want, got))


def call_desc(fn, args, kwargs):
    """`fn(args…)` with only the short arguments, for failure messages."""
    short = [repr(a) for a in args if isinstance(a, (str, int))]
    short += ["%s=%r" % kv for kv in kwargs.items() if isinstance(kv[1], (str, int))]
    return "%s(%s)" % (fn.__name__, ", ".join(short))


def api_error(fn, *args, **kwargs):
    """Call fn, which should raise ApiException; return (exception or None, Status body)."""
    try:
        res = fn(*args, **kwargs)
    except ApiException as e:
        try:
            body = json.loads(e.body) if e.body else {}
        except ValueError:
            check(False, "error body is not JSON", e.body)
            body = {}
        if not isinstance(body, dict):
            body = {}
        body.setdefault("details", {})
        body.setdefault("message", "")
        return e, body
    check(False, "%s succeeded, expected an ApiException" % call_desc(fn, args, kwargs))
    return None, {"details": {}, "message": ""}


def expect_status(fn, code, reason, *args, **kwargs):
    """Call fn, require an ApiException with this HTTP code and a Status body whose
    `code` and `reason` match (as upstream's apimachinery errors carry them)."""
    e, body = api_error(fn, *args, **kwargs)
    if e is None:
        return body
    if not check(e.status == code, "%s: HTTP status: want %d, got %s" % (
            call_desc(fn, args, kwargs), code, e.status), e.body):
        return body
    what = call_desc(fn, args, kwargs)
    eq(body.get("kind"), "Status", what + ": Status.kind")
    eq(body.get("apiVersion"), "v1", what + ": Status.apiVersion")
    eq(body.get("status"), "Failure", what + ": Status.status")
    eq(body.get("code"), code, what + ": Status.code")
    eq(body.get("reason"), reason, what + ": Status.reason")
    check(body["message"], what + ": Status.message is empty", body)
    return body


def wait_for(what, fn, timeout=30.0, interval=0.2):
    """Poll fn until it returns a truthy value; return that value (the last one, after
    recording a failure, on timeout)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    check(False, "timed out after %ss waiting for %s" % (timeout, what), last)
    return last


def gone(read, *args):
    """True once read(*args) answers 404."""
    try:
        read(*args)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def meta(name, labels=None, **kw):
    return client.V1ObjectMeta(name=name, labels=labels, **kw)
